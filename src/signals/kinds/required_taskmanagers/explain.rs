//! The `--explain` text: every input, every term per vertex, and what decided.

use std::fmt::Write as _;
use std::time::Duration;

use super::{Method, RequiredTaskManagers};
use crate::model::capacity::{Decision, Report};

impl RequiredTaskManagers {
    /// The scaling report: every input, every term per vertex, what decided.
    pub(super) fn describe(&self, r: &Report) -> String {
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
