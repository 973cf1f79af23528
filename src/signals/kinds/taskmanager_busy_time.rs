//! `flinkTaskManagerBusyTime`: each TaskManager pod's busiest subtask, a custom metric of pods.

use std::sync::Arc;

use serde::Deserialize;

use crate::config::{check_label, Api};
use crate::model::quality::BadData;
use crate::promql::{vector, Matcher};

use super::common::{checked, Failure, Input};
use super::options::{from_fields, FieldError};
use super::{Entry, Grouping, SignalKind, SignalType, Source};
use crate::signals::plan::{Agg, Part, PartName};
use crate::signals::request::Item;
use crate::signals::BUSY_TIME;

pub const ENTRY: Entry = Entry {
    ty: SignalType::FlinkTaskManagerBusyTime,
    name: "flinkTaskManagerBusyTime",
    fields: &["podLabel"],
    parse,
};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Options {
    pod_label: Option<String>,
}

#[derive(Debug)]
pub struct TaskManagerBusyTime {
    pod_label: String,
}

fn parse(
    m: serde_yaml::Mapping,
    path: &dyn Fn(&str) -> String,
) -> Result<Arc<dyn SignalKind>, FieldError> {
    let o: Options = from_fields(m, path)?;
    let pod_label = o.pod_label.unwrap_or_else(|| "pod".into());
    check_label(&pod_label).map_err(|m| (path("podLabel"), m))?;
    Ok(Arc::new(TaskManagerBusyTime { pod_label }))
}

impl SignalKind for TaskManagerBusyTime {
    fn signal_type(&self) -> SignalType {
        SignalType::FlinkTaskManagerBusyTime
    }

    fn api(&self) -> Api {
        Api::Custom
    }

    fn object_label(&self) -> &str {
        &self.pod_label
    }

    fn regroups_exactly(&self, _: Source) -> bool {
        true
    }

    fn grouping(&self, _: Source) -> Grouping {
        Grouping::new(&[&self.pod_label], &[&self.pod_label])
    }

    fn parts(&self, _: Source, m: &[Matcher], by: &str) -> Vec<Part> {
        checked(&vector(BUSY_TIME, m), Agg::Max, by)
    }

    /// One item per described object. Objects whose data is unusable are left out: the HPA
    /// treats a missing pod conservatively, never as 0.
    fn compute(&self, input: &Input<'_>) -> Result<Vec<Item>, Failure> {
        let mut reasons = Vec::new();
        let mut first_bad = None;
        let mut items = Vec::new();
        for g in input.groups {
            let Some(name) = g.labels.get(self.pod_label.as_str()).map(|n| n.to_string()) else {
                continue;
            };
            if let Some(keep) = input.keep_objects {
                if !keep.contains(&name) {
                    continue;
                }
            }
            match input.resolve(g) {
                Ok(value) => items.push(Item {
                    // Custom metric values carry the object, not the series labels.
                    labels: crate::labels::Labels::new(),
                    object: Some(name),
                    value,
                    timestamp: g.part(PartName::NEWEST).unwrap_or(input.now),
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
                    input.signal,
                    reasons.join("; ")
                ),
            ));
        }
        let msg = match input.keep_objects {
            Some([]) => format!("{}: no pods match the label selector", input.signal),
            _ if !input.groups.is_empty() => format!(
                "{}: none of the series belong to the selected pods",
                input.signal
            ),
            _ => input.no_series(),
        };
        Err(Failure::Data(BadData::Missing, msg))
    }

    fn options(&self) -> serde_json::Value {
        serde_json::json!({ "podLabel": self.pod_label })
    }
}
