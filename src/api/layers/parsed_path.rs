//! Parses the path once and leaves it in the request's extensions.

use crate::path::RequestPath;
use axum::extract::Request;

/// `req`'s path, parsed and left in its extensions for the handlers.
pub fn insert(req: &mut Request) -> RequestPath {
    let parsed = RequestPath::parse(req.uri().path());
    req.extensions_mut().insert(parsed.clone());
    parsed
}

/// The parsed path of `req`, parsing it here if no layer did.
pub fn of(parts: &http::request::Parts) -> RequestPath {
    parts
        .extensions
        .get::<RequestPath>()
        .cloned()
        .unwrap_or_else(|| RequestPath::parse(parts.uri.path()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use axum::{Extension, Router};
    use tower::ServiceExt;

    #[tokio::test]
    async fn handlers_see_the_decoded_path() {
        let app = Router::new()
            .route(
                "/{*rest}",
                get(|Extension(p): Extension<RequestPath>| async move {
                    p.api().map(|a| a.rest.join("|")).unwrap_or_default()
                }),
            )
            .layer(axum::middleware::from_fn(
                |mut req: Request, next: axum::middleware::Next| async move {
                    insert(&mut req);
                    next.run(req).await
                },
            ));
        let resp = app
            .oneshot(
                Request::get("/apis/g/v/namespaces/a%2Fb/%2A")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"namespaces|a/b|*");
    }
}
