//! What the command-line subcommands do, kept out of `main.rs` so they can be tested.

use std::io::Write;
use std::path::{Path, PathBuf};

use axum::http::StatusCode;
use serde_json::Value;

use crate::api::wire::{self, ApiError};
use crate::config::{validate_url, Api, Config, ConfigError};
use crate::prometheus;
use crate::selector::Selector;
use crate::signals::{custom_values, external_values, Mode, Objects, Request, Signals};

/// Command-line values that override the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub prometheus_url: Option<String>,
    pub secure_port: Option<u16>,
    pub bind_address: Option<String>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
}

/// Defaults, then the file (if any), then flags.
pub fn effective_config(file: Option<&Path>, o: &Overrides) -> Result<Config, ConfigError> {
    let mut cfg = match file {
        Some(f) => Config::load(f)?,
        None => Config::default(),
    };
    let flag_err = |field: &str, message: String| ConfigError::Invalid {
        file: "command line".into(),
        field: field.into(),
        message,
    };
    if let Some(url) = &o.prometheus_url {
        validate_url(url).map_err(|m| flag_err("--prometheus-url", m))?;
        cfg.prometheus.url = Some(url.clone());
    }
    if let Some(p) = o.secure_port {
        cfg.server.secure_port = p;
    }
    if let Some(a) = &o.bind_address {
        if a.parse::<std::net::IpAddr>().is_err() {
            return Err(flag_err(
                "--bind-address",
                format!("expected an IP address, got {a:?}"),
            ));
        }
        cfg.server.bind_address = a.clone();
    }
    match (&o.tls_cert_file, &o.tls_private_key_file) {
        (Some(c), Some(k)) => {
            cfg.server.tls_cert_file = Some(c.clone());
            cfg.server.tls_private_key_file = Some(k.clone());
        }
        (None, None) => {}
        _ => {
            return Err(flag_err(
                "--tls-cert-file",
                "--tls-cert-file and --tls-private-key-file go together".into(),
            ))
        }
    }
    if cfg.prometheus.url.is_none() {
        return Err(ConfigError::Invalid {
            file: file
                .map(|f| f.display().to_string())
                .unwrap_or_else(|| "command line".into()),
            field: "prometheus.url".into(),
            message:
                "no Prometheus URL: pass --prometheus-url or set prometheus.url in the config file"
                    .into(),
        });
    }
    Ok(cfg)
}

/// `check-config`: a one-line verdict per file, and the effective signals.
pub fn check_config(file: &Path, out: &mut impl Write) -> Result<(), ConfigError> {
    let cfg = Config::load(file)?;
    let _ = writeln!(out, "{}: OK", file.display());
    for s in &cfg.signals {
        let api = match s.api() {
            Api::External => "external".to_string(),
            Api::Custom => format!("custom {}", s.resource()),
        };
        let _ = writeln!(out, "  {:<32} {:<26} {api}", s.name, s.kind.to_string());
    }
    Ok(())
}

pub struct QueryArgs {
    pub metric: String,
    pub namespace: String,
    pub selector: String,
    /// For custom metrics: `metricLabelSelector`.
    pub metric_selector: String,
    /// For custom metrics: an object name instead of `*`.
    pub name: Option<String>,
    /// Print the kind's account of its computation (inputs, terms, decision).
    pub explain: bool,
}

/// `query`: evaluates one metric once and prints the PromQL, the samples and the list the HPA
/// would receive. Returns whether a value was produced.
pub async fn query(cfg: &Config, args: &QueryArgs, out: &mut impl Write) -> Result<bool, String> {
    let prom = prometheus::Client::new(&cfg.prometheus).map_err(|e| e.to_string())?;
    let signals = Signals::new(cfg, prom, None, crate::metrics::Metrics::new());
    let spec = signals
        .spec(&args.metric)
        .ok_or_else(|| {
            let names: Vec<_> = cfg.signals.iter().map(|s| s.name.as_str()).collect();
            format!(
                "unknown metric {:?}; configured: {}",
                args.metric,
                names.join(", ")
            )
        })?
        .clone();
    let parse = |s: &str, what: &str| Selector::parse(s).map_err(|e| format!("{what}: {e}"));
    let (series, objects) = match spec.api() {
        Api::External => (parse(&args.selector, "--selector")?, None),
        Api::Custom => (
            parse(&args.metric_selector, "--metric-selector")?,
            Some(match &args.name {
                Some(n) => Objects::Named(n.clone()),
                None => Objects::All(parse(&args.selector, "--selector")?),
            }),
        ),
    };
    let namespace = (spec.resource() != "namespaces" || spec.api() == Api::External)
        .then(|| args.namespace.clone());
    let req = Request {
        namespace: namespace.clone(),
        series: series.clone(),
        objects,
    };
    let eval = signals.evaluate(&args.metric, &req, Mode::Inspect).await;
    let _ = writeln!(out, "PromQL sent to {}:", signals.backend_url());
    let _ = writeln!(
        out,
        "  {}",
        eval.promql
            .as_deref()
            .unwrap_or("(none: the request was refused before querying)")
    );
    if let Some(sel) = &eval.selection {
        let _ = writeln!(out, "This request's groups, selected in memory: {sel}");
    }
    let _ = writeln!(
        out,
        "Samples for this request: {} (of {} returned)",
        eval.samples.len(),
        eval.samples_total
    );
    for s in &eval.samples {
        let labels = s
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join(",");
        let _ = writeln!(out, "  {{{labels}}} {} @{:.3}", s.value, s.timestamp);
    }
    for w in &eval.warnings {
        let _ = writeln!(out, "Warning from Prometheus: {w}");
    }
    if args.explain {
        let _ = writeln!(out, "How the value was computed:");
        let _ = write!(
            out,
            "{}",
            eval.explanation
                .as_deref()
                .unwrap_or("  (this kind's value is the query's result as shown above)\n")
        );
    }
    let body: Result<Value, ApiError> = match eval.result {
        Err(e) => Err(e.into()),
        Ok(items) => match spec.api() {
            Api::External => {
                let values = external_values(items);
                wire::external_list(&args.metric, &values)
                    .map(|l| serde_json::to_value(l).unwrap_or_default())
            }
            Api::Custom => {
                let values = custom_values(items, spec.resource(), namespace.as_deref());
                let selector = wire::label_selector(&series);
                wire::custom_list("v1beta2", &args.metric, &selector, &values)
                    .map(|l| serde_json::to_value(l).unwrap_or_default())
            }
        },
    };
    let (code, json) = match body {
        Ok(v) => (StatusCode::OK, v),
        Err(e) => (e.code, e.body()),
    };
    let _ = writeln!(out, "What the HPA would receive (HTTP {}):", code.as_u16());
    let _ = writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(&json).unwrap_or_default()
    );
    Ok(code == StatusCode::OK)
}
