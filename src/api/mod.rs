//! The HTTP API: what the kube-aggregator and the HPA controller call.
//!
//! [`layers`] is the tower stack every request goes through; [`extract`] turns a metric
//! request into a typed [`CustomRequest`](crate::provider::CustomRequest) or
//! [`ExternalRequest`](crate::provider::ExternalRequest); [`wire`] is the JSON shapes.

pub mod answers;
pub mod extract;
pub mod layers;
pub mod wire;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::auth::Auth;
use crate::metrics::Metrics;
use crate::provider::{MetricsProvider, ObjectName};
use crate::status::ApiError;
use answers::{AnswerKey, Answers, Kept};
use extract::{check_custom_version, check_external_version, CustomMetric, ExternalMetric};
pub use layers::Limits;
use wire::{json_response, CUSTOM_GROUP, EXTERNAL_GROUP};

#[derive(Clone)]
pub struct AppState {
    pub provider: Arc<dyn MetricsProvider>,
    pub ready: Arc<AtomicBool>,
    pub metrics: Arc<Metrics>,
    pub auth: Arc<Auth>,
    /// Serialized answers served again while the provider vouches for them.
    pub answers: Arc<Answers>,
}

impl AppState {
    pub fn new(provider: Arc<dyn MetricsProvider>, metrics: Arc<Metrics>, auth: Arc<Auth>) -> Self {
        Self {
            provider,
            ready: Arc::new(AtomicBool::new(false)),
            metrics,
            auth,
            answers: Arc::new(Answers::default()),
        }
    }

    /// A kept answer counts among the served values' ages as it did when first computed.
    fn observe_ages(&self, timestamps: &[f64]) {
        let now = crate::signals::now_unix();
        for t in timestamps {
            self.metrics.served_value_age.observe((now - t).max(0.0));
        }
    }

    /// `body` as the answer; kept for `key` when the provider says until when it holds.
    fn answer<T: serde::Serialize>(
        &self,
        key: AnswerKey,
        until: Option<std::time::Instant>,
        body: &T,
        timestamps: impl Iterator<Item = f64>,
    ) -> Response {
        let Some(until) = until else {
            return json_response(StatusCode::OK, body);
        };
        let bytes = axum::body::Bytes::from(serde_json::to_vec(body).unwrap_or_default());
        if !bytes.is_empty() {
            let kept = Kept {
                body: bytes.clone(),
                timestamps: timestamps.collect(),
            };
            self.answers.put(key, kept, until);
        }
        json_bytes(bytes)
    }
}

fn json_bytes(body: axum::body::Bytes) -> Response {
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
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

/// The routes behind the whole stack, with default limits.
pub fn router(state: AppState) -> Router {
    router_with(state, Limits::default())
}

/// The routes behind the whole stack ([`layers`]).
pub fn router_with(state: AppState, limits: Limits) -> Router {
    let routes = Router::new()
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
        .method_not_allowed_fallback(method_not_allowed);
    let routes = routes.with_state(state.clone());
    layers::stack(routes, state.metrics.clone(), state.auth.clone(), limits)
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

async fn external_metric(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let (mut parts, _) = request.into_parts();
    let key = state.answers.key(&parts.uri);
    if let Some(kept) = state.answers.get(key) {
        state.observe_ages(&kept.timestamps);
        return Ok(json_bytes(kept.body));
    }
    let ExternalMetric(req) = ExternalMetric::from_request_parts(&mut parts, &()).await?;
    let current = state.provider.external_current(&req).await?;
    let body = wire::external_list(&req.metric, &current.values)?;
    let timestamps = current.values.iter().map(|v| v.timestamp);
    Ok(state.answer(key, current.until, &body, timestamps))
}

async fn custom_metric(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let (mut parts, _) = request.into_parts();
    let key = state.answers.key(&parts.uri);
    if let Some(kept) = state.answers.get(key) {
        state.observe_ages(&kept.timestamps);
        return Ok(json_bytes(kept.body));
    }
    let CustomMetric { version, req } = CustomMetric::from_request_parts(&mut parts, &()).await?;
    let current = state.provider.custom_current(&req).await?;
    let values = &current.values;
    if let ObjectName::Named(n) = &req.name {
        // The HPA requires exactly one value for an Object metric.
        if values.len() != 1 {
            return Err(ApiError::not_found(format!(
                "metric {} for {} {n:?}: expected exactly one value, found {}",
                req.metric,
                req.resource,
                values.len()
            )));
        }
    }
    let selector = wire::label_selector(&req.metric_selector);
    let body = wire::custom_list(&version, &req.metric, &selector, values)?;
    let timestamps = values.iter().map(|v| v.timestamp);
    Ok(state.answer(key, current.until, &body, timestamps))
}
