//! The HTTP API: what the kube-aggregator and the HPA controller call.

pub mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use std::time::Instant;

use axum::extract::{MatchedPath, RawQuery, Request, State};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use percent_encoding::percent_decode_str;

use crate::auth::Auth;
use crate::metrics::Metrics;
use crate::provider::{CustomRequest, ExternalRequest, MetricsProvider, ObjectName};
use crate::selector::Selector;
use crate::tls::PeerCertificates;
use wire::{
    json_response, ApiError, CUSTOM_GROUP, CUSTOM_VERSIONS, EXTERNAL_GROUP, EXTERNAL_VERSION,
};

#[derive(Clone)]
pub struct AppState {
    pub provider: Arc<dyn MetricsProvider>,
    pub ready: Arc<AtomicBool>,
    pub metrics: Arc<Metrics>,
    pub auth: Arc<Auth>,
}

impl AppState {
    pub fn new(provider: Arc<dyn MetricsProvider>, metrics: Arc<Metrics>, auth: Arc<Auth>) -> Self {
        Self {
            provider,
            ready: Arc::new(AtomicBool::new(false)),
            metrics,
            auth,
        }
    }
}

/// Authenticates and authorizes every request before it reaches a handler.
async fn authorize(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let chain = req
        .extensions()
        .get::<PeerCertificates>()
        .map(|p| p.0.clone())
        .unwrap_or_default();
    let verdict = state
        .auth
        .check(req.method(), req.uri().path(), req.headers(), &chain)
        .await;
    state.auth.strip_identity_headers(req.headers_mut());
    match verdict {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// A short, bounded route name for metrics: never the raw path, whose cardinality is the
/// client's to choose.
fn route_name(matched: Option<&str>) -> &'static str {
    match matched {
        Some(p) if p.ends_with("{*rest}") && p.contains(EXTERNAL_GROUP) => "external",
        Some(p) if p.ends_with("{*rest}") && p.contains(CUSTOM_GROUP) => "custom",
        Some(p) if p.starts_with("/apis") => "discovery",
        Some("/healthz" | "/livez" | "/readyz") => "health",
        Some("/openapi/v2") => "openapi",
        Some("/metrics") => "metrics",
        _ => "other",
    }
}

async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = route_name(
        req.extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
    );
    let m = &state.metrics;
    m.http_in_flight.inc();
    let started = Instant::now();
    let resp = next.run(req).await;
    m.http_in_flight.dec();
    m.http_duration
        .with_label_values(&[route])
        .observe(started.elapsed().as_secs_f64());
    m.http_requests
        .with_label_values(&[route, resp.status().as_str()])
        .inc();
    resp
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(),
    )
        .into_response()
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(ok))
        .route("/livez", get(ok))
        .route("/readyz", get(readyz))
        .route(
            "/openapi/v2",
            get(|| async { json_response(StatusCode::OK, &wire::openapi_v2()) }),
        )
        .route(
            "/apis",
            get(|| async { json_response(StatusCode::OK, &wire::api_group_list()) }),
        )
        .route("/apis/{group}", get(api_group))
        .route(
            "/apis/custom.metrics.k8s.io/{version}",
            get(custom_discovery),
        )
        .route(
            "/apis/custom.metrics.k8s.io/{version}/{*rest}",
            get(custom_metric),
        )
        .route(
            "/apis/external.metrics.k8s.io/{version}",
            get(external_discovery),
        )
        .route(
            "/apis/external.metrics.k8s.io/{version}/{*rest}",
            get(external_metric),
        )
        .route("/metrics", get(metrics))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

async fn ok() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        "ok".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: configuration not loaded",
        )
            .into_response()
    }
}

async fn fallback(uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "the server could not find the requested resource {}",
        uri.path()
    ))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{method} is not supported on {}: the metrics APIs are read-only",
            uri.path()
        ),
    )
}

async fn api_group(axum::extract::Path(group): axum::extract::Path<String>) -> Response {
    match wire::api_group(&group) {
        Some(g) => json_response(StatusCode::OK, &g),
        None => ApiError::not_found(format!(
            "the server could not find the requested resource /apis/{group}"
        ))
        .into_response(),
    }
}

fn check_custom_version(version: &str) -> Result<(), ApiError> {
    if CUSTOM_VERSIONS.contains(&version) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "the server could not find the requested resource: {CUSTOM_GROUP}/{version} is not served (served: v1beta2, v1beta1)"
        )))
    }
}

fn check_external_version(version: &str) -> Result<(), ApiError> {
    if version == EXTERNAL_VERSION {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "the server could not find the requested resource: {EXTERNAL_GROUP}/{version} is not served (served: v1beta1)"
        )))
    }
}

async fn custom_discovery(
    State(state): State<AppState>,
    axum::extract::Path(version): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    check_custom_version(&version)?;
    let body = wire::resource_list(
        &format!("{CUSTOM_GROUP}/{version}"),
        &state.provider.metrics(),
    );
    Ok(json_response(StatusCode::OK, &body))
}

async fn external_discovery(
    State(state): State<AppState>,
    axum::extract::Path(version): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    check_external_version(&version)?;
    let body = wire::resource_list(
        &format!("{EXTERNAL_GROUP}/{version}"),
        &state.provider.metrics(),
    );
    Ok(json_response(StatusCode::OK, &body))
}

/// The path segments after `/apis/<group>/<version>/`, each percent-decoded on its own so an
/// encoded `/` cannot add a segment and `%2A` reads as `*`.
fn segments_after_version(uri: &Uri) -> Result<Vec<String>, ApiError> {
    let path = uri.path();
    let rest = path
        .splitn(5, '/')
        .nth(4)
        .ok_or_else(|| ApiError::bad_request("malformed metrics path"))?;
    rest.split('/')
        .map(|seg| {
            let decoded = percent_decode_str(seg)
                .decode_utf8()
                .map_err(|_| ApiError::bad_request(format!("path segment {seg:?} is not UTF-8")))?;
            if decoded.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "empty path segment in {path}"
                )));
            }
            Ok(decoded.into_owned())
        })
        .collect()
}

/// Query parameters with form rules (`+` is a space), as the kube-aggregator re-encodes them.
fn query_params(raw: Option<&str>) -> Result<HashMap<String, String>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))?;
    Ok(pairs.into_iter().collect())
}

fn selector_param(params: &HashMap<String, String>, name: &str) -> Result<Selector, ApiError> {
    match params.get(name) {
        None => Ok(Selector::everything()),
        Some(s) => Selector::parse(s).map_err(|e| ApiError::bad_request(format!("{name}: {e}"))),
    }
}

fn check_name(kind: &str, name: &str) -> Result<(), ApiError> {
    // Namespaces and object names are DNS labels or subdomains; anything else is not a
    // Kubernetes object and would only reach Prometheus as noise.
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "invalid {kind} name {name:?}"
        )))
    }
}

fn check_metric(name: &str) -> Result<(), ApiError> {
    if crate::promql::is_valid_metric_name(name) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "invalid metric name {name:?}"
        )))
    }
}

async fn external_metric(
    State(state): State<AppState>,
    axum::extract::Path((version, _rest)): axum::extract::Path<(String, String)>,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    check_external_version(&version)?;
    let segs = segments_after_version(&uri)?;
    let (namespace, metric) = match segs.as_slice() {
        [ns_kw, ns, metric] if ns_kw == "namespaces" => (ns.clone(), metric.clone()),
        _ => {
            return Err(ApiError::bad_request(format!(
                "malformed external metrics path {}: expected /apis/{EXTERNAL_GROUP}/{EXTERNAL_VERSION}/namespaces/<namespace>/<metric>",
                uri.path()
            )))
        }
    };
    check_name("namespace", &namespace)?;
    check_metric(&metric)?;
    let params = query_params(raw.as_deref())?;
    let selector = selector_param(&params, "labelSelector")?;
    let req = ExternalRequest {
        namespace,
        metric: metric.clone(),
        selector,
    };
    let values = state.provider.external(&req).await?;
    Ok(json_response(
        StatusCode::OK,
        &wire::external_list(&metric, &values)?,
    ))
}

async fn custom_metric(
    State(state): State<AppState>,
    axum::extract::Path((version, _rest)): axum::extract::Path<(String, String)>,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    check_custom_version(&version)?;
    let segs = segments_after_version(&uri)?;
    let (namespace, resource, name, metric) = match segs.as_slice() {
        // The Namespace object itself: `namespaces/{ns}/metrics/{metric}`.
        [ns_kw, ns, metrics_kw, metric] if ns_kw == "namespaces" && metrics_kw == "metrics" => {
            (None, "namespaces".to_string(), ns.clone(), metric.clone())
        }
        [ns_kw, ns, resource, name, metric] if ns_kw == "namespaces" => {
            check_name("namespace", ns)?;
            (Some(ns.clone()), resource.clone(), name.clone(), metric.clone())
        }
        [resource, name, metric] => (None, resource.clone(), name.clone(), metric.clone()),
        _ => {
            return Err(ApiError::bad_request(format!(
                "malformed custom metrics path {}: expected namespaces/<ns>/<resource>/<name|*>/<metric>, <resource>/<name|*>/<metric> or namespaces/<ns>/metrics/<metric>",
                uri.path()
            )))
        }
    };
    if !resource
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        || resource.is_empty()
    {
        return Err(ApiError::bad_request(format!(
            "invalid resource {resource:?}"
        )));
    }
    check_metric(&metric)?;
    let name = if name == "*" {
        ObjectName::All
    } else {
        check_name("object", &name)?;
        ObjectName::Named(name)
    };
    let params = query_params(raw.as_deref())?;
    let selector = selector_param(&params, "labelSelector")?;
    let metric_selector = selector_param(&params, "metricLabelSelector")?;
    let req = CustomRequest {
        namespace,
        resource,
        name: name.clone(),
        metric: metric.clone(),
        selector,
        metric_selector,
    };
    let values = state.provider.custom(&req).await?;
    if let ObjectName::Named(n) = &name {
        // The HPA requires exactly one value for an Object metric.
        if values.len() != 1 {
            return Err(ApiError::not_found(format!(
                "metric {metric} for {} {n:?}: expected exactly one value, found {}",
                req.resource,
                values.len()
            )));
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &wire::custom_list(
            &version,
            &metric,
            &wire::label_selector(&req.metric_selector),
            &values,
        )?,
    ))
}
