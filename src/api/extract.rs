//! Metric requests as typed values: the path parsed once (see [`crate::path`]) plus the
//! query string, validated before anything is asked of the provider.

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use http::request::Parts;

use super::layers::parsed_path;
use super::wire::{CUSTOM_GROUP, CUSTOM_VERSIONS, EXTERNAL_GROUP, EXTERNAL_VERSION};
use crate::path::{is_cluster_scoped, RequestPath};
use crate::provider::{CustomRequest, ExternalRequest, ObjectName};
use crate::selector::Selector;
use crate::status::ApiError;

/// `GET /apis/external.metrics.k8s.io/v1beta1/namespaces/<ns>/<metric>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalMetric(pub ExternalRequest);

/// `GET /apis/custom.metrics.k8s.io/<version>/…/<metric>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomMetric {
    pub version: String,
    pub req: CustomRequest,
}

impl<S: Send + Sync> FromRequestParts<S> for ExternalMetric {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        external_request(&parsed_path::of(parts), parts.uri.query()).map(ExternalMetric)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CustomMetric {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        custom_request(&parsed_path::of(parts), parts.uri.query())
    }
}

pub fn check_custom_version(version: &str) -> Result<(), ApiError> {
    if CUSTOM_VERSIONS.contains(&version) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "the server could not find the requested resource: {CUSTOM_GROUP}/{version} is not served (served: v1beta2, v1beta1)"
        )))
    }
}

pub fn check_external_version(version: &str) -> Result<(), ApiError> {
    if version == EXTERNAL_VERSION {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "the server could not find the requested resource: {EXTERNAL_GROUP}/{version} is not served (served: v1beta1)"
        )))
    }
}

/// The segments after the version, once the path is known to be usable.
fn rest_of(
    path: &RequestPath,
    check_version: fn(&str) -> Result<(), ApiError>,
) -> Result<&[String], ApiError> {
    let api = path
        .api()
        .ok_or_else(|| ApiError::bad_request("malformed metrics path"))?;
    check_version(api.version)?;
    if let Some(problem) = path.problem() {
        return Err(ApiError::bad_request(problem));
    }
    Ok(api.rest)
}

pub fn external_request(
    path: &RequestPath,
    query: Option<&str>,
) -> Result<ExternalRequest, ApiError> {
    let (namespace, metric) = match rest_of(path, check_external_version)? {
        [ns_kw, ns, metric] if ns_kw == "namespaces" => (ns.clone(), metric.clone()),
        _ => {
            return Err(ApiError::bad_request(format!(
                "malformed external metrics path {}: expected /apis/{EXTERNAL_GROUP}/{EXTERNAL_VERSION}/namespaces/<namespace>/<metric>",
                path.as_str()
            )))
        }
    };
    check_name("namespace", &namespace)?;
    check_metric(&metric)?;
    let params = query_params(query)?;
    Ok(ExternalRequest {
        namespace,
        metric,
        selector: selector_param(&params, "labelSelector")?,
    })
}

pub fn custom_request(path: &RequestPath, query: Option<&str>) -> Result<CustomMetric, ApiError> {
    let rest = rest_of(path, check_custom_version)?;
    let version = path
        .api()
        .map(|a| a.version.to_string())
        .unwrap_or_default();
    let (namespace, resource, name, metric) = match rest {
        // The Namespace object itself: `namespaces/{ns}/metrics/{metric}`.
        [ns_kw, ns, metrics_kw, metric] if ns_kw == "namespaces" && metrics_kw == "metrics" => {
            (None, "namespaces".to_string(), ns.clone(), metric.clone())
        }
        [ns_kw, ns, resource, name, metric] if ns_kw == "namespaces" => {
            check_name("namespace", ns)?;
            (Some(ns.clone()), resource.clone(), name.clone(), metric.clone())
        }
        [resource, name, metric] => (None, resource.clone(), name.clone(), metric.clone()),
        _ => {
            return Err(ApiError::bad_request(format!(
                "malformed custom metrics path {}: expected namespaces/<ns>/<resource>/<name|*>/<metric>, <resource>/<name|*>/<metric> or namespaces/<ns>/metrics/<metric>",
                path.as_str()
            )))
        }
    };
    if resource.is_empty()
        || !resource
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    {
        return Err(ApiError::bad_request(format!(
            "invalid resource {resource:?}"
        )));
    }
    if namespace.is_some() && is_cluster_scoped(&resource) {
        return Err(ApiError::not_found(format!(
            "{resource} are cluster-scoped, not in a namespace: ask /apis/{CUSTOM_GROUP}/{version}/{resource}/<name|*>/{metric}"
        )));
    }
    check_metric(&metric)?;
    let name = if name == "*" {
        ObjectName::All
    } else {
        check_name("object", &name)?;
        ObjectName::Named(name)
    };
    let params = query_params(query)?;
    Ok(CustomMetric {
        version,
        req: CustomRequest {
            namespace,
            resource,
            name,
            metric,
            selector: selector_param(&params, "labelSelector")?,
            metric_selector: selector_param(&params, "metricLabelSelector")?,
        },
    })
}

/// The path the HPA asks for `req`; the inverse of [`custom_request`]. Cluster-scoped objects
/// are addressed without a namespace.
pub fn custom_path(version: &str, req: &CustomRequest) -> String {
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, SEGMENT).to_string();
    let base = format!("/apis/{CUSTOM_GROUP}/{version}");
    match (&req.namespace, req.resource.as_str(), &req.name) {
        // As the HPA asks for an Object metric on a Namespace.
        (_, "namespaces", ObjectName::Named(ns)) => {
            format!("{base}/namespaces/{}/metrics/{}", enc(ns), enc(&req.metric))
        }
        (Some(ns), r, name) if !is_cluster_scoped(r) => format!(
            "{base}/namespaces/{}/{}/{}/{}",
            enc(ns),
            enc(r),
            enc(&name.to_string()),
            enc(&req.metric)
        ),
        (_, r, name) => format!(
            "{base}/{}/{}/{}",
            enc(r),
            enc(&name.to_string()),
            enc(&req.metric)
        ),
    }
}

/// The path the HPA asks for `req`; the inverse of [`external_request`].
pub fn external_path(req: &ExternalRequest) -> String {
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, SEGMENT).to_string();
    format!(
        "/apis/{EXTERNAL_GROUP}/{EXTERNAL_VERSION}/namespaces/{}/{}",
        enc(&req.namespace),
        enc(&req.metric)
    )
}

/// What must be escaped in a path segment.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'?')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Query parameters with form rules (`+` is a space), as the kube-aggregator re-encodes them.
fn query_params(raw: Option<&str>) -> Result<HashMap<String, String>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))?;
    Ok(pairs.into_iter().collect())
}

fn selector_param(params: &HashMap<String, String>, name: &str) -> Result<Selector, ApiError> {
    match params.get(name) {
        None => Ok(Selector::everything()),
        Some(s) => Selector::parse(s).map_err(|e| ApiError::bad_request(format!("{name}: {e}"))),
    }
}

fn check_name(kind: &str, name: &str) -> Result<(), ApiError> {
    // Namespaces and object names are DNS labels or subdomains; anything else is not a
    // Kubernetes object and would only reach Prometheus as noise.
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "invalid {kind} name {name:?}"
        )))
    }
}

fn check_metric(name: &str) -> Result<(), ApiError> {
    if crate::promql::is_valid_metric_name(name) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "invalid metric name {name:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn custom(path: &str) -> Result<CustomMetric, ApiError> {
        custom_request(&RequestPath::parse(path), None)
    }

    #[test]
    fn the_namespace_object_is_cluster_scoped() {
        let m = custom("/apis/custom.metrics.k8s.io/v1beta2/namespaces/flink/metrics/m").unwrap();
        assert_eq!(m.req.namespace, None);
        assert_eq!(m.req.resource, "namespaces");
        assert_eq!(m.req.name, ObjectName::Named("flink".into()));
    }

    #[test]
    fn nodes_are_asked_at_the_cluster_scope() {
        let m = custom("/apis/custom.metrics.k8s.io/v1beta1/nodes/n1/m").unwrap();
        assert_eq!((m.req.namespace, m.req.resource.as_str()), (None, "nodes"));
        let e =
            custom("/apis/custom.metrics.k8s.io/v1beta1/namespaces/flink/nodes/n1/m").unwrap_err();
        assert_eq!(e.code, 404);
        assert!(
            e.message.contains("nodes are cluster-scoped"),
            "{}",
            e.message
        );
        let e = custom("/apis/custom.metrics.k8s.io/v1beta1/namespaces/flink/namespaces/x/m")
            .unwrap_err();
        assert_eq!(e.code, 404);
    }

    #[test]
    fn pods_are_namespaced() {
        let m = custom("/apis/custom.metrics.k8s.io/v1beta2/namespaces/flink/pods/%2A/m").unwrap();
        assert_eq!(m.req.namespace.as_deref(), Some("flink"));
        assert_eq!(m.req.name, ObjectName::All);
    }

    #[test]
    fn paths_round_trip() {
        for p in [
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/flink/pods/*/m",
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/flink/deployments.apps/web/m",
            "/apis/custom.metrics.k8s.io/v1beta1/nodes/n1/m",
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/flink/metrics/m",
        ] {
            let m = custom(p).unwrap();
            assert_eq!(custom_path(&m.version, &m.req), p);
        }
        let p = "/apis/external.metrics.k8s.io/v1beta1/namespaces/flink/m";
        let e = external_request(&RequestPath::parse(p), Some("labelSelector=a%3Db")).unwrap();
        assert_eq!(external_path(&e), p);
        assert_eq!(e.selector.to_string(), "a=b");
    }
}
