//! The signals: how each served metric is computed from Prometheus.
//!
//! Each kind of signal is a module in [`kinds`]; its arithmetic lives in `crate::model`.
//! Around them, one evaluation path is shared by all: [`planner`] turns a request into a
//! query plan ([`plan`]), [`fetch`] sends it through the value cache to the
//! [`QueryBackend`](crate::backend::QueryBackend), [`job_state`] tells which Flink jobs
//! restart, and [`memory`] keeps what is remembered per request.
//!
//! Where a request's selector only names labels a signal groups by, the query is the
//! signal's *grouped* query, without any selector: every HPA polling that signal is answered
//! from the one result, filtered in memory, so Prometheus' load does not grow with the number
//! of HPAs. Other requests get a query with their selector as matchers.

mod current;
mod evaluate;
mod fetch;
mod job_state;
pub mod kinds;
mod memory;
pub mod plan;
mod planner;
mod request;
mod shape;
mod shard;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::backend::QueryBackend;
use crate::cache::{Cache, CacheSettings};
use crate::config::{Api, Config, SignalSpec};
use crate::metrics::Metrics;
use crate::prometheus;
use crate::provider::{
    Current, CustomRequest, CustomValue, ExternalRequest, ExternalValue, MetricError, MetricInfo,
    MetricsProvider, ObjectName,
};
use crate::selector::Selector;

pub use fetch::{Fetched, Outcome};
pub use request::{Evaluation, Item, Mode, Objects, Request};
pub use shape::{custom_values, external_values, kind_of};

pub const BUSY_TIME: &str = "flink_taskmanager_job_task_busyTimeMsPerSecond";
pub const PENDING_RECORDS: &str = "flink_taskmanager_job_task_operator_pendingRecords";
pub const OPERATOR_RECORDS_IN_RATE: &str =
    "flink_taskmanager_job_task_operator_numRecordsInPerSecond";
pub const OPERATOR_RECORDS_OUT_RATE: &str =
    "flink_taskmanager_job_task_operator_numRecordsOutPerSecond";
pub const KAFKA_GROUP_LAG: &str = "kafka_consumergroup_lag";
pub const KAFKA_GROUP_OFFSET: &str = "kafka_consumergroup_current_offset";
pub const PRAVEGA_SEGMENTS: &str = "pravega_controller_segments_count";
pub const JOB_RUNNING_TIME: &str = "flink_jobmanager_job_runningTime";
pub const JOB_RESTARTS: &str = "flink_jobmanager_job_numRestarts";

/// Flink names every FLIP-27 source operator `Source: <name>`.
pub const SOURCE_OPERATOR_REGEX: &str = "Source:.*";

/// Resolves a `pods/*` label selector to pod names through the Kubernetes API.
pub trait PodLister: Send + Sync {
    /// Names of the pods in `namespace` matching `selector`, or why they cannot be listed.
    fn pods(&self, namespace: &str, selector: &Selector) -> Result<Vec<String>, PodListError>;
}

/// Why pods cannot be listed now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PodListError {
    #[error("the pod cache has not synced with the Kubernetes API yet")]
    NotSynced,
}

pub struct Signals {
    signals: BTreeMap<String, SignalSpec>,
    backend: Arc<dyn QueryBackend>,
    pods: Option<Arc<dyn PodLister>>,
    cache: Option<Arc<Cache<Outcome>>>,
    metrics: Arc<Metrics>,
    memory: memory::Memory,
    jobs: job_state::Tracker,
}

impl Signals {
    pub fn new(
        config: &Config,
        prom: prometheus::Client,
        pods: Option<Arc<dyn PodLister>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self::with_backend(config, Arc::new(prom), pods, metrics)
    }

    /// Signals answered from any query backend (recorded or generated data, a simulator).
    pub fn with_backend(
        config: &Config,
        backend: Arc<dyn QueryBackend>,
        pods: Option<Arc<dyn PodLister>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let signals = config
            .signals
            .iter()
            .map(|s| (s.name.clone(), s.clone()))
            .collect();
        let cache = config.cache.refresh_interval.map(|refresh_interval| {
            Cache::new(
                CacheSettings {
                    refresh_interval,
                    max_entries: config.cache.max_entries,
                    idle_after: config.cache.idle_after,
                    max_refreshes: config.cache.max_concurrent_refreshes,
                },
                metrics.clone(),
                |e| Err(MetricError::BackendFailed(e)),
            )
        });
        Self {
            signals,
            backend,
            pods,
            cache,
            metrics,
            memory: memory::Memory::new(config.cache.max_remembered, config.cache.idle_after),
            jobs: job_state::Tracker::default(),
        }
    }

    /// Starts the cache's background refresh (needs a Tokio runtime).
    pub fn start_background(&self) {
        if let Some(c) = &self.cache {
            c.spawn_refresher();
        }
    }

    /// How long a cached snapshot is served as fresh; `None` with the cache off.
    fn refresh_interval(&self) -> Option<Duration> {
        self.cache.as_ref().map(|c| c.refresh_interval())
    }

    pub fn spec(&self, name: &str) -> Option<&SignalSpec> {
        self.signals.get(name)
    }

    /// The PromQL signal `name` sends for `req`, planned without sending it: for checks before
    /// serving. `None` for an unknown signal.
    pub fn planned_promql(&self, name: &str, req: &Request) -> Option<Result<String, MetricError>> {
        let spec = self.signals.get(name)?;
        Some(planner::plan(spec, req, None, Mode::Inspect).map(|p| p.query.promql()))
    }

    /// Where answers come from (Prometheus' URL), for messages.
    pub fn backend_url(&self) -> String {
        self.backend.describe()
    }

    /// Evaluates metric `name` for `req`.
    pub async fn evaluate(&self, name: &str, req: &Request, mode: Mode) -> Evaluation {
        let Some(spec) = self.signals.get(name) else {
            return Evaluation::failed(MetricError::UnknownMetric {
                metric: name.to_string(),
                resource: "external metrics".into(),
            });
        };
        self.evaluate_spec(spec, req, mode).await
    }

    fn observe_ages(&self, items: &[Item]) {
        let now = now_unix();
        for i in items {
            self.metrics
                .served_value_age
                .observe((now - i.timestamp).max(0.0));
        }
    }
}

impl Signals {
    /// What [`MetricsProvider::external`] answers, evaluated in `mode`, with the evaluation's
    /// details (PromQL, samples, warnings; its `result` is moved into the answer). No details
    /// when the metric is unknown.
    pub async fn external_with(
        &self,
        req: &ExternalRequest,
        mode: Mode,
    ) -> (Result<Vec<ExternalValue>, MetricError>, Option<Evaluation>) {
        let Some(spec) = self
            .signals
            .get(&req.metric)
            .filter(|s| s.api() == Api::External)
        else {
            return (
                Err(MetricError::UnknownMetric {
                    metric: req.metric.clone(),
                    resource: "external metrics".into(),
                }),
                None,
            );
        };
        let request = Request {
            namespace: Some(req.namespace.clone()),
            series: req.selector.clone(),
            objects: None,
        };
        let mut eval = self.evaluate_spec(spec, &request, mode).await;
        let answer = std::mem::replace(&mut eval.result, Ok(Vec::new())).map(|items| {
            self.observe_ages(&items);
            external_values(items)
        });
        (answer, Some(eval))
    }

    /// What [`MetricsProvider::custom`] answers, evaluated in `mode`, with the evaluation's
    /// details as in [`Signals::external_with`].
    pub async fn custom_with(
        &self,
        req: &CustomRequest,
        mode: Mode,
    ) -> (Result<Vec<CustomValue>, MetricError>, Option<Evaluation>) {
        let Some(spec) = self
            .signals
            .get(&req.metric)
            .filter(|s| s.api() == Api::Custom && s.resource() == req.resource)
        else {
            return (
                Err(MetricError::UnknownMetric {
                    metric: req.metric.clone(),
                    resource: req.resource.clone(),
                }),
                None,
            );
        };
        let request = Request {
            namespace: req.namespace.clone(),
            series: req.metric_selector.clone(),
            objects: Some(match &req.name {
                ObjectName::All => Objects::All(req.selector.clone()),
                ObjectName::Named(n) => Objects::Named(n.clone()),
            }),
        };
        let mut eval = self.evaluate_spec(spec, &request, mode).await;
        let answer = std::mem::replace(&mut eval.result, Ok(Vec::new())).map(|items| {
            self.observe_ages(&items);
            custom_values(items, &req.resource, req.namespace.as_deref())
        });
        (answer, Some(eval))
    }
}

#[async_trait]
impl MetricsProvider for Signals {
    fn metrics(&self) -> Vec<MetricInfo> {
        self.signals
            .values()
            .map(|s| MetricInfo {
                name: s.name.clone(),
                target: evaluate::target_of(s),
            })
            .collect()
    }

    async fn external(&self, req: &ExternalRequest) -> Result<Vec<ExternalValue>, MetricError> {
        self.external_with(req, Mode::Serve).await.0
    }

    async fn custom(&self, req: &CustomRequest) -> Result<Vec<CustomValue>, MetricError> {
        self.custom_with(req, Mode::Serve).await.0
    }

    async fn external_current(
        &self,
        req: &ExternalRequest,
    ) -> Result<Current<Vec<ExternalValue>>, MetricError> {
        let (answer, eval) = self.external_with(req, Mode::Serve).await;
        let until = eval.and_then(|e| e.until);
        answer.map(|values| Current { values, until })
    }

    async fn custom_current(
        &self,
        req: &CustomRequest,
    ) -> Result<Current<Vec<CustomValue>>, MetricError> {
        let (answer, eval) = self.custom_with(req, Mode::Serve).await;
        let until = eval.and_then(|e| e.until);
        answer.map(|values| Current { values, until })
    }
}

pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A duration in PromQL syntax (`90s`, `2m`, `1h`), whole seconds.
pub fn promql_duration(d: Duration) -> String {
    let s = d.as_secs().max(1);
    if s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_promql_form() {
        assert_eq!(promql_duration(Duration::from_secs(90)), "90s");
        assert_eq!(promql_duration(Duration::from_secs(120)), "2m");
        assert_eq!(promql_duration(Duration::from_secs(3600)), "1h");
    }
}
