//! `promql`: a user-written query; each result sample is one item.

use std::sync::Arc;

use serde::Deserialize;

use crate::config::{check_label, Api, MATCHERS_PLACEHOLDER};
use crate::model::quality::{BadData, Fallback};
use crate::promql::{join, Matcher};
use crate::provider::MetricError;
use crate::signals::plan::{Agg, Part, PartName};
use crate::signals::request::Item;

use super::common::{describe_labels, Failure, Input};
use super::options::{from_fields, FieldError};
use super::{Entry, Grouping, SignalKind, SignalType, Source};

pub const ENTRY: Entry = Entry {
    ty: SignalType::Promql,
    name: "promql",
    fields: &["api", "resource", "resourceLabel", "query"],
    parse,
};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Options {
    api: Option<Api>,
    resource: Option<String>,
    resource_label: Option<String>,
    query: Option<String>,
}

/// prometheus-adapter's name for the request's label matchers.
const ADAPTER_MATCHERS: &str = "<<.LabelMatchers>>";

#[derive(Debug)]
pub struct Promql {
    api: Api,
    resource: String,
    resource_label: String,
    query: String,
}

fn parse(
    m: serde_yaml::Mapping,
    path: &dyn Fn(&str) -> String,
) -> Result<Arc<dyn SignalKind>, FieldError> {
    let o: Options = from_fields(m, path)?;
    let api = o.api.ok_or_else(|| {
        (
            path("api"),
            "required for type promql: external or custom".to_string(),
        )
    })?;
    let mut query = o
        .query
        .ok_or_else(|| (path("query"), "required for type promql".to_string()))?;
    // prometheus-adapter's placeholder for the same thing is accepted, with a word on it;
    // its other placeholders have no counterpart in a single query.
    if query.contains(ADAPTER_MATCHERS) {
        tracing::warn!(
            field = %path("query"),
            "{ADAPTER_MATCHERS} is prometheus-adapter's spelling; read as {MATCHERS_PLACEHOLDER}"
        );
        query = query.replace(ADAPTER_MATCHERS, MATCHERS_PLACEHOLDER);
    }
    if let Some(p) = ["<<.Series>>", "<<.GroupBy>>"]
        .into_iter()
        .find(|p| query.contains(p))
    {
        return Err((
            path("query"),
            format!("{p} is a prometheus-adapter placeholder with no counterpart here: write the series name and the grouping out, or convert the adapter's rules with `flink-hpa-bridge convert-adapter-config`"),
        ));
    }
    if !query.contains(MATCHERS_PLACEHOLDER) {
        return Err((
            path("query"),
            format!("must contain {MATCHERS_PLACEHOLDER} where the request's label matchers go, e.g. sum(my_series{{{MATCHERS_PLACEHOLDER}}})"),
        ));
    }
    let mut kind = Promql {
        api,
        resource: "pods".into(),
        resource_label: "pod".into(),
        query,
    };
    if api == Api::Custom {
        if let Some(r) = o.resource {
            if r.is_empty() || r.contains('/') || r.contains(char::is_whitespace) {
                return Err((
                    path("resource"),
                    "expected a plural resource such as pods or deployments.apps".into(),
                ));
            }
            kind.resource = r;
        }
        if let Some(l) = o.resource_label {
            check_label(&l).map_err(|m| (path("resourceLabel"), m))?;
            kind.resource_label = l;
        }
    } else if o.resource.is_some() || o.resource_label.is_some() {
        return Err((path("resource"), "only for api: custom".into()));
    }
    Ok(Arc::new(kind))
}

impl SignalKind for Promql {
    fn signal_type(&self) -> SignalType {
        SignalType::Promql
    }

    fn api(&self) -> Api {
        self.api
    }

    fn resource(&self) -> &str {
        &self.resource
    }

    fn object_label(&self) -> &str {
        &self.resource_label
    }

    fn flink(&self) -> bool {
        false
    }

    fn default_namespaced(&self) -> bool {
        !(self.api == Api::Custom && crate::path::is_cluster_scoped(&self.resource))
    }

    fn default_max_age(&self) -> Option<std::time::Duration> {
        None
    }

    fn grouping(&self, _: Source) -> Grouping {
        Grouping::new(&[], &[])
    }

    fn parts(&self, _: Source, m: &[Matcher], _by: &str) -> Vec<Part> {
        vec![Part {
            name: PartName::VALUE,
            expr: self.query.replace(MATCHERS_PLACEHOLDER, &join(m)),
            agg: Agg::Sum,
        }]
    }

    fn templated(&self) -> bool {
        true
    }

    /// NaN and infinite samples follow the signal's `onNaN` and `onInfinite`; negative values
    /// are legitimate here.
    fn compute(&self, input: &Input<'_>) -> Result<Vec<Item>, Failure> {
        let samples = input.samples;
        if samples.is_empty() {
            return Err(input.missing());
        }
        let mut items: Vec<Item> = Vec::new();
        let custom = self.api == Api::Custom;
        for s in samples {
            let labels = crate::labels::from_map(s.labels.iter().filter(|(k, _)| *k != "__name__"));
            let value = if s.value.is_finite() {
                s.value
            } else {
                let bad = if s.value.is_nan() {
                    BadData::NaN
                } else {
                    BadData::Infinite
                };
                match input.policy.on(bad) {
                    Fallback::Value(v) => v,
                    // Per object the rest still stands; for an external sum it would not.
                    Fallback::Error if custom => continue,
                    Fallback::Error => {
                        return Err(Failure::Data(
                            bad,
                            format!(
                                "{}: the sample{} is {}",
                                input.signal,
                                describe_labels(&labels),
                                s.value
                            ),
                        ))
                    }
                }
            };
            let object = if custom {
                let Some(name) = labels
                    .get(self.resource_label.as_str())
                    .map(|n| n.to_string())
                else {
                    continue;
                };
                if let Some(keep) = input.keep_objects {
                    if !keep.contains(&name) {
                        continue;
                    }
                }
                if items
                    .iter()
                    .any(|i| i.object.as_deref() == Some(name.as_str()))
                {
                    return Err(MetricError::BackendFailed(format!(
                        "{}: the query returns several series for {} {name:?}; aggregate it by ({})",
                        input.signal, self.resource, self.resource_label
                    ))
                    .into());
                }
                Some(name)
            } else {
                None
            };
            items.push(Item {
                labels,
                object,
                value,
                timestamp: s.timestamp,
            });
        }
        if items.is_empty() {
            return Err(Failure::Data(
                BadData::NaN,
                format!(
                    "{}: no usable sample among {} (NaN, infinite or without the {} label)",
                    input.signal,
                    samples.len(),
                    self.resource_label
                ),
            ));
        }
        Ok(items)
    }

    fn options(&self) -> serde_json::Value {
        serde_json::json!({
            "api": self.api,
            "resource": self.resource,
            "resourceLabel": self.resource_label,
            "query": self.query,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(yaml: &str) -> Result<Arc<dyn SignalKind>, FieldError> {
        let m: serde_yaml::Mapping = serde_yaml::from_str(yaml).unwrap_or_default();
        parse(m, &|f| format!("signals[0].{f}"))
    }

    #[test]
    fn adapter_label_matchers_read_as_ours_and_other_adapter_placeholders_are_refused() {
        let k = parsed("{api: external, query: 'sum(x{<<.LabelMatchers>>})'}").unwrap();
        assert_eq!(k.options()["query"], "sum(x{<<matchers>>})");
        let (field, msg) = parsed(
            "{api: external, query: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'}",
        )
        .unwrap_err();
        assert_eq!(field, "signals[0].query");
        assert!(msg.contains("convert-adapter-config"), "{msg}");
    }

    #[test]
    fn nodes_and_namespaces_are_cluster_scoped() {
        for (resource, namespaced) in [("namespaces", false), ("nodes", false), ("pods", true)] {
            let k = parsed(&format!(
                "{{api: custom, resource: {resource}, query: 'x{{<<matchers>>}}'}}"
            ))
            .unwrap();
            assert_eq!(k.default_namespaced(), namespaced, "{resource}");
        }
    }
}
