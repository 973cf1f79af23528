//! What the command-line subcommands do, kept out of `main.rs` so they can be tested.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::{validate_url, Api, Config, ConfigError};

pub mod checks;
mod query;
pub mod serve;

pub use query::{query, QueryArgs, QueryError};

/// Resolves on Ctrl-C, or on SIGTERM (how Kubernetes and `timeout` stop a process).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

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

/// `check-config`: a one-line verdict per file, and the effective signals. The checks are
/// those `serve` runs before it starts ([`checks::preflight`]).
pub fn check_config(file: &Path, out: &mut impl Write) -> Result<Config, ConfigError> {
    let cfg = Config::load(file)?;
    checks::preflight(&cfg, &file.display().to_string())?;
    let _ = writeln!(out, "{}: OK", file.display());
    for s in &cfg.signals {
        let api = match s.api() {
            Api::External => "external".to_string(),
            Api::Custom => format!("custom {}", s.resource()),
        };
        let _ = writeln!(out, "  {:<32} {:<26} {api}", s.name, s.kind.to_string());
    }
    Ok(cfg)
}
