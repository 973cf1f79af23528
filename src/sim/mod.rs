//! An offline simulation of a Flink Reactive Mode job under a Kubernetes HPA: the job model
//! ([`job`]) produces the series Flink exports, an injected function turns them into the HPA's
//! metric readings (the same signal code the server runs), and the HPA model ([`crate::hpa`])
//! sets the TaskManager count. Pure: time is simulated, nothing is read or written.

pub mod job;
pub mod workload;

pub use job::{FlinkJob, JobConfig, ScaleDown};
pub use workload::{oracle_task_managers, seed_sine, workload, Workload, WorkloadError};

use crate::fixtures::exporter::Series;
use crate::hpa::controller::MetricReading;
use crate::hpa::{Hpa, SyncInput};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriverConfig {
    pub duration_seconds: f64,
    /// Model time step.
    pub step_seconds: f64,
    /// How often Prometheus scrapes the job.
    pub scrape_interval_seconds: f64,
    /// Lag above which a second counts in `seconds_lag_above_limit`.
    pub lag_limit_seconds: f64,
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self {
            duration_seconds: 3600.0,
            step_seconds: 1.0,
            scrape_interval_seconds: 5.0,
            lag_limit_seconds: 300.0,
        }
    }
}

/// The state at one HPA sync.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub t: f64,
    pub arrival_rate: f64,
    /// Records/s the job processes at full busy time now (0 while restarting).
    pub capacity: f64,
    /// TaskManager pods.
    pub task_managers: usize,
    pub registered_task_managers: usize,
    pub parallelism: usize,
    pub backlog: f64,
    pub lag_seconds: f64,
    /// What each HPA metric read (`Err` = the read failed).
    pub readings: Vec<MetricReading>,
    pub desired_replicas: i32,
    /// Why: the winning metric and the limiting rule, or the blocking error.
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    pub duration_seconds: f64,
    pub taskmanager_seconds: f64,
    pub oracle_taskmanager_seconds: f64,
    pub max_lag_seconds: f64,
    pub seconds_lag_above_limit: f64,
    /// Job restarts that changed its parallelism.
    pub rescales: u64,
    /// Replica changes the HPA made.
    pub hpa_scale_events: u64,
    pub max_taskmanagers: usize,
}

/// Runs `job` under `hpa` for `cfg.duration_seconds`.
///
/// Every `scrape_interval_seconds` the job's series are scraped (timestamped); at every HPA
/// sync (`hpa.config.sync_period_seconds`) `read` receives the sync time and all series scraped
/// since the previous sync, and returns one reading per HPA metric.
pub fn run<F>(
    job: &mut FlinkJob,
    hpa: &mut Hpa,
    workload: &Workload,
    cfg: &DriverConfig,
    mut read: F,
) -> (Vec<Row>, Summary)
where
    F: FnMut(f64, &[Series]) -> Vec<MetricReading>,
{
    let mut tally = Tally::new(job, cfg);
    let mut rows = Vec::new();
    let mut scraped: Vec<Series> = Vec::new();
    let mut next_scrape = 0.0;
    let mut next_sync = 0.0;
    let eps = 1e-9;
    while job.t < cfg.duration_seconds - eps {
        let t = job.t;
        if t + eps >= next_scrape {
            scraped.extend(job.series());
            next_scrape += cfg.scrape_interval_seconds;
        }
        if t + eps >= next_sync {
            let readings = read(t, &scraped);
            scraped.clear();
            rows.push(sync(job, hpa, workload.rate(t), t, readings, &mut tally));
            next_sync += hpa.config.sync_period_seconds;
        }
        tally.advance(job, cfg.step_seconds, workload.rate(t));
    }
    (rows, tally.finish(job))
}

/// One HPA sync at `t` on `readings`: the controller's decision applied to the job's
/// Deployment, and the row that records it.
pub fn sync(
    job: &mut FlinkJob,
    hpa: &mut Hpa,
    arrival_rate: f64,
    t: f64,
    readings: Vec<MetricReading>,
    tally: &mut Tally,
) -> Row {
    let pods = job.pods();
    let outcome = hpa.sync(&SyncInput {
        now: t,
        spec_replicas: job.replicas as i32,
        status_replicas: job.pod_count() as i32,
        pods: &pods,
        readings: &readings,
    });
    let reason = if outcome.blocked {
        outcome.reason.clone()
    } else {
        let limited = outcome
            .scaling_limited
            .map(|c| c.reason)
            .unwrap_or("DesiredWithinRange");
        format!(
            "{}; {}; {}",
            outcome.metric.as_deref().unwrap_or("-"),
            outcome.able_to_scale.reason,
            limited
        )
    };
    let row = Row {
        t,
        arrival_rate,
        capacity: job.capacity(),
        task_managers: job.pod_count(),
        registered_task_managers: job.registered_task_managers(),
        parallelism: job.parallelism,
        backlog: job.backlog,
        lag_seconds: job.lag_seconds(),
        readings,
        desired_replicas: outcome.desired_replicas,
        reason,
    };
    if outcome.rescale {
        tally.summary.hpa_scale_events += 1;
        job.set_replicas(outcome.desired_replicas.max(0) as usize);
    }
    row
}

/// The running totals of a [`Summary`], kept step by step as the job advances.
#[derive(Debug, Clone)]
pub struct Tally {
    summary: Summary,
    capacity_per_task_manager: f64,
    lag_limit_seconds: f64,
    rescales_at_start: u64,
}

impl Tally {
    pub fn new(job: &FlinkJob, cfg: &DriverConfig) -> Self {
        Self {
            summary: Summary::default(),
            capacity_per_task_manager: job.config.capacity_per_slot
                * job.config.slots_per_task_manager as f64,
            lag_limit_seconds: cfg.lag_limit_seconds,
            rescales_at_start: job.rescales,
        }
    }

    /// Counts the `dt` seconds about to pass at `rate`, then advances the job over them.
    pub fn advance(&mut self, job: &mut FlinkJob, dt: f64, rate: f64) {
        let s = &mut self.summary;
        s.duration_seconds += dt;
        s.taskmanager_seconds += job.pod_count() as f64 * dt;
        s.oracle_taskmanager_seconds +=
            oracle_task_managers(rate, self.capacity_per_task_manager) as f64 * dt;
        s.max_taskmanagers = s.max_taskmanagers.max(job.pod_count());
        job.advance(dt, rate);
        let lag = job.lag_seconds();
        s.max_lag_seconds = s.max_lag_seconds.max(lag);
        if lag > self.lag_limit_seconds {
            s.seconds_lag_above_limit += dt;
        }
    }

    /// The summary so far.
    pub fn finish(&self, job: &FlinkJob) -> Summary {
        Summary {
            rescales: job.rescales - self.rescales_at_start,
            ..self.summary.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hpa::controller::Reading;
    use crate::hpa::{ControllerConfig, HpaSpec};

    const BUSY_HPA: &str = r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: t}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: flink-taskmanager}
  minReplicas: 1
  maxReplicas: 10
  metrics:
    - type: External
      external:
        metric: {name: flink_busy_time_max}
        target: {type: Value, value: "700"}
"#;

    /// The newest `busyTimeMsPerSecond` of the processing vertex, max over subtasks; an error
    /// when the job exports none (restarting), as the server answers on no data.
    fn busy_max(_t: f64, series: &[Series]) -> Vec<MetricReading> {
        let newest = series.iter().filter_map(|s| s.timestamp_ms).max();
        let v = series
            .iter()
            .filter(|s| {
                s.timestamp_ms == newest
                    && s.name == "flink_taskmanager_job_task_busyTimeMsPerSecond"
                    && s.labels
                        .iter()
                        .any(|(k, v)| k == "task_name" && v == "enrich")
            })
            .map(|s| s.value)
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
        vec![v.map(Reading::Value).ok_or_else(|| "no data".to_string())]
    }

    #[test]
    fn step_load_scales_up_and_the_summary_adds_up() {
        let spec = HpaSpec::from_yaml(BUSY_HPA).unwrap();
        let mut hpa = Hpa::new(spec, ControllerConfig::default());
        let mut job = FlinkJob::new(
            JobConfig {
                checkpoint_interval_seconds: None,
                ..JobConfig::default()
            },
            1,
        );
        // 500 rec/s, then 3500 rec/s from t = 300 s.
        let w = Workload::Step {
            before: 500.0,
            after: 3500.0,
            at: 300.0,
        };
        let cfg = DriverConfig {
            duration_seconds: 1200.0,
            ..DriverConfig::default()
        };
        let mut calls = 0;
        let (rows, s) = run(&mut job, &mut hpa, &w, &cfg, |t, series| {
            calls += 1;
            busy_max(t, series)
        });
        // One sync every 15 s over 1200 s.
        assert_eq!(rows.len(), 80);
        assert_eq!(calls, 80);
        // Oracle by hand: 300 s × 1 TM + 900 s × ceil(3.5) = 4 TMs = 3900 TM·s.
        assert_eq!(s.oracle_taskmanager_seconds, 3900.0);
        // Before the step one TM at busy 500 stays (500/700 → ceil(0.714) = 1).
        assert!(rows[..20].iter().all(|r| r.task_managers == 1));
        // It ends with enough TaskManagers, the backlog drained.
        let last = rows.last().unwrap();
        assert!(last.task_managers >= 4, "{last:?}");
        assert_eq!(last.backlog, 0.0);
        assert!(s.rescales >= 1 && s.max_taskmanagers >= 4);
        // At least the oracle, and TM·s counted from the pods: ≥ 1200 s × 1.
        assert!(s.taskmanager_seconds >= s.oracle_taskmanager_seconds);
        assert!(s.max_lag_seconds > 0.0);
        assert_eq!(s.seconds_lag_above_limit, 0.0);
    }
}
