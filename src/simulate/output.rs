//! What a run leaves: `summary.json` (the [`Report`]), `timeline.csv`, `plot.png` and the
//! summary printed to the terminal.

use std::io::Write;
use std::path::Path;

use super::{plot, SimulateError};
use crate::hpa::controller::Reading;
use crate::sim::{Row, Summary, Workload};

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
    load: Option<&Workload>,
) -> Report {
    // Half-cycles are counted for a sine only: other workloads have no cycle.
    let half_cycles = match load {
        Some(Workload::Sine { period, .. }) => Some(summary.duration_seconds / (period / 2.0)),
        _ => None,
    };
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

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
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
