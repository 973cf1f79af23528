//! One entry of `signals:`: the fields every signal has, then the kind's own options, read
//! by its module.

use super::{check_label, nonzero, parse_duration, Api, SignalSection, SignalSpec, SignalType};
use crate::promql::is_valid_metric_name;

type FieldError = (String, String);

pub(super) fn from_section(value: serde_yaml::Value, i: usize) -> Result<SignalSpec, FieldError> {
    let f = |name: &str| {
        if name.is_empty() {
            format!("signals[{i}]")
        } else {
            format!("signals[{i}].{name}")
        }
    };
    let serde_yaml::Value::Mapping(mut m) = value else {
        return Err((f(""), "expected a mapping with name and type".into()));
    };
    let kind = match m.remove("type") {
        None => {
            return Err((
                f("type"),
                format!(
                    "required: one of {}",
                    crate::signals::kinds::REGISTRY
                        .iter()
                        .map(|e| e.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ))
        }
        Some(t) => {
            serde_yaml::from_value::<SignalType>(t).map_err(|e| (f("type"), e.to_string()))?
        }
    };
    // Split the fields every signal has from the kind's own.
    let mut common = serde_yaml::Mapping::new();
    let mut own = serde_yaml::Mapping::new();
    for (k, v) in m {
        let is_common = k
            .as_str()
            .is_some_and(|k| crate::signals::kinds::options::COMMON_FIELDS.contains(&k));
        if is_common {
            common.insert(k, v);
        } else {
            own.insert(k, v);
        }
    }
    let s: SignalSection = crate::signals::kinds::options::from_fields(common, &f)?;
    let name = s.name.ok_or_else(|| (f("name"), "required".to_string()))?;
    if !is_valid_metric_name(&name) {
        return Err((
            f("name"),
            format!("{name:?} must match [a-zA-Z_:][a-zA-Z0-9_:]* (it becomes a URL path segment)"),
        ));
    }
    let handler = crate::signals::kinds::parse(kind, own, &f)?;
    let mut spec = SignalSpec::with_handler(&name, handler);

    if let Some(v) = s.namespaced {
        spec.namespaced = v;
    }
    // Namespaces are cluster-scoped: their requests name no namespace to filter by.
    if spec.api() == Api::Custom && spec.resource() == "namespaces" {
        spec.namespaced = false;
    }
    if let Some(l) = s.namespace_label {
        check_label(&l).map_err(|m| (f("namespaceLabel"), m))?;
        spec.namespace_label = l;
    }
    if let Some(a) = s.max_age {
        spec.max_age = if a == "0" || a == "off" {
            None
        } else {
            Some(
                parse_duration(&a)
                    .and_then(nonzero)
                    .map_err(|m| (f("maxAge"), m))?,
            )
        };
    }
    for (field, text, slot) in [
        ("onMissing", s.on_missing, &mut spec.data.missing),
        ("onNaN", s.on_nan, &mut spec.data.nan),
        ("onInfinite", s.on_infinite, &mut spec.data.infinite),
        ("onNegative", s.on_negative, &mut spec.data.negative),
        ("onStale", s.on_stale, &mut spec.data.stale),
    ] {
        if let Some(t) = text {
            *slot = t.parse().map_err(|m| (f(field), m))?;
        }
    }
    for (key, label) in &s.labels {
        check_label(label).map_err(|m| (format!("{}.{key}", f("labels")), m))?;
    }
    spec.labels = s.labels;
    if let Some(v) = s.flink_label_values {
        spec.flink_label_values = v;
    }
    Ok(spec)
}
