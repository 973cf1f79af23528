//! `flinkBusyTimeMax`: the busiest subtask of a job's scalable vertices, ms/s.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::config::RestartHold;
use crate::labels::Label;
use crate::model::hold::HoldScaling;
use crate::model::vertices::{self, Vertex};
use crate::promql::{vector, Matcher};

use super::common::{checked, describe_labels, newest_of, only, Failure, Input};
use super::options::{from_fields, hold_json, restart_hold, FieldError, RestartHoldSection};
use super::{Entry, Grouping, Hold, SignalKind, SignalType, Source};
use crate::signals::plan::{Agg, Group, Part, PartName};
use crate::signals::request::Item;
use crate::signals::BUSY_TIME;

pub const ENTRY: Entry = Entry {
    ty: SignalType::FlinkBusyTimeMax,
    name: "flinkBusyTimeMax",
    fields: &["restartHold"],
    parse,
};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Options {
    restart_hold: Option<RestartHoldSection>,
}

#[derive(Debug)]
pub struct BusyTimeMax {
    hold: Option<RestartHold>,
}

impl Default for BusyTimeMax {
    fn default() -> Self {
        Self {
            hold: Some(crate::config::DEFAULT_RESTART_HOLD),
        }
    }
}

fn parse(
    m: serde_yaml::Mapping,
    path: &dyn Fn(&str) -> String,
) -> Result<Arc<dyn SignalKind>, FieldError> {
    let o: Options = from_fields(m, path)?;
    Ok(Arc::new(BusyTimeMax {
        hold: restart_hold(o.restart_hold, path)?,
    }))
}

/// Busy-time parts per vertex: the checked maximum and the subtask count.
pub(super) fn busy_parts(m: &[Matcher], by: &str) -> Vec<Part> {
    let base = vector(BUSY_TIME, m);
    let mut parts = checked(&base, Agg::Max, by);
    parts.push(Part {
        name: PartName::SUBTASKS,
        expr: format!("count by ({by}) ({base})"),
        agg: Agg::Sum,
    });
    parts
}

impl SignalKind for BusyTimeMax {
    fn signal_type(&self) -> SignalType {
        SignalType::FlinkBusyTimeMax
    }

    fn regroups_exactly(&self, _: Source) -> bool {
        true
    }

    // Grouped by vertex (`task_id`; `task_name` names the same vertex and lets a selector
    // on it use the grouped query): a vertex at its own maximum parallelism is left out.
    fn grouping(&self, _: Source) -> Grouping {
        Grouping::new(
            &["job_name", "task_id", "task_name"],
            &["job_name", "task_id"],
        )
    }

    fn parts(&self, _: Source, m: &[Matcher], by: &str) -> Vec<Part> {
        busy_parts(m, by)
    }

    fn compute(&self, input: &Input<'_>) -> Result<Vec<Item>, Failure> {
        // Data quality is judged per job, over all its vertices, as one series set.
        let mut jobs: BTreeMap<Option<&Label>, (Group, Vec<Vertex>)> = BTreeMap::new();
        for g in input.groups {
            let (merged, verts) = jobs
                .entry(g.labels.get("job_name"))
                .or_insert_with(|| (Group::new(only(&g.labels, &["job_name"])), Vec::new()));
            for (name, agg) in [
                (PartName::VALUE, Agg::Max),
                (PartName::NEWEST, Agg::Max),
                (PartName::NEGATIVE, Agg::Sum),
                (PartName::INFINITE, Agg::Sum),
            ] {
                let v = agg.combine(merged.part(name), g.part(name));
                merged.set(name, v);
            }
            if let (Some(value), Some(subtasks)) =
                (g.part(PartName::VALUE), g.part(PartName::SUBTASKS))
            {
                verts.push(Vertex { subtasks, value });
            }
        }
        if jobs.is_empty() {
            return Err(input.missing());
        }
        let mut problems = Vec::new();
        let mut first_bad = None;
        let mut best: Option<(f64, &Group)> = None;
        for (merged, verts) in jobs.values() {
            let value = match input.resolve(merged) {
                // Only a measured value goes through the vertex rule; a configured stand-in
                // for bad data is used as it is.
                Ok(v) if merged.part(PartName::VALUE) == Some(v) => {
                    match vertices::max_over_scalable(verts) {
                        Some((v, left_out)) => {
                            if left_out > 0 {
                                tracing::debug!(signal = input.signal, job = ?merged.labels, left_out, "vertices at their maximum parallelism left out");
                            }
                            v
                        }
                        None => v,
                    }
                }
                Ok(v) => v,
                Err((bad, why)) => {
                    first_bad.get_or_insert(bad);
                    problems.push(format!("{why}{}", describe_labels(&merged.labels)));
                    continue;
                }
            };
            if best.is_none_or(|(b, _)| value > b) {
                best = Some((value, merged));
            }
        }
        if let Some(bad) = first_bad {
            return Err(Failure::Data(
                bad,
                format!("{}: {}", input.signal, problems.join("; ")),
            ));
        }
        let Some((value, g)) = best else {
            return Err(input.missing());
        };
        Ok(vec![Item {
            labels: if jobs.len() == 1 {
                g.labels.clone()
            } else {
                crate::labels::Labels::new()
            },
            object: None,
            value,
            timestamp: newest_of(jobs.values().map(|(m, _)| m), input.now),
        }])
    }

    fn hold(&self) -> Option<Hold> {
        self.hold.map(|timing| Hold {
            timing,
            scaling: HoldScaling::PerSubtask,
        })
    }

    fn options(&self) -> serde_json::Value {
        serde_json::json!({ "restartHold": hold_json(&self.hold) })
    }
}
