//! `flinkRequiredTaskManagers`: how many TaskManagers a Reactive Mode job needs to keep up
//! with its arrivals and catch up its backlog (`crate::model::capacity`). Served as an
//! External metric with an `AverageValue` target of 1, the HPA runs exactly that many.

mod explain;
mod parse;
#[cfg(test)]
mod tests;

pub use parse::DEFAULT_WINDOW;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Deserialize;

use crate::config::RestartHold;
use crate::labels::Label;
use crate::model::capacity::{required_task_managers, Report, Targets, VertexLoad};
use crate::promql::{vector, Matcher};
use crate::provider::MetricError;
use crate::signals::plan::{Agg, Group, Part, PartName};
use crate::signals::request::Item;
use crate::signals::{
    promql_duration, BUSY_TIME, OPERATOR_RECORDS_IN_RATE, OPERATOR_RECORDS_OUT_RATE,
    PENDING_RECORDS, SOURCE_OPERATOR_REGEX,
};

use super::common::{windowed_hold, Failure, Input};
use super::options::hold_json;
use super::{Entry, Grouping, Hold, SignalKind, SignalType, Source};

pub const ENTRY: Entry = Entry {
    ty: SignalType::FlinkRequiredTaskManagers,
    name: "flinkRequiredTaskManagers",
    fields: &[
        "restartHold",
        "window",
        "targetUtilization",
        "utilizationMin",
        "utilizationMax",
        "catchUpDuration",
        "restartTime",
        "backlogThreshold",
        "slotsPerTaskManager",
        "minTaskManagers",
        "maxTaskManagers",
        "maxParallelism",
        "forecast",
    ],
    parse: parse::parse,
};

pub const ACCUMULATED_BUSY: &str = "flink_taskmanager_job_task_accumulateBusyTimeMs";
pub const TASK_RECORDS_IN: &str = "flink_taskmanager_job_task_numRecordsIn";
pub const TASK_RECORDS_IN_RATE: &str = "flink_taskmanager_job_task_numRecordsInPerSecond";
pub const KAFKA_PARTITION_OFFSET: &str =
    "flink_taskmanager_job_task_operator_KafkaSourceReader_topic_partition_currentOffset";

const BUSY: PartName = PartName("busy");
const INPUT: PartName = PartName("input");
const SOURCE: PartName = PartName("source_rate");
const BACKLOG: PartName = PartName("backlog");
const GROWTH: PartName = PartName("growth");
const PARTITIONS: PartName = PartName("partitions");
const TASK_MANAGERS: PartName = PartName("taskmanagers");
const FORECAST: PartName = PartName("forecast");
const SEASONAL: PartName = PartName("seasonal");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Method {
    /// A linear trend of the consumption rate over the window, `lead` ahead.
    Trend,
    /// The larger of the trend and the rate one `season` ago, `lead` ahead of now.
    Seasonal,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    pub lead: Duration,
    pub method: Method,
    pub season: Duration,
}

#[derive(Debug)]
pub struct RequiredTaskManagers {
    hold: Option<RestartHold>,
    window: Duration,
    targets: Targets,
    slots: Option<f64>,
    forecast: Option<Forecast>,
}

impl RequiredTaskManagers {
    /// A job's vertices as the computation reads them, and its current TaskManagers.
    fn loads(groups: &[&Group]) -> (Vec<VertexLoad>, f64) {
        let mut task_managers: f64 = 0.0;
        let loads = groups
            .iter()
            .map(|g| {
                task_managers = task_managers.max(g.part(TASK_MANAGERS).unwrap_or(0.0));
                let source = g.part(SOURCE).is_some();
                VertexLoad {
                    id: match (g.labels.get("task_name"), g.labels.get("task_id")) {
                        (Some(name), Some(id)) => format!("{name} [{id}]"),
                        (name, id) => name.or(id).map(|n| n.to_string()).unwrap_or_default(),
                    },
                    parallelism: g.part(PartName::SUBTASKS).unwrap_or(0.0),
                    busy: g.part(BUSY),
                    input_rate: if source {
                        g.part(SOURCE)
                    } else {
                        g.part(INPUT)
                    },
                    source,
                    backlog: g.part(BACKLOG),
                    backlog_growth: g.part(GROWTH),
                    partitions: g.part(PARTITIONS),
                }
            })
            .collect();
        (loads, task_managers)
    }

    /// The whole computation for one job's groups, for the answer and for `--explain`.
    pub fn report(&self, groups: &[&Group]) -> Result<Report, String> {
        let (loads, current) = Self::loads(groups);
        let parallelism = loads.iter().map(|v| v.parallelism).fold(0.0, f64::max);
        let slots = match self.slots {
            Some(s) => s,
            // Every slot runs one subtask of the widest vertex.
            None if current > 0.0 => (parallelism / current).round(),
            None => 0.0,
        };
        let forecast = self.forecast.map(|f| {
            let trend: f64 = groups.iter().filter_map(|g| g.part(FORECAST)).sum();
            let growth: f64 = groups.iter().filter_map(|g| g.part(GROWTH)).sum();
            let seasonal: f64 = groups.iter().filter_map(|g| g.part(SEASONAL)).sum();
            let trend = trend + growth;
            match f.method {
                Method::Trend => trend,
                Method::Seasonal => trend.max(seasonal),
            }
        });
        required_task_managers(&loads, current, slots, &self.targets, forecast)
            .map_err(|e| e.to_string())
    }

    fn source_rate(&self, m: &[Matcher], by: &str, f: &dyn Fn(&str) -> String) -> String {
        let mut sm = m.to_vec();
        sm.push(Matcher::re("operator_name", SOURCE_OPERATOR_REGEX));
        format!(
            "(sum by ({by}) ({}) > 0) or sum by ({by}) ({})",
            f(&vector(OPERATOR_RECORDS_IN_RATE, &sm)),
            f(&vector(OPERATOR_RECORDS_OUT_RATE, &sm))
        )
    }
}

fn by_job(groups: &[Group]) -> BTreeMap<Option<&Label>, Vec<&Group>> {
    let mut jobs: BTreeMap<Option<&Label>, Vec<&Group>> = BTreeMap::new();
    for g in groups {
        jobs.entry(g.labels.get("job_name")).or_default().push(g);
    }
    jobs
}

impl SignalKind for RequiredTaskManagers {
    fn signal_type(&self) -> SignalType {
        SignalType::FlinkRequiredTaskManagers
    }

    fn grouping(&self, _: Source) -> Grouping {
        Grouping::new(
            &["job_name", "task_id", "task_name"],
            &["job_name", "task_id", "task_name"],
        )
    }

    fn parts(&self, _: Source, m: &[Matcher], by: &str) -> Vec<Part> {
        let w = promql_duration(self.window);
        let busy = vector(BUSY_TIME, m);
        let pending = vector(PENDING_RECORDS, m);
        let part = |name: PartName, expr: String, agg: Agg| Part { name, expr, agg };
        let mut parts = vec![
            part(PartName::SUBTASKS, format!("count by ({by}) ({busy})"), Agg::Sum),
            part(PartName::NEWEST, format!("max by ({by}) (timestamp({busy}))"), Agg::Max),
            // The accumulated counter gives the exact busy ratio over the window; the 60 s
            // meter averaged over it stands in where the counter is missing. The counters'
            // slope is taken with deriv, not rate: rate divides by the whole window, so a
            // series younger than the window (Prometheus or its scrape of the job started
            // lately) reads low by the uncovered share, while the sources' consumption,
            // an average of gauges, does not — and a vertex's share of the arrivals, its
            // input over theirs, would come out too low. Every task series belongs to one
            // execution attempt (task_attempt_id), so these counters never reset.
            part(
                BUSY,
                format!(
                    "(max by ({by}) (deriv({}[{w}])) / 1000) or (max by ({by}) (avg_over_time({busy}[{w}]) >= 0) / 1000)",
                    vector(ACCUMULATED_BUSY, m)
                ),
                Agg::Max,
            ),
            // Likewise the records-in counter, and the task's 60 s meter where a rate of the
            // counter cannot be had yet (a single sample).
            part(
                INPUT,
                format!(
                    "sum by ({by}) (deriv({}[{w}])) or sum by ({by}) (avg_over_time({}[{w}]) >= 0)",
                    vector(TASK_RECORDS_IN, m),
                    vector(TASK_RECORDS_IN_RATE, m)
                ),
                Agg::Sum,
            ),
            part(
                SOURCE,
                self.source_rate(m, by, &|s| format!("avg_over_time({s}[{w}])")),
                Agg::Sum,
            ),
            part(BACKLOG, format!("sum by ({by}) ({pending})"), Agg::Sum),
            part(
                GROWTH,
                format!("sum by ({by}) (deriv({pending}[{w}]))"),
                Agg::Sum,
            ),
            part(
                PARTITIONS,
                format!(
                    "count by ({by}) (count by ({by}, topic, partition) ({}))",
                    vector(KAFKA_PARTITION_OFFSET, m)
                ),
                Agg::Sum,
            ),
            part(
                TASK_MANAGERS,
                format!("count by ({by}) (count by ({by}, tm_id) ({busy}))"),
                Agg::Max,
            ),
        ];
        if let Some(f) = self.forecast {
            let lead = f.lead.as_secs();
            parts.push(part(
                FORECAST,
                self.source_rate(m, by, &|s| format!("predict_linear({s}[{w}], {lead})")),
                Agg::Sum,
            ));
            if f.method == Method::Seasonal {
                let back = promql_duration(f.season - f.lead);
                parts.push(part(
                    SEASONAL,
                    self.source_rate(m, by, &|s| format!("avg_over_time({s}[{w}] offset {back})")),
                    Agg::Sum,
                ));
            }
        }
        parts
    }

    fn explain(&self, input: &Input<'_>) -> Option<String> {
        let mut out = String::new();
        for (job, groups) in by_job(input.groups) {
            let job = job.map(Label::as_str).unwrap_or("(no job_name)");
            let _ = writeln!(out, "job {job}:");
            match self.report(&groups) {
                Ok(r) => out.push_str(&self.describe(&r)),
                Err(why) => {
                    let _ = writeln!(out, "  no number: {why}");
                }
            }
        }
        (!out.is_empty()).then_some(out)
    }

    fn compute(&self, input: &Input<'_>) -> Result<Vec<Item>, Failure> {
        let jobs = by_job(input.groups);
        let (job, groups) = match jobs.len() {
            0 => return Err(input.missing()),
            1 => jobs.into_iter().next().unwrap_or_default(),
            n => {
                return Err(MetricError::BadRequest(format!(
                    "{}: the selector matches {n} Flink jobs; name one with job_name (each job has its own TaskManagers)",
                    input.signal
                ))
                .into())
            }
        };
        let newest = groups
            .iter()
            .filter_map(|g| g.part(PartName::NEWEST))
            .fold(f64::NEG_INFINITY, f64::max);
        if !newest.is_finite() {
            return Err(input.missing());
        }
        if let Some(max_age) = input.max_age {
            if input.now - newest > max_age.as_secs_f64() {
                return Err(Failure::Data(
                    crate::model::quality::BadData::Stale,
                    format!(
                        "{}: the newest busy-time sample is {:.0}s old, older than maxAge {}",
                        input.signal,
                        input.now - newest,
                        promql_duration(max_age)
                    ),
                ));
            }
        }
        let report = self.report(&groups).map_err(|why| {
            MetricError::Unusable(format!(
                "{}: {why}{}",
                input.signal,
                job.map(|j| format!(" (job {j})")).unwrap_or_default()
            ))
        })?;
        Ok(vec![Item {
            labels: job
                .map(|j| [(Label::from("job_name"), j.clone())].into_iter().collect())
                .unwrap_or_default(),
            object: None,
            value: report.task_managers,
            timestamp: newest,
        }])
    }

    /// The window must hold only data from after the last restart: the warm-up is at least
    /// the window, and a hold lasts at least as long plus the restart's own time.
    fn hold(&self) -> Option<Hold> {
        windowed_hold(self.hold, self.window)
    }

    fn options(&self) -> serde_json::Value {
        let d = |s: f64| humantime::format_duration(Duration::from_secs_f64(s)).to_string();
        let t = &self.targets;
        serde_json::json!({
            "restartHold": hold_json(&self.hold),
            "window": humantime::format_duration(self.window).to_string(),
            "targetUtilization": t.utilization,
            "utilizationMin": t.utilization_min,
            "utilizationMax": t.utilization_max,
            "catchUpDuration": d(t.catch_up_seconds),
            "restartTime": d(t.restart_seconds),
            "backlogThreshold": d(t.backlog_threshold_seconds),
            "slotsPerTaskManager": self.slots,
            "minTaskManagers": t.min_task_managers,
            "maxTaskManagers": t.max_task_managers,
            "maxParallelism": t.max_parallelism,
            "forecast": self.forecast.map(|f| serde_json::json!({
                "lead": humantime::format_duration(f.lead).to_string(),
                "method": match f.method { Method::Trend => "trend", Method::Seasonal => "seasonal" },
                "season": humantime::format_duration(f.season).to_string(),
            })),
        })
    }
}
