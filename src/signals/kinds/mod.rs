//! Signal kinds: one module per kind, each owning its options, its query parts, its grouping
//! and its computation.
//!
//! To add a built-in kind: write `kinds/<kind>.rs` (or `kinds/<kind>/mod.rs` with submodules,
//! once it grows) implementing [`SignalKind`] with an options struct, add its `mod` line, its
//! [`SignalType`] variant and its line in [`REGISTRY`] (and in [`BUILTIN_SIGNALS`] if it is
//! served without configuration), and document it in the README's signal table. The evaluation around it (planning, fetching, caching,
//! the restart hold, data policy and response shaping) is shared and needs no change.

mod busy_time_max;
pub mod common;
mod kafka_lag_growth;
mod kafka_lag_records;
mod kafka_lag_seconds;
pub mod options;
mod pravega_segments;
mod promql;
pub mod required_taskmanagers;
mod taskmanager_busy_time;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{Api, RestartHold};
use crate::model::hold::HoldScaling;
use crate::promql::Matcher;

pub use common::{Failure, Input, JobView};

use super::plan::Part;
use super::request::{Item, Request};
use options::FieldError;

/// The `type` of a signal in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SignalType {
    FlinkBusyTimeMax,
    FlinkKafkaLagRecords,
    FlinkKafkaLagSeconds,
    PravegaStreamSegments,
    FlinkTaskManagerBusyTime,
    FlinkRequiredTaskManagers,
    FlinkKafkaLagGrowth,
    Promql,
}

impl fmt::Display for SignalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(entry(*self).name)
    }
}

/// Which series answer a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Flink's own metrics.
    Flink,
    /// kafka_exporter's consumer-group metrics, chosen by asking for its labels.
    KafkaExporter,
}

/// The labels a kind's grouped query aggregates by (after the namespace label), and the
/// labels the groups handed to [`SignalKind::compute`] carry.
#[derive(Debug, Clone)]
pub struct Grouping {
    pub fetch_by: Vec<String>,
    pub answer_by: Vec<String>,
}

impl Grouping {
    pub fn new(fetch_by: &[&str], answer_by: &[&str]) -> Self {
        Self {
            fetch_by: fetch_by.iter().map(|s| s.to_string()).collect(),
            answer_by: answer_by.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// How a kind's answer is held while its Flink job restarts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hold {
    pub timing: RestartHold,
    pub scaling: HoldScaling,
}

pub trait SignalKind: Send + Sync + fmt::Debug {
    fn signal_type(&self) -> SignalType;

    /// The API group the signal is served in.
    fn api(&self) -> Api {
        Api::External
    }

    /// For custom metrics: the described resource.
    fn resource(&self) -> &str {
        "pods"
    }

    /// For custom metrics: the series label naming the described object.
    fn object_label(&self) -> &str {
        "pod"
    }

    /// Whether the signal's series carry the Flink label-value rules and namespaces by default.
    fn flink(&self) -> bool {
        true
    }

    /// Default for `namespaced`.
    fn default_namespaced(&self) -> bool {
        true
    }

    /// Default for `maxAge`; `None` never judges staleness.
    fn default_max_age(&self) -> Option<Duration> {
        Some(crate::config::DEFAULT_MAX_AGE)
    }

    fn source(&self, _req: &Request) -> Source {
        Source::Flink
    }

    /// Whether series of `source` are filtered by the request's namespace, given the
    /// signal's `namespaced` setting.
    fn namespaced(&self, namespaced: bool, _source: Source) -> bool {
        namespaced
    }

    fn grouping(&self, source: Source) -> Grouping;

    /// The query parts for series matching `m`, aggregated by `by` (comma-separated).
    fn parts(&self, source: Source, m: &[Matcher], by: &str) -> Vec<Part>;

    fn compute(&self, input: &Input<'_>) -> Result<Vec<Item>, Failure>;

    /// Whether (and how) the last good answer stands in while the Flink job restarts.
    fn hold(&self) -> Option<Hold> {
        None
    }

    /// How long the last answer stands in once the series have left the query window.
    fn remember_for(&self) -> Option<Duration> {
        None
    }

    /// A user-written query: never grouped, each sample an item.
    fn templated(&self) -> bool {
        false
    }

    /// Whether every part of `source`'s query aggregates per-series values with the
    /// aggregation its `Agg` repeats (`sum`, `max`, `min`, or `count` summed): the query
    /// grouped by more labels, filtered and re-aggregated, then gives the same groups. Requests
    /// whose selectors name labels outside the grouping then share one query grouped by those
    /// labels too, instead of a query each. Not so for a part that picks one expression or
    /// another per group (`a > 0 or b`) or counts distinct values (`count(count by (x))`).
    fn regroups_exactly(&self, _source: Source) -> bool {
        false
    }

    /// A human account of how the answer was reached (every input and term), for
    /// `query --explain`; `None` where the query and samples already say it all.
    fn explain(&self, _input: &Input<'_>) -> Option<String> {
        None
    }

    /// The kind's effective options, for `check-config`.
    fn options(&self) -> serde_json::Value;
}

type Parse =
    fn(serde_yaml::Mapping, &dyn Fn(&str) -> String) -> Result<Arc<dyn SignalKind>, FieldError>;

/// A kind's registry line: its type, the option fields it reads, and how they are parsed.
pub struct Entry {
    pub ty: SignalType,
    pub name: &'static str,
    /// The kind's own option fields (beyond the fields every signal has).
    pub fields: &'static [&'static str],
    pub parse: Parse,
}

/// Every kind.
pub const REGISTRY: &[Entry] = &[
    busy_time_max::ENTRY,
    kafka_lag_records::ENTRY,
    kafka_lag_seconds::ENTRY,
    pravega_segments::ENTRY,
    taskmanager_busy_time::ENTRY,
    required_taskmanagers::ENTRY,
    kafka_lag_growth::ENTRY,
    promql::ENTRY,
];

pub fn entry(ty: SignalType) -> &'static Entry {
    REGISTRY.iter().find(|e| e.ty == ty).unwrap_or(&REGISTRY[0])
}

/// A kind with its options from `fields` (already stripped of the fields every signal has).
/// `path` names a field for errors. A field the kind does not read is refused, naming the
/// kinds that do.
pub fn parse(
    ty: SignalType,
    fields: serde_yaml::Mapping,
    path: &dyn Fn(&str) -> String,
) -> Result<Arc<dyn SignalKind>, FieldError> {
    let e = entry(ty);
    for key in fields.keys() {
        let Some(key) = key.as_str() else {
            return Err((path(""), "field names must be strings".into()));
        };
        if e.fields.contains(&key) {
            continue;
        }
        let users: Vec<&str> = REGISTRY
            .iter()
            .filter(|o| o.fields.contains(&key))
            .map(|o| o.name)
            .collect();
        let message = if users.is_empty() {
            let mut known: Vec<&str> = options::COMMON_FIELDS.to_vec();
            known.extend(e.fields);
            format!(
                "unknown field `{key}`, expected one of {}",
                known.join(", ")
            )
        } else {
            format!("not used by type {}; only by {}", e.name, users.join(", "))
        };
        return Err((path(key), message));
    }
    (e.parse)(fields, path)
}

/// A kind with its default options.
pub fn default_kind(ty: SignalType) -> Arc<dyn SignalKind> {
    match parse(ty, serde_yaml::Mapping::new(), &|f| f.to_string()) {
        Ok(k) => k,
        // Only `promql` requires options; its default is never asked for.
        Err(_) => Arc::new(busy_time_max::BusyTimeMax::default()),
    }
}

/// The built-in signals and their kinds.
pub const BUILTIN_SIGNALS: [(&str, SignalType); 7] = [
    ("flink_busy_time_max", SignalType::FlinkBusyTimeMax),
    ("flink_kafka_lag_records", SignalType::FlinkKafkaLagRecords),
    ("flink_kafka_lag_seconds", SignalType::FlinkKafkaLagSeconds),
    ("pravega_stream_segments", SignalType::PravegaStreamSegments),
    (
        "flink_taskmanager_busy_time",
        SignalType::FlinkTaskManagerBusyTime,
    ),
    (
        "flink_required_taskmanagers",
        SignalType::FlinkRequiredTaskManagers,
    ),
    ("flink_kafka_lag_growth", SignalType::FlinkKafkaLagGrowth),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field a registry line lists is one its options struct reads: a wrong value for
    /// it is refused for that value, not as an unknown field.
    #[test]
    fn registry_fields_match_the_options_structs() {
        for e in REGISTRY {
            for f in e.fields {
                let mut m = serde_yaml::Mapping::new();
                m.insert((*f).into(), serde_yaml::Value::Sequence(vec![]));
                let r = (e.parse)(m, &|x| x.to_string());
                if let Err((_, msg)) = r {
                    assert!(!msg.contains("unknown field"), "{}: {f}: {msg}", e.name);
                }
            }
            let mut m = serde_yaml::Mapping::new();
            m.insert("noSuchField".into(), 1.into());
            let r = (e.parse)(m, &|x| x.to_string());
            assert!(r.is_err(), "{} accepts an unknown field", e.name);
        }
    }

    #[test]
    fn every_type_has_one_registry_line() {
        for ty in BUILTIN_SIGNALS
            .map(|(_, t)| t)
            .into_iter()
            .chain([SignalType::Promql])
        {
            assert_eq!(REGISTRY.iter().filter(|e| e.ty == ty).count(), 1, "{ty:?}");
            let json = serde_json::to_value(ty).unwrap_or_default();
            assert_eq!(json.as_str(), Some(entry(ty).name));
        }
    }
}
