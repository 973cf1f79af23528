//! Authenticates and authorizes every request before it reaches a handler, and removes the
//! identity headers so none reaches a handler unverified.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::api::AppState;
use crate::path::RequestPath;
use crate::tls::PeerCertificates;

pub fn layer(r: Router, state: &AppState) -> Router {
    r.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        authorize,
    ))
}

async fn authorize(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let chain = req
        .extensions()
        .get::<PeerCertificates>()
        .map(|p| p.0.clone())
        .unwrap_or_default();
    let parsed = match req.extensions().get::<RequestPath>() {
        Some(p) => p.clone(),
        None => RequestPath::parse(req.uri().path()),
    };
    let verdict = state
        .auth
        .check(req.method(), &parsed, req.headers(), &chain)
        .await;
    state.auth.strip_identity_headers(req.headers_mut());
    match verdict {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Auth, AuthSettings};
    use crate::metrics::Metrics;
    use axum::body::Body;
    use axum::routing::get;
    use std::sync::Arc;
    use tower::ServiceExt;

    struct Nothing;
    #[async_trait::async_trait]
    impl crate::provider::MetricsProvider for Nothing {
        fn metrics(&self) -> Vec<crate::provider::MetricInfo> {
            Vec::new()
        }
        async fn external(
            &self,
            _: &crate::provider::ExternalRequest,
        ) -> Result<Vec<crate::provider::ExternalValue>, crate::provider::MetricError> {
            Ok(Vec::new())
        }
        async fn custom(
            &self,
            _: &crate::provider::CustomRequest,
        ) -> Result<Vec<crate::provider::CustomValue>, crate::provider::MetricError> {
            Ok(Vec::new())
        }
    }

    #[tokio::test]
    async fn without_credentials_only_probes_pass() {
        // No Kubernetes API and no trusted CA: nobody can be authenticated.
        let auth = Auth::new(&AuthSettings::default(), None).unwrap();
        let state = AppState::new(Arc::new(Nothing), Metrics::new(), auth);
        let routes = Router::new()
            .route("/readyz", get(|| async { "ok" }))
            .route(
                "/apis/external.metrics.k8s.io/v1beta1/{*rest}",
                get(|req: Request| async move {
                    // Identity headers never reach a handler.
                    assert!(req.headers().get("x-remote-user").is_none());
                    "served"
                }),
            );
        let app = layer(routes, &state);
        let probe = Request::get("/readyz").body(Body::empty()).unwrap();
        assert_eq!(app.clone().oneshot(probe).await.unwrap().status(), 200);
        let metric = Request::get("/apis/external.metrics.k8s.io/v1beta1/namespaces/a/m")
            .header("x-remote-user", "system:admin")
            .header("x-remote-group", "system:masters")
            .body(Body::empty())
            .unwrap();
        let resp = app.oneshot(metric).await.unwrap();
        assert_eq!(resp.status(), 401);
    }
}
