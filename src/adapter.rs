//! `convert-adapter-config`: a prometheus-adapter rules file turned into `promql` signals.
//!
//! An adapter rule discovers series with `seriesQuery`, names metrics with `name`, and
//! computes them with the `metricsQuery` template. A `promql` signal serves one named metric
//! with one query, so a rule converts when its series query names one series and its template
//! uses only `<<.Series>>`, `<<.LabelMatchers>>` and `<<.GroupBy>>`; every other rule is
//! reported with the reason.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error("{file}: {message}")]
    Read { file: String, message: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdapterConfig {
    #[serde(default)]
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub external_rules: Vec<Rule>,
    /// CPU and memory for metrics.k8s.io: not something this server serves.
    #[serde(default)]
    pub resource_rules: Option<serde_yaml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default)]
    pub series_query: String,
    #[serde(default)]
    pub series_filters: Vec<serde_yaml::Value>,
    #[serde(default)]
    pub resources: Resources,
    #[serde(default)]
    pub name: Naming,
    #[serde(default)]
    pub metrics_query: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct Resources {
    #[serde(default)]
    pub overrides: BTreeMap<String, GroupResource>,
    #[serde(default)]
    pub template: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct GroupResource {
    #[serde(default)]
    pub group: String,
    pub resource: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct Naming {
    #[serde(default)]
    pub matches: String,
    #[serde(default)]
    pub r#as: String,
}

/// One rule's outcome: a signal, or why there is none.
#[derive(Debug, Clone, PartialEq)]
pub enum Converted {
    Signal {
        /// The signal entry, YAML, one list item.
        yaml: String,
        name: String,
        notes: Vec<String>,
    },
    NotConverted(String),
}

pub fn parse(text: &str, file: &str) -> Result<AdapterConfig, AdapterError> {
    serde_yaml::from_str(text).map_err(|e| AdapterError::Read {
        file: file.into(),
        message: e.to_string(),
    })
}

/// The series name a series query selects: `name{...}` or `{__name__="name",...}`.
fn series_name(query: &str) -> Result<String, String> {
    let q = query.trim();
    let (head, body) = match q.find('{') {
        Some(i) => (&q[..i], &q[i..]),
        None => (q, ""),
    };
    let head = head.trim();
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !s.starts_with(|c: char| c.is_ascii_digit())
    };
    if !head.is_empty() {
        return if valid(head) {
            Ok(head.to_string())
        } else {
            Err(format!("seriesQuery {query:?} is not a series selector"))
        };
    }
    let re =
        regex::Regex::new(r#"__name__\s*(=~|!~|!=|=)\s*"([^"]*)""#).map_err(|e| e.to_string())?;
    match re.captures(body) {
        Some(c) if &c[1] == "=" && valid(&c[2]) => Ok(c[2].to_string()),
        Some(_) => Err(format!(
            "seriesQuery {query:?} discovers many series by a __name__ pattern; a promql signal serves one named metric: write one rule per series"
        )),
        None => Err(format!("seriesQuery {query:?} names no series")),
    }
}

/// Kubernetes resource (as the adapter's overrides name it, singular or plural) → the
/// group-resource this server's custom metrics use.
fn group_resource(gr: &GroupResource) -> Option<String> {
    let r = gr.resource.to_ascii_lowercase();
    let plural = match r.as_str() {
        "pod" | "pods" => "pods",
        "service" | "services" => "services",
        "node" | "nodes" => "nodes",
        "namespace" | "namespaces" => "namespaces",
        "deployment" | "deployments" => "deployments",
        "statefulset" | "statefulsets" => "statefulsets",
        "replicaset" | "replicasets" => "replicasets",
        "daemonset" | "daemonsets" => "daemonsets",
        "job" | "jobs" => "jobs",
        "ingress" | "ingresses" => "ingresses",
        _ => return None,
    };
    let group = if gr.group.is_empty() {
        match plural {
            "deployments" | "statefulsets" | "replicasets" | "daemonsets" => "apps",
            "jobs" => "batch",
            "ingresses" => "networking.k8s.io",
            _ => "",
        }
    } else {
        gr.group.as_str()
    };
    Some(if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    })
}

fn metric_name(series: &str, naming: &Naming) -> Result<String, String> {
    if naming.matches.is_empty() && naming.r#as.is_empty() {
        return Ok(series.to_string());
    }
    let matches = if naming.matches.is_empty() {
        "^(.*)$"
    } else {
        naming.matches.as_str()
    };
    let re = regex::Regex::new(matches).map_err(|e| format!("name.matches {matches:?}: {e}"))?;
    let Some(caps) = re.captures(series) else {
        return Err(format!(
            "name.matches {matches:?} does not match the series {series}: the rule serves nothing"
        ));
    };
    // The adapter's default for `as` is the first capture group, or the whole name.
    let template = if naming.r#as.is_empty() {
        if caps.len() > 1 {
            "$1"
        } else {
            "$0"
        }
    } else {
        naming.r#as.as_str()
    };
    let mut out = String::new();
    caps.expand(template, &mut out);
    Ok(out)
}

/// YAML double-quoted scalar.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

pub fn convert_rule(rule: &Rule, external: bool) -> Converted {
    match convert_inner(rule, external) {
        Ok(c) => c,
        Err(why) => Converted::NotConverted(why),
    }
}

fn convert_inner(rule: &Rule, external: bool) -> Result<Converted, String> {
    let mut notes = Vec::new();
    let series = series_name(&rule.series_query)?;
    let name = metric_name(&series, &rule.name)?;
    if rule.resources.template.is_some() {
        return Err(
            "resources.template maps every label to a resource of its own name; a promql signal names its resource: write resources.overrides"
                .into(),
        );
    }
    if !rule.series_filters.is_empty() {
        notes.push("seriesFilters only narrow the adapter's discovery: dropped".to_string());
    }
    let mut q = rule.metrics_query.clone();
    if q.trim().is_empty() {
        return Err("no metricsQuery".into());
    }
    if !q.contains("<<.LabelMatchers>>") {
        return Err(
            "metricsQuery has no <<.LabelMatchers>>: the selector (and the namespace) would not reach the query"
                .into(),
        );
    }
    let mut namespace_label = None;
    let mut objects = Vec::new();
    for (label, gr) in &rule.resources.overrides {
        match group_resource(gr).as_deref() {
            Some("namespaces") => namespace_label = Some(label.clone()),
            Some(r) => objects.push((label.clone(), r.to_string())),
            None => {
                return Err(format!(
                    "resources.overrides.{label}: resource {:?} is not one this converter knows",
                    gr.resource
                ))
            }
        }
    }
    let mut yaml = format!("- name: {name}\n  type: promql\n");
    let group_by = if external {
        // External values are summed by the HPA; the adapter groups them by the resource
        // labels, which the matchers already fix to the request's namespace.
        yaml.push_str("  api: external\n");
        if !objects.is_empty() {
            notes.push(format!(
                "external rule overrides {:?}: only the namespace is used",
                objects.iter().map(|o| &o.0).collect::<Vec<_>>()
            ));
        }
        namespace_label.clone().unwrap_or_default()
    } else {
        let [(label, resource)] = &objects[..] else {
            return Err(if objects.is_empty() {
                "a custom metric needs an object resource (pod, service, ...) in resources.overrides"
                    .into()
            } else {
                format!(
                    "the rule describes {} resources ({}); a promql signal describes one: split it into one rule per resource",
                    objects.len(),
                    objects.iter().map(|o| o.1.as_str()).collect::<Vec<_>>().join(", ")
                )
            });
        };
        let _ = writeln!(yaml, "  api: custom\n  resource: {resource}");
        if resource != "pods" || label != "pod" {
            let _ = writeln!(yaml, "  resourceLabel: {label}");
        }
        label.clone()
    };
    match &namespace_label {
        Some(l) => {
            yaml.push_str("  namespaced: true\n");
            if l != "namespace" {
                let _ = writeln!(yaml, "  namespaceLabel: {l}");
            }
        }
        None => yaml.push_str("  namespaced: false\n"),
    }
    q = q
        .replace("<<.Series>>", &series)
        .replace("<<.LabelMatchers>>", "<<matchers>>")
        .replace("<<.GroupBy>>", &group_by);
    if let Some(other) = q
        .match_indices("<<")
        .map(|(j, _)| &q[j..])
        .find(|s| !s.starts_with("<<matchers>>"))
    {
        let end = other.find(">>").map_or(other.len(), |e| e + 2);
        return Err(format!(
            "metricsQuery uses {}: only <<.Series>>, <<.LabelMatchers>> and <<.GroupBy>> have an equivalent",
            &other[..end]
        ));
    }
    let _ = writeln!(yaml, "  query: {}", quoted(q.trim()));
    Ok(Converted::Signal { yaml, name, notes })
}

/// The whole file: YAML for `signals:`, with a comment for every rule.
pub fn convert(cfg: &AdapterConfig) -> (String, usize) {
    let mut out = String::from(
        "# Converted from a prometheus-adapter configuration by flink-hpa-bridge convert-adapter-config.\nsignals:\n",
    );
    let mut failed = 0;
    let mut names = std::collections::BTreeSet::new();
    let all = rule_list(cfg);
    for (origin, rule, external) in all {
        let _ = writeln!(
            out,
            "# {origin}: seriesQuery {}",
            quoted(&rule.series_query)
        );
        match convert_rule(rule, external) {
            Converted::Signal { yaml, name, notes } => {
                if !names.insert(name.clone()) {
                    failed += 1;
                    let _ = writeln!(
                        out,
                        "# NOT CONVERTED: the metric name {name} is already taken by an earlier rule"
                    );
                    continue;
                }
                for n in notes {
                    let _ = writeln!(out, "# note: {n}");
                }
                out.push_str(&yaml);
            }
            Converted::NotConverted(why) => {
                failed += 1;
                let _ = writeln!(out, "# NOT CONVERTED: {why}");
            }
        }
    }
    if cfg.resource_rules.is_some() {
        out.push_str(
            "# resourceRules: NOT CONVERTED: CPU and memory (metrics.k8s.io) are metrics-server's, not served here\n",
        );
        failed += 1;
    }
    if names.is_empty() {
        out.push_str("[]\n");
    }
    (out, failed)
}

fn rule_list(cfg: &AdapterConfig) -> Vec<(String, &Rule, bool)> {
    cfg.rules
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("rules[{i}]"), r, false))
        .chain(
            cfg.external_rules
                .iter()
                .enumerate()
                .map(|(i, r)| (format!("externalRules[{i}]"), r, true)),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_names() {
        assert_eq!(
            series_name("http_requests_total{namespace!=\"\",pod!=\"\"}").unwrap(),
            "http_requests_total"
        );
        assert_eq!(
            series_name("{__name__=\"queue_depth\",topic!=\"\"}").unwrap(),
            "queue_depth"
        );
        assert!(series_name("{__name__=~\"^container_.*\"}")
            .unwrap_err()
            .contains("one named metric"));
    }

    #[test]
    fn names() {
        let n = |m: &str, a: &str| Naming {
            matches: m.into(),
            r#as: a.into(),
        };
        assert_eq!(
            metric_name("http_requests_total", &n("^(.*)_total$", "${1}_per_second")).unwrap(),
            "http_requests_per_second"
        );
        assert_eq!(
            metric_name("http_requests_total", &n("^(.*)_total$", "")).unwrap(),
            "http_requests"
        );
        assert_eq!(
            metric_name("queue_depth", &n("", "")).unwrap(),
            "queue_depth"
        );
        assert!(metric_name("queue_depth", &n("^(.*)_total$", "$1")).is_err());
    }
}
