//! What every request goes through, outermost first:
//!
//! 1. [`trace`]: a span per request;
//! 2. the guard, one middleware that runs these steps in order:
//!    [`parsed_path`] parses the path once, for everything below;
//!    [`request_metrics`] counts and times every answer, including the refusals below;
//!    [`in_flight`] refuses with 429 past the in-flight limit;
//!    [`authorize`] authenticates and authorizes;
//!    [`failure_log`] logs each failing metric request once per interval;
//! 3. [`body_limit`]: refuses oversized bodies with 413; then the routes.
//!
//! The steps share one middleware because each middleware costs allocations and clones on
//! every request, and a cached answer is otherwise cheap.

pub mod authorize;
pub mod body_limit;
pub mod failure_log;
pub mod in_flight;
pub mod parsed_path;
pub mod request_metrics;
pub mod trace;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::map_request_body::MapRequestBodyLayer;

use crate::auth::Auth;
use crate::metrics::Metrics;

/// Limits applied before a handler runs.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_in_flight: usize,
    pub max_body_bytes: usize,
    /// Least time between two log lines about the same failing metric request.
    pub failure_log_interval: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_in_flight: crate::config::DEFAULT_MAX_IN_FLIGHT,
            max_body_bytes: body_limit::MAX_BODY_BYTES,
            failure_log_interval: failure_log::DEFAULT_INTERVAL,
        }
    }
}

/// What the guard's steps keep between requests.
struct Guard {
    metrics: Arc<Metrics>,
    in_flight: Arc<in_flight::Limit>,
    auth: Arc<Auth>,
    failures: Arc<failure_log::FailureLog>,
}

/// `routes` wrapped in the whole stack, built once as one service: adding each layer with
/// `Router::layer` would box it again around every route, and every request would clone and
/// allocate through each of those boxes.
pub fn stack(routes: Router, metrics: Arc<Metrics>, auth: Arc<Auth>, limits: Limits) -> Router {
    let guard = Arc::new(Guard {
        metrics,
        in_flight: in_flight::Limit::new(limits.max_in_flight),
        auth,
        failures: failure_log::FailureLog::new(limits.failure_log_interval),
    });
    let service = ServiceBuilder::new()
        .layer(trace::layer())
        .layer(from_fn_with_state(guard, run_guard))
        .layer(body_limit::layer(limits.max_body_bytes))
        // The routes take axum's own body type again.
        .layer(MapRequestBodyLayer::new(Body::new))
        .service(routes);
    Router::new().fallback_service(service)
}

async fn run_guard(State(guard): State<Arc<Guard>>, mut req: Request, next: Next) -> Response {
    let path = parsed_path::insert(&mut req);
    let route = request_metrics::route_name(&path);
    let timing = request_metrics::Timing::start(&guard.metrics, route);
    let resp = async {
        let _place = match guard.in_flight.enter() {
            Ok(place) => place,
            Err(refusal) => return refusal.into_response(),
        };
        let caller = match authorize::check(&guard.auth, &path, &mut req).await {
            Ok(caller) => caller,
            Err(refusal) => return refusal.into_response(),
        };
        if !matches!(route, "custom" | "external") {
            return next.run(req).await;
        }
        // A Uri clone shares its bytes: nothing is copied for the answers that succeed.
        let uri = req.uri().clone();
        let resp = next.run(req).await;
        failure_log::record(&guard.failures, &path, &caller, &uri, &resp);
        resp
    }
    .await;
    timing.finish(resp.status());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthSettings;
    use axum::routing::{get, post};
    use tokio::sync::Notify;
    use tower::ServiceExt;

    const METRIC: &str = "/apis/external.metrics.k8s.io/v1beta1/namespaces/a/m";

    fn open_auth() -> Arc<Auth> {
        let settings = AuthSettings {
            insecure_skip_auth: true,
            ..AuthSettings::default()
        };
        Auth::new(&settings, None).unwrap()
    }

    fn limits(max_in_flight: usize) -> Limits {
        Limits {
            max_in_flight,
            ..Limits::default()
        }
    }

    #[tokio::test]
    async fn a_429_from_the_in_flight_limit_is_counted() {
        let release = Arc::new(Notify::new());
        let r = release.clone();
        let routes = Router::new().route(
            "/apis/external.metrics.k8s.io/v1beta1/{*rest}",
            get(move || {
                let r = r.clone();
                async move { r.notified().await }
            }),
        );
        let metrics = Metrics::new();
        let app = stack(routes, metrics.clone(), open_auth(), limits(1));
        let get = || Request::get(METRIC).body(Body::empty()).unwrap();
        let first = tokio::spawn(app.clone().oneshot(get()));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(app.clone().oneshot(get()).await.unwrap().status(), 429);
        release.notify_one();
        assert_eq!(first.await.unwrap().unwrap().status(), 200);
        let count = |code: &str| {
            metrics
                .http_requests
                .with_label_values(&["external", code])
                .get()
        };
        assert_eq!((count("200"), count("429")), (1, 1));
        assert_eq!(metrics.http_in_flight.get(), 0);
        // The place is back.
        release.notify_one();
        assert_eq!(app.oneshot(get()).await.unwrap().status(), 200);
    }

    #[tokio::test]
    async fn without_credentials_only_probes_pass() {
        // No Kubernetes API and no trusted CA: nobody can be authenticated.
        let auth = Auth::new(&AuthSettings::default(), None).unwrap();
        let routes = Router::new()
            .route("/readyz", get(|| async { "ok" }))
            .route(
                "/apis/external.metrics.k8s.io/v1beta1/{*rest}",
                get(|| async { "served" }),
            );
        let metrics = Metrics::new();
        let app = stack(routes, metrics.clone(), auth, Limits::default());
        let probe = Request::get("/readyz").body(Body::empty()).unwrap();
        assert_eq!(app.clone().oneshot(probe).await.unwrap().status(), 200);
        let metric = Request::get(METRIC)
            .header("x-remote-user", "system:admin")
            .header("x-remote-group", "system:masters")
            .body(Body::empty())
            .unwrap();
        assert_eq!(app.oneshot(metric).await.unwrap().status(), 401);
        let refused = metrics
            .http_requests
            .with_label_values(&["external", "401"])
            .get();
        assert_eq!(refused, 1);
    }

    #[tokio::test]
    async fn handlers_see_the_path_and_caller_but_no_identity_header() {
        let routes = Router::new().route(
            "/apis/external.metrics.k8s.io/v1beta1/{*rest}",
            get(|req: Request| async move {
                assert!(req.headers().get("x-remote-user").is_none());
                assert!(req.extensions().get::<crate::auth::Caller>().is_some());
                let path = req.extensions().get::<crate::path::RequestPath>().unwrap();
                path.api().unwrap().rest.join("|")
            }),
        );
        let app = stack(routes, Metrics::new(), open_auth(), Limits::default());
        let req = Request::get(METRIC)
            .header("x-remote-user", "system:admin")
            .body(Body::empty())
            .unwrap();
        let resp = app.oneshot(req).await.unwrap();
        let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"namespaces|a|m");
    }

    #[tokio::test]
    async fn oversized_bodies_are_refused_and_counted() {
        let routes = Router::new().route(
            "/apis/external.metrics.k8s.io/v1beta1/{*rest}",
            post(|body: String| async move { body }),
        );
        let metrics = Metrics::new();
        let small_limits = Limits {
            max_body_bytes: 8,
            ..Limits::default()
        };
        let app = stack(routes, metrics.clone(), open_auth(), small_limits);
        let small = Request::post(METRIC).body(Body::from("1234")).unwrap();
        assert_eq!(app.clone().oneshot(small).await.unwrap().status(), 200);
        let big = Request::post(METRIC).body(Body::from("123456789")).unwrap();
        assert_eq!(app.oneshot(big).await.unwrap().status(), 413);
        let count = metrics
            .http_requests
            .with_label_values(&["external", "413"])
            .get();
        assert_eq!(count, 1);
    }
}
