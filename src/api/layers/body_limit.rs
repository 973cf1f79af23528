//! Refuses request bodies over a limit with 413: the API is read-only, so GETs carry none.

use tower_http::limit::RequestBodyLimitLayer;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn layer(max_bytes: usize) -> RequestBodyLimitLayer {
    RequestBodyLimitLayer::new(max_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::extract::Request;
    use axum::routing::post;
    use axum::Router;
    use tower::ServiceExt;

    #[tokio::test]
    async fn oversized_bodies_are_refused() {
        let app = Router::new()
            .route("/", post(|body: String| async move { body }))
            .layer(layer(8));
        let small = Request::post("/").body(Body::from("1234")).unwrap();
        assert_eq!(app.clone().oneshot(small).await.unwrap().status(), 200);
        let big = Request::post("/").body(Body::from("123456789")).unwrap();
        assert_eq!(app.oneshot(big).await.unwrap().status(), 413);
    }
}
