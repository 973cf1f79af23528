//! Reading a kind's options from the configuration file.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::config::{nonzero, parse_duration, RestartHold, DEFAULT_RESTART_HOLD};

/// A field's path and what is wrong with it.
pub type FieldError = (String, String);

/// The fields every signal has, whatever its kind.
pub const COMMON_FIELDS: &[&str] = &[
    "name",
    "type",
    "namespaced",
    "namespaceLabel",
    "maxAge",
    "onMissing",
    "onNaN",
    "onInfinite",
    "onNegative",
    "onStale",
    "labels",
    "flinkLabelValues",
];

/// Deserializes a kind's options. Each field is read on its own first, so an error names the
/// field it is about.
pub fn from_fields<T: DeserializeOwned>(
    m: serde_yaml::Mapping,
    path: &dyn Fn(&str) -> String,
) -> Result<T, FieldError> {
    for (k, v) in &m {
        let mut one = serde_yaml::Mapping::new();
        one.insert(k.clone(), v.clone());
        if let Err(e) = serde_yaml::from_value::<T>(serde_yaml::Value::Mapping(one)) {
            return Err((path(k.as_str().unwrap_or("")), e.to_string()));
        }
    }
    serde_yaml::from_value(serde_yaml::Value::Mapping(m)).map_err(|e| (path(""), e.to_string()))
}

/// A positive duration written like `30s`, `2m` or `1h`.
pub fn duration(
    text: Option<&str>,
    default: Duration,
    field: &str,
    path: &dyn Fn(&str) -> String,
) -> Result<Duration, FieldError> {
    match text {
        None => Ok(default),
        Some(t) => parse_duration(t)
            .and_then(nonzero)
            .map_err(|m| (path(field), m)),
    }
}

/// `restartHold: off`, or its two durations.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RestartHoldSection {
    Off(String),
    On {
        #[serde(rename = "warmUp")]
        warm_up: Option<String>,
        #[serde(rename = "maxHold")]
        max_hold: Option<String>,
    },
}

/// The effective restart hold: the default, `off`, or the durations given.
pub fn restart_hold(
    section: Option<RestartHoldSection>,
    path: &dyn Fn(&str) -> String,
) -> Result<Option<RestartHold>, FieldError> {
    match section {
        None => Ok(Some(DEFAULT_RESTART_HOLD)),
        Some(RestartHoldSection::Off(w)) if w == "off" => Ok(None),
        Some(RestartHoldSection::Off(w)) => Err((
            path("restartHold"),
            format!("expected off or {{warmUp, maxHold}}, got {w:?}"),
        )),
        Some(RestartHoldSection::On { warm_up, max_hold }) => Ok(Some(RestartHold {
            warm_up: duration(
                warm_up.as_deref(),
                DEFAULT_RESTART_HOLD.warm_up,
                "restartHold.warmUp",
                path,
            )?,
            max_hold: duration(
                max_hold.as_deref(),
                DEFAULT_RESTART_HOLD.max_hold,
                "restartHold.maxHold",
                path,
            )?,
        })),
    }
}

/// A restart hold for `check-config`'s listing.
pub fn hold_json(h: &Option<RestartHold>) -> serde_json::Value {
    match h {
        None => serde_json::json!("off"),
        Some(h) => serde_json::json!({
            "warmUp": humantime::format_duration(h.warm_up).to_string(),
            "maxHold": humantime::format_duration(h.max_hold).to_string(),
        }),
    }
}
