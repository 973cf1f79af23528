//! `flinkKafkaLagSeconds`: how long a job's worst source takes to consume its backlog at its
//! current consumption rate.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{RestartHold, DEFAULT_RATE_WINDOW};
use crate::model::hold::HoldScaling;
use crate::model::lag::{seconds_to_consume, LagError};
use crate::promql::{vector, Matcher};
use crate::provider::MetricError;
use crate::signals::plan::{Agg, Group, Part, PartName};
use crate::signals::request::{Item, Request};
use crate::signals::{promql_duration, KAFKA_GROUP_OFFSET, PENDING_RECORDS};

use super::common::{checked, describe_labels, only, Failure, Input};
use super::kafka_lag_records::{kafka_lag, kafka_source, quiet_source, source_rate};
use super::options::{
    duration, from_fields, hold_json, restart_hold, FieldError, RestartHoldSection,
};
use super::{Entry, Grouping, Hold, SignalKind, SignalType, Source};

pub const ENTRY: Entry = Entry {
    ty: SignalType::FlinkKafkaLagSeconds,
    name: "flinkKafkaLagSeconds",
    fields: &[
        "restartHold",
        "kafkaExporterNamespaced",
        "rateWindow",
        "zeroRateSeconds",
    ],
    parse,
};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Options {
    restart_hold: Option<RestartHoldSection>,
    kafka_exporter_namespaced: Option<bool>,
    rate_window: Option<String>,
    zero_rate_seconds: Option<f64>,
}

#[derive(Debug)]
pub struct KafkaLagSeconds {
    hold: Option<RestartHold>,
    kafka_exporter_namespaced: bool,
    rate_window: Duration,
    zero_rate_seconds: Option<f64>,
}

fn parse(
    m: serde_yaml::Mapping,
    path: &dyn Fn(&str) -> String,
) -> Result<Arc<dyn SignalKind>, FieldError> {
    let o: Options = from_fields(m, path)?;
    if let Some(z) = o.zero_rate_seconds {
        if !z.is_finite() || z < 0.0 {
            return Err((
                path("zeroRateSeconds"),
                "must be a finite number ≥ 0".into(),
            ));
        }
    }
    Ok(Arc::new(KafkaLagSeconds {
        hold: restart_hold(o.restart_hold, path)?,
        kafka_exporter_namespaced: o.kafka_exporter_namespaced.unwrap_or(false),
        rate_window: duration(
            o.rate_window.as_deref(),
            DEFAULT_RATE_WINDOW,
            "rateWindow",
            path,
        )?,
        zero_rate_seconds: o.zero_rate_seconds,
    }))
}

impl SignalKind for KafkaLagSeconds {
    fn signal_type(&self) -> SignalType {
        SignalType::FlinkKafkaLagSeconds
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

    // Per source: a source vertex (`task_id`) in Flink, a topic in kafka_exporter. The
    // answer is the worst source's, since one slow source is enough to fall behind.
    fn grouping(&self, source: Source) -> Grouping {
        match source {
            Source::Flink => Grouping::new(&["job_name", "task_id"], &["job_name", "task_id"]),
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
            Source::KafkaExporter => {
                let mut parts = checked(&kafka_lag(m), Agg::Sum, by);
                parts.push(Part {
                    name: PartName::RATE,
                    expr: format!(
                        "sum by ({by}) (rate({}[{}]))",
                        vector(KAFKA_GROUP_OFFSET, m),
                        promql_duration(self.rate_window)
                    ),
                    agg: Agg::Sum,
                });
                parts
            }
        }
    }

    fn compute(&self, input: &Input<'_>) -> Result<Vec<Item>, Failure> {
        let answer_labels: &[&str] = match input.source {
            Source::Flink => &["job_name"],
            Source::KafkaExporter => &["consumergroup"],
        };
        // A source vertex without any backlog series (a quiet topic, or a source that does
        // not export one) is left out while another source has them.
        let with_backlog: Vec<Group> = input
            .groups
            .iter()
            .filter(|g| {
                input.source == Source::KafkaExporter
                    || g.part(PartName::VALUE).is_some()
                    || g.part(PartName::NEWEST).is_some()
            })
            .cloned()
            .collect();
        if with_backlog.is_empty()
            && !input.groups.is_empty()
            && input.groups.iter().all(|g| quiet_source(input, g))
        {
            let labels = only(&input.groups[0].labels, answer_labels);
            return Ok(vec![Item {
                labels,
                object: None,
                value: 0.0,
                timestamp: input.now,
            }]);
        }
        let checked_input = Input {
            groups: &with_backlog,
            ..*input
        };
        let usable = if with_backlog.is_empty() {
            Err(input.missing())
        } else {
            checked_input.usable()
        }?;
        let mut worst: Option<Item> = None;
        for (g, backlog) in usable {
            let seconds = match seconds_to_consume(backlog, g.part(PartName::RATE), self.zero_rate_seconds) {
                Ok(s) => s,
                Err(LagError::ZeroRate { backlog }) => {
                    return Err(MetricError::Unusable(format!(
                        "{}: backlog of {backlog} records{} but a consumption rate of 0: lag in seconds is undefined (set zeroRateSeconds to report a fixed value)",
                        input.signal,
                        describe_labels(&only(&g.labels, answer_labels))
                    ))
                    .into())
                }
                Err(LagError::NoRate) => {
                    return Err(MetricError::NoData(format!(
                        "{}: no consumption-rate series{}",
                        input.signal,
                        describe_labels(&g.labels),
                    ))
                    .into())
                }
            };
            if worst.as_ref().is_none_or(|w| seconds > w.value) {
                worst = Some(Item {
                    labels: only(&g.labels, answer_labels),
                    object: None,
                    value: seconds,
                    timestamp: g.part(PartName::NEWEST).unwrap_or(input.now),
                });
            }
        }
        worst.map(|w| vec![w]).ok_or_else(|| input.missing())
    }

    fn hold(&self) -> Option<Hold> {
        self.hold.map(|timing| Hold {
            timing,
            scaling: HoldScaling::PerSubtask,
        })
    }

    fn options(&self) -> serde_json::Value {
        let mut o = BTreeMap::new();
        o.insert("restartHold", hold_json(&self.hold));
        o.insert(
            "kafkaExporterNamespaced",
            self.kafka_exporter_namespaced.into(),
        );
        o.insert(
            "rateWindow",
            humantime::format_duration(self.rate_window)
                .to_string()
                .into(),
        );
        o.insert(
            "zeroRateSeconds",
            self.zero_rate_seconds
                .map_or(serde_json::Value::Null, Into::into),
        );
        serde_json::json!(o)
    }
}
