//! A ScaledObject trigger's `metadata`, as KEDA passes it to an external scaler.
//!
//! KEDA sends every key of the trigger's `metadata`, its own connection settings included, so
//! only the documented keys are read; KEDA's own keys are skipped, and every other key is a
//! label of the selector, as `labelSelector` would carry it over the metrics API.

use std::collections::HashMap;

use crate::selector::Selector;

/// Our metric's name.
pub const METRIC: &str = "metric";
/// The HPA target per replica (`AverageValue`) or in total (`Value`), as the trigger's
/// `metricType` says.
pub const TARGET: &str = "target";
/// Active when the value is above this (default: per signal, see [`default_activation`]).
pub const ACTIVATION_THRESHOLD: &str = "activationThreshold";
/// A whole label selector, for requirements other than equality (`k in (a,b)`, `!k`).
pub const LABEL_SELECTOR: &str = "labelSelector";

/// Keys KEDA itself reads from an external trigger's metadata; never labels.
pub const KEDA_KEYS: &[&str] = &[
    "scalerAddress",
    "enableTLS",
    "unsafeSsl",
    "caCert",
    "tlsClientCert",
    "tlsClientKey",
    "tlsCertFile",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("trigger metadata has no `{0}`")]
    Missing(&'static str),
    #[error("trigger metadata `{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub metric: String,
    pub selector: Selector,
    /// `None` when the trigger names none; only GetMetricSpec needs it.
    pub target: Option<f64>,
    pub activation_threshold: Option<f64>,
}

impl Trigger {
    pub fn parse(metadata: &HashMap<String, String>) -> Result<Self, MetadataError> {
        let metric = metadata
            .get(METRIC)
            .map(|m| m.trim())
            .filter(|m| !m.is_empty())
            .ok_or(MetadataError::Missing(METRIC))?
            .to_string();
        let target = metadata
            .get(TARGET)
            .map(|v| positive_number(TARGET, v))
            .transpose()?;
        let activation_threshold = metadata
            .get(ACTIVATION_THRESHOLD)
            .map(|v| number(ACTIVATION_THRESHOLD, v))
            .transpose()?;

        // Sorted so that the same trigger always gives the same selector text in errors.
        let mut labels: Vec<(&String, &String)> = metadata
            .iter()
            .filter(|(k, _)| {
                ![METRIC, TARGET, ACTIVATION_THRESHOLD, LABEL_SELECTOR].contains(&k.as_str())
                    && !KEDA_KEYS.contains(&k.as_str())
            })
            .collect();
        labels.sort();
        let mut parts = Vec::with_capacity(labels.len() + 1);
        for (k, v) in labels {
            if v.contains([',', '(', ')', '=', '!', ' ']) {
                return Err(MetadataError::Invalid {
                    key: k.clone(),
                    reason: format!(
                        "label value {v:?} cannot be matched for equality; use `{LABEL_SELECTOR}`"
                    ),
                });
            }
            parts.push(format!("{k}={v}"));
        }
        if let Some(s) = metadata
            .get(LABEL_SELECTOR)
            .filter(|s| !s.trim().is_empty())
        {
            parts.push(s.clone());
        }
        let selector = Selector::parse(&parts.join(",")).map_err(|e| MetadataError::Invalid {
            key: "selector".into(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            metric,
            selector,
            target,
            activation_threshold,
        })
    }
}

fn number(key: &str, v: &str) -> Result<f64, MetadataError> {
    let n: f64 = v.trim().parse().map_err(|_| MetadataError::Invalid {
        key: key.into(),
        reason: format!("{v:?} is not a number"),
    })?;
    if !n.is_finite() {
        return Err(MetadataError::Invalid {
            key: key.into(),
            reason: format!("{v:?} is not a finite number"),
        });
    }
    Ok(n)
}

fn positive_number(key: &str, v: &str) -> Result<f64, MetadataError> {
    let n = number(key, v)?;
    if n <= 0.0 {
        return Err(MetadataError::Invalid {
            key: key.into(),
            reason: format!("{v:?} must be above 0"),
        });
    }
    Ok(n)
}

/// The deprecated integer `targetSize` next to `targetSizeFloat`: KEDA prefers the float when
/// it is set; older KEDA reads only the integer, which must then not be 0 (a zero target
/// divides by zero in the HPA), so fractions round up.
pub fn target_size(target: f64) -> i64 {
    let r = target.ceil();
    if r >= i64::MAX as f64 {
        i64::MAX
    } else {
        (r as i64).max(1)
    }
}

/// The deprecated integer `metricValue`: rounded to the nearest, clamped to i64.
pub fn metric_value_int(value: f64) -> i64 {
    let r = value.round();
    if r >= i64::MAX as f64 {
        i64::MAX
    } else if r <= i64::MIN as f64 {
        i64::MIN
    } else {
        r as i64
    }
}

/// When a signal counts as active without `activationThreshold`: above this value.
/// Required TaskManagers never go below `minTaskManagers`, so only more than that is activity;
/// every other signal (backlog, lag, busy time, segments) is active above 0.
pub fn default_activation(
    kind: crate::signals::kinds::SignalType,
    options: &serde_json::Value,
) -> f64 {
    match kind {
        crate::signals::kinds::SignalType::FlinkRequiredTaskManagers => options
            .get("minTaskManagers")
            .and_then(|v| v.as_f64())
            .unwrap_or(1.0),
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_documented_keys_and_skips_keda_keys() {
        let t = Trigger::parse(&md(&[
            ("metric", "flink_required_taskmanagers"),
            ("job_name", "orders-enrich"),
            ("target", "1"),
            ("scalerAddress", "bridge.flink:7443"),
            ("enableTLS", "true"),
            ("unsafeSsl", "false"),
            ("caCert", "-----BEGIN CERTIFICATE-----"),
        ]))
        .unwrap();
        assert_eq!(t.metric, "flink_required_taskmanagers");
        assert_eq!(t.target, Some(1.0));
        assert_eq!(t.activation_threshold, None);
        assert_eq!(
            t.selector,
            Selector::parse("job_name=orders-enrich").unwrap()
        );
    }

    #[test]
    fn labels_and_label_selector_combine() {
        let t = Trigger::parse(&md(&[
            ("metric", "flink_kafka_lag_seconds"),
            ("topic", "orders"),
            ("labelSelector", "job_name in (a,b)"),
            ("activationThreshold", "30"),
        ]))
        .unwrap();
        assert_eq!(
            t.selector,
            Selector::parse("job_name in (a,b),topic=orders").unwrap()
        );
        assert_eq!(t.activation_threshold, Some(30.0));
        assert_eq!(t.target, None);
    }

    #[test]
    fn bad_metadata_is_an_error() {
        assert_eq!(
            Trigger::parse(&md(&[("target", "1")])),
            Err(MetadataError::Missing("metric"))
        );
        for (k, v) in [
            ("target", "0"),
            ("target", "-2"),
            ("target", "lots"),
            ("target", "NaN"),
        ] {
            let e = Trigger::parse(&md(&[("metric", "m"), (k, v)])).unwrap_err();
            assert!(
                matches!(e, MetadataError::Invalid { ref key, .. } if key == "target"),
                "{e}"
            );
        }
        let e = Trigger::parse(&md(&[("metric", "m"), ("job_name", "a,b")])).unwrap_err();
        assert!(matches!(e, MetadataError::Invalid { .. }));
        let e = Trigger::parse(&md(&[("metric", "m"), ("Bad Key!", "x")])).unwrap_err();
        assert!(matches!(e, MetadataError::Invalid { .. }));
    }

    #[test]
    fn integer_fields_from_hand_worked_numbers() {
        assert_eq!(target_size(1.0), 1);
        assert_eq!(target_size(0.25), 1);
        assert_eq!(target_size(2.5), 3);
        assert_eq!(metric_value_int(2.5), 3);
        assert_eq!(metric_value_int(2.4), 2);
        assert_eq!(metric_value_int(-0.4), 0);
        assert_eq!(metric_value_int(1e300), i64::MAX);
    }

    #[test]
    fn activation_defaults() {
        use crate::signals::kinds::SignalType;
        let opts = serde_json::json!({"minTaskManagers": 3.0});
        assert_eq!(
            default_activation(SignalType::FlinkRequiredTaskManagers, &opts),
            3.0
        );
        assert_eq!(
            default_activation(
                SignalType::FlinkRequiredTaskManagers,
                &serde_json::json!({})
            ),
            1.0
        );
        assert_eq!(default_activation(SignalType::Promql, &opts), 0.0);
    }
}
