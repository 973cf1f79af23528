//! Items shaped as the values the API serves.

use crate::provider::{CustomValue, ExternalValue, ObjectRef};

use super::request::Item;

/// Items as external metric values.
pub fn external_values(items: Vec<Item>) -> Vec<ExternalValue> {
    items
        .into_iter()
        .map(|i| ExternalValue {
            labels: i.labels,
            value: i.value,
            timestamp: i.timestamp,
        })
        .collect()
}

/// Items as values of objects of `resource` in `namespace`; items without an object are not
/// custom metric values and are left out.
pub fn custom_values(
    items: Vec<Item>,
    resource: &str,
    namespace: Option<&str>,
) -> Vec<CustomValue> {
    let (kind, api_version) = kind_of(resource);
    items
        .into_iter()
        .filter_map(|i| {
            Some(CustomValue {
                object: ObjectRef {
                    kind: kind.clone(),
                    api_version: api_version.clone(),
                    namespace: namespace.map(str::to_string),
                    name: i.object?,
                },
                value: i.value,
                timestamp: i.timestamp,
            })
        })
        .collect()
}

/// Kind and apiVersion for `describedObject`. The HPA keys Pods metrics by name only; the
/// rest is for people reading the answer.
pub fn kind_of(resource: &str) -> (String, String) {
    let known = match resource {
        "pods" => Some(("Pod", "v1")),
        "namespaces" => Some(("Namespace", "v1")),
        "nodes" => Some(("Node", "v1")),
        "services" => Some(("Service", "v1")),
        "deployments.apps" => Some(("Deployment", "apps/v1")),
        "statefulsets.apps" => Some(("StatefulSet", "apps/v1")),
        "jobs.batch" => Some(("Job", "batch/v1")),
        "flinkdeployments.flink.apache.org" => {
            Some(("FlinkDeployment", "flink.apache.org/v1beta1"))
        }
        _ => None,
    };
    if let Some((k, v)) = known {
        return (k.to_string(), v.to_string());
    }
    let (plural, group) = resource.split_once('.').unwrap_or((resource, ""));
    let singular = plural.strip_suffix('s').unwrap_or(plural);
    let mut kind: String = singular
        .chars()
        .take(1)
        .flat_map(char::to_uppercase)
        .collect();
    kind.push_str(singular.get(1..).unwrap_or(""));
    (kind, group.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_for_described_objects() {
        assert_eq!(kind_of("pods"), ("Pod".into(), "v1".into()));
        assert_eq!(
            kind_of("widgets.example.com"),
            ("Widget".into(), "example.com".into())
        );
    }
}
