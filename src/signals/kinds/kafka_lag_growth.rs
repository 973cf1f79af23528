//! `flinkKafkaLagGrowth`: how fast a job's backlog grows, records/s (positive: the job falls
//! behind; negative: it catches up). The least-squares slope of Flink's `pendingRecords` over
//! the window, which is what Prometheus' `deriv` computes, summed over the job's sources.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::config::RestartHold;
use crate::promql::{vector, Matcher};
use crate::signals::plan::{Agg, Part, PartName};
use crate::signals::request::Item;
use crate::signals::{promql_duration, PENDING_RECORDS};

use super::common::{windowed_hold, Failure, Input};
use super::options::{
    duration, from_fields, hold_json, restart_hold, FieldError, RestartHoldSection,
};
use super::{Entry, Grouping, Hold, SignalKind, SignalType, Source};

pub const ENTRY: Entry = Entry {
    ty: SignalType::FlinkKafkaLagGrowth,
    name: "flinkKafkaLagGrowth",
    fields: &["restartHold", "window"],
    parse,
};

pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Options {
    restart_hold: Option<RestartHoldSection>,
    window: Option<String>,
}

#[derive(Debug)]
pub struct KafkaLagGrowth {
    hold: Option<RestartHold>,
    window: Duration,
}

fn parse(
    m: serde_yaml::Mapping,
    path: &dyn Fn(&str) -> String,
) -> Result<Arc<dyn SignalKind>, FieldError> {
    let o: Options = from_fields(m, path)?;
    Ok(Arc::new(KafkaLagGrowth {
        hold: restart_hold(o.restart_hold, path)?,
        window: duration(o.window.as_deref(), DEFAULT_WINDOW, "window", path)?,
    }))
}

impl SignalKind for KafkaLagGrowth {
    fn signal_type(&self) -> SignalType {
        SignalType::FlinkKafkaLagGrowth
    }

    fn regroups_exactly(&self, _: Source) -> bool {
        true
    }

    fn grouping(&self, _: Source) -> Grouping {
        Grouping::new(&["job_name"], &["job_name"])
    }

    fn parts(&self, _: Source, m: &[Matcher], by: &str) -> Vec<Part> {
        let pending = vector(PENDING_RECORDS, m);
        let w = promql_duration(self.window);
        vec![
            // A growth can be negative; only NaN and infinities (a NaN sample in the window)
            // are left out, so a job whose every slope is unusable answers "NaN", not 0.
            Part {
                name: PartName::VALUE,
                expr: format!("sum by ({by}) (deriv({pending}[{w}]) > -Inf < +Inf)"),
                agg: Agg::Sum,
            },
            Part {
                name: PartName::NEWEST,
                expr: format!("max by ({by}) (timestamp({pending}))"),
                agg: Agg::Max,
            },
        ]
    }

    /// One item per job; several jobs' growths add up when the HPA sums them.
    fn compute(&self, input: &Input<'_>) -> Result<Vec<Item>, Failure> {
        Ok(input
            .usable()?
            .into_iter()
            .map(|(g, value)| Item {
                value,
                timestamp: g.part(PartName::NEWEST).unwrap_or(input.now),
                labels: g.labels.clone(),
                object: None,
            })
            .collect())
    }

    /// The slope over a window that spans a restart mixes two jobs' backlogs: the warm-up is
    /// at least the window. A growth in records/s does not depend on the parallelism.
    fn hold(&self) -> Option<Hold> {
        windowed_hold(self.hold, self.window)
    }

    fn options(&self) -> serde_json::Value {
        serde_json::json!({
            "restartHold": hold_json(&self.hold),
            "window": humantime::format_duration(self.window).to_string(),
        })
    }
}
