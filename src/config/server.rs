//! The `prometheus` and `server` sections: where answers come from and how they are served.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{at_least_one, nonzero, parse_duration, ConfigError};

pub const DEFAULT_SECURE_PORT: u16 = 6443;
pub const DEFAULT_BIND_ADDRESS: &str = "0.0.0.0";
pub const DEFAULT_PROMETHEUS_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PrometheusSection {
    pub url: Option<String>,
    pub timeout: Option<String>,
    pub bearer_token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub insecure_skip_tls_verify: Option<bool>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub accept_warnings: Option<bool>,
    pub max_series: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerSection {
    pub secure_port: Option<u16>,
    pub bind_address: Option<String>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    pub shutdown_grace_period: Option<String>,
    pub max_in_flight: Option<usize>,
    pub max_connections: Option<usize>,
    #[serde(default)]
    pub auth: AuthSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthSection {
    pub insecure_skip_auth: Option<bool>,
    pub requestheader_client_ca_file: Option<PathBuf>,
    #[serde(default)]
    pub requestheader_allowed_names: Vec<String>,
    #[serde(default)]
    pub requestheader_username_headers: Vec<String>,
    #[serde(default)]
    pub requestheader_group_headers: Vec<String>,
    #[serde(default)]
    pub requestheader_extra_headers_prefix: Vec<String>,
    pub client_ca_file: Option<PathBuf>,
    pub token_review: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusSettings {
    pub url: Option<String>,
    #[serde(with = "super::humantime_serde_compat")]
    pub timeout: Duration,
    pub bearer_token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub insecure_skip_tls_verify: bool,
    pub headers: BTreeMap<String, String>,
    /// Use answers that carry warnings (possibly partial) instead of refusing them.
    pub accept_warnings: bool,
    /// Most series one answer may hold; a grouped query that would return more is sent in
    /// shards (by job or namespace) instead.
    pub max_series: usize,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerSettings {
    pub secure_port: u16,
    pub bind_address: String,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    /// After SIGTERM: how long requests in flight may take before the process exits. Keep it
    /// below the pod's terminationGracePeriodSeconds.
    #[serde(with = "super::humantime_serde_compat")]
    pub shutdown_grace_period: Duration,
    /// Requests served at once; more get 429 instead of queueing without bound.
    pub max_in_flight: usize,
    /// Open connections at once; more are closed on accept, so slow or idle clients cannot
    /// take every file descriptor.
    pub max_connections: usize,
    pub auth: crate::auth::AuthSettings,
}

pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

type Invalid<'a> = &'a dyn Fn(String, String) -> ConfigError;

pub(super) fn apply_prometheus(
    p: PrometheusSection,
    out: &mut PrometheusSettings,
    invalid: Invalid,
) -> Result<(), ConfigError> {
    if let Some(url) = p.url {
        validate_url(&url).map_err(|m| invalid("prometheus.url".into(), m))?;
        out.url = Some(url);
    }
    if let Some(t) = p.timeout {
        out.timeout = parse_duration(&t)
            .and_then(nonzero)
            .map_err(|m| invalid("prometheus.timeout".into(), m))?;
    }
    for (k, v) in &p.headers {
        if http::HeaderName::from_bytes(k.as_bytes()).is_err() {
            return Err(invalid(
                format!("prometheus.headers.{k}"),
                "not a valid HTTP header name".into(),
            ));
        }
        if http::HeaderValue::from_str(v).is_err() {
            return Err(invalid(
                format!("prometheus.headers.{k}"),
                "not a valid HTTP header value".into(),
            ));
        }
    }
    out.headers = p.headers;
    out.bearer_token_file = p.bearer_token_file;
    out.ca_file = p.ca_file;
    out.insecure_skip_tls_verify = p.insecure_skip_tls_verify.unwrap_or(false);
    out.accept_warnings = p.accept_warnings.unwrap_or(false);
    if let Some(n) = p.max_series {
        out.max_series = at_least_one(n).map_err(|m| invalid("prometheus.maxSeries".into(), m))?;
    }
    Ok(())
}

pub(super) fn apply_server(
    s: ServerSection,
    out: &mut ServerSettings,
    invalid: Invalid,
) -> Result<(), ConfigError> {
    if let Some(port) = s.secure_port {
        if port == 0 {
            return Err(invalid(
                "server.securePort".into(),
                "must be 1 to 65535".into(),
            ));
        }
        out.secure_port = port;
    }
    if let Some(addr) = s.bind_address {
        if addr.parse::<std::net::IpAddr>().is_err() {
            return Err(invalid(
                "server.bindAddress".into(),
                format!("expected an IP address such as 0.0.0.0 or ::, got {addr:?}"),
            ));
        }
        out.bind_address = addr;
    }
    if s.tls_cert_file.is_some() != s.tls_private_key_file.is_some() {
        return Err(invalid(
            "server.tlsCertFile".into(),
            "tlsCertFile and tlsPrivateKeyFile go together".into(),
        ));
    }
    out.tls_cert_file = s.tls_cert_file;
    out.tls_private_key_file = s.tls_private_key_file;
    if let Some(g) = s.shutdown_grace_period {
        out.shutdown_grace_period =
            parse_duration(&g).map_err(|m| invalid("server.shutdownGracePeriod".into(), m))?;
    }
    if let Some(n) = s.max_in_flight {
        out.max_in_flight = at_least_one(n).map_err(|m| invalid("server.maxInFlight".into(), m))?;
    }
    if let Some(n) = s.max_connections {
        out.max_connections =
            at_least_one(n).map_err(|m| invalid("server.maxConnections".into(), m))?;
    }
    let a = s.auth;
    let auth = &mut out.auth;
    auth.insecure_skip_auth = a.insecure_skip_auth.unwrap_or(false);
    auth.requestheader_client_ca_file = a.requestheader_client_ca_file;
    auth.requestheader_allowed_names = a.requestheader_allowed_names;
    auth.requestheader_username_headers = a.requestheader_username_headers;
    auth.requestheader_group_headers = a.requestheader_group_headers;
    auth.requestheader_extra_headers_prefix = a.requestheader_extra_headers_prefix;
    auth.client_ca_file = a.client_ca_file;
    if let Some(t) = a.token_review {
        auth.token_review = t;
    }
    Ok(())
}

pub fn validate_url(url: &str) -> Result<(), String> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        Ok(_) => Err(format!("expected an http:// or https:// URL, got {url:?}")),
        Err(e) => Err(format!(
            "expected a URL such as http://prometheus:9090, got {url:?}: {e}"
        )),
    }
}
