//! `flinkRequiredTaskManagers`: how many TaskManagers a Reactive Mode job needs to keep up
//! with its arrivals and catch up its backlog (`crate::model::capacity`). Served as an
//! External metric with an `AverageValue` target of 1, the HPA runs exactly that many.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::config::RestartHold;
use crate::model::capacity::{required_task_managers, Decision, Report, Targets, VertexLoad};
use crate::promql::{vector, Matcher};
use crate::provider::MetricError;
use crate::signals::plan::{Agg, Group, Part, PartName};
use crate::signals::request::Item;
use crate::signals::{
    promql_duration, BUSY_TIME, OPERATOR_RECORDS_IN_RATE, OPERATOR_RECORDS_OUT_RATE,
    PENDING_RECORDS, SOURCE_OPERATOR_REGEX,
};

use super::common::{windowed_hold, Failure, Input};
use super::options::{
    duration, from_fields, hold_json, restart_hold, FieldError, RestartHoldSection,
};
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
    parse,
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Options {
    restart_hold: Option<RestartHoldSection>,
    window: Option<String>,
    target_utilization: Option<f64>,
    utilization_min: Option<f64>,
    utilization_max: Option<f64>,
    catch_up_duration: Option<String>,
    restart_time: Option<String>,
    backlog_threshold: Option<String>,
    slots_per_task_manager: Option<u32>,
    min_task_managers: Option<u32>,
    max_task_managers: Option<u32>,
    max_parallelism: Option<u32>,
    forecast: Option<ForecastSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ForecastSection {
    lead: Option<String>,
    method: Option<Method>,
    season: Option<String>,
}

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

pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);

fn parse(
    m: serde_yaml::Mapping,
    path: &dyn Fn(&str) -> String,
) -> Result<Arc<dyn SignalKind>, FieldError> {
    let o: Options = from_fields(m, path)?;
    let fraction = |v: Option<f64>, default: f64, field: &str| -> Result<f64, FieldError> {
        match v {
            None => Ok(default),
            Some(x) if x > 0.0 && x <= 1.0 => Ok(x),
            Some(x) => Err((
                path(field),
                format!("expected a fraction in (0, 1], got {x}"),
            )),
        }
    };
    let utilization = fraction(o.target_utilization, 0.7, "targetUtilization")?;
    let utilization_min = match o.utilization_min {
        None => 0.4,
        Some(x) if (0.0..=utilization).contains(&x) => x,
        Some(x) => {
            return Err((
                path("utilizationMin"),
                format!("expected 0 to targetUtilization ({utilization}), got {x}"),
            ))
        }
    };
    let utilization_max = match o.utilization_max {
        None => 1.0,
        Some(x) if x >= utilization => x,
        Some(x) => {
            return Err((
                path("utilizationMax"),
                format!("expected at least targetUtilization ({utilization}), got {x}"),
            ))
        }
    };
    let positive = |v: Option<u32>, field: &str| -> Result<Option<f64>, FieldError> {
        match v {
            Some(0) => Err((path(field), "must be at least 1".into())),
            v => Ok(v.map(f64::from)),
        }
    };
    let min_task_managers = positive(o.min_task_managers, "minTaskManagers")?.unwrap_or(1.0);
    let max_task_managers = positive(o.max_task_managers, "maxTaskManagers")?;
    if max_task_managers.is_some_and(|m| m < min_task_managers) {
        return Err((
            path("maxTaskManagers"),
            "must be at least minTaskManagers".into(),
        ));
    }
    let window = duration(o.window.as_deref(), DEFAULT_WINDOW, "window", path)?;
    let forecast = match o.forecast {
        None => None,
        Some(f) => {
            let lead = duration(
                f.lead.as_deref(),
                Duration::from_secs(120),
                "forecast.lead",
                path,
            )?;
            let season = duration(
                f.season.as_deref(),
                Duration::from_secs(86_400),
                "forecast.season",
                path,
            )?;
            if season <= lead + window {
                return Err((
                    path("forecast.season"),
                    "must be longer than forecast.lead plus window".into(),
                ));
            }
            Some(Forecast {
                lead,
                method: f.method.unwrap_or(Method::Trend),
                season,
            })
        }
    };
    Ok(Arc::new(RequiredTaskManagers {
        hold: restart_hold(o.restart_hold, path)?,
        window,
        targets: Targets {
            utilization,
            utilization_min,
            utilization_max,
            catch_up_seconds: duration(
                o.catch_up_duration.as_deref(),
                Duration::from_secs(600),
                "catchUpDuration",
                path,
            )?
            .as_secs_f64(),
            restart_seconds: duration(
                o.restart_time.as_deref(),
                Duration::from_secs(90),
                "restartTime",
                path,
            )?
            .as_secs_f64(),
            backlog_threshold_seconds: duration(
                o.backlog_threshold.as_deref(),
                Duration::from_secs(300),
                "backlogThreshold",
                path,
            )?
            .as_secs_f64(),
            min_task_managers,
            max_task_managers,
            max_parallelism: positive(o.max_parallelism, "maxParallelism")?,
        },
        slots: positive(o.slots_per_task_manager, "slotsPerTaskManager")?,
        forecast,
    }))
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
                        (name, id) => name.or(id).cloned().unwrap_or_default(),
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

fn by_job(groups: &[Group]) -> BTreeMap<Option<&String>, Vec<&Group>> {
    let mut jobs: BTreeMap<Option<&String>, Vec<&Group>> = BTreeMap::new();
    for g in groups {
        jobs.entry(g.labels.get("job_name")).or_default().push(g);
    }
    jobs
}

impl RequiredTaskManagers {
    /// The scaling report: every input, every term per vertex, what decided.
    fn describe(&self, r: &Report) -> String {
        let t = &self.targets;
        let d = |s: f64| humantime::format_duration(Duration::from_secs_f64(s)).to_string();
        let mut o = String::new();
        let _ = writeln!(
            o,
            "  options: window {}, targetUtilization {}, band {}–{}, catchUpDuration {}, restartTime {}, backlogThreshold {}",
            humantime::format_duration(self.window),
            t.utilization,
            t.utilization_min,
            t.utilization_max,
            d(t.catch_up_seconds),
            d(t.restart_seconds),
            d(t.backlog_threshold_seconds)
        );
        let _ = writeln!(
            o,
            "  sources consume S = {:.1} records/s; backlog L = {:.0} records, growing dL/dt = {:.1} records/s",
            r.source_rate, r.backlog, r.backlog_growth
        );
        let _ = writeln!(
            o,
            "  arrival rate R = max(0, S + dL/dt) = {:.1} records/s{}",
            r.arrival_rate,
            match self.forecast {
                Some(f) if r.arrival_rate > (r.source_rate + r.backlog_growth).max(0.0) + 1e-9 =>
                    format!(
                        " (forecast {} ahead, {})",
                        humantime::format_duration(f.lead),
                        match f.method {
                            Method::Trend => "trend",
                            Method::Seasonal => "seasonal",
                        }
                    ),
                _ => String::new(),
            }
        );
        let _ = writeln!(
            o,
            "  TaskManagers now {}, slots per TaskManager {}{}",
            r.current_task_managers,
            r.slots_per_task_manager,
            if self.slots.is_some() {
                " (configured)"
            } else {
                " (subtasks / TaskManagers)"
            }
        );
        for v in &r.vertices {
            let _ = writeln!(o, "  vertex {}:", v.id);
            let _ = writeln!(
                o,
                "    P = {}, busy = {:.3}, input = {:.1} records/s, true processing rate TPR = input / busy = {:.1} records/s",
                v.parallelism, v.busy, v.input_rate, v.true_processing_rate
            );
            let _ = writeln!(
                o,
                "    target rate = {:.1} records/s, required capacity C = target/u + backlog share/catchUp + target × restart/catchUp = {:.1} records/s",
                v.target_rate, v.required_capacity
            );
            let _ = writeln!(
                o,
                "    utilization now = {:.3}, P_req = ceil(P × C / TPR) = {}{}",
                v.utilization,
                v.required_parallelism,
                v.cap
                    .as_deref()
                    .map(|c| format!(" (capped: {c})"))
                    .unwrap_or_default()
            );
        }
        let decision = match &r.decision {
            Decision::Bottleneck(v) => {
                let p = r
                    .vertices
                    .iter()
                    .find(|x| &x.id == v)
                    .map(|x| x.required_parallelism)
                    .unwrap_or(f64::NAN);
                format!(
                    "bottleneck {v}: ceil({p} / {}) = {} TaskManagers",
                    r.slots_per_task_manager,
                    (p / r.slots_per_task_manager).ceil()
                )
            }
            Decision::InsideBand => format!(
                "the bottleneck's utilization lies inside the band {}–{}: keep {}",
                t.utilization_min, t.utilization_max, r.current_task_managers
            ),
            Decision::Idle => "nothing arrives and nothing waits: the minimum".to_string(),
        };
        let _ = writeln!(o, "  decision: {decision}");
        if let Some(l) = &r.limited_by {
            let _ = writeln!(o, "  limited by: {l}");
        }
        let _ = writeln!(o, "  result: {} TaskManagers", r.task_managers);
        o
    }
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
            let job = job.map(String::as_str).unwrap_or("(no job_name)");
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
                .map(|j| BTreeMap::from([("job_name".to_string(), j.clone())]))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::hold::HoldScaling;

    fn parsed(yaml: &str) -> Result<Arc<dyn SignalKind>, FieldError> {
        let m: serde_yaml::Mapping = serde_yaml::from_str(yaml).unwrap_or_default();
        parse(m, &|f| format!("signals[0].{f}"))
    }

    #[test]
    fn options_have_the_documented_defaults() {
        let k = parsed("{}").unwrap();
        let o = k.options();
        assert_eq!(o["window"], "5m");
        assert_eq!(o["targetUtilization"], 0.7);
        assert_eq!(o["utilizationMin"], 0.4);
        assert_eq!(o["utilizationMax"], 1.0);
        assert_eq!(o["catchUpDuration"], "10m");
        assert_eq!(o["restartTime"], "1m 30s");
        assert_eq!(o["backlogThreshold"], "5m");
        assert_eq!(o["minTaskManagers"], 1.0);
        assert!(o["forecast"].is_null());
        // The warm-up covers the window: a 5m window is never read across a restart.
        let hold = k.hold().unwrap();
        assert_eq!(hold.timing.warm_up, Duration::from_secs(300));
        assert_eq!(hold.scaling, HoldScaling::Absolute);
    }

    #[test]
    fn bad_options_name_their_field() {
        for (yaml, field, text) in [
            ("{targetUtilization: 1.5}", "targetUtilization", "fraction"),
            (
                "{utilizationMin: 0.8}",
                "utilizationMin",
                "targetUtilization",
            ),
            (
                "{utilizationMax: 0.5}",
                "utilizationMax",
                "targetUtilization",
            ),
            ("{minTaskManagers: 0}", "minTaskManagers", "at least 1"),
            (
                "{minTaskManagers: 4, maxTaskManagers: 2}",
                "maxTaskManagers",
                "minTaskManagers",
            ),
            (
                "{forecast: {lead: 2m, season: 5m}}",
                "forecast.season",
                "longer",
            ),
        ] {
            let (path, msg) = parsed(yaml).unwrap_err();
            assert_eq!(path, format!("signals[0].{field}"), "{yaml}");
            assert!(msg.contains(text), "{yaml}: {msg}");
        }
    }

    #[test]
    fn a_forecast_adds_its_query_parts() {
        let k = parsed("{forecast: {lead: 2m, method: seasonal, season: 1h}}").unwrap();
        let parts = k.parts(Source::Flink, &[], "namespace, job_name");
        let forecast = parts.iter().find(|p| p.name == FORECAST).unwrap();
        assert!(
            forecast.expr.contains("predict_linear("),
            "{}",
            forecast.expr
        );
        assert!(forecast.expr.contains("[5m], 120)"), "{}", forecast.expr);
        let seasonal = parts.iter().find(|p| p.name == SEASONAL).unwrap();
        assert!(
            seasonal.expr.contains("[5m] offset 58m"),
            "{}",
            seasonal.expr
        );
        let plain = parsed("{}").unwrap();
        assert!(plain
            .parts(Source::Flink, &[], "job_name")
            .iter()
            .all(|p| p.name != FORECAST && p.name != SEASONAL));
    }
}
