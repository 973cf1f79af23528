//! A request's path, parsed once, then read by authorization (kube-apiserver's request
//! attributes), by the request metrics (a bounded route name) and by the metric handlers.
//!
//! It lives outside `api` and `auth` so that neither imports the other.

/// The path split into segments, each percent-decoded on its own so that an encoded `/`
/// cannot add a segment and `%2A` reads as `*`. Cheap to clone: the layers and the handler
/// each hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPath(std::sync::Arc<Parsed>);

#[derive(Debug, PartialEq, Eq)]
struct Parsed {
    raw: String,
    /// Every segment after the leading `/`, decoded; a segment that is not UTF-8 once
    /// decoded is kept with replacement characters (authorization still needs a name) and
    /// named in `not_utf8`.
    segments: Vec<String>,
    not_utf8: Option<String>,
}

/// The group, version and segments after them of a path under `/apis/<group>/<version>/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiPath<'a> {
    pub group: &'a str,
    pub version: &'a str,
    pub rest: &'a [String],
}

impl RequestPath {
    pub fn parse(raw: &str) -> Self {
        let mut not_utf8 = None;
        let segments = raw
            .strip_prefix('/')
            .unwrap_or(raw)
            .split('/')
            .map(|seg| {
                let bytes = percent_encoding::percent_decode_str(seg);
                match bytes.decode_utf8() {
                    Ok(s) => s.into_owned(),
                    Err(_) => {
                        not_utf8.get_or_insert_with(|| seg.to_string());
                        percent_encoding::percent_decode_str(seg)
                            .decode_utf8_lossy()
                            .into_owned()
                    }
                }
            })
            .collect();
        Self(std::sync::Arc::new(Parsed {
            raw: raw.to_string(),
            segments,
            not_utf8,
        }))
    }

    /// The path as received.
    pub fn as_str(&self) -> &str {
        &self.0.raw
    }

    /// Segments as kube-apiserver splits them: leading and trailing slashes ignored.
    pub fn trimmed(&self) -> &[String] {
        let s = self.0.segments.as_slice();
        let start = s.iter().take_while(|p| p.is_empty()).count();
        let end = s.len() - s[start..].iter().rev().take_while(|p| p.is_empty()).count();
        &s[start..end]
    }

    /// `/apis/<group>/<version>/…`, when the path has that shape.
    pub fn api(&self) -> Option<ApiPath<'_>> {
        match self.0.segments.as_slice() {
            [apis, group, version, rest @ ..] if apis == "apis" => Some(ApiPath {
                group,
                version,
                rest,
            }),
            _ => None,
        }
    }

    /// Why a handler cannot use the segments after the version: one is not UTF-8 or empty.
    pub fn problem(&self) -> Option<String> {
        if let Some(seg) = &self.0.not_utf8 {
            return Some(format!("path segment {seg:?} is not UTF-8"));
        }
        let api = self.api()?;
        if api.rest.is_empty() || api.rest.iter().any(String::is_empty) {
            return Some(format!("empty path segment in {}", self.0.raw));
        }
        None
    }
}

/// Where objects of a resource live. Namespaces and nodes are cluster-scoped, as in the
/// Kubernetes API; every other resource a metric can describe (pods, services, workloads,
/// custom resources such as `flinkdeployments.flink.apache.org`) is namespaced.
///
/// This is the one place the rule is written: the path parser, discovery and the
/// `query` command all read it.
pub fn is_cluster_scoped(resource: &str) -> bool {
    matches!(resource, "namespaces" | "nodes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_decoded_one_by_one() {
        let p =
            RequestPath::parse("/apis/custom.metrics.k8s.io/v1beta2/namespaces/a%2Fb/pods/%2A/m");
        let api = p.api().unwrap();
        assert_eq!(api.group, "custom.metrics.k8s.io");
        assert_eq!(api.version, "v1beta2");
        assert_eq!(api.rest, ["namespaces", "a/b", "pods", "*", "m"]);
        assert_eq!(p.problem(), None);
    }

    #[test]
    fn problems_for_handlers() {
        assert_eq!(
            RequestPath::parse("/apis/g/v/%FF/m").problem().as_deref(),
            Some("path segment \"%FF\" is not UTF-8")
        );
        assert_eq!(
            RequestPath::parse("/apis/g/v/a//m").problem().as_deref(),
            Some("empty path segment in /apis/g/v/a//m")
        );
        assert_eq!(RequestPath::parse("/healthz").problem(), None);
    }

    #[test]
    fn trimmed_as_kube_apiserver() {
        assert_eq!(
            RequestPath::parse("/apis/g/v/").trimmed(),
            ["apis", "g", "v"]
        );
        assert!(RequestPath::parse("/").trimmed().is_empty());
    }

    #[test]
    fn namespaces_and_nodes_are_cluster_scoped() {
        assert!(is_cluster_scoped("namespaces"));
        assert!(is_cluster_scoped("nodes"));
        for r in [
            "pods",
            "services",
            "deployments.apps",
            "flinkdeployments.flink.apache.org",
        ] {
            assert!(!is_cluster_scoped(r), "{r}");
        }
    }
}
