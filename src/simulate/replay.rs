//! `replay`: the HPA model over a real Prometheus' history. At every HPA sync between `from`
//! and `to`, the signals are evaluated at that past time (instant queries with `time=`), the
//! HPA model decides, and its decision becomes the replica count it starts the next sync
//! from: what this HPA would have done, not what the cluster did.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use super::{offline_config, read_metrics, report, HpaFile, SimulateError};
use crate::backend::QueryBackend;
use crate::hpa::controller::Reading;
use crate::hpa::{ControllerConfig, Hpa, Pod, SyncInput};
use crate::prometheus::{self, PromError, QueryResult, RangeResult};
use crate::signals::Signals;
use crate::sim::{Row, Summary};

/// A backend that answers "now" at a settable past time.
pub struct AtTime<B> {
    inner: B,
    at: RwLock<f64>,
}

impl<B: QueryBackend> AtTime<B> {
    pub fn new(inner: B, at: f64) -> Self {
        Self {
            inner,
            at: RwLock::new(at),
        }
    }

    pub fn set(&self, t: f64) {
        if let Ok(mut a) = self.at.write() {
            *a = t;
        }
    }
}

#[async_trait]
impl<B: QueryBackend> QueryBackend for AtTime<B> {
    async fn instant(&self, query: &str, time: Option<f64>) -> Result<QueryResult, PromError> {
        let t = time.unwrap_or_else(|| self.now());
        self.inner.instant(query, Some(t)).await
    }

    async fn range(
        &self,
        query: &str,
        start: f64,
        end: f64,
        step: f64,
    ) -> Result<RangeResult, PromError> {
        self.inner.range(query, start, end, step).await
    }

    fn accepts_warnings(&self) -> bool {
        self.inner.accepts_warnings()
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn now(&self) -> f64 {
        self.at.read().map(|a| *a).unwrap_or(0.0)
    }
}

#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub prometheus_url: String,
    pub hpa: PathBuf,
    /// Unix seconds.
    pub from: f64,
    pub to: f64,
    /// Between HPA syncs (the controller's `--horizontal-pod-autoscaler-sync-period`).
    pub step_seconds: f64,
    pub config: Option<PathBuf>,
    pub out: PathBuf,
}

/// A time as `replay` reads it: Unix seconds, or RFC 3339 (`2026-12-04T10:00:00Z`).
pub fn parse_time(s: &str) -> Result<f64, String> {
    if let Ok(v) = s.trim().parse::<f64>() {
        return Ok(v);
    }
    s.trim()
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond() as f64 / 1000.0)
        .map_err(|e| format!("{s:?} is neither Unix seconds nor an RFC 3339 time: {e}"))
}

/// One number from `query` at `t`: the first sample's value.
async fn scalar_at(backend: &dyn QueryBackend, query: &str, t: f64) -> f64 {
    match backend.instant(query, Some(t)).await {
        Ok(r) => r.samples.first().map(|s| s.value).unwrap_or(f64::NAN),
        Err(_) => f64::NAN,
    }
}

pub struct Replay {
    pub rows: Vec<Row>,
    pub report: super::Report,
    pub metric_names: Vec<String>,
}

pub async fn run(opts: &ReplayOptions) -> Result<Replay, SimulateError> {
    if !super::positive(opts.step_seconds) || opts.to <= opts.from {
        return Err(SimulateError::Invalid(
            "--to must be after --from, and --step above 0".into(),
        ));
    }
    let hpa_file = HpaFile::load(&opts.hpa)?;
    let mut config = offline_config(opts.config.as_deref())?;
    crate::config::validate_url(&opts.prometheus_url).map_err(SimulateError::Invalid)?;
    config.prometheus.url = Some(opts.prometheus_url.clone());
    let client = prometheus::Client::new(&config.prometheus)
        .map_err(|e| SimulateError::Invalid(e.to_string()))?;
    let backend = Arc::new(AtTime::new(client, opts.from));
    let signals = Signals::with_backend(
        &config,
        backend.clone(),
        None,
        crate::metrics::Metrics::new(),
    );
    let mut hpa = Hpa::new(
        hpa_file.spec.clone(),
        ControllerConfig {
            sync_period_seconds: opts.step_seconds,
            ..ControllerConfig::default()
        },
    );
    let ns = [crate::promql::Matcher::eq("namespace", &hpa_file.namespace)];
    // What the job did: its registered TaskManagers and the Flink sources' backlog.
    let registered_q = format!(
        "max({})",
        crate::promql::vector("flink_jobmanager_numRegisteredTaskManagers", &ns)
    );
    let backlog_q = format!(
        "sum({})",
        crate::promql::vector(crate::signals::PENDING_RECORDS, &ns)
    );
    let first = scalar_at(backend.as_ref(), &registered_q, opts.from).await;
    let mut current = if first.is_finite() && first >= 1.0 {
        first as i32
    } else {
        hpa_file.spec.min_replicas.max(1)
    };
    let mut rows = Vec::new();
    let mut summary = Summary::default();
    let mut t = opts.from;
    while t <= opts.to + 1e-9 {
        backend.set(t);
        let readings = read_metrics(&signals, &hpa_file.requests).await;
        // The pods the HPA would see: those the Pods metrics name, else `current` of them.
        let mut named: Vec<String> = readings
            .iter()
            .filter_map(|r| match r {
                Ok(Reading::PerPod(p)) => Some(p.iter().map(|(n, _)| n.clone())),
                _ => None,
            })
            .flatten()
            .collect();
        named.sort();
        named.dedup();
        let pods: Vec<Pod> = if named.is_empty() {
            (0..current)
                .map(|i| Pod::running(&format!("taskmanager-{i}")))
                .collect()
        } else {
            named.iter().map(|n| Pod::running(n)).collect()
        };
        let outcome = hpa.sync(&SyncInput {
            now: t - opts.from,
            spec_replicas: current,
            status_replicas: pods.len() as i32,
            pods: &pods,
            readings: &readings,
        });
        let registered = scalar_at(backend.as_ref(), &registered_q, t).await;
        let backlog = scalar_at(backend.as_ref(), &backlog_q, t).await;
        let reason = if outcome.blocked {
            outcome.reason.clone()
        } else {
            format!(
                "{}; {}; {}",
                outcome.metric.as_deref().unwrap_or("-"),
                outcome.able_to_scale.reason,
                outcome
                    .scaling_limited
                    .map(|c| c.reason)
                    .unwrap_or("DesiredWithinRange")
            )
        };
        rows.push(Row {
            t: t - opts.from,
            arrival_rate: f64::NAN,
            capacity: f64::NAN,
            task_managers: current.max(0) as usize,
            registered_task_managers: if registered.is_finite() {
                registered as usize
            } else {
                0
            },
            parallelism: 0,
            backlog,
            lag_seconds: f64::NAN,
            readings,
            desired_replicas: outcome.desired_replicas,
            reason,
        });
        if outcome.rescale {
            summary.hpa_scale_events += 1;
            summary.rescales += 1;
        }
        current = outcome.desired_replicas;
        let dt = opts.step_seconds.min(opts.to - t).max(0.0);
        summary.taskmanager_seconds += current.max(0) as f64 * dt;
        summary.max_taskmanagers = summary.max_taskmanagers.max(current.max(0) as usize);
        t += opts.step_seconds;
    }
    summary.duration_seconds = opts.to - opts.from;
    let report = report(&hpa_file.spec.name, "replay", summary, &rows, 300.0, None);
    Ok(Replay {
        rows,
        report,
        metric_names: hpa_file.metric_names(),
    })
}

/// `replay`: runs and writes the same files as `simulate`. Columns the history cannot tell
/// (arrivals, capacity, lag) are empty; the oracle is unknown.
pub async fn replay(
    opts: &ReplayOptions,
    out: &mut impl Write,
) -> Result<super::Report, SimulateError> {
    let r = run(opts).await?;
    super::write_outputs(&opts.out, &r.rows, &r.report, &r.metric_names, f64::NAN)?;
    let _ = writeln!(
        out,
        "Replayed {} HPA syncs from Prometheus at {}",
        r.rows.len(),
        opts.prometheus_url
    );
    super::print_summary(&r.report, Path::new(&opts.out), out);
    Ok(r.report)
}
