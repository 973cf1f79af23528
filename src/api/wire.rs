//! JSON shapes of the metrics APIs (`k8s.io/metrics` types); `metav1.Status` is in
//! [`crate::status`].

use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::provider::{CustomValue, ExternalValue, MetricInfo, MetricTarget, ObjectRef};
use crate::quantity;
use crate::selector::{Operator, Selector};
pub use crate::status::{json_response, ApiError};

pub const CUSTOM_GROUP: &str = "custom.metrics.k8s.io";
pub const EXTERNAL_GROUP: &str = "external.metrics.k8s.io";
pub const CUSTOM_VERSIONS: [&str; 2] = ["v1beta2", "v1beta1"];
pub const EXTERNAL_VERSION: &str = "v1beta1";

/// RFC 3339, UTC, whole seconds, as `metav1.Time` marshals.
pub fn timestamp(unix_seconds: f64) -> String {
    let secs = if unix_seconds.is_finite() {
        unix_seconds.floor() as i64
    } else {
        0
    };
    jiff::Timestamp::from_second(secs)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

fn quantity(value: f64) -> Result<String, ApiError> {
    quantity::format(value).map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("refusing to serve a non-finite value: {e}"),
        )
    })
}

/// A parsed selector as `metav1.LabelSelector`, or `null` when empty.
pub fn label_selector(sel: &Selector) -> Value {
    if sel.is_empty() {
        return Value::Null;
    }
    let exprs: Vec<Value> = sel
        .requirements()
        .iter()
        .map(|r| {
            let (op, values) = match r.operator {
                Operator::Equals | Operator::In => ("In", Some(&r.values)),
                Operator::NotEquals | Operator::NotIn => ("NotIn", Some(&r.values)),
                Operator::Exists => ("Exists", None),
                Operator::DoesNotExist => ("DoesNotExist", None),
                Operator::GreaterThan => ("Gt", Some(&r.values)),
                Operator::LessThan => ("Lt", Some(&r.values)),
            };
            let mut m = Map::new();
            m.insert("key".into(), json!(r.key));
            m.insert("operator".into(), json!(op));
            if let Some(v) = values {
                m.insert("values".into(), json!(v));
            }
            Value::Object(m)
        })
        .collect();
    json!({ "matchExpressions": exprs })
}

/// Metric lists are serialized straight from typed views of the values: no intermediate JSON
/// tree, since a `pods/*` answer can hold hundreds of items.
#[derive(Serialize)]
pub struct MetricList<T> {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: String,
    metadata: Empty,
    items: Vec<T>,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
pub struct ExternalItem<'a> {
    #[serde(rename = "metricName")]
    metric_name: &'a str,
    #[serde(
        rename = "metricLabels",
        serialize_with = "crate::labels::serialize_as_map"
    )]
    metric_labels: &'a crate::labels::Labels,
    timestamp: String,
    value: String,
}

pub fn external_list<'a>(
    metric: &'a str,
    values: &'a [ExternalValue],
) -> Result<MetricList<ExternalItem<'a>>, ApiError> {
    let mut items = Vec::with_capacity(values.len());
    for v in values {
        items.push(ExternalItem {
            metric_name: metric,
            metric_labels: &v.labels,
            timestamp: timestamp(v.timestamp),
            value: quantity(v.value)?,
        });
    }
    Ok(MetricList {
        kind: "ExternalMetricValueList",
        api_version: format!("{EXTERNAL_GROUP}/{EXTERNAL_VERSION}"),
        metadata: Empty {},
        items,
    })
}

#[derive(Serialize)]
pub struct Described<'a> {
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    name: &'a str,
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
}

impl<'a> From<&'a ObjectRef> for Described<'a> {
    fn from(o: &'a ObjectRef) -> Self {
        Self {
            kind: &o.kind,
            namespace: o.namespace.as_deref(),
            name: &o.name,
            api_version: &o.api_version,
        }
    }
}

#[derive(Serialize)]
pub struct MetricIdentifier<'a> {
    name: &'a str,
    selector: &'a Value,
}

/// One item, shaped for the requested version: v1beta2 nests the metric's name and selector,
/// v1beta1 has them at the top level, the name as `metricName`.
#[derive(Serialize)]
#[serde(untagged)]
pub enum CustomItem<'a> {
    V1beta2 {
        #[serde(rename = "describedObject")]
        described_object: Described<'a>,
        metric: MetricIdentifier<'a>,
        timestamp: String,
        value: String,
    },
    V1beta1 {
        #[serde(rename = "describedObject")]
        described_object: Described<'a>,
        #[serde(rename = "metricName")]
        metric_name: &'a str,
        timestamp: String,
        value: String,
        selector: &'a Value,
    },
}

/// `selector` is the request's `metricLabelSelector` as a `LabelSelector` ([`label_selector`]).
pub fn custom_list<'a>(
    version: &str,
    metric: &'a str,
    selector: &'a Value,
    values: &'a [CustomValue],
) -> Result<MetricList<CustomItem<'a>>, ApiError> {
    let mut items = Vec::with_capacity(values.len());
    for v in values {
        let (timestamp, value) = (timestamp(v.timestamp), quantity(v.value)?);
        let described_object = Described::from(&v.object);
        items.push(if version == "v1beta1" {
            CustomItem::V1beta1 {
                described_object,
                metric_name: metric,
                timestamp,
                value,
                selector,
            }
        } else {
            CustomItem::V1beta2 {
                described_object,
                metric: MetricIdentifier {
                    name: metric,
                    selector,
                },
                timestamp,
                value,
            }
        });
    }
    Ok(MetricList {
        kind: "MetricValueList",
        api_version: format!("{CUSTOM_GROUP}/{version}"),
        metadata: Empty {},
        items,
    })
}

fn resource_entry(name: String, namespaced: bool, kind: &str) -> Value {
    json!({
        "name": name,
        "singularName": "",
        "namespaced": namespaced,
        "kind": kind,
        "verbs": ["get"],
    })
}

/// `APIResourceList` for a group-version. Never empty: client-go warns on every discovery
/// pass about an empty group-version, so a placeholder stands in when nothing is served.
pub fn resource_list(group_version: &str, metrics: &[MetricInfo]) -> Value {
    let external = group_version.starts_with(EXTERNAL_GROUP);
    let mut resources: Vec<Value> = metrics
        .iter()
        .filter_map(|m| match (&m.target, external) {
            (MetricTarget::External, true) => Some(resource_entry(
                m.name.clone(),
                true,
                "ExternalMetricValueList",
            )),
            (
                MetricTarget::Custom {
                    resource,
                    namespaced,
                },
                false,
            ) => Some(resource_entry(
                format!("{resource}/{}", m.name),
                *namespaced,
                "MetricValueList",
            )),
            _ => None,
        })
        .collect();
    if resources.is_empty() {
        resources.push(if external {
            resource_entry("externalmetrics".into(), true, "ExternalMetricValueList")
        } else {
            resource_entry("custommetrics".into(), true, "MetricValueList")
        });
    }
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}

fn group(name: &str, versions: &[&str]) -> Value {
    let gv = |v: &str| json!({"groupVersion": format!("{name}/{v}"), "version": v});
    json!({
        "name": name,
        "versions": versions.iter().map(|v| gv(v)).collect::<Vec<_>>(),
        "preferredVersion": gv(versions[0]),
    })
}

pub fn api_group(name: &str) -> Option<Value> {
    let mut g = match name {
        CUSTOM_GROUP => group(CUSTOM_GROUP, &CUSTOM_VERSIONS),
        EXTERNAL_GROUP => group(EXTERNAL_GROUP, &[EXTERNAL_VERSION]),
        _ => return None,
    };
    if let Some(o) = g.as_object_mut() {
        o.insert("kind".into(), json!("APIGroup"));
        o.insert("apiVersion".into(), json!("v1"));
    }
    Some(g)
}

pub fn api_group_list() -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            group(CUSTOM_GROUP, &CUSTOM_VERSIONS),
            group(EXTERNAL_GROUP, &[EXTERNAL_VERSION]),
        ],
    })
}

/// A small, valid Swagger 2.0 document. The kube-apiserver downloads `/openapi/v2` from every
/// APIService and logs errors with backoff when it is missing.
pub fn openapi_v2() -> Value {
    let get = |summary: &str, list: &str| {
        json!({"get": {
            "summary": summary,
            "produces": ["application/json"],
            "responses": {"200": {"description": list}}
        }})
    };
    json!({
        "swagger": "2.0",
        "info": {"title": "flink-hpa-bridge", "version": env!("CARGO_PKG_VERSION")},
        "paths": {
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{metric}":
                get("external metric values", "ExternalMetricValueList"),
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/{namespace}/{resource}/{name}/{metric}":
                get("custom metric values of namespaced objects", "MetricValueList"),
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/{namespace}/{resource}/{name}/{metric}":
                get("custom metric values of namespaced objects", "MetricValueList"),
        },
        "definitions": {},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_whole_seconds_utc() {
        assert_eq!(timestamp(1_700_000_000.987), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn selectors_as_label_selector_objects() {
        let s = Selector::parse("a=1,!b").unwrap();
        assert_eq!(
            label_selector(&s),
            json!({"matchExpressions":[{"key":"a","operator":"In","values":["1"]},{"key":"b","operator":"DoesNotExist"}]})
        );
        assert_eq!(label_selector(&Selector::everything()), Value::Null);
    }
}
