//! A client for Prometheus' HTTP query API (also Thanos, Cortex, Mimir, VictoriaMetrics).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::PrometheusSettings;

#[derive(Debug, thiserror::Error)]
pub enum PromError {
    #[error("Prometheus client setup failed: {0}")]
    Setup(String),
    #[error("Prometheus at {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("Prometheus at {url} did not answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("Prometheus answered HTTP {status}: {error_type}: {error}")]
    Api {
        status: u16,
        error_type: String,
        error: String,
    },
    #[error("Prometheus answered something unreadable: {0}")]
    Decode(String),
    #[error("Prometheus' answer is larger than {0} bytes; narrow the query")]
    TooLarge(usize),
    #[error(
        "Prometheus' answer has {0} series, more than the {1} a query may return; narrow the query"
    )]
    TooManySeries(usize, usize),
}

/// Largest answer read from Prometheus: a query that returns more is a configuration mistake,
/// not something to hold in memory.
const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;
/// Most series one query may return, unless `prometheus.maxSeries` says otherwise.
pub const MAX_SERIES: usize = 100_000;

impl PromError {
    /// Whether trying later may work (the server is down, overloaded or slow) as opposed to a
    /// query Prometheus refuses.
    pub fn is_unavailable(&self) -> bool {
        match self {
            PromError::Unreachable { .. } | PromError::Timeout { .. } => true,
            PromError::Api { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// One sample of an instant-query result.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    /// Evaluation time reported by Prometheus, Unix seconds.
    pub timestamp: f64,
}

#[derive(Debug, Clone, Default)]
pub struct QueryResult {
    pub samples: Vec<Sample>,
    /// Warnings: the answer may be incomplete or wrong (a store down, a partial result).
    pub warnings: Vec<String>,
    /// Informational annotations ("metric might not be a counter"): the answer is complete.
    pub infos: Vec<String>,
}

/// One series of a range-query result: `(Unix seconds, value)` points, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, Default)]
pub struct RangeResult {
    pub series: Vec<RangeSeries>,
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    query_url: String,
    range_url: String,
    base: String,
    timeout: Duration,
    token_file: Option<PathBuf>,
    accept_warnings: bool,
    max_series: usize,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    status: String,
    #[serde(default, borrow)]
    data: Option<Data<'a>>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
    /// Prometheus ≥ 2.54 and 3.x send info annotations here.
    #[serde(default)]
    infos: Vec<String>,
}

/// The result is kept as its JSON text, borrowed from the body, and read once into its typed
/// form: going through a `serde_json::Value` tree first held every series of a large answer
/// twice over, as a tree of maps and again as samples.
#[derive(Deserialize)]
struct Data<'a> {
    #[serde(rename = "resultType")]
    result_type: String,
    #[serde(borrow)]
    result: &'a RawValue,
}

#[derive(Deserialize)]
struct MatrixItem<'a> {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(borrow)]
    values: Vec<(f64, Cow<'a, str>)>,
}

#[derive(Deserialize)]
struct VectorItem<'a> {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(borrow)]
    value: (f64, Cow<'a, str>),
}

fn read<'a, T: Deserialize<'a>>(raw: &'a RawValue) -> Result<T, PromError> {
    serde_json::from_str(raw.get()).map_err(|e| PromError::Decode(e.to_string()))
}

impl Client {
    pub fn new(settings: &PrometheusSettings) -> Result<Self, PromError> {
        let base = settings
            .url
            .clone()
            .ok_or_else(|| PromError::Setup("no Prometheus URL configured".into()))?;
        let base = base.trim_end_matches('/').to_string();
        let mut headers = HeaderMap::new();
        for (k, v) in &settings.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| PromError::Setup(format!("header {k}: {e}")))?;
            let value = HeaderValue::from_str(v)
                .map_err(|e| PromError::Setup(format!("header {k}: {e}")))?;
            headers.insert(name, value);
        }
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("flink-hpa-bridge/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &settings.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| PromError::Setup(format!("caFile {}: {e}", ca.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| PromError::Setup(format!("caFile {}: {e}", ca.display())))?;
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        if settings.insecure_skip_tls_verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .map_err(|e| PromError::Setup(e.to_string()))?;
        Ok(Self {
            http,
            query_url: format!("{base}/api/v1/query"),
            range_url: format!("{base}/api/v1/query_range"),
            base,
            timeout: settings.timeout,
            token_file: settings.bearer_token_file.clone(),
            accept_warnings: settings.accept_warnings,
            max_series: settings.max_series,
        })
    }

    /// Whether answers with warnings are used (they may be partial).
    pub fn accepts_warnings(&self) -> bool {
        self.accept_warnings
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Evaluates `query` at the current time. Sent as a form POST so long queries never hit
    /// URL length limits.
    pub async fn instant(&self, query: &str) -> Result<QueryResult, PromError> {
        self.instant_at(query, None).await
    }

    /// Evaluates `query` at `time` (Unix seconds), or now.
    pub async fn instant_at(
        &self,
        query: &str,
        time: Option<f64>,
    ) -> Result<QueryResult, PromError> {
        let mut form = vec![("query", query.to_string())];
        if let Some(t) = time {
            form.push(("time", format!("{t:.3}")));
        }
        let (status, body) = self.call(&self.query_url, &form).await?;
        let (data, Notes { warnings, infos }) = decode(status, &body)?;
        let samples = match data.result_type.as_str() {
            "vector" => {
                let items: Vec<VectorItem> = read(data.result)?;
                if items.len() > self.max_series {
                    return Err(PromError::TooManySeries(items.len(), self.max_series));
                }
                items
                    .into_iter()
                    .map(|i| Sample {
                        labels: i.metric,
                        value: parse_value(&i.value.1),
                        timestamp: i.value.0,
                    })
                    .collect()
            }
            "scalar" => {
                let (ts, v): (f64, Cow<str>) = read(data.result)?;
                vec![Sample {
                    labels: BTreeMap::new(),
                    value: parse_value(&v),
                    timestamp: ts,
                }]
            }
            other => {
                return Err(PromError::Decode(format!(
                    "result type {other} where an instant vector or scalar was expected"
                )))
            }
        };
        Ok(QueryResult {
            samples,
            warnings,
            infos,
        })
    }

    /// Evaluates `query` at every `step` seconds from `start` to `end` (Unix seconds).
    pub async fn range(
        &self,
        query: &str,
        start: f64,
        end: f64,
        step: f64,
    ) -> Result<RangeResult, PromError> {
        let form = vec![
            ("query", query.to_string()),
            ("start", format!("{start:.3}")),
            ("end", format!("{end:.3}")),
            ("step", format!("{step}")),
        ];
        let (status, body) = self.call(&self.range_url, &form).await?;
        let (data, Notes { warnings, infos }) = decode(status, &body)?;
        if data.result_type != "matrix" {
            return Err(PromError::Decode(format!(
                "result type {} where a range vector was expected",
                data.result_type
            )));
        }
        let items: Vec<MatrixItem> = read(data.result)?;
        if items.len() > self.max_series {
            return Err(PromError::TooManySeries(items.len(), self.max_series));
        }
        let series = items
            .into_iter()
            .map(|i| RangeSeries {
                labels: i.metric,
                points: i
                    .values
                    .into_iter()
                    .map(|(t, v)| (t, parse_value(&v)))
                    .collect(),
            })
            .collect();
        Ok(RangeResult {
            series,
            warnings,
            infos,
        })
    }

    /// Whether Prometheus answers at all: any HTTP answer from its build-info endpoint counts
    /// (Thanos and Mimir may not serve it), so only an unreachable host or a timeout fails.
    /// Not a query, so it does not show among Prometheus' query counts.
    pub async fn reachable(&self) -> Result<(), PromError> {
        let url = format!(
            "{}/api/v1/status/buildinfo",
            self.base.trim_end_matches('/')
        );
        self.http
            .get(&url)
            .send()
            .await
            .map(drop)
            .map_err(|e| self.transport_error(e))
    }

    /// Sends one query request and returns the answer's status and body.
    async fn call(&self, url: &str, form: &[(&str, String)]) -> Result<(u16, Vec<u8>), PromError> {
        let mut req = self.http.post(url).form(form);
        if let Some(path) = &self.token_file {
            // Read on every query: projected service-account tokens rotate on disk.
            let token = tokio::fs::read_to_string(path).await.map_err(|e| {
                PromError::Setup(format!("bearerTokenFile {}: {e}", path.display()))
            })?;
            req = req.header(AUTHORIZATION, format!("Bearer {}", token.trim()));
        }
        let resp = req.send().await.map_err(|e| self.transport_error(e))?;
        let status = resp.status().as_u16();
        let mut resp = resp;
        let mut body: Vec<u8> = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport_error(e))? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(PromError::TooLarge(MAX_RESPONSE_BYTES));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }

    fn transport_error(&self, e: reqwest::Error) -> PromError {
        if e.is_timeout() {
            PromError::Timeout {
                url: self.base.clone(),
                timeout: self.timeout,
            }
        } else {
            let mut reason = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                reason = format!("{reason}: {s}");
                src = s.source();
            }
            PromError::Unreachable {
                url: self.base.clone(),
                reason,
            }
        }
    }
}

/// An answer's annotations, sorted into warnings and infos.
#[derive(Debug, Default, PartialEq)]
struct Notes {
    warnings: Vec<String>,
    infos: Vec<String>,
}

/// Prometheus 2.48–2.53 send PromQL's info annotations (e.g. "metric might not be a counter"
/// for `rate()` over a gauge-typed counter, as Flink's reporter and kafka_exporter export
/// theirs) among the warnings, as strings that start with this (`util/annotations`'
/// `PromQLInfo`); 2.54 and later send them in `infos`.
const INFO_PREFIX: &str = "PromQL info:";

/// Reads an answer body: its data and annotations, or the error it carries.
fn decode(status: u16, body: &[u8]) -> Result<(Data<'_>, Notes), PromError> {
    let env: Envelope = serde_json::from_slice(body).map_err(|e| {
        if status >= 400 {
            PromError::Api {
                status,
                error_type: "http".into(),
                error: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            }
        } else {
            PromError::Decode(e.to_string())
        }
    })?;
    if env.status != "success" {
        return Err(PromError::Api {
            status,
            error_type: env.error_type.unwrap_or_default(),
            error: env.error.unwrap_or_default(),
        });
    }
    let data = env
        .data
        .ok_or_else(|| PromError::Decode("success without data".into()))?;
    let (infos, warnings): (Vec<String>, Vec<String>) = env
        .warnings
        .into_iter()
        .partition(|w| w.starts_with(INFO_PREFIX));
    let mut notes = Notes { warnings, infos };
    notes.infos.extend(env.infos);
    Ok((data, notes))
}

/// Prometheus encodes values as strings, including `NaN`, `+Inf` and `-Inf`. Anything
/// unparseable becomes NaN, which every consumer treats as "no value".
pub fn parse_value(s: &str) -> f64 {
    match s {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => s.parse().unwrap_or(f64::NAN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/data/prometheus-answers/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn info_annotations_are_not_warnings_in_any_shape() {
        // 2.42 (this machine's): no annotations at all.
        let (_, n) = decode(200, &recorded("v2.42-rate-over-gauge.json")).unwrap();
        assert_eq!(n, Notes::default());
        // 2.48–2.53: the info travels among the warnings.
        let (_, n) = decode(200, &recorded("v2.53-info-in-warnings.json")).unwrap();
        assert!(n.warnings.is_empty(), "{n:?}");
        assert_eq!(n.infos.len(), 1);
        assert!(n.infos[0].contains("might not be a counter"));
        // 2.54 and 3.x: a field of its own.
        let (_, n) = decode(200, &recorded("v3-infos-field.json")).unwrap();
        assert!(n.warnings.is_empty(), "{n:?}");
        assert_eq!(n.infos.len(), 1);
        // A real warning (a partial answer from Thanos) stays a warning next to an info.
        let (_, n) = decode(200, &recorded("thanos-partial-and-info.json")).unwrap();
        assert_eq!(n.warnings.len(), 1, "{n:?}");
        assert!(n.warnings[0].contains("partial response"));
        assert_eq!(n.infos.len(), 1);
    }

    #[test]
    fn values_including_specials() {
        assert_eq!(parse_value("1.5"), 1.5);
        assert_eq!(parse_value("+Inf"), f64::INFINITY);
        assert_eq!(parse_value("-Inf"), f64::NEG_INFINITY);
        assert!(parse_value("NaN").is_nan());
        assert!(parse_value("garbage").is_nan());
    }
}
