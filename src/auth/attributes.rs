//! Request attributes for authorization, derived from the URL the way kube-apiserver's
//! `RequestInfoFactory` does, before any handler logic.

use http::Method;

use crate::path::RequestPath;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attributes {
    Resource {
        verb: String,
        namespace: Option<String>,
        group: String,
        version: String,
        resource: String,
        subresource: Option<String>,
        name: Option<String>,
    },
    NonResource {
        verb: String,
        path: String,
    },
}

fn http_verb(method: &Method) -> &'static str {
    match *method {
        Method::GET | Method::HEAD => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "unknown",
    }
}

/// Attributes of `method path`. Under `/apis/<group>/<version>/`: `namespaces/<ns>/…` sets the
/// namespace (unless `namespaces/<ns>` is all there is); then resource, name, subresource. A
/// read with a name is `get`, without one `list`. Everything else is a non-resource request.
pub fn attributes(method: &Method, path: &str) -> Attributes {
    attributes_of(method, &RequestPath::parse(path))
}

/// [`attributes`] of an already parsed path.
pub fn attributes_of(method: &Method, path: &RequestPath) -> Attributes {
    let non_resource = || Attributes::NonResource {
        verb: http_verb(method).to_string(),
        path: path.as_str().to_string(),
    };
    let parts = path.trimmed();
    if parts.len() < 4 || parts[0] != "apis" {
        return non_resource();
    }
    let (group, version) = (parts[1].clone(), parts[2].clone());
    let mut rest = &parts[3..];
    let mut namespace = None;
    // `namespaces/<ns>/…` scopes the request; `namespaces` or `namespaces/<name>` alone is the
    // Namespace resource itself. This is the URL as kube-apiserver reads it for authorization,
    // not the scope of the described object (see `crate::path::is_cluster_scoped`).
    if rest.first().map(String::as_str) == Some("namespaces") && rest.len() >= 3 {
        namespace = Some(rest[1].clone());
        rest = &rest[2..];
    }
    let resource = rest.first().cloned().unwrap_or_default();
    let name = rest.get(1).cloned();
    let subresource = rest.get(2).cloned();
    let verb = match (http_verb(method), &name) {
        ("get", None) => "list",
        (v, _) => v,
    };
    Attributes::Resource {
        verb: verb.to_string(),
        namespace,
        group,
        version,
        resource,
        subresource,
        name,
    }
}

impl std::fmt::Display for Attributes {
    /// In kube-apiserver's words, for refusal messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attributes::NonResource { verb, path } => write!(f, "{verb} path \"{path}\""),
            Attributes::Resource {
                verb,
                namespace,
                group,
                resource,
                subresource,
                ..
            } => {
                let res = match subresource {
                    Some(s) => format!("{resource}/{s}"),
                    None => resource.clone(),
                };
                write!(f, "{verb} resource \"{res}\" in API group \"{group}\"")?;
                match namespace {
                    Some(ns) => write!(f, " in the namespace \"{ns}\""),
                    None => write!(f, " at the cluster scope"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(
        verb: &str,
        ns: Option<&str>,
        group: &str,
        resource: &str,
        sub: Option<&str>,
        name: Option<&str>,
    ) -> Attributes {
        Attributes::Resource {
            verb: verb.into(),
            namespace: ns.map(Into::into),
            group: group.into(),
            version: "v1beta1".into(),
            resource: resource.into(),
            subresource: sub.map(Into::into),
            name: name.map(Into::into),
        }
    }

    #[test]
    fn metrics_paths_as_kube_apiserver_sees_them() {
        let g = Method::GET;
        assert_eq!(
            attributes(
                &g,
                "/apis/external.metrics.k8s.io/v1beta1/namespaces/flink/flink_busy_time_max"
            ),
            res(
                "list",
                Some("flink"),
                "external.metrics.k8s.io",
                "flink_busy_time_max",
                None,
                None
            )
        );
        assert_eq!(
            attributes(
                &g,
                "/apis/custom.metrics.k8s.io/v1beta1/namespaces/flink/pods/%2A/busy"
            ),
            res(
                "get",
                Some("flink"),
                "custom.metrics.k8s.io",
                "pods",
                Some("busy"),
                Some("*")
            )
        );
        assert_eq!(
            attributes(
                &g,
                "/apis/custom.metrics.k8s.io/v1beta1/namespaces/flink/metrics/busy"
            ),
            res(
                "get",
                Some("flink"),
                "custom.metrics.k8s.io",
                "metrics",
                None,
                Some("busy")
            )
        );
        assert_eq!(
            attributes(&g, "/apis/custom.metrics.k8s.io/v1beta1/nodes/n1/busy"),
            res(
                "get",
                None,
                "custom.metrics.k8s.io",
                "nodes",
                Some("busy"),
                Some("n1")
            )
        );
        assert_eq!(
            attributes(&g, "/apis/custom.metrics.k8s.io/v1beta1"),
            Attributes::NonResource {
                verb: "get".into(),
                path: "/apis/custom.metrics.k8s.io/v1beta1".into()
            }
        );
        assert_eq!(
            attributes(&g, "/openapi/v2"),
            Attributes::NonResource {
                verb: "get".into(),
                path: "/openapi/v2".into()
            }
        );
    }

    #[test]
    fn refusal_wording() {
        let a = attributes(
            &Method::GET,
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/flink/m",
        );
        assert_eq!(
            a.to_string(),
            "list resource \"m\" in API group \"external.metrics.k8s.io\" in the namespace \"flink\""
        );
    }
}
