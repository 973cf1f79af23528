//! The configuration file (YAML) and the built-in signal set.
//!
//! Everything has a default, so the server runs with no file at all: the file only changes
//! the Prometheus connection and adds, replaces or disables signals. Errors name the file,
//! the field and what was expected, and a bad file is refused as a whole.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::promql::is_valid_label_name;

mod server;
mod signal;
#[cfg(test)]
mod tests;

pub use server::{
    validate_url, AuthSection, PrometheusSection, PrometheusSettings, ServerSection,
    ServerSettings, DEFAULT_BIND_ADDRESS, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_PROMETHEUS_TIMEOUT, DEFAULT_SECURE_PORT, DEFAULT_SHUTDOWN_GRACE,
};

pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(120);
pub const DEFAULT_RATE_WINDOW: Duration = Duration::from_secs(120);
pub const DEFAULT_PRAVEGA_LOOKBACK: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: {field}: {message}")]
    Invalid {
        file: String,
        field: String,
        message: String,
    },
}

/// The file as written. Unknown fields are errors, so a typo cannot silently fall back to a
/// default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileConfig {
    #[serde(default)]
    pub prometheus: PrometheusSection,
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub pods: PodsSection,
    #[serde(default)]
    pub cache: CacheSection,
    /// Include the built-in signals (default true). Entries in `signals` with a built-in
    /// name replace that built-in.
    pub builtin_signals: Option<bool>,
    /// Each entry is split into the fields every signal has and its kind's own options.
    #[serde(default)]
    pub signals: Vec<serde_yaml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CacheSection {
    pub refresh_interval: Option<String>,
    pub max_entries: Option<usize>,
    pub idle_after: Option<String>,
    pub max_concurrent_refreshes: Option<usize>,
    pub max_remembered: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodsSection {
    pub source: Option<PodSource>,
}

/// How the `labelSelector` of a `pods/*` request is resolved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PodSource {
    /// The Kubernetes API when one is reachable (in a cluster or with a kubeconfig), else labels.
    #[default]
    Auto,
    /// Always a watched pod cache from the Kubernetes API; start fails without one.
    Kubernetes,
    /// Match the selector against the series' own labels.
    Labels,
}

pub use crate::model::quality::{DataPolicy, Fallback};
pub use crate::signals::kinds::{SignalKind, SignalType, BUILTIN_SIGNALS};

/// As written in the file: `error`, `zero`, or a number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FallbackText {
    Word(String),
    Number(f64),
}

impl FallbackText {
    fn parse(self) -> Result<Fallback, String> {
        match self {
            FallbackText::Word(w) if w == "error" => Ok(Fallback::Error),
            FallbackText::Word(w) if w == "zero" => Ok(Fallback::Value(0.0)),
            FallbackText::Number(n) if n.is_finite() => Ok(Fallback::Value(n)),
            FallbackText::Word(w) => Err(format!("expected error, zero or a number, got {w:?}")),
            FallbackText::Number(n) => Err(format!("expected a finite number, got {n}")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Api {
    External,
    Custom,
}

/// The fields every signal has; a kind's own options are read by its module.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SignalSection {
    pub name: Option<String>,
    pub namespaced: Option<bool>,
    pub namespace_label: Option<String>,
    pub max_age: Option<String>,
    pub on_missing: Option<FallbackText>,
    #[serde(rename = "onNaN")]
    pub on_nan: Option<FallbackText>,
    pub on_infinite: Option<FallbackText>,
    pub on_negative: Option<FallbackText>,
    pub on_stale: Option<FallbackText>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub flink_label_values: Option<bool>,
}

/// While a Flink job restarts (every Reactive Mode rescale restarts it), its throughput drops
/// to zero and its backlog spikes for a while; a signal then holds its last good value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestartHold {
    /// A job running for less than this is still warming up.
    #[serde(with = "humantime_serde_compat")]
    pub warm_up: Duration,
    /// The longest a value is held; after that the data speaks for itself again.
    #[serde(with = "humantime_serde_compat")]
    pub max_hold: Duration,
}

/// 120 s: `runningTime` starts when the job enters RUNNING, before its tasks have deployed
/// and restored state (seconds to tens of seconds); Flink's per-second meters then average
/// over 60 s (`MeterView`), and Prometheus scrapes every 15–30 s. Shorter, the first
/// readings after a restart (busy ≈ 1000 ms/s, rates ramping from 0) are served.
pub const DEFAULT_RESTART_HOLD: RestartHold = RestartHold {
    warm_up: Duration::from_secs(120),
    max_hold: Duration::from_secs(300),
};

/// The effective configuration after defaults, file and flags.
#[derive(Debug, Clone)]
pub struct Config {
    pub prometheus: PrometheusSettings,
    pub server: ServerSettings,
    pub pod_source: PodSource,
    pub cache: CacheConfig,
    pub signals: Vec<SignalSpec>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheConfig {
    /// How often a requested query is refreshed; `None` turns the cache off.
    #[serde(with = "humantime_serde_compat::option")]
    pub refresh_interval: Option<Duration>,
    pub max_entries: usize,
    /// Queries not requested for this long are no longer refreshed and are dropped.
    #[serde(with = "humantime_serde_compat")]
    pub idle_after: Duration,
    /// Background refreshes running at once.
    pub max_concurrent_refreshes: usize,
    /// Requests whose last good answer is remembered (held while a job restarts).
    pub max_remembered: usize,
}

pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(15);
pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;
/// Below Prometheus' default `--query.max-concurrency` (20), leaving room for dashboards,
/// rules and the requests that find no value in the cache.
pub const DEFAULT_CONCURRENT_REFRESHES: usize = 8;
pub const DEFAULT_REMEMBERED: usize = 10_000;
pub const DEFAULT_IDLE_AFTER: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub struct SignalSpec {
    pub name: String,
    pub kind: SignalType,
    /// Add `<namespace_label>="<request namespace>"` to the queried series.
    pub namespaced: bool,
    pub namespace_label: String,
    /// Newest sample older than this is stale; `None` turns the check off.
    pub max_age: Option<Duration>,
    pub data: DataPolicy,
    /// Selector key → Prometheus label.
    pub labels: BTreeMap<String, String>,
    pub flink_label_values: bool,
    /// The kind with its own options: its queries and its computation.
    pub handler: Arc<dyn SignalKind>,
}

pub(crate) mod humantime_serde_compat {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub mod option {
        use std::time::Duration;

        pub fn serialize<S: serde::Serializer>(
            d: &Option<Duration>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }
    }
}

impl SignalSpec {
    /// Defaults for a signal of `kind` called `name`.
    pub fn new(name: &str, kind: SignalType) -> Self {
        Self::with_handler(name, crate::signals::kinds::default_kind(kind))
    }

    fn with_handler(name: &str, handler: Arc<dyn SignalKind>) -> Self {
        Self {
            name: name.to_string(),
            kind: handler.signal_type(),
            // Flink pods are scraped with Kubernetes service discovery and carry the
            // namespace they run in, which is the HPA's.
            namespaced: handler.default_namespaced(),
            namespace_label: "namespace".into(),
            max_age: handler.default_max_age(),
            data: DataPolicy::default(),
            labels: BTreeMap::new(),
            flink_label_values: handler.flink(),
            handler,
        }
    }

    pub fn api(&self) -> Api {
        self.handler.api()
    }

    /// For custom metrics: the described resource.
    pub fn resource(&self) -> &str {
        self.handler.resource()
    }

    /// The series label naming a described object.
    pub fn object_label(&self) -> &str {
        self.handler.object_label()
    }
}

pub fn builtin_signals() -> Vec<SignalSpec> {
    BUILTIN_SIGNALS
        .iter()
        .map(|(name, kind)| SignalSpec::new(name, *kind))
        .collect()
}

impl Default for Config {
    fn default() -> Self {
        Self {
            prometheus: PrometheusSettings {
                url: None,
                timeout: DEFAULT_PROMETHEUS_TIMEOUT,
                bearer_token_file: None,
                ca_file: None,
                insecure_skip_tls_verify: false,
                headers: BTreeMap::new(),
                accept_warnings: false,
                max_series: crate::prometheus::MAX_SERIES,
            },
            server: ServerSettings {
                secure_port: DEFAULT_SECURE_PORT,
                bind_address: DEFAULT_BIND_ADDRESS.into(),
                tls_cert_file: None,
                tls_private_key_file: None,
                shutdown_grace_period: DEFAULT_SHUTDOWN_GRACE,
                max_in_flight: DEFAULT_MAX_IN_FLIGHT,
                max_connections: DEFAULT_MAX_CONNECTIONS,
                auth: crate::auth::AuthSettings {
                    token_review: true,
                    ..Default::default()
                },
            },
            pod_source: PodSource::Auto,
            cache: CacheConfig {
                refresh_interval: Some(DEFAULT_REFRESH_INTERVAL),
                max_entries: DEFAULT_CACHE_ENTRIES,
                idle_after: DEFAULT_IDLE_AFTER,
                max_concurrent_refreshes: DEFAULT_CONCURRENT_REFRESHES,
                max_remembered: DEFAULT_REMEMBERED,
            },
            signals: builtin_signals(),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            file: file.clone(),
            source,
        })?;
        Self::from_yaml(&text, &file)
    }

    /// Parses and validates; `file` names the source in errors.
    pub fn from_yaml(text: &str, file: &str) -> Result<Self, ConfigError> {
        let raw: FileConfig = if text.trim().is_empty() {
            FileConfig::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| ConfigError::Parse {
                file: file.to_string(),
                message: e.to_string(),
            })?
        };
        Self::from_file_config(raw, file)
    }

    pub fn from_file_config(raw: FileConfig, file: &str) -> Result<Self, ConfigError> {
        let invalid = |field: String, message: String| ConfigError::Invalid {
            file: file.to_string(),
            field,
            message,
        };
        let mut cfg = Config::default();

        server::apply_prometheus(raw.prometheus, &mut cfg.prometheus, &invalid)?;
        server::apply_server(raw.server, &mut cfg.server, &invalid)?;
        cfg.pod_source = raw.pods.source.unwrap_or_default();
        let c = raw.cache;
        if let Some(r) = c.refresh_interval {
            cfg.cache.refresh_interval = if r == "0" || r == "off" {
                None
            } else {
                Some(
                    parse_duration(&r)
                        .and_then(nonzero)
                        .map_err(|m| invalid("cache.refreshInterval".into(), m))?,
                )
            };
        }
        if let Some(n) = c.max_entries {
            cfg.cache.max_entries =
                at_least_one(n).map_err(|m| invalid("cache.maxEntries".into(), m))?;
        }
        if let Some(i) = c.idle_after {
            cfg.cache.idle_after = parse_duration(&i)
                .and_then(nonzero)
                .map_err(|m| invalid("cache.idleAfter".into(), m))?;
        }
        if let Some(n) = c.max_concurrent_refreshes {
            cfg.cache.max_concurrent_refreshes =
                at_least_one(n).map_err(|m| invalid("cache.maxConcurrentRefreshes".into(), m))?;
        }
        if let Some(n) = c.max_remembered {
            cfg.cache.max_remembered =
                at_least_one(n).map_err(|m| invalid("cache.maxRemembered".into(), m))?;
        }

        let mut signals: Vec<SignalSpec> = if raw.builtin_signals.unwrap_or(true) {
            builtin_signals()
        } else {
            Vec::new()
        };
        let mut seen = std::collections::BTreeSet::new();
        for (i, section) in raw.signals.into_iter().enumerate() {
            let spec = signal::from_section(section, i).map_err(|(f, m)| invalid(f, m))?;
            if !seen.insert(spec.name.clone()) {
                return Err(invalid(
                    format!("signals[{i}].name"),
                    format!("{:?} is defined twice", spec.name),
                ));
            }
            match signals.iter_mut().find(|s| s.name == spec.name) {
                Some(existing) => *existing = spec,
                None => signals.push(spec),
            }
        }
        if signals.is_empty() {
            return Err(invalid(
                "signals".into(),
                "no signals: builtinSignals is false and no signals are listed".into(),
            ));
        }
        cfg.signals = signals;
        Ok(cfg)
    }
}

/// Where a `promql` signal's template receives the request's label matchers.
pub const MATCHERS_PLACEHOLDER: &str = "<<matchers>>";

pub(crate) fn check_label(l: &str) -> Result<(), String> {
    if is_valid_label_name(l) {
        Ok(())
    } else {
        Err(format!("{l:?} is not a valid Prometheus label name"))
    }
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|_| format!("expected a duration such as 30s, 2m or 1h, got {s:?}"))
}

/// A count that must not be 0 (a limit of nothing would refuse everything).
pub(crate) fn at_least_one(n: usize) -> Result<usize, String> {
    if n == 0 {
        Err("must be at least 1".into())
    } else {
        Ok(n)
    }
}

pub(crate) fn nonzero(d: Duration) -> Result<Duration, String> {
    if d.is_zero() {
        Err("must be greater than zero".into())
    } else {
        Ok(d)
    }
}
