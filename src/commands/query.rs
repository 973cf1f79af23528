//! `query`: one metric asked once, through the same router and provider as the server.

use std::io::Write;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::http::StatusCode;
use serde_json::Value;
use tower::ServiceExt;

use crate::api::{self, extract, AppState};
use crate::auth::Auth;
use crate::config::{Api, Config, SignalSpec};
use crate::path::is_cluster_scoped;
use crate::prometheus;
use crate::provider::{
    CustomRequest, CustomValue, ExternalRequest, ExternalValue, MetricError, MetricInfo,
    MetricsProvider, ObjectName,
};
use crate::selector::Selector;
use crate::signals::{Evaluation, Mode, Signals};

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

/// The provider the `query` command puts behind the API: the server's signals, asked fresh
/// (no cache), keeping the last evaluation's details to show them.
struct Inspecting {
    signals: Signals,
    last: Mutex<Option<Evaluation>>,
}

impl Inspecting {
    fn keep(&self, eval: Option<Evaluation>) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = eval;
    }
}

#[async_trait]
impl MetricsProvider for Inspecting {
    fn metrics(&self) -> Vec<MetricInfo> {
        self.signals.metrics()
    }

    async fn external(&self, req: &ExternalRequest) -> Result<Vec<ExternalValue>, MetricError> {
        let (answer, eval) = self.signals.external_with(req, Mode::Inspect).await;
        self.keep(eval);
        answer
    }

    async fn custom(&self, req: &CustomRequest) -> Result<Vec<CustomValue>, MetricError> {
        let (answer, eval) = self.signals.custom_with(req, Mode::Inspect).await;
        self.keep(eval);
        answer
    }
}

/// The request the HPA would send for `args`, as a path and query string.
fn hpa_request(spec: &SignalSpec, args: &QueryArgs) -> Result<String, QueryError> {
    let parse = |s: &str, flag: &'static str| {
        Selector::parse(s).map_err(|source| QueryError::Selector { flag, source })
    };
    let mut query: Vec<(&str, String)> = Vec::new();
    let path = match spec.api() {
        Api::External => {
            let selector = parse(&args.selector, "--selector")?;
            if !selector.is_empty() {
                query.push(("labelSelector", selector.to_string()));
            }
            extract::external_path(&ExternalRequest {
                namespace: args.namespace.clone(),
                metric: args.metric.clone(),
                selector,
            })
        }
        Api::Custom => {
            let metric_selector = parse(&args.metric_selector, "--metric-selector")?;
            let (name, selector) = match &args.name {
                Some(n) => (ObjectName::Named(n.clone()), Selector::everything()),
                None => (ObjectName::All, parse(&args.selector, "--selector")?),
            };
            if !selector.is_empty() {
                query.push(("labelSelector", selector.to_string()));
            }
            if !metric_selector.is_empty() {
                query.push(("metricLabelSelector", metric_selector.to_string()));
            }
            let resource = spec.resource().to_string();
            // The one scope rule: cluster-scoped objects are asked without a namespace.
            let namespace = (!is_cluster_scoped(&resource)).then(|| args.namespace.clone());
            let name = match (&resource[..], &args.name) {
                // An Object metric on a Namespace describes the HPA's own namespace.
                ("namespaces", None) => ObjectName::Named(args.namespace.clone()),
                _ => name,
            };
            extract::custom_path(
                "v1beta2",
                &CustomRequest {
                    namespace,
                    resource,
                    name,
                    metric: args.metric.clone(),
                    selector,
                    metric_selector,
                },
            )
        }
    };
    let qs = serde_urlencoded::to_string(&query).unwrap_or_default();
    Ok(if qs.is_empty() {
        path
    } else {
        format!("{path}?{qs}")
    })
}

/// Why `query` could not ask.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("unknown metric {metric:?}; configured: {configured}")]
    UnknownMetric { metric: String, configured: String },
    #[error("{flag}: {source}")]
    Selector {
        flag: &'static str,
        #[source]
        source: crate::selector::SelectorError,
    },
    #[error(transparent)]
    Prometheus(#[from] prometheus::PromError),
    #[error("the request did not complete: {0}")]
    Request(String),
}

/// `query`: asks one metric once, through the same API router and provider as the server,
/// and prints the PromQL, the samples and the answer the HPA would receive. Returns whether
/// that answer is a value (HTTP 200).
pub async fn query(
    cfg: &Config,
    args: &QueryArgs,
    out: &mut impl Write,
) -> Result<bool, QueryError> {
    let spec = cfg
        .signals
        .iter()
        .find(|s| s.name == args.metric)
        .ok_or_else(|| QueryError::UnknownMetric {
            metric: args.metric.clone(),
            configured: cfg
                .signals
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let uri = hpa_request(spec, args)?;
    let prom = prometheus::Client::new(&cfg.prometheus)?;
    let provider = Arc::new(Inspecting {
        signals: Signals::new(cfg, prom, None, crate::metrics::Metrics::new()),
        last: Mutex::new(None),
    });
    let state = AppState::new(
        provider.clone(),
        crate::metrics::Metrics::new(),
        Auth::allow_all(),
    );
    let request = http::Request::get(&uri)
        .body(axum::body::Body::empty())
        .map_err(|e| QueryError::Request(e.to_string()))?;
    let response = api::router(state)
        .oneshot(request)
        .await
        .map_err(|e| QueryError::Request(e.to_string()))?;
    let code = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .map_err(|e| QueryError::Request(e.to_string()))?;
    let eval = provider
        .last
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();

    let _ = writeln!(out, "PromQL sent to {}:", provider.signals.backend_url());
    let promql = eval.as_ref().and_then(|e| e.promql.as_deref());
    let _ = writeln!(
        out,
        "  {}",
        promql.unwrap_or("(none: the request was refused before querying)")
    );
    if let Some(eval) = &eval {
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
    }
    let _ = writeln!(out, "Request: GET {uri}");
    let _ = writeln!(out, "What the HPA would receive (HTTP {}):", code.as_u16());
    let shown = serde_json::from_slice::<Value>(&body)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
    let _ = writeln!(out, "{shown}");
    Ok(code == StatusCode::OK)
}
