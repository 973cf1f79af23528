//! `simulate` and `replay`: what an HPA would do, offline.
//!
//! `simulate` steps the Flink job model ([`crate::sim`]), scrapes its series into the
//! in-memory PromQL backend at every scrape interval, answers the HPA's metric requests with
//! the server's own signal code (the provider path an APIService request takes) and feeds
//! them to the HPA controller model, in simulated time. `replay` asks a real Prometheus for
//! the same answers at past times and runs the HPA model over them.

pub mod plot;
pub mod replay;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::autoscaling::v2 as k8s;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::backend::MemoryBackend;
use crate::config::Config;
use crate::fixtures::exporter::Series;
use crate::hpa::controller::{MetricReading, Reading};
use crate::hpa::{ControllerConfig, Hpa, HpaSpec, MetricKind};
use crate::provider::{CustomRequest, ExternalRequest, MetricsProvider, ObjectName};
use crate::selector::Selector;
use crate::signals::Signals;
use crate::sim::{self, DriverConfig, FlinkJob, JobConfig, Row, Summary, Workload};

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Hpa { path: String, message: String },
    #[error("configuration: {0}")]
    Config(String),
    #[error("workload: {0}")]
    Workload(#[from] sim::WorkloadError),
    #[error("writing {path}: {message}")]
    Write { path: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// One HPA metric as the HPA controller asks the metrics APIs for it.
#[derive(Debug, Clone)]
pub enum MetricRequest {
    External(ExternalRequest),
    /// A `Pods` metric: every pod of the scale target (`pods/*`), series picked by
    /// `metricLabelSelector`.
    Pods(CustomRequest),
    /// A metric type the simulator cannot ask for (`Object`): its reading is an error.
    Unsupported(String),
}

/// An HPA manifest: the controller's view and the requests it makes.
#[derive(Debug, Clone)]
pub struct HpaFile {
    pub spec: HpaSpec,
    pub namespace: String,
    pub requests: Vec<MetricRequest>,
    /// The Flink job the metrics select (`job_name` in a `matchLabels`), if any.
    pub job_name: Option<String>,
}

fn selector_of(s: Option<&LabelSelector>) -> Result<Selector, String> {
    let Some(s) = s else {
        return Ok(Selector::everything());
    };
    let mut parts = Vec::new();
    for (k, v) in s.match_labels.iter().flatten() {
        parts.push(format!("{k}={v}"));
    }
    for e in s.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => return Err(format!("unknown selector operator {other:?}")),
        });
    }
    Selector::parse(&parts.join(",")).map_err(|e| e.to_string())
}

impl HpaFile {
    pub fn parse(text: &str, path: &str) -> Result<Self, SimulateError> {
        let err = |message: String| SimulateError::Hpa {
            path: path.to_string(),
            message,
        };
        let spec = HpaSpec::from_yaml(text).map_err(|e| err(e.to_string()))?;
        let raw: k8s::HorizontalPodAutoscaler =
            serde_yaml::from_str(text).map_err(|e| err(e.to_string()))?;
        let namespace = raw
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let mut requests = Vec::new();
        let mut job_name = None;
        for (m, ms) in raw.spec.metrics.iter().flatten().zip(&spec.metrics) {
            let req = match (ms.kind, &m.external, &m.pods) {
                (MetricKind::External, Some(e), _) => MetricRequest::External(ExternalRequest {
                    namespace: namespace.clone(),
                    metric: e.metric.name.clone(),
                    selector: selector_of(e.metric.selector.as_ref()).map_err(&err)?,
                }),
                (MetricKind::Pods, _, Some(p)) => MetricRequest::Pods(CustomRequest {
                    namespace: Some(namespace.clone()),
                    resource: "pods".into(),
                    name: ObjectName::All,
                    metric: p.metric.name.clone(),
                    // The Deployment's pod selector selects Kubernetes pods; the simulated
                    // job's series carry no pod labels, so every pod of the namespace.
                    selector: Selector::everything(),
                    metric_selector: selector_of(p.metric.selector.as_ref()).map_err(&err)?,
                }),
                _ => MetricRequest::Unsupported(ms.name.clone()),
            };
            let selector = m
                .external
                .as_ref()
                .and_then(|e| e.metric.selector.as_ref())
                .or_else(|| m.pods.as_ref().and_then(|p| p.metric.selector.as_ref()));
            if let Some(j) = selector
                .and_then(|s| s.match_labels.as_ref())
                .and_then(|l| l.get("job_name"))
            {
                job_name.get_or_insert_with(|| j.clone());
            }
            requests.push(req);
        }
        Ok(Self {
            spec,
            namespace,
            requests,
            job_name,
        })
    }

    pub fn load(path: &Path) -> Result<Self, SimulateError> {
        let text = std::fs::read_to_string(path).map_err(|source| SimulateError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn metric_names(&self) -> Vec<String> {
        self.spec.metrics.iter().map(|m| m.name.clone()).collect()
    }
}

/// Asks `signals` for every HPA metric, as the controller would at this instant.
pub async fn read_metrics(signals: &Signals, requests: &[MetricRequest]) -> Vec<MetricReading> {
    let mut out = Vec::with_capacity(requests.len());
    for r in requests {
        out.push(match r {
            MetricRequest::External(req) => match signals.external(req).await {
                // The controller sums an External metric's items.
                Ok(items) => Ok(Reading::Value(items.iter().map(|i| i.value).sum())),
                Err(e) => Err(e.to_string()),
            },
            MetricRequest::Pods(req) => match signals.custom(req).await {
                Ok(items) => Ok(Reading::PerPod(
                    items
                        .into_iter()
                        .map(|i| (i.object.name, i.value))
                        .collect(),
                )),
                Err(e) => Err(e.to_string()),
            },
            MetricRequest::Unsupported(name) => Err(format!(
                "{name}: only External and Pods metrics can be simulated"
            )),
        });
    }
    out
}

/// The configuration the signals run with offline: the file's (or the built-in signals),
/// without the value cache, whose refresh runs on the wall clock and would serve values
/// from another simulated time.
pub fn offline_config(file: Option<&Path>) -> Result<Config, SimulateError> {
    let mut cfg = match file {
        Some(f) => Config::load(f).map_err(|e| SimulateError::Config(e.to_string()))?,
        None => Config::default(),
    };
    cfg.cache.refresh_interval = None;
    Ok(cfg)
}

pub fn parse_duration(s: &str) -> Result<f64, String> {
    crate::config::parse_duration(s).map(|d| d.as_secs_f64())
}

#[derive(Debug, Clone)]
pub struct SimulateOptions {
    pub hpa: PathBuf,
    /// `sine`, `step`, `spike` or a CSV file of `seconds,records_per_second`.
    pub workload: String,
    pub duration_seconds: f64,
    pub period_seconds: f64,
    pub peak: f64,
    pub lag_limit_seconds: f64,
    pub config: Option<PathBuf>,
    pub out: PathBuf,
    /// Records/s one TaskManager processes at full busy time.
    pub capacity_per_task_manager: f64,
    pub slots_per_task_manager: usize,
}

impl Default for SimulateOptions {
    fn default() -> Self {
        Self {
            hpa: PathBuf::from("hpa-examples/busy-time.yaml"),
            workload: "sine".into(),
            duration_seconds: 3600.0,
            period_seconds: 3600.0,
            peak: 6000.0,
            lag_limit_seconds: 300.0,
            config: None,
            out: PathBuf::from("simulation"),
            capacity_per_task_manager: 1000.0,
            slots_per_task_manager: 2,
        }
    }
}

/// What `summary.json` holds: the driver's summary and how it compares.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub hpa: String,
    pub workload: String,
    #[serde(flatten)]
    pub summary: Summary,
    /// `taskmanager_seconds / oracle_taskmanager_seconds`.
    pub taskmanager_seconds_over_oracle: f64,
    pub lag_limit_seconds: f64,
    /// Half-periods of the workload covered (sine only).
    pub half_cycles: Option<f64>,
    pub rescales_per_half_cycle: Option<f64>,
    /// HPA syncs at which a metric could not be read.
    pub syncs_with_metric_errors: usize,
    pub syncs: usize,
}

pub fn report(
    hpa: &str,
    workload: &str,
    summary: Summary,
    rows: &[Row],
    lag_limit_seconds: f64,
    sine_period: Option<f64>,
) -> Report {
    let half_cycles = sine_period.map(|p| summary.duration_seconds / (p / 2.0));
    Report {
        hpa: hpa.to_string(),
        workload: workload.to_string(),
        taskmanager_seconds_over_oracle: ratio(
            summary.taskmanager_seconds,
            summary.oracle_taskmanager_seconds,
        ),
        lag_limit_seconds,
        rescales_per_half_cycle: half_cycles
            .filter(|h| *h > 0.0)
            .map(|h| summary.rescales as f64 / h),
        half_cycles,
        syncs_with_metric_errors: rows
            .iter()
            .filter(|r| r.readings.iter().any(|x| x.is_err()))
            .count(),
        syncs: rows.len(),
        summary,
    }
}

/// Above 0 (and not NaN).
pub(crate) fn positive(x: f64) -> bool {
    x > 0.0
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

/// Series as Prometheus stores them: the metric name as `__name__`.
fn labels_of(s: &Series) -> BTreeMap<String, String> {
    let mut l: BTreeMap<String, String> = s.labels.iter().cloned().collect();
    l.insert("__name__".into(), s.name.clone());
    l
}

/// Loads `series` (one or more scrapes, told apart by their timestamps) into `backend` as
/// scrapes of one target.
pub fn ingest(backend: &MemoryBackend, series: &[Series]) -> Result<(), SimulateError> {
    let mut by_time: BTreeMap<i64, Vec<&Series>> = BTreeMap::new();
    for s in series {
        by_time
            .entry(s.timestamp_ms.unwrap_or(0))
            .or_default()
            .push(s);
    }
    backend.with_store(|store| {
        for (t, batch) in by_time {
            store
                .scrape("flink", t, batch.iter().map(|s| (labels_of(s), s.value)))
                .map_err(|e| SimulateError::Invalid(e.to_string()))?;
        }
        Ok(())
    })
}

pub struct Simulation {
    pub rows: Vec<Row>,
    pub report: Report,
    pub metric_names: Vec<String>,
}

/// Runs the simulation (no files written).
pub fn run(opts: &SimulateOptions) -> Result<Simulation, SimulateError> {
    let hpa_file = HpaFile::load(&opts.hpa)?;
    let config = offline_config(opts.config.as_deref())?;
    if !positive(opts.duration_seconds)
        || !positive(opts.period_seconds)
        || opts.peak.is_nan()
        || opts.peak < 0.0
    {
        return Err(SimulateError::Invalid(
            "duration and period must be above 0, peak at least 0".into(),
        ));
    }
    if opts.slots_per_task_manager == 0 || !positive(opts.capacity_per_task_manager) {
        return Err(SimulateError::Invalid(
            "a TaskManager needs slots and capacity".into(),
        ));
    }
    let workload = load_workload(&opts.workload, opts.period_seconds, opts.peak)?;
    let job_config = JobConfig {
        namespace: hpa_file.namespace.clone(),
        job_name: hpa_file
            .job_name
            .clone()
            .unwrap_or_else(|| JobConfig::default().job_name),
        slots_per_task_manager: opts.slots_per_task_manager,
        capacity_per_slot: opts.capacity_per_task_manager / opts.slots_per_task_manager as f64,
        ..JobConfig::default()
    };
    let start_unix = job_config.start_unix_ms as f64 / 1000.0;
    let mut job = FlinkJob::new(job_config, hpa_file.spec.min_replicas.max(1) as usize);
    let mut hpa = Hpa::new(hpa_file.spec.clone(), ControllerConfig::default());
    let backend = Arc::new(MemoryBackend::new("the simulated job's series (in memory)"));
    let signals = Signals::with_backend(
        &config,
        backend.clone(),
        None,
        crate::metrics::Metrics::new(),
    );
    let driver = DriverConfig {
        duration_seconds: opts.duration_seconds,
        lag_limit_seconds: opts.lag_limit_seconds,
        ..DriverConfig::default()
    };
    // History the signals may read: windows of up to an hour, and a seasonal forecast's
    // offset of up to a day (its default season).
    let keep_ms = 25 * 3600 * 1000;
    let mut failure = None;
    let (rows, summary) = sim::run(&mut job, &mut hpa, &workload, &driver, |t, series| {
        if let Err(e) = ingest(&backend, series) {
            failure.get_or_insert(e);
        }
        let now = start_unix + t;
        backend.set_now(now);
        backend.with_store(|s| s.truncate_before(crate::backend::memory::to_ms(now) - keep_ms));
        futures::executor::block_on(read_metrics(&signals, &hpa_file.requests))
    });
    if let Some(e) = failure {
        return Err(e);
    }
    let sine_period = matches!(workload, Workload::Sine { .. }).then_some(opts.period_seconds);
    let report = report(
        &hpa_file.spec.name,
        &opts.workload,
        summary,
        &rows,
        opts.lag_limit_seconds,
        sine_period,
    );
    Ok(Simulation {
        rows,
        report,
        metric_names: hpa_file.metric_names(),
    })
}

pub fn load_workload(kind: &str, period: f64, peak: f64) -> Result<Workload, SimulateError> {
    match sim::workload(kind, period, peak) {
        Ok(w) => Ok(w),
        Err(sim::WorkloadError::Unknown(_)) if Path::new(kind).is_file() => {
            let text = std::fs::read_to_string(kind).map_err(|source| SimulateError::Read {
                path: kind.to_string(),
                source,
            })?;
            Ok(Workload::from_csv(&text)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// `simulate`: runs, writes `timeline.csv`, `summary.json` and `plot.png` to `opts.out`, and
/// prints the summary.
pub fn simulate(opts: &SimulateOptions, out: &mut impl Write) -> Result<Report, SimulateError> {
    let sim = run(opts)?;
    write_outputs(
        &opts.out,
        &sim.rows,
        &sim.report,
        &sim.metric_names,
        opts.capacity_per_task_manager,
    )?;
    print_summary(&sim.report, &opts.out, out);
    Ok(sim.report)
}

pub fn write_outputs(
    dir: &Path,
    rows: &[Row],
    report: &Report,
    metric_names: &[String],
    capacity_per_task_manager: f64,
) -> Result<(), SimulateError> {
    let werr = |path: &Path, e: &dyn std::fmt::Display| SimulateError::Write {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| werr(dir, &e))?;
    let csv_path = dir.join("timeline.csv");
    std::fs::write(&csv_path, timeline_csv(rows, metric_names)).map_err(|e| werr(&csv_path, &e))?;
    let json_path = dir.join("summary.json");
    let json = serde_json::to_string_pretty(report).map_err(|e| werr(&json_path, &e))?;
    std::fs::write(&json_path, json + "\n").map_err(|e| werr(&json_path, &e))?;
    let png = dir.join("plot.png");
    plot::draw(&png, rows, capacity_per_task_manager, &report.hpa).map_err(|e| werr(&png, &e))?;
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn num(v: f64) -> String {
    if v.is_finite() {
        let r = (v * 1000.0).round() / 1000.0;
        format!("{r}")
    } else {
        String::new()
    }
}

/// One line per HPA sync. `task_managers` are the pods at the sync, `desired_replicas` those
/// the HPA leaves until the next one: Σ desired × sync interval is the TaskManager-seconds.
/// A metric column holds what the HPA read (the average for a Pods metric), empty when the
/// read failed, with the error in the `_error` column.
pub fn timeline_csv(rows: &[Row], metric_names: &[String]) -> String {
    let mut out = String::from(
        "time_seconds,arrival_rate,capacity,task_managers,registered_task_managers,parallelism,backlog_records,lag_seconds",
    );
    for m in metric_names {
        out.push_str(&format!(",{},{}_error", csv_field(m), csv_field(m)));
    }
    out.push_str(",desired_replicas,reason\n");
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{}",
            num(r.t),
            num(r.arrival_rate),
            num(r.capacity),
            r.task_managers,
            r.registered_task_managers,
            r.parallelism,
            num(r.backlog),
            num(r.lag_seconds)
        ));
        for i in 0..metric_names.len() {
            let (v, e) = match r.readings.get(i) {
                Some(Ok(Reading::Value(v))) => (num(*v), String::new()),
                Some(Ok(Reading::PerPod(p))) if !p.is_empty() => (
                    num(p.iter().map(|(_, v)| v).sum::<f64>() / p.len() as f64),
                    String::new(),
                ),
                Some(Ok(Reading::PerPod(_))) => (String::new(), "no pods".into()),
                Some(Err(e)) => (String::new(), e.clone()),
                None => (String::new(), String::new()),
            };
            out.push_str(&format!(",{v},{}", csv_field(&e)));
        }
        out.push_str(&format!(
            ",{},{}\n",
            r.desired_replicas,
            csv_field(&r.reason)
        ));
    }
    out
}

fn human_duration(s: f64) -> String {
    if !s.is_finite() {
        return "-".into();
    }
    let s = s.round() as u64;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

pub fn print_summary(r: &Report, dir: &Path, out: &mut impl Write) {
    let s = &r.summary;
    let _ = writeln!(
        out,
        "HPA {} on workload {} for {}",
        r.hpa,
        r.workload,
        human_duration(s.duration_seconds)
    );
    if s.oracle_taskmanager_seconds > 0.0 {
        let _ = writeln!(
            out,
            "  TaskManager-seconds      {:.0} ({:.2} × the oracle's {:.0})",
            s.taskmanager_seconds, r.taskmanager_seconds_over_oracle, s.oracle_taskmanager_seconds
        );
    } else {
        let _ = writeln!(
            out,
            "  TaskManager-seconds      {:.0}",
            s.taskmanager_seconds
        );
    }
    let _ = writeln!(
        out,
        "  TaskManagers             at most {}",
        s.max_taskmanagers
    );
    let _ = writeln!(
        out,
        "  lag                      at most {}; above {} for {}",
        human_duration(s.max_lag_seconds),
        human_duration(r.lag_limit_seconds),
        human_duration(s.seconds_lag_above_limit)
    );
    let per_half = r
        .rescales_per_half_cycle
        .map(|x| format!(" ({x:.1} per half-cycle)"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "  rescales                 {}{per_half}; the HPA changed replicas {} times",
        s.rescales, s.hpa_scale_events
    );
    if r.syncs_with_metric_errors > 0 {
        let _ = writeln!(
            out,
            "  metric errors            at {} of {} syncs (see the _error columns)",
            r.syncs_with_metric_errors, r.syncs
        );
    }
    let _ = writeln!(
        out,
        "Wrote {}, {} and {}",
        dir.join("timeline.csv").display(),
        dir.join("summary.json").display(),
        dir.join("plot.png").display()
    );
}

/// The command-line arguments of `simulate` and `replay`, kept here so that `main.rs` only
/// names them.
pub mod cli {
    use std::path::PathBuf;

    use super::replay::{parse_time, ReplayOptions};
    use super::{parse_duration, SimulateOptions};

    /// Run the Flink job model under an HPA in simulated time, with the server's own signal
    /// code over an in-memory Prometheus; write timeline.csv, summary.json and plot.png.
    #[derive(clap::Args, Debug)]
    pub struct SimulateArgs {
        /// The HorizontalPodAutoscaler manifest (autoscaling/v2), e.g. hpa-examples/busy-time.yaml.
        #[arg(long)]
        pub hpa: PathBuf,
        /// sine, step, spike, or a CSV file of `seconds,records_per_second` lines.
        #[arg(long, default_value = "sine")]
        pub workload: String,
        /// Simulated time to run (30s, 2m, 6h).
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        pub duration: f64,
        /// The workload's period (sine: 0 → peak → 0).
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        pub period: f64,
        /// The workload's peak, records/s.
        #[arg(long, default_value_t = 6000.0)]
        pub peak: f64,
        /// Lag above which time is counted in seconds_lag_above_limit.
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        pub lag_limit: f64,
        /// Signals configuration (default: the built-in signals).
        #[arg(long)]
        pub config: Option<PathBuf>,
        /// Records/s one TaskManager processes at full busy time.
        #[arg(long, default_value_t = 1000.0)]
        pub capacity_per_taskmanager: f64,
        #[arg(long, default_value_t = 2)]
        pub slots_per_taskmanager: usize,
        /// Output directory.
        #[arg(long, default_value = "simulation")]
        pub out: PathBuf,
    }

    impl From<SimulateArgs> for SimulateOptions {
        fn from(a: SimulateArgs) -> Self {
            Self {
                hpa: a.hpa,
                workload: a.workload,
                duration_seconds: a.duration,
                period_seconds: a.period,
                peak: a.peak,
                lag_limit_seconds: a.lag_limit,
                config: a.config,
                out: a.out,
                capacity_per_task_manager: a.capacity_per_taskmanager,
                slots_per_task_manager: a.slots_per_taskmanager,
            }
        }
    }

    /// What an HPA would have done over a Prometheus' history: the signals evaluated at each
    /// past sync time, the HPA model deciding. Same outputs as simulate.
    #[derive(clap::Args, Debug)]
    pub struct ReplayArgs {
        #[arg(long, env = "PROMETHEUS_URL")]
        pub prometheus_url: String,
        #[arg(long)]
        pub hpa: PathBuf,
        /// Start: Unix seconds or RFC 3339 (2026-12-04T10:00:00Z).
        #[arg(long, value_parser = parse_time)]
        pub from: f64,
        #[arg(long, value_parser = parse_time)]
        pub to: f64,
        /// Between HPA syncs.
        #[arg(long, default_value = "15s", value_parser = parse_duration)]
        pub step: f64,
        #[arg(long)]
        pub config: Option<PathBuf>,
        #[arg(long, default_value = "replay")]
        pub out: PathBuf,
    }

    impl From<ReplayArgs> for ReplayOptions {
        fn from(a: ReplayArgs) -> Self {
            Self {
                prometheus_url: a.prometheus_url,
                hpa: a.hpa,
                from: a.from,
                to: a.to,
                step_seconds: a.step,
                config: a.config,
                out: a.out,
            }
        }
    }

    pub fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
        super::simulate(&args.into(), &mut std::io::stdout())?;
        Ok(())
    }

    pub async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
        super::replay::replay(&args.into(), &mut std::io::stdout()).await?;
        Ok(())
    }
}
