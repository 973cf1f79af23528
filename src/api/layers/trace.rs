//! A tracing span per request (method, path, status and latency at debug level). Failed
//! answers are logged by [`super::failure_log`], with what they were about, not here.

use axum::Router;
use tower_http::trace::TraceLayer;

pub fn layer(r: Router) -> Router {
    r.layer(TraceLayer::new_for_http().on_failure(()))
}
