//! Counts and times every answer by route and status code, including the refusals of the
//! layers inside it (429 past the in-flight limit, 413, 401/403).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;

use crate::api::wire::{CUSTOM_GROUP, EXTERNAL_GROUP};
use crate::metrics::Metrics;
use crate::path::RequestPath;

pub fn layer(r: Router, metrics: Arc<Metrics>) -> Router {
    r.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| track(metrics.clone(), req, next),
    ))
}

/// A short, bounded route name: never the raw path, whose cardinality is the client's to
/// choose. The names follow the router's routes.
pub fn route_name(path: &RequestPath) -> &'static str {
    if let Some(api) = path.api() {
        let has_rest = api.rest.iter().any(|s| !s.is_empty());
        return match api.group {
            EXTERNAL_GROUP if has_rest => "external",
            CUSTOM_GROUP if has_rest => "custom",
            EXTERNAL_GROUP | CUSTOM_GROUP => "discovery",
            _ => "other",
        };
    }
    match path.as_str() {
        "/healthz" | "/livez" | "/readyz" => "health",
        "/openapi/v2" => "openapi",
        "/metrics" => "metrics",
        p if p == "/apis" || p.starts_with("/apis/") => "discovery",
        _ => "other",
    }
}

async fn track(m: Arc<Metrics>, req: Request, next: Next) -> Response {
    let route = match req.extensions().get::<RequestPath>() {
        Some(p) => route_name(p),
        None => route_name(&RequestPath::parse(req.uri().path())),
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tokio::sync::Notify;
    use tower::ServiceExt;

    #[test]
    fn route_names_are_bounded() {
        let name = |p: &str| route_name(&RequestPath::parse(p));
        assert_eq!(
            name("/apis/external.metrics.k8s.io/v1beta1/namespaces/a/m"),
            "external"
        );
        assert_eq!(
            name("/apis/custom.metrics.k8s.io/v1beta2/namespaces/a/pods/*/m"),
            "custom"
        );
        assert_eq!(name("/apis/custom.metrics.k8s.io/v1beta2"), "discovery");
        assert_eq!(name("/apis/custom.metrics.k8s.io"), "discovery");
        assert_eq!(name("/apis"), "discovery");
        assert_eq!(name("/apis/metrics.k8s.io/v1beta1/pods"), "other");
        assert_eq!(name("/readyz"), "health");
        assert_eq!(name("/openapi/v2"), "openapi");
        assert_eq!(name("/metrics"), "metrics");
        assert_eq!(name("/x/y"), "other");
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
        let app = layer(super::super::in_flight::layer(routes, 1), metrics.clone());
        let get = || {
            Request::get("/apis/external.metrics.k8s.io/v1beta1/namespaces/a/m")
                .body(Body::empty())
                .unwrap()
        };
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
    }
}
