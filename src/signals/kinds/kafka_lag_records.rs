//! `flinkKafkaLagRecords`: a job's backlog in records, from Flink's `pendingRecords` or from
//! kafka_exporter's consumer-group lag.

use std::sync::Arc;

use serde::Deserialize;

use crate::config::RestartHold;
use crate::model::hold::HoldScaling;
use crate::promql::{vector, Matcher};
use crate::signals::plan::{Agg, Group, Part, PartName};
use crate::signals::request::{Item, Request};
use crate::signals::{KAFKA_GROUP_LAG, PENDING_RECORDS};

use super::common::{checked, Failure, Input, JobView};
use super::options::{from_fields, hold_json, restart_hold, FieldError, RestartHoldSection};
use super::{Entry, Grouping, Hold, SignalKind, SignalType, Source};

pub const ENTRY: Entry = Entry {
    ty: SignalType::FlinkKafkaLagRecords,
    name: "flinkKafkaLagRecords",
    fields: &["restartHold", "kafkaExporterNamespaced"],
    parse,
};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Options {
    restart_hold: Option<RestartHoldSection>,
    kafka_exporter_namespaced: Option<bool>,
}

#[derive(Debug)]
pub struct KafkaLagRecords {
    hold: Option<RestartHold>,
    kafka_exporter_namespaced: bool,
}

fn parse(
    m: serde_yaml::Mapping,
    path: &dyn Fn(&str) -> String,
) -> Result<Arc<dyn SignalKind>, FieldError> {
    let o: Options = from_fields(m, path)?;
    Ok(Arc::new(KafkaLagRecords {
        hold: restart_hold(o.restart_hold, path)?,
        kafka_exporter_namespaced: o.kafka_exporter_namespaced.unwrap_or(false),
    }))
}

/// kafka_exporter is chosen by asking for its labels.
pub(super) fn kafka_source(req: &Request) -> Source {
    if req.series.mentions("consumergroup") || req.series.mentions("topic") {
        Source::KafkaExporter
    } else {
        Source::Flink
    }
}

/// kafka_exporter's per-partition lag. It reports -1 for a partition without a committed
/// offset: a marker, not a backlog, so it is left out. It reads the log-end and committed
/// offsets one after the other, so a group that commits in between shows a slightly
/// negative lag: that is no backlog, so each partition is clamped at 0.
pub(super) fn kafka_lag(m: &[Matcher]) -> String {
    format!("clamp_min({} != -1, 0)", vector(KAFKA_GROUP_LAG, m))
}

/// The rate at which a job's sources consume: the source operators' records-in rate, or
/// their records-out rate where records-in is missing or 0 (FLIP-27 sources count records
/// out; the operator autoscaler falls back the same way in `ScalingMetrics`).
pub(super) fn source_rate(m: &[Matcher], by: &str) -> Part {
    let mut sm = m.to_vec();
    sm.push(Matcher::re(
        "operator_name",
        crate::signals::SOURCE_OPERATOR_REGEX,
    ));
    Part {
        name: PartName::RATE,
        expr: format!(
            "(sum by ({by}) ({} >= 0 < +Inf) > 0) or sum by ({by}) ({} >= 0 < +Inf)",
            vector(crate::signals::OPERATOR_RECORDS_IN_RATE, &sm),
            vector(crate::signals::OPERATOR_RECORDS_OUT_RATE, &sm)
        ),
        agg: Agg::Sum,
    }
}

/// Flink registers `pendingRecords` only once a source reader has fetched records, so a job
/// on a quiet topic has none after a restart. A job that runs past its warm-up, whose
/// sources report consuming nothing and which has no backlog series, has no backlog.
pub(super) fn quiet_source(input: &Input<'_>, g: &Group) -> bool {
    input.source == Source::Flink
        && input.job == JobView::Running
        && g.part(PartName::VALUE).is_none()
        && g.part(PartName::NEWEST).is_none()
        && g.part(PartName::RATE) == Some(0.0)
}

impl SignalKind for KafkaLagRecords {
    fn signal_type(&self) -> SignalType {
        SignalType::FlinkKafkaLagRecords
    }

    fn source(&self, req: &Request) -> Source {
        kafka_source(req)
    }

    fn namespaced(&self, namespaced: bool, source: Source) -> bool {
        match source {
            Source::Flink => namespaced,
            Source::KafkaExporter => self.kafka_exporter_namespaced,
        }
    }

    // The sources' rate picks records-in or records-out per group.
    fn regroups_exactly(&self, source: Source) -> bool {
        source == Source::KafkaExporter
    }

    fn grouping(&self, source: Source) -> Grouping {
        match source {
            Source::Flink => Grouping::new(&["job_name"], &["job_name"]),
            Source::KafkaExporter => {
                Grouping::new(&["consumergroup", "topic"], &["consumergroup", "topic"])
            }
        }
    }

    fn parts(&self, source: Source, m: &[Matcher], by: &str) -> Vec<Part> {
        match source {
            Source::Flink => {
                let mut parts = checked(&vector(PENDING_RECORDS, m), Agg::Sum, by);
                parts.push(source_rate(m, by));
                parts
            }
            Source::KafkaExporter => checked(&kafka_lag(m), Agg::Sum, by),
        }
    }

    /// One item per group; the HPA sums them.
    fn compute(&self, input: &Input<'_>) -> Result<Vec<Item>, Failure> {
        let (quiet, rest): (Vec<&Group>, Vec<&Group>) =
            input.groups.iter().partition(|g| quiet_source(input, g));
        let mut items: Vec<Item> = quiet
            .into_iter()
            .map(|g| Item {
                labels: g.labels.clone(),
                object: None,
                value: 0.0,
                timestamp: input.now,
            })
            .collect();
        if rest.is_empty() && !items.is_empty() {
            return Ok(items);
        }
        let rest: Vec<Group> = rest.into_iter().cloned().collect();
        let input = Input {
            groups: &rest,
            ..*input
        };
        items.extend(input.usable()?.into_iter().map(|(g, value)| Item {
            value,
            timestamp: g.part(PartName::NEWEST).unwrap_or(input.now),
            labels: g.labels.clone(),
            object: None,
        }));
        Ok(items)
    }

    fn hold(&self) -> Option<Hold> {
        self.hold.map(|timing| Hold {
            timing,
            scaling: HoldScaling::Absolute,
        })
    }

    fn options(&self) -> serde_json::Value {
        serde_json::json!({
            "restartHold": hold_json(&self.hold),
            "kafkaExporterNamespaced": self.kafka_exporter_namespaced,
        })
    }
}
