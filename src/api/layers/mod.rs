//! The tower stack every request goes through, outermost first:
//!
//! 1. [`trace`]: a span per request, and one log line per failed answer;
//! 2. [`parsed_path`]: the path parsed once, for everything below;
//! 3. [`request_metrics`]: counts and times every answer, including the refusals below;
//! 4. [`in_flight`]: refuses with 429 past the in-flight limit;
//! 5. [`body_limit`]: refuses oversized bodies with 413;
//! 6. [`authorize`]: authentication and authorization;
//! 7. [`failure_log`]: one log line per failing metric request and interval, then the routes.

pub mod authorize;
pub mod body_limit;
pub mod failure_log;
pub mod in_flight;
pub mod parsed_path;
pub mod request_metrics;
pub mod trace;

use axum::Router;

use super::AppState;

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

/// `routes` wrapped in the whole stack. Layers added later run earlier, so they are listed
/// here innermost first.
pub fn stack(routes: Router, state: &AppState, limits: Limits) -> Router {
    let r = failure_log::layer(
        routes,
        failure_log::FailureLog::new(limits.failure_log_interval),
    );
    let r = authorize::layer(r, state);
    let r = body_limit::layer(r, limits.max_body_bytes);
    let r = in_flight::layer(r, limits.max_in_flight);
    let r = request_metrics::layer(r, state.metrics.clone());
    let r = parsed_path::layer(r);
    trace::layer(r)
}
