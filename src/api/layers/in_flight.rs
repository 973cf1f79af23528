//! Refuses a request with 429 when `max` are already in flight, rather than queueing it: the
//! HPA retries on its next sync, and a queue would only add latency to every answer.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::Router;
use tokio::sync::Semaphore;

use crate::status::ApiError;

pub fn layer(r: Router, max: usize) -> Router {
    let permits = Arc::new(Semaphore::new(max));
    r.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let permit = permits.clone().try_acquire_owned();
            async move {
                match permit {
                    // Dropped when the response is produced.
                    Ok(_permit) => next.run(req).await,
                    Err(_) => ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too many requests in flight; retry later",
                    )
                    .into_response(),
                }
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tokio::sync::Notify;
    use tower::ServiceExt;

    #[tokio::test]
    async fn one_past_the_limit_gets_429() {
        let release = Arc::new(Notify::new());
        let r = release.clone();
        let app = layer(
            Router::new().route(
                "/",
                get(move || {
                    let r = r.clone();
                    async move { r.notified().await }
                }),
            ),
            1,
        );
        let first = tokio::spawn(
            app.clone()
                .oneshot(Request::get("/").body(Body::empty()).unwrap()),
        );
        // Let the first request take the only permit.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let second = app
            .clone()
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
        release.notify_one();
        assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
        // The permit is back.
        release.notify_one();
        let third = app
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(third.status(), StatusCode::OK);
    }
}
