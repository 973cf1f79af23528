//! `pravegaStreamSegments`: a Pravega stream's current segment count.
//!
//! The controller reports the gauge only when a stream is created or scales, and can drop it
//! from its exposition when its dynamic-metric cache expires it. So the count is the newest
//! value within `lookback`, preferring a series that is reported now (after a controller
//! restart, an older series with a larger count from before a merge can still be inside the
//! lookback). When no series is left within it, the last answer stands in for at most
//! `rememberFor`; it lives in each server replica's memory, so replicas started after the
//! series left can answer NotFound where older ones still answer.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::config::DEFAULT_PRAVEGA_LOOKBACK;
use crate::promql::{vector, Matcher};
use crate::signals::plan::{Agg, Part, PartName};
use crate::signals::request::Item;
use crate::signals::{promql_duration, PRAVEGA_SEGMENTS};

use super::common::{Failure, Input};
use super::options::{duration, from_fields, FieldError};
use super::{Entry, Grouping, SignalKind, SignalType, Source};

pub const ENTRY: Entry = Entry {
    ty: SignalType::PravegaStreamSegments,
    name: "pravegaStreamSegments",
    fields: &["lookback", "rememberFor"],
    parse,
};

/// How long a stream's last count is remembered once its series left the lookback.
pub const DEFAULT_REMEMBER_FOR: Duration = Duration::from_secs(3600);

/// The part holding the count of series reported now.
const CURRENT: PartName = PartName("current");

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Options {
    lookback: Option<String>,
    remember_for: Option<String>,
}

#[derive(Debug)]
pub struct PravegaSegments {
    lookback: Duration,
    remember_for: Duration,
}

fn parse(
    m: serde_yaml::Mapping,
    path: &dyn Fn(&str) -> String,
) -> Result<Arc<dyn SignalKind>, FieldError> {
    let o: Options = from_fields(m, path)?;
    Ok(Arc::new(PravegaSegments {
        lookback: duration(
            o.lookback.as_deref(),
            DEFAULT_PRAVEGA_LOOKBACK,
            "lookback",
            path,
        )?,
        remember_for: duration(
            o.remember_for.as_deref(),
            DEFAULT_REMEMBER_FOR,
            "rememberFor",
            path,
        )?,
    }))
}

impl SignalKind for PravegaSegments {
    fn signal_type(&self) -> SignalType {
        SignalType::PravegaStreamSegments
    }

    fn flink(&self) -> bool {
        false
    }

    // The Pravega controller runs in its own namespace, not the HPA's.
    fn default_namespaced(&self) -> bool {
        false
    }

    fn regroups_exactly(&self, _: Source) -> bool {
        true
    }

    fn grouping(&self, _: Source) -> Grouping {
        Grouping::new(&["scope", "stream"], &["scope", "stream"])
    }

    fn parts(&self, _: Source, m: &[Matcher], by: &str) -> Vec<Part> {
        let base = vector(PRAVEGA_SEGMENTS, m);
        vec![
            Part {
                name: PartName::VALUE,
                expr: format!(
                    "max by ({by}) (last_over_time({base}[{}]) >= 0 < +Inf)",
                    promql_duration(self.lookback)
                ),
                agg: Agg::Max,
            },
            Part {
                name: CURRENT,
                expr: format!("max by ({by}) ({base} >= 0 < +Inf)"),
                agg: Agg::Max,
            },
        ]
    }

    /// One item per stream.
    fn compute(&self, input: &Input<'_>) -> Result<Vec<Item>, Failure> {
        let items: Vec<Item> = input
            .groups
            .iter()
            .filter_map(|g| {
                Some(Item {
                    value: g.part(CURRENT).or(g.part(PartName::VALUE))?,
                    labels: g.labels.clone(),
                    object: None,
                    timestamp: input.now,
                })
            })
            .collect();
        if items.is_empty() {
            return Err(Failure::Data(
                crate::model::quality::BadData::Missing,
                format!(
                    "{}: no {PRAVEGA_SEGMENTS} series for {} within the last {}",
                    input.signal,
                    if input.request.series.is_empty() {
                        "any stream".to_string()
                    } else {
                        format!("selector {}", input.request.series)
                    },
                    promql_duration(self.lookback)
                ),
            ));
        }
        Ok(items)
    }

    fn remember_for(&self) -> Option<Duration> {
        Some(self.remember_for)
    }

    fn options(&self) -> serde_json::Value {
        serde_json::json!({
            "lookback": humantime::format_duration(self.lookback).to_string(),
            "rememberFor": humantime::format_duration(self.remember_for).to_string(),
        })
    }
}
