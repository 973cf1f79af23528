//! What is checked before serving, so a setting that cannot work stops the start with a
//! message naming it, instead of failing every request later. `serve` and `check-config` run
//! the same checks.

use std::path::{Path, PathBuf};

use std::io::Write;

use crate::config::{Api, Config, ConfigError, SignalSpec};
use crate::path::is_cluster_scoped;
use crate::prometheus;
use crate::selector::Selector;
use crate::signals::{Mode, Objects, Request, Signals};
use crate::tls::Material;

/// Core-group resources a metric can describe; anything else needs its group
/// (`deployments.apps`, `flinkdeployments.flink.apache.org`).
const CORE_RESOURCES: [&str; 12] = [
    "pods",
    "services",
    "nodes",
    "namespaces",
    "endpoints",
    "persistentvolumeclaims",
    "persistentvolumes",
    "replicationcontrollers",
    "configmaps",
    "secrets",
    "serviceaccounts",
    "events",
];

/// Why `resource` is not a resource the HPA could name, or `None`. The HPA sends the plural,
/// lowercase resource, qualified by its group outside the core group.
pub fn implausible_resource(resource: &str) -> Option<String> {
    let dns_label = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    };
    if resource.is_empty() || !resource.split('.').all(dns_label) {
        return Some(format!(
            "{resource:?} is not a Kubernetes resource name: lowercase plural, qualified by its group outside the core group (pods, deployments.apps)"
        ));
    }
    let (plural, group) = resource.split_once('.').unwrap_or((resource, ""));
    let singular_of = CORE_RESOURCES
        .iter()
        .chain(&["deployments", "statefulsets", "jobs", "flinkdeployments"])
        .find(|p| p.strip_suffix('s') == Some(plural));
    if let Some(p) = singular_of {
        return Some(format!(
            "{resource:?} is singular: resources are plural, e.g. {p}{}",
            if group.is_empty() {
                String::new()
            } else {
                format!(".{group}")
            }
        ));
    }
    if group.is_empty() && !CORE_RESOURCES.contains(&plural) {
        return Some(format!(
            "{resource:?} is not in the core group: qualify it with its API group, e.g. {plural}.apps or {plural}.flink.apache.org"
        ));
    }
    None
}

/// Every file the configuration names, with the setting that names it.
fn referenced_files(cfg: &Config) -> Vec<(&'static str, &Path)> {
    let p = &cfg.prometheus;
    let s = &cfg.server;
    let a = &s.auth;
    fn opt<'a>(field: &'static str, f: &'a Option<PathBuf>) -> Option<(&'static str, &'a Path)> {
        f.as_deref().map(|f| (field, f))
    }
    [
        opt("prometheus.caFile", &p.ca_file),
        opt("prometheus.bearerTokenFile", &p.bearer_token_file),
        opt("server.tlsCertFile (--tls-cert-file)", &s.tls_cert_file),
        opt(
            "server.tlsPrivateKeyFile (--tls-private-key-file)",
            &s.tls_private_key_file,
        ),
        opt(
            "server.auth.requestheaderClientCaFile (--requestheader-client-ca-file)",
            &a.requestheader_client_ca_file,
        ),
        opt(
            "server.auth.clientCaFile (--client-ca-file)",
            &a.client_ca_file,
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The checks; `source` names where the configuration came from, for messages.
pub fn preflight(cfg: &Config, source: &str) -> Result<(), ConfigError> {
    let invalid = |field: &str, message: String| ConfigError::Invalid {
        file: source.to_string(),
        field: field.to_string(),
        message,
    };
    for (field, path) in referenced_files(cfg) {
        if let Err(e) = std::fs::metadata(path) {
            return Err(invalid(
                field,
                format!("{}: {e}: fix the path or provide the file", path.display()),
            ));
        }
    }
    if let (Some(cert), Some(key)) = (&cfg.server.tls_cert_file, &cfg.server.tls_private_key_file) {
        Material::load(cert, key).map_err(|e| invalid("server.tlsCertFile", e.to_string()))?;
    }
    for s in &cfg.signals {
        if s.api() == Api::Custom {
            if let Some(why) = implausible_resource(s.resource()) {
                return Err(invalid(&format!("signals[name={}].resource", s.name), why));
            }
        }
    }
    check_queries(cfg, source)
}

/// Requests of every shape a signal may be asked, with the namespace the HPA would send.
fn sample_requests(spec: &SignalSpec) -> Vec<Request> {
    let namespace = match spec.api() {
        Api::Custom if is_cluster_scoped(spec.resource()) => None,
        _ => Some("default".to_string()),
    };
    let selectors = [
        Selector::everything(),
        Selector::parse("flink_hpa_bridge_check=x").unwrap_or_default(),
    ];
    let objects: Vec<Option<Objects>> = match spec.api() {
        Api::External => vec![None],
        Api::Custom => vec![
            Some(Objects::All(Selector::everything())),
            Some(Objects::Named("x".into())),
        ],
    };
    let mut out = Vec::new();
    for series in &selectors {
        for o in &objects {
            out.push(Request {
                namespace: namespace.clone(),
                series: series.clone(),
                objects: o.clone(),
            });
        }
    }
    out
}

/// Every signal's PromQL, planned for sample requests with their matchers filled in, must
/// parse: a broken `promql` template would otherwise fail every request at query time.
fn check_queries(cfg: &Config, source: &str) -> Result<(), ConfigError> {
    // Nothing is sent: planning needs a client, not an address.
    let mut settings = cfg.prometheus.clone();
    settings
        .url
        .get_or_insert_with(|| "http://prometheus.invalid".into());
    let prom = prometheus::Client::new(&settings).map_err(|e| ConfigError::Invalid {
        file: source.to_string(),
        field: "prometheus".into(),
        message: e.to_string(),
    })?;
    let signals = Signals::new(cfg, prom, None, crate::metrics::Metrics::new());
    for spec in &cfg.signals {
        for req in sample_requests(spec) {
            // A request the signal refuses (a label it does not accept) is not a template
            // problem.
            let Some(Ok(promql)) = signals.planned_promql(&spec.name, &req) else {
                continue;
            };
            if let Err(e) = promql_parser::parser::parse(&promql) {
                return Err(ConfigError::Invalid {
                    file: source.to_string(),
                    field: format!("signals[name={}].query", spec.name),
                    message: format!(
                        "with the request's matchers filled in, the PromQL does not parse: {}\n  {promql}",
                        e.trim()
                    ),
                });
            }
        }
    }
    Ok(())
}

/// `check-config --prometheus-url`: every signal asked once, across all namespaces, and what
/// it would serve. Returns how many signals had no value.
pub async fn try_signals(
    cfg: &Config,
    out: &mut impl Write,
) -> Result<usize, prometheus::PromError> {
    let prom = prometheus::Client::new(&cfg.prometheus)?;
    let signals = Signals::new(cfg, prom, None, crate::metrics::Metrics::new());
    let _ = writeln!(
        out,
        "Asking {} once per signal, across all namespaces:",
        signals.backend_url()
    );
    let mut without = 0;
    for spec in &cfg.signals {
        let req = Request {
            namespace: None,
            series: Selector::everything(),
            objects: match spec.api() {
                Api::External => None,
                Api::Custom => Some(Objects::All(Selector::everything())),
            },
        };
        let eval = signals.evaluate(&spec.name, &req, Mode::Inspect).await;
        match &eval.result {
            Ok(items) if !items.is_empty() => {
                let _ = writeln!(out, "  {}: {} value(s)", spec.name, items.len());
                for i in items.iter().take(5) {
                    let labels = i
                        .labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v:?}"))
                        .chain(i.object.iter().map(|o| format!("object={o:?}")))
                        .collect::<Vec<_>>()
                        .join(",");
                    let value =
                        crate::quantity::format(i.value).unwrap_or_else(|_| i.value.to_string());
                    let _ = writeln!(out, "    {{{labels}}} {value}");
                }
                if items.len() > 5 {
                    let _ = writeln!(out, "    … and {} more", items.len() - 5);
                }
            }
            Ok(_) => {
                without += 1;
                let _ = writeln!(out, "  {}: no value", spec.name);
            }
            Err(e) => {
                without += 1;
                let code = crate::status::ApiError::from(e.clone()).code;
                let _ = writeln!(out, "  {}: HTTP {} {}", spec.name, code.as_u16(), e);
            }
        }
        if let Some(q) = &eval.promql {
            let _ = writeln!(out, "    PromQL: {q}");
        }
    }
    Ok(without)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausible_resources() {
        for ok in [
            "pods",
            "namespaces",
            "nodes",
            "deployments.apps",
            "flinkdeployments.flink.apache.org",
        ] {
            assert_eq!(implausible_resource(ok), None, "{ok}");
        }
        assert!(implausible_resource("Pods")
            .unwrap()
            .contains("not a Kubernetes resource name"));
        assert!(implausible_resource("pod").unwrap().contains("e.g. pods"));
        assert!(implausible_resource("deployment.apps")
            .unwrap()
            .contains("e.g. deployments.apps"));
        assert!(implausible_resource("deployments")
            .unwrap()
            .contains("deployments.apps"));
        assert!(implausible_resource("deployments/apps").is_some());
        assert!(implausible_resource("").is_some());
    }
}
