//! Counts and times every answer by route and status code, including the refusals of the
//! layers inside it (429 past the in-flight limit, 413, 401/403).

use std::time::Instant;

use axum::http::StatusCode;

use crate::api::wire::{CUSTOM_GROUP, EXTERNAL_GROUP};
use crate::metrics::Metrics;
use crate::path::RequestPath;

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

/// One request being served: counted in flight from [`Timing::start`] until dropped, even
/// when the client goes away before the answer; timed and counted by status at
/// [`Timing::finish`].
pub struct Timing<'a> {
    metrics: &'a Metrics,
    route: &'static str,
    started: Instant,
}

impl<'a> Timing<'a> {
    pub fn start(metrics: &'a Metrics, route: &'static str) -> Self {
        metrics.http_in_flight.inc();
        Self {
            metrics,
            route,
            started: Instant::now(),
        }
    }

    pub fn finish(self, status: StatusCode) {
        let m = self.metrics;
        m.http_duration
            .with_label_values(&[self.route])
            .observe(self.started.elapsed().as_secs_f64());
        m.http_requests
            .with_label_values(&[self.route, status.as_str()])
            .inc();
    }
}

impl Drop for Timing<'_> {
    fn drop(&mut self) {
        self.metrics.http_in_flight.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_request_is_in_flight_until_its_timing_is_dropped() {
        let m = Metrics::new();
        let t = Timing::start(&m, "external");
        assert_eq!(m.http_in_flight.get(), 1);
        t.finish(StatusCode::NOT_FOUND);
        assert_eq!(m.http_in_flight.get(), 0);
        let count = m
            .http_requests
            .with_label_values(&["external", "404"])
            .get();
        assert_eq!(count, 1);
        // A client that goes away drops the request's future and its timing with it.
        drop(Timing::start(&m, "external"));
        assert_eq!(m.http_in_flight.get(), 0);
    }
}
