//! `simulate` and `replay`: what an HPA would do, offline.
//!
//! `simulate` steps the Flink job model ([`crate::sim`]), scrapes its series into the
//! in-memory PromQL backend at every scrape interval, answers the HPA's metric requests with
//! the server's own signal code (the provider path an APIService request takes) and feeds
//! them to the HPA controller model, in simulated time. `replay` asks a real Prometheus for
//! the same answers at past times and runs the HPA model over them.

pub mod cli;
mod hpa_file;
mod output;
pub mod plot;
pub mod replay;

pub use hpa_file::{read_metrics, HpaFile, MetricRequest};
pub use output::{print_summary, report, timeline_csv, write_outputs, Report};

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::backend::MemoryBackend;
use crate::config::Config;
use crate::fixtures::exporter::Series;
use crate::hpa::{ControllerConfig, Hpa};
use crate::signals::Signals;
use crate::sim::{self, DriverConfig, FlinkJob, Row, Workload};

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

/// Above 0 (and not NaN).
pub(crate) fn positive(x: f64) -> bool {
    x > 0.0
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
    let job_config =
        hpa_file.job_config(opts.slots_per_task_manager, opts.capacity_per_task_manager);
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
    let report = report(
        &hpa_file.spec.name,
        &opts.workload,
        summary,
        &rows,
        opts.lag_limit_seconds,
        Some(&workload),
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
