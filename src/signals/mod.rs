//! The signals: how each served metric is computed from Prometheus.
//!
//! Each evaluation sends one PromQL query (see [`plan`]). Where a request's selector only
//! names labels a signal groups by, the query is the signal's *grouped* query, without any
//! selector: every HPA polling that signal is answered from the one result, filtered in
//! memory, so Prometheus' load does not grow with the number of HPAs. Other requests get a
//! query with their selector as matchers. Both go through the value cache.

pub mod plan;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::FutureExt;

use crate::cache::{Cache, CacheSettings, Fetch};
use crate::config::{
    Api, Config, Fallback, RestartHold, SignalSpec, SignalType, MATCHERS_PLACEHOLDER,
};
use crate::metrics::Metrics;
use crate::prometheus::{self, PromError, Sample};
use crate::promql::{join, vector, LabelFilter, Matcher, Translation};
use crate::provider::{
    CustomRequest, CustomValue, ExternalRequest, ExternalValue, MetricError, MetricInfo,
    MetricTarget, MetricsProvider, ObjectName, ObjectRef,
};
use crate::selector::Selector;
use plan::{Agg, Group, Part, PartName, QuerySpec};

pub const BUSY_TIME: &str = "flink_taskmanager_job_task_busyTimeMsPerSecond";
pub const PENDING_RECORDS: &str = "flink_taskmanager_job_task_operator_pendingRecords";
pub const OPERATOR_RECORDS_OUT_RATE: &str =
    "flink_taskmanager_job_task_operator_numRecordsOutPerSecond";
pub const KAFKA_GROUP_LAG: &str = "kafka_consumergroup_lag";
pub const KAFKA_GROUP_OFFSET: &str = "kafka_consumergroup_current_offset";
pub const PRAVEGA_SEGMENTS: &str = "pravega_controller_segments_count";
pub const JOB_RUNNING_TIME: &str = "flink_jobmanager_job_runningTime";
pub const JOB_RESTARTS: &str = "flink_jobmanager_job_numRestarts";

/// Flink names every FLIP-27 source operator `Source: <name>`; its records-out rate is what
/// the job consumes.
const SOURCE_OPERATOR_REGEX: &str = "Source:.*";
/// Most remembered Pravega answers; past this, new keys are not remembered.
const MAX_REMEMBERED: usize = 10_000;

/// Resolves a `pods/*` label selector to pod names through the Kubernetes API.
pub trait PodLister: Send + Sync {
    /// Names of the pods in `namespace` matching `selector`, or why they cannot be listed.
    fn pods(&self, namespace: &str, selector: &Selector) -> Result<Vec<String>, String>;
}

/// A signal's answer before it is shaped for an API version.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub labels: BTreeMap<String, String>,
    /// The described object's name, for custom metrics.
    pub object: Option<String>,
    pub value: f64,
    pub timestamp: f64,
}

/// Everything about one evaluation, for the `query` command and for logs.
#[derive(Debug)]
pub struct Evaluation {
    pub promql: Option<String>,
    /// Samples of this request (a grouped query's result also holds other requests' groups).
    pub samples: Vec<Sample>,
    /// How many samples Prometheus returned in all.
    pub samples_total: usize,
    /// The request as label matchers, applied to a grouped result in memory.
    pub selection: Option<String>,
    pub warnings: Vec<String>,
    pub result: Result<Vec<Item>, MetricError>,
}

/// What is being asked, independent of the API group.
#[derive(Debug, Clone)]
pub struct Request {
    pub namespace: Option<String>,
    /// Selects series (external `labelSelector`, custom `metricLabelSelector`).
    pub series: Selector,
    /// For custom metrics: which objects.
    pub objects: Option<Objects>,
}

#[derive(Debug, Clone)]
pub enum Objects {
    All(Selector),
    Named(String),
}

/// One Prometheus answer, grouped.
#[derive(Debug)]
pub struct Fetched {
    pub promql: Arc<str>,
    pub groups: Vec<Group>,
    pub samples: Vec<Sample>,
    pub warnings: Vec<String>,
    /// Prometheus' evaluation time (Unix seconds), and when the answer arrived here: ages are
    /// measured on Prometheus' clock, advanced by local elapsed time.
    pub eval_time: f64,
    pub fetched_at: Instant,
}

impl Fetched {
    fn now(&self) -> f64 {
        self.eval_time + self.fetched_at.elapsed().as_secs_f64()
    }
}

type Outcome = Result<Arc<Fetched>, MetricError>;

pub struct Signal {
    spec: SignalSpec,
    remembered: Mutex<HashMap<String, Vec<Item>>>,
    /// Per request: the last good answer, and since when it has been held for a restart.
    held: Mutex<HashMap<String, Held>>,
}

struct Held {
    items: Vec<Item>,
    since: Option<Instant>,
}

pub struct Signals {
    signals: BTreeMap<String, Signal>,
    prom: prometheus::Client,
    pods: Option<Arc<dyn PodLister>>,
    cache: Option<Arc<Cache<Outcome>>>,
    metrics: Arc<Metrics>,
    /// Per job (`namespace|job_name`): the restart count last seen and when it last rose.
    restarts: Mutex<HashMap<String, (f64, Option<Instant>)>>,
}

/// How an evaluation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Through the cache; raw samples are not kept.
    Serve,
    /// A fresh query, keeping the samples to show them.
    Inspect,
}

impl Signals {
    pub fn new(
        config: &Config,
        prom: prometheus::Client,
        pods: Option<Arc<dyn PodLister>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let signals = config
            .signals
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    Signal {
                        spec: s.clone(),
                        remembered: Mutex::new(HashMap::new()),
                        held: Mutex::new(HashMap::new()),
                    },
                )
            })
            .collect();
        let cache = config.cache.refresh_interval.map(|refresh_interval| {
            Cache::new(
                CacheSettings {
                    refresh_interval,
                    max_entries: config.cache.max_entries,
                    idle_after: config.cache.idle_after,
                },
                metrics.clone(),
                |e| Err(MetricError::BackendFailed(e)),
            )
        });
        Self {
            signals,
            prom,
            pods,
            cache,
            metrics,
            restarts: Mutex::new(HashMap::new()),
        }
    }

    /// Starts the cache's background refresh (needs a Tokio runtime).
    pub fn start_background(&self) {
        if let Some(c) = &self.cache {
            c.spawn_refresher();
        }
    }

    pub fn spec(&self, name: &str) -> Option<&SignalSpec> {
        self.signals.get(name).map(|s| &s.spec)
    }

    pub fn prometheus(&self) -> &prometheus::Client {
        &self.prom
    }

    /// Evaluates metric `name` for `req`.
    pub async fn evaluate(&self, name: &str, req: &Request, mode: Mode) -> Evaluation {
        let Some(signal) = self.signals.get(name) else {
            return Evaluation::failed(MetricError::UnknownMetric {
                metric: name.to_string(),
                resource: "external metrics".into(),
            });
        };
        signal.evaluate(self, req, mode).await
    }

    async fn fetch(&self, signal: &str, spec: QuerySpec, mode: Mode) -> Outcome {
        let promql: Arc<str> = Arc::from(spec.promql());
        let make = || -> Fetch<Outcome> {
            let prom = self.prom.clone();
            let metrics = self.metrics.clone();
            let signal: Arc<str> = Arc::from(signal);
            // Reading an answer needs only the parts' names and labels, not their text: a
            // cache of thousands of entries keeps one copy of each query.
            let mut shape = spec.clone();
            for p in &mut shape.parts {
                p.expr = String::new();
            }
            let spec = Arc::new(shape);
            let promql = promql.clone();
            Arc::new(move || {
                run_query(
                    prom.clone(),
                    metrics.clone(),
                    signal.clone(),
                    spec.clone(),
                    promql.clone(),
                )
                .boxed()
            })
        };
        match (&self.cache, mode) {
            (Some(cache), Mode::Serve) => (*cache.get(&promql, make).await).clone(),
            _ => (make())().await,
        }
    }
}

async fn run_query(
    prom: prometheus::Client,
    metrics: Arc<Metrics>,
    signal: Arc<str>,
    spec: Arc<QuerySpec>,
    promql: Arc<str>,
) -> Outcome {
    let signal: &str = &signal;
    let started = Instant::now();
    let mut result = prom.instant(&promql).await;
    // One retry for a refused connection or a 5xx, after a short jittered pause: Prometheus
    // restarting answers again within seconds. Never after a timeout (the budget is spent),
    // and single flight means one retry per query, however many HPAs wait for it.
    if matches!(&result, Err(e) if e.is_unavailable() && !matches!(e, PromError::Timeout { .. })) {
        let jitter = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() % 200)
            .unwrap_or(100);
        tokio::time::sleep(Duration::from_millis(100 + u64::from(jitter))).await;
        result = prom.instant(&promql).await;
    }
    metrics
        .query_duration
        .with_label_values(&[signal])
        .observe(started.elapsed().as_secs_f64());
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics.queries.with_label_values(&[signal, outcome]).inc();
    let result = result.map_err(|e| backend_error(signal, e))?;
    if !result.warnings.is_empty() && !prom.accepts_warnings() {
        // Thanos and Cortex flag partial answers (a store down) with warnings: a partial sum
        // is a wrong number.
        return Err(MetricError::Unusable(format!(
            "{signal}: Prometheus answered with warnings, so the result may be partial: {}",
            result.warnings.join("; ")
        )));
    }
    let eval_time = result
        .samples
        .first()
        .map(|s| s.timestamp)
        .unwrap_or_else(now_unix);
    Ok(Arc::new(Fetched {
        groups: spec.groups(&result.samples),
        samples: if spec.keep_samples {
            result.samples
        } else {
            Vec::new()
        },
        warnings: result.warnings,
        promql,
        eval_time,
        fetched_at: Instant::now(),
    }))
}

impl Evaluation {
    fn failed(e: MetricError) -> Self {
        Self {
            promql: None,
            samples: Vec::new(),
            samples_total: 0,
            selection: None,
            warnings: Vec::new(),
            result: Err(e),
        }
    }
}

fn target_of(spec: &SignalSpec) -> MetricTarget {
    match spec.api {
        Api::External => MetricTarget::External,
        Api::Custom => MetricTarget::Custom {
            resource: spec.resource.clone(),
            namespaced: spec.resource != "namespaces" && spec.resource != "nodes",
        },
    }
}

#[async_trait]
impl MetricsProvider for Signals {
    fn metrics(&self) -> Vec<MetricInfo> {
        self.signals
            .values()
            .map(|s| MetricInfo {
                name: s.spec.name.clone(),
                target: target_of(&s.spec),
            })
            .collect()
    }

    async fn external(&self, req: &ExternalRequest) -> Result<Vec<ExternalValue>, MetricError> {
        let signal = self
            .signals
            .get(&req.metric)
            .filter(|s| s.spec.api == Api::External)
            .ok_or_else(|| MetricError::UnknownMetric {
                metric: req.metric.clone(),
                resource: "external metrics".into(),
            })?;
        let request = Request {
            namespace: Some(req.namespace.clone()),
            series: req.selector.clone(),
            objects: None,
        };
        let items = signal.evaluate(self, &request, Mode::Serve).await.result?;
        self.observe_ages(&items);
        Ok(external_values(items))
    }

    async fn custom(&self, req: &CustomRequest) -> Result<Vec<CustomValue>, MetricError> {
        let unknown = || MetricError::UnknownMetric {
            metric: req.metric.clone(),
            resource: req.resource.clone(),
        };
        let signal = self
            .signals
            .get(&req.metric)
            .filter(|s| s.spec.api == Api::Custom && s.spec.resource == req.resource)
            .ok_or_else(unknown)?;
        let request = Request {
            namespace: req.namespace.clone(),
            series: req.metric_selector.clone(),
            objects: Some(match &req.name {
                ObjectName::All => Objects::All(req.selector.clone()),
                ObjectName::Named(n) => Objects::Named(n.clone()),
            }),
        };
        let items = signal.evaluate(self, &request, Mode::Serve).await.result?;
        self.observe_ages(&items);
        Ok(custom_values(
            items,
            &req.resource,
            req.namespace.as_deref(),
        ))
    }
}

/// Items as external metric values.
pub fn external_values(items: Vec<Item>) -> Vec<ExternalValue> {
    items
        .into_iter()
        .map(|i| ExternalValue {
            labels: i.labels,
            value: i.value,
            timestamp: i.timestamp,
        })
        .collect()
}

/// Items as values of objects of `resource` in `namespace`; items without an object are not
/// custom metric values and are left out.
pub fn custom_values(
    items: Vec<Item>,
    resource: &str,
    namespace: Option<&str>,
) -> Vec<CustomValue> {
    let (kind, api_version) = kind_of(resource);
    items
        .into_iter()
        .filter_map(|i| {
            Some(CustomValue {
                object: ObjectRef {
                    kind: kind.clone(),
                    api_version: api_version.clone(),
                    namespace: namespace.map(str::to_string),
                    name: i.object?,
                },
                value: i.value,
                timestamp: i.timestamp,
            })
        })
        .collect()
}

impl Signals {
    fn observe_ages(&self, items: &[Item]) {
        let now = now_unix();
        for i in items {
            self.metrics
                .served_value_age
                .observe((now - i.timestamp).max(0.0));
        }
    }
}

/// Kind and apiVersion for `describedObject`. The HPA keys Pods metrics by name only; the
/// rest is for people reading the answer.
pub fn kind_of(resource: &str) -> (String, String) {
    let known = match resource {
        "pods" => Some(("Pod", "v1")),
        "namespaces" => Some(("Namespace", "v1")),
        "nodes" => Some(("Node", "v1")),
        "services" => Some(("Service", "v1")),
        "deployments.apps" => Some(("Deployment", "apps/v1")),
        "statefulsets.apps" => Some(("StatefulSet", "apps/v1")),
        "jobs.batch" => Some(("Job", "batch/v1")),
        "flinkdeployments.flink.apache.org" => {
            Some(("FlinkDeployment", "flink.apache.org/v1beta1"))
        }
        _ => None,
    };
    if let Some((k, v)) = known {
        return (k.to_string(), v.to_string());
    }
    let (plural, group) = resource.split_once('.').unwrap_or((resource, ""));
    let singular = plural.strip_suffix('s').unwrap_or(plural);
    let mut kind: String = singular
        .chars()
        .take(1)
        .flat_map(char::to_uppercase)
        .collect();
    kind.push_str(singular.get(1..).unwrap_or(""));
    (kind, group.to_string())
}

/// Where the requested series come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Flink,
    KafkaExporter,
}

/// A query to send and how the request's answer is taken from its result.
struct Planned {
    query: QuerySpec,
    /// For a grouped query: which of its groups belong to this request.
    filters: Vec<LabelFilter>,
    /// The labels the answer is grouped by.
    answer_by: Vec<String>,
    /// Pod names resolved through the Kubernetes API.
    keep_objects: Option<Vec<String>>,
    /// The request as matchers, for messages.
    described: String,
}

impl Signal {
    async fn evaluate(&self, signals: &Signals, req: &Request, mode: Mode) -> Evaluation {
        let planned = match self.plan(signals, req, mode) {
            Ok(p) => p,
            Err(e) => return Evaluation::failed(e),
        };
        let fetched = match signals
            .fetch(&self.spec.name, planned.query.clone(), mode)
            .await
        {
            Ok(f) => f,
            Err(e) => {
                return Evaluation {
                    promql: Some(planned.query.promql()),
                    samples: Vec::new(),
                    samples_total: 0,
                    selection: None,
                    warnings: Vec::new(),
                    result: Err(e),
                }
            }
        };
        let now = fetched.now();
        let groups = planned
            .query
            .regroup(&fetched.groups, &planned.filters, &planned.answer_by);
        let computed = match self.spec.kind {
            SignalType::FlinkBusyTimeMax => self.max_of_groups(&planned, groups, now),
            SignalType::FlinkKafkaLagRecords => self.each_group(&planned, groups, now),
            SignalType::FlinkKafkaLagSeconds => self.lag_seconds(&planned, groups, now),
            SignalType::PravegaStreamSegments => self.segments(req, groups, now),
            SignalType::FlinkTaskManagerBusyTime => {
                self.per_object(&planned, groups, &self.spec.pod_label, now)
            }
            SignalType::Promql => self.templated(&planned, &fetched.samples),
        };
        let computed = match self.spec.restart_hold {
            Some(hold) if self.variant(req) == Variant::Flink => {
                self.hold_through_restarts(signals, req, &planned, hold, mode, computed)
                    .await
            }
            _ => computed,
        };
        let samples = fetched
            .samples
            .iter()
            .filter(|s| planned.filters.iter().all(|f| f.matches(&s.labels)))
            .cloned()
            .collect();
        Evaluation {
            promql: Some(fetched.promql.to_string()),
            samples,
            samples_total: fetched.samples.len(),
            selection: (!planned.filters.is_empty()).then(|| format!("{{{}}}", planned.described)),
            warnings: fetched.warnings.clone(),
            result: self.finish(computed, req, now),
        }
    }

    /// The answer, with `onMissing` applied where no series matched at all: a configured
    /// value stands in for the one value of an external metric or a named object (a `*`
    /// request has no list of objects to give it to).
    fn finish(
        &self,
        computed: Result<Vec<Item>, Failure>,
        req: &Request,
        now: f64,
    ) -> Result<Vec<Item>, MetricError> {
        match computed {
            Ok(items) => Ok(items),
            Err(Failure::Data(Bad::Missing, message)) => {
                let object = match (&req.objects, self.spec.data.missing) {
                    (_, Fallback::Error) | (Some(Objects::All(_)), _) => {
                        return Err(MetricError::NoData(message))
                    }
                    (None, _) => None,
                    (Some(Objects::Named(n)), _) => Some(n.clone()),
                };
                let Fallback::Value(value) = self.spec.data.missing else {
                    return Err(MetricError::NoData(message));
                };
                Ok(vec![Item {
                    labels: BTreeMap::new(),
                    object,
                    value,
                    timestamp: now,
                }])
            }
            Err(f) => Err(f.into_error()),
        }
    }

    /// The jobs of this request that are restarting or warming up: running for less than
    /// `warm_up` (`flink_jobmanager_job_runningTime`), or, without that series, whose restart
    /// count rose within it. Unknown (no JobManager series) counts as not restarting.
    async fn restarting_jobs(
        &self,
        signals: &Signals,
        planned: &Planned,
        hold: RestartHold,
        mode: Mode,
    ) -> Vec<String> {
        let ns_label = &self.spec.namespace_label;
        let mut by = Vec::new();
        if self.spec.namespaced {
            by.push(ns_label.clone());
        }
        by.push("job_name".to_string());
        let by_text = by.join(", ");
        let spec = QuerySpec {
            parts: vec![
                Part {
                    name: PartName::Running,
                    expr: format!("min by ({by_text}) ({JOB_RUNNING_TIME})"),
                    agg: Agg::Min,
                },
                Part {
                    name: PartName::Restarts,
                    expr: format!("max by ({by_text}) ({JOB_RESTARTS})"),
                    agg: Agg::Max,
                },
            ],
            by: by.clone(),
            keep_samples: false,
        };
        let Ok(state) = signals.fetch("flink_job_state", spec.clone(), mode).await else {
            return Vec::new();
        };
        // Job state knows namespaces and jobs only; the request's other filters (a task name)
        // do not apply to it.
        let filters: Vec<LabelFilter> = planned
            .filters
            .iter()
            .filter(|f| by.contains(&f.label))
            .cloned()
            .collect();
        let warm_up_ms = hold.warm_up.as_secs_f64() * 1000.0;
        let mut out = Vec::new();
        let mut seen = signals.restarts.lock().unwrap_or_else(|p| p.into_inner());
        for g in spec.regroup(&state.groups, &filters, &by) {
            let job = g.labels.get("job_name").cloned().unwrap_or_default();
            let key = format!(
                "{}|{job}",
                g.labels.get(ns_label).map(String::as_str).unwrap_or("")
            );
            let mut rose_recently = false;
            if let Some(count) = g.restarts {
                let entry = seen.entry(key).or_insert((count, None));
                if count > entry.0 {
                    *entry = (count, Some(Instant::now()));
                }
                rose_recently = entry.1.is_some_and(|t| t.elapsed() < hold.warm_up);
            }
            // runningTime restarts from 0 with every restart, so it is the better witness;
            // the restart count stands in where a Flink version does not export it.
            let restarting = match g.running {
                Some(ms) => ms < warm_up_ms,
                None => rose_recently,
            };
            if restarting {
                out.push(job);
            }
        }
        out
    }

    /// While a job the request covers restarts, the last good answer stands in, for at most
    /// `max_hold`; without one, the answer is an error rather than the transient numbers.
    async fn hold_through_restarts(
        &self,
        signals: &Signals,
        req: &Request,
        planned: &Planned,
        hold: RestartHold,
        mode: Mode,
        computed: Result<Vec<Item>, Failure>,
    ) -> Result<Vec<Item>, Failure> {
        let restarting = self.restarting_jobs(signals, planned, hold, mode).await;
        let key = format!("{}|{}", req.namespace.as_deref().unwrap_or(""), req.series);
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if restarting.is_empty() {
            if let Ok(items) = &computed {
                if held.len() < MAX_REMEMBERED || held.contains_key(&key) {
                    held.insert(
                        key,
                        Held {
                            items: items.clone(),
                            since: None,
                        },
                    );
                }
            }
            return computed;
        }
        let jobs = restarting.join(", ");
        match held.get_mut(&key) {
            Some(h) => {
                let since = *h.since.get_or_insert_with(Instant::now);
                if since.elapsed() < hold.max_hold {
                    tracing::debug!(signal = %self.spec.name, jobs, "holding the last good value while the job restarts");
                    Ok(h.items.clone())
                } else {
                    computed
                }
            }
            None => Err(MetricError::Unusable(format!(
                "{}: job {jobs} is restarting or warming up (running for less than {}), and there is no value from before to hold",
                self.spec.name,
                promql_duration(hold.warm_up)
            ))
            .into()),
        }
    }

    fn fallback(&self, bad: Bad) -> Fallback {
        let d = &self.spec.data;
        match bad {
            Bad::Missing => d.missing,
            Bad::NaN => d.nan,
            Bad::Infinite => d.infinite,
            Bad::Negative => d.negative,
            Bad::Stale => d.stale,
        }
    }

    fn variant(&self, req: &Request) -> Variant {
        // kafka_exporter is chosen by asking for its labels.
        let lag = matches!(
            self.spec.kind,
            SignalType::FlinkKafkaLagRecords | SignalType::FlinkKafkaLagSeconds
        );
        if lag && (req.series.mentions("consumergroup") || req.series.mentions("topic")) {
            Variant::KafkaExporter
        } else {
            Variant::Flink
        }
    }

    /// The labels a signal's grouped query is aggregated by (before the namespace label), and
    /// the labels its answer is grouped by.
    fn grouping(&self, variant: Variant) -> (Vec<&str>, Vec<&str>) {
        let pod = self.spec.pod_label.as_str();
        match (self.spec.kind, variant) {
            (SignalType::FlinkBusyTimeMax, _) => (vec!["job_name", "task_name"], vec!["job_name"]),
            (SignalType::FlinkKafkaLagRecords, Variant::Flink) => {
                (vec!["job_name"], vec!["job_name"])
            }
            (SignalType::FlinkKafkaLagSeconds, Variant::Flink) => {
                (vec!["job_name"], vec!["job_name"])
            }
            (SignalType::FlinkKafkaLagRecords, Variant::KafkaExporter) => (
                vec!["consumergroup", "topic"],
                vec!["consumergroup", "topic"],
            ),
            (SignalType::FlinkKafkaLagSeconds, Variant::KafkaExporter) => {
                (vec!["consumergroup", "topic"], vec!["consumergroup"])
            }
            (SignalType::PravegaStreamSegments, _) => {
                (vec!["scope", "stream"], vec!["scope", "stream"])
            }
            (SignalType::FlinkTaskManagerBusyTime, _) => (vec![pod], vec![pod]),
            (SignalType::Promql, _) => (vec![], vec![]),
        }
    }

    fn namespaced(&self, variant: Variant) -> bool {
        match variant {
            Variant::Flink => self.spec.namespaced,
            Variant::KafkaExporter => self.spec.kafka_exporter_namespaced,
        }
    }

    /// The query parts for series matching `m`, aggregated by `by`.
    fn parts(&self, variant: Variant, m: &[Matcher], by: &[String]) -> Vec<Part> {
        let by = by.join(", ");
        // One metric's samples: `value` aggregates the finite, non-negative ones (NaN fails
        // every comparison); `newest` is the time of the newest sample; `negative` and
        // `infinite` count the samples no built-in gauge can legitimately hold.
        let checked = |base: String, agg: Agg| {
            let agg_fn = if agg == Agg::Sum { "sum" } else { "max" };
            vec![
                Part {
                    name: PartName::Value,
                    expr: format!("{agg_fn} by ({by}) ({base} >= 0 < +Inf)"),
                    agg,
                },
                Part {
                    name: PartName::Newest,
                    expr: format!("max by ({by}) (timestamp({base}))"),
                    agg: Agg::Max,
                },
                Part {
                    name: PartName::Negative,
                    expr: format!("count by ({by}) ({base} < 0 > -Inf)"),
                    agg: Agg::Sum,
                },
                Part {
                    name: PartName::Infinite,
                    expr: format!("count by ({by}) (abs({base}) == +Inf)"),
                    agg: Agg::Sum,
                },
            ]
        };
        // kafka_exporter reports -1 for a partition without a committed offset: a marker,
        // not a backlog, so it is left out rather than counted as negative data.
        let kafka_lag = || format!("({} != -1)", vector(KAFKA_GROUP_LAG, m));
        match (self.spec.kind, variant) {
            (SignalType::FlinkBusyTimeMax | SignalType::FlinkTaskManagerBusyTime, _) => {
                checked(vector(BUSY_TIME, m), Agg::Max)
            }
            (SignalType::FlinkKafkaLagRecords, Variant::Flink) => {
                checked(vector(PENDING_RECORDS, m), Agg::Sum)
            }
            (SignalType::FlinkKafkaLagRecords, Variant::KafkaExporter) => {
                checked(kafka_lag(), Agg::Sum)
            }
            (SignalType::FlinkKafkaLagSeconds, Variant::Flink) => {
                let mut parts = checked(vector(PENDING_RECORDS, m), Agg::Sum);
                let mut sm = m.to_vec();
                sm.push(Matcher::re("operator_name", SOURCE_OPERATOR_REGEX));
                parts.push(Part {
                    name: PartName::Rate,
                    expr: format!(
                        "sum by ({by}) ({} >= 0 < +Inf)",
                        vector(OPERATOR_RECORDS_OUT_RATE, &sm)
                    ),
                    agg: Agg::Sum,
                });
                parts
            }
            (SignalType::FlinkKafkaLagSeconds, Variant::KafkaExporter) => {
                let mut parts = checked(kafka_lag(), Agg::Sum);
                parts.push(Part {
                    name: PartName::Rate,
                    expr: format!(
                        "sum by ({by}) (rate({}[{}]))",
                        vector(KAFKA_GROUP_OFFSET, m),
                        promql_duration(self.spec.rate_window)
                    ),
                    agg: Agg::Sum,
                });
                parts
            }
            (SignalType::PravegaStreamSegments, _) => vec![Part {
                name: PartName::Value,
                // The controller re-reports this gauge only when the stream scales, and it can
                // drop out of the exposition: take the last value within the lookback.
                expr: format!(
                    "max by ({by}) (last_over_time({}[{}]) >= 0 < +Inf)",
                    vector(PRAVEGA_SEGMENTS, m),
                    promql_duration(self.spec.lookback)
                ),
                agg: Agg::Max,
            }],
            (SignalType::Promql, _) => vec![Part {
                name: PartName::Value,
                expr: self
                    .spec
                    .query
                    .as_deref()
                    .unwrap_or_default()
                    .replace(MATCHERS_PLACEHOLDER, &join(m)),
                agg: Agg::Sum,
            }],
        }
    }

    fn plan(&self, signals: &Signals, req: &Request, mode: Mode) -> Result<Planned, MetricError> {
        let spec = &self.spec;
        let variant = self.variant(req);
        let namespaced = self.namespaced(variant);
        let ns_label = spec.namespace_label.as_str();
        let bad = |e: crate::promql::TranslateError| MetricError::BadRequest(e.to_string());

        // The request as label filters: namespace, series selector, objects.
        let mut filters = Vec::new();
        if namespaced {
            if let Some(ns) = &req.namespace {
                filters.push(LabelFilter::eq(ns_label, ns));
            }
        }
        let reserved_ns = [ns_label];
        let flink_values = spec.flink_label_values && variant == Variant::Flink;
        let t = Translation {
            rename: Some(&spec.labels),
            flink_values,
            reserved: if namespaced { &reserved_ns } else { &[] },
        };
        filters.extend(t.filters(&req.series).map_err(bad)?);

        let object_label = if spec.kind == SignalType::Promql {
            spec.resource_label.as_str()
        } else {
            spec.pod_label.as_str()
        };
        let mut keep_objects = None;
        match &req.objects {
            None => {}
            Some(Objects::Named(name)) => filters.push(LabelFilter::eq(object_label, name)),
            Some(Objects::All(selector)) => {
                let by_kube = matches!(
                    (&signals.pods, &req.namespace, spec.resource.as_str()),
                    (Some(_), Some(_), "pods")
                );
                if let (true, Some(lister), Some(ns)) = (by_kube, &signals.pods, &req.namespace) {
                    keep_objects = Some(
                        lister
                            .pods(ns, selector)
                            .map_err(MetricError::BackendUnavailable)?,
                    );
                    // Every pod's series; the answer is filtered by name, never by a regex
                    // of pod names in the query.
                    filters.push(LabelFilter {
                        label: object_label.to_string(),
                        values: vec![String::new()],
                        negate: true,
                    });
                } else {
                    let reserved = [ns_label, object_label];
                    let t = Translation {
                        rename: Some(&spec.labels),
                        flink_values: false,
                        reserved: &reserved,
                    };
                    filters.extend(t.filters(selector).map_err(bad)?);
                }
            }
        }
        let described = join(&filters.iter().map(LabelFilter::matcher).collect::<Vec<_>>());

        let (group_labels, answer) = self.grouping(variant);
        let mut fetch_by: Vec<String> = Vec::new();
        if namespaced {
            fetch_by.push(ns_label.to_string());
        }
        fetch_by.extend(group_labels.iter().map(|s| s.to_string()));
        let answer_by: Vec<String> = answer.iter().map(|s| s.to_string()).collect();
        let keep_samples = spec.kind == SignalType::Promql || mode == Mode::Inspect;
        // The grouped query answers every request whose filters only name its labels.
        let grouped =
            spec.kind != SignalType::Promql && filters.iter().all(|f| fetch_by.contains(&f.label));
        let (query, filters) = if grouped {
            let parts = self.parts(variant, &[], &fetch_by);
            (
                QuerySpec {
                    parts,
                    by: fetch_by,
                    keep_samples,
                },
                filters,
            )
        } else {
            let matchers: Vec<Matcher> = filters.iter().map(LabelFilter::matcher).collect();
            let parts = self.parts(variant, &matchers, &answer_by);
            (
                QuerySpec {
                    parts,
                    by: answer_by.clone(),
                    keep_samples,
                },
                Vec::new(),
            )
        };
        Ok(Planned {
            query,
            filters,
            answer_by,
            keep_objects,
            described,
        })
    }

    /// One item: the maximum over all groups (a job's busiest subtask).
    fn max_of_groups(
        &self,
        p: &Planned,
        groups: Vec<Group>,
        now: f64,
    ) -> Result<Vec<Item>, Failure> {
        let usable = self.usable(p, groups, now)?;
        let best = usable
            .iter()
            .filter_map(|g| g.value.map(|v| (v, g)))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let Some((value, g)) = best else {
            return Err(Failure::Data(Bad::Missing, self.no_series(p)));
        };
        Ok(vec![Item {
            labels: if usable.len() == 1 {
                g.labels.clone()
            } else {
                BTreeMap::new()
            },
            object: None,
            value,
            timestamp: newest_of(&usable, now),
        }])
    }

    /// One item per group; the HPA sums them.
    fn each_group(&self, p: &Planned, groups: Vec<Group>, now: f64) -> Result<Vec<Item>, Failure> {
        Ok(self
            .usable(p, groups, now)?
            .into_iter()
            .filter_map(|g| {
                Some(Item {
                    value: g.value?,
                    timestamp: g.newest.unwrap_or(now),
                    labels: g.labels,
                    object: None,
                })
            })
            .collect())
    }

    /// Backlog divided by consumption rate, worst group first. A zero backlog is 0 s whatever
    /// the rate; a backlog with no consumption has no finite lag and is an error unless
    /// `zeroRateSeconds` says what to report.
    fn lag_seconds(&self, p: &Planned, groups: Vec<Group>, now: f64) -> Result<Vec<Item>, Failure> {
        let usable = self.usable(p, groups, now)?;
        let mut worst: Option<Item> = None;
        for g in &usable {
            let Some(backlog) = g.value else { continue };
            let seconds = if backlog <= 0.0 {
                0.0
            } else {
                match g.rate {
                    Some(rate) if rate > 0.0 => backlog / rate,
                    Some(_) => match self.spec.zero_rate_seconds {
                        Some(s) => s,
                        None => {
                            return Err(MetricError::Unusable(format!(
                                "{}: backlog of {backlog} records{} but a consumption rate of 0: lag in seconds is undefined (set zeroRateSeconds to report a fixed value)",
                                self.spec.name,
                                describe_labels(&g.labels)
                            ))
                            .into())
                        }
                    },
                    None => {
                        return Err(MetricError::NoData(format!(
                            "{}: no consumption-rate series{} (query: {})",
                            self.spec.name,
                            describe_labels(&g.labels),
                            p.query.part(PartName::Rate).map(|x| x.expr.as_str()).unwrap_or("")
                        ))
                        .into())
                    }
                }
            };
            if worst.as_ref().is_none_or(|w| seconds > w.value) {
                worst = Some(Item {
                    labels: g.labels.clone(),
                    object: None,
                    value: seconds,
                    timestamp: g.newest.unwrap_or(now),
                });
            }
        }
        worst
            .map(|w| vec![w])
            .ok_or_else(|| Failure::Data(Bad::Missing, self.no_series(p)))
    }

    /// One item per stream; remembers the last answer per request so a stream whose gauge
    /// fell out of Prometheus keeps its segment count.
    fn segments(&self, req: &Request, groups: Vec<Group>, now: f64) -> Result<Vec<Item>, Failure> {
        let key = format!(
            "{}|{}",
            req.namespace
                .as_deref()
                .filter(|_| self.spec.namespaced)
                .unwrap_or(""),
            req.series
        );
        let items: Vec<Item> = groups
            .into_iter()
            .filter_map(|g| {
                Some(Item {
                    value: g.value?,
                    labels: g.labels,
                    object: None,
                    timestamp: now,
                })
            })
            .collect();
        let mut remembered = self
            .remembered
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !items.is_empty() {
            if remembered.len() < MAX_REMEMBERED || remembered.contains_key(&key) {
                remembered.insert(key, items.clone());
            }
            return Ok(items);
        }
        match remembered.get(&key) {
            Some(last) => Ok(last.clone()),
            None => Err(Failure::Data(
                Bad::Missing,
                format!(
                    "{}: no {PRAVEGA_SEGMENTS} series for {} within the last {}",
                    self.spec.name,
                    if req.series.is_empty() {
                        "any stream".to_string()
                    } else {
                        format!("selector {}", req.series)
                    },
                    promql_duration(self.spec.lookback)
                ),
            )),
        }
    }

    /// One item per described object (custom metrics). Objects whose data is unusable are
    /// left out: the HPA treats a missing pod conservatively, never as 0.
    fn per_object(
        &self,
        p: &Planned,
        groups: Vec<Group>,
        label: &str,
        now: f64,
    ) -> Result<Vec<Item>, Failure> {
        let total = groups.len();
        let mut reasons = Vec::new();
        let mut first_bad = None;
        let mut items = Vec::new();
        for g in groups {
            let Some(name) = g.labels.get(label).cloned() else {
                continue;
            };
            if let Some(keep) = &p.keep_objects {
                if !keep.contains(&name) {
                    continue;
                }
            }
            match self.resolve(&g, now) {
                Ok(value) => items.push(Item {
                    // Custom metric values carry the object, not the series labels.
                    labels: BTreeMap::new(),
                    object: Some(name),
                    value,
                    timestamp: g.newest.unwrap_or(now),
                }),
                Err((bad, why)) => {
                    first_bad.get_or_insert(bad);
                    reasons.push(format!("{name}: {why}"));
                }
            }
        }
        if !items.is_empty() {
            return Ok(items);
        }
        if let Some(bad) = first_bad {
            return Err(Failure::Data(
                bad,
                format!(
                    "{}: no usable value for any pod: {}",
                    self.spec.name,
                    reasons.join("; ")
                ),
            ));
        }
        let msg = match &p.keep_objects {
            Some(keep) if keep.is_empty() => {
                format!("{}: no pods match the label selector", self.spec.name)
            }
            _ if total > 0 => format!(
                "{}: none of the series belong to the selected pods",
                self.spec.name
            ),
            _ => self.no_series(p),
        };
        Err(Failure::Data(Bad::Missing, msg))
    }

    /// A user-written query: each sample is one item. NaN and infinite samples follow the
    /// signal's `onNaN` and `onInfinite`; negative values are legitimate here.
    fn templated(&self, p: &Planned, samples: &[Sample]) -> Result<Vec<Item>, Failure> {
        if samples.is_empty() {
            return Err(Failure::Data(Bad::Missing, self.no_series(p)));
        }
        let mut items: Vec<Item> = Vec::new();
        let custom = self.spec.api == Api::Custom;
        for s in samples {
            let mut labels = s.labels.clone();
            labels.remove("__name__");
            let value = if s.value.is_finite() {
                s.value
            } else {
                let bad = if s.value.is_nan() {
                    Bad::NaN
                } else {
                    Bad::Infinite
                };
                match self.fallback(bad) {
                    Fallback::Value(v) => v,
                    // Per object the rest still stands; for an external sum it would not.
                    Fallback::Error if custom => continue,
                    Fallback::Error => {
                        return Err(Failure::Data(
                            bad,
                            format!(
                                "{}: the sample{} is {}",
                                self.spec.name,
                                describe_labels(&labels),
                                s.value
                            ),
                        ))
                    }
                }
            };
            let object = if custom {
                let Some(name) = labels.get(&self.spec.resource_label).cloned() else {
                    continue;
                };
                if let Some(keep) = &p.keep_objects {
                    if !keep.contains(&name) {
                        continue;
                    }
                }
                if items
                    .iter()
                    .any(|i| i.object.as_deref() == Some(name.as_str()))
                {
                    return Err(MetricError::BackendFailed(format!(
                        "{}: the query returns several series for {} {name:?}; aggregate it by ({})",
                        self.spec.name, self.spec.resource, self.spec.resource_label
                    ))
                    .into());
                }
                Some(name)
            } else {
                None
            };
            items.push(Item {
                labels,
                object,
                value,
                timestamp: s.timestamp,
            });
        }
        if items.is_empty() {
            return Err(Failure::Data(
                Bad::NaN,
                format!(
                    "{}: no usable sample among {} (NaN, infinite or without the {} label)",
                    self.spec.name,
                    samples.len(),
                    self.spec.resource_label
                ),
            ));
        }
        Ok(items)
    }

    /// The groups with their values, bad data replaced where the signal says so; refuses the
    /// whole answer if any group the request matched stays unusable, since dropping it would
    /// understate the sum or the maximum.
    fn usable(&self, p: &Planned, groups: Vec<Group>, now: f64) -> Result<Vec<Group>, Failure> {
        if groups.is_empty() {
            return Err(Failure::Data(Bad::Missing, self.no_series(p)));
        }
        let mut first_bad = None;
        let mut problems = Vec::new();
        let mut out = Vec::with_capacity(groups.len());
        for mut g in groups {
            match self.resolve(&g, now) {
                Ok(v) => {
                    g.value = Some(v);
                    out.push(g);
                }
                Err((bad, why)) => {
                    first_bad.get_or_insert(bad);
                    problems.push(format!("{why}{}", describe_labels(&g.labels)));
                }
            }
        }
        match first_bad {
            Some(bad) => Err(Failure::Data(
                bad,
                format!("{}: {}", self.spec.name, problems.join("; ")),
            )),
            None => Ok(out),
        }
    }

    /// A group's value, or what is wrong with its data.
    fn check_group(&self, g: &Group, now: f64) -> Result<f64, (Bad, String)> {
        if let (Some(max_age), Some(newest)) = (self.spec.max_age, g.newest) {
            let age = now - newest;
            if age > max_age.as_secs_f64() {
                return Err((
                    Bad::Stale,
                    format!(
                        "the newest sample is {:.0}s old, older than maxAge {}",
                        age,
                        promql_duration(max_age)
                    ),
                ));
            }
        }
        if let Some(n) = g.infinite.filter(|n| *n > 0.0) {
            return Err((Bad::Infinite, format!("{n} samples are infinite")));
        }
        if let Some(n) = g.negative.filter(|n| *n > 0.0) {
            return Err((Bad::Negative, format!("{n} samples are negative")));
        }
        match g.value {
            Some(v) => Ok(v),
            None if g.newest.is_some() => Err((Bad::NaN, "every sample is NaN".into())),
            None => Err((Bad::Missing, "no series of the measured metric".into())),
        }
    }

    /// [`Signal::check_group`] with the signal's data policy applied.
    fn resolve(&self, g: &Group, now: f64) -> Result<f64, (Bad, String)> {
        self.check_group(g, now)
            .or_else(|(bad, why)| match self.fallback(bad) {
                Fallback::Value(v) => Ok(v),
                Fallback::Error => Err((bad, why)),
            })
    }

    fn no_series(&self, p: &Planned) -> String {
        let value = p
            .query
            .part(PartName::Value)
            .map(|x| x.expr.as_str())
            .unwrap_or("");
        format!(
            "{}: no series match {{{}}} (query: {value})",
            self.spec.name, p.described
        )
    }
}

/// Kinds of bad data, each with its policy in the signal's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bad {
    Missing,
    NaN,
    Infinite,
    Negative,
    Stale,
}

/// Why a computation has no answer.
enum Failure {
    Data(Bad, String),
    Other(MetricError),
}

impl From<MetricError> for Failure {
    fn from(e: MetricError) -> Self {
        Failure::Other(e)
    }
}

impl Failure {
    fn into_error(self) -> MetricError {
        match self {
            Failure::Data(Bad::Missing, m) => MetricError::NoData(m),
            Failure::Data(_, m) => MetricError::Unusable(m),
            Failure::Other(e) => e,
        }
    }
}

fn describe_labels(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner = labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    format!(" for {{{inner}}}")
}

fn newest_of(groups: &[Group], now: f64) -> f64 {
    groups
        .iter()
        .map(|g| g.newest.unwrap_or(now))
        .fold(f64::NEG_INFINITY, f64::max)
}

fn backend_error(signal: &str, e: PromError) -> MetricError {
    let msg = format!("{signal}: {e}");
    if e.is_unavailable() {
        MetricError::BackendUnavailable(msg)
    } else {
        MetricError::BackendFailed(msg)
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

    #[test]
    fn kinds_for_described_objects() {
        assert_eq!(kind_of("pods"), ("Pod".into(), "v1".into()));
        assert_eq!(
            kind_of("widgets.example.com"),
            ("Widget".into(), "example.com".into())
        );
    }
}
