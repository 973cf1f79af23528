//! The server's own metrics, served at `/metrics` in the Prometheus text format.

use std::sync::Arc;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub http_in_flight: IntGauge,
    pub queries: IntCounterVec,
    pub query_duration: HistogramVec,
    pub cache_lookups: IntCounterVec,
    pub cache_evictions: IntCounter,
    pub cache_entries: IntGauge,
    pub served_value_age: Histogram,
    pub job_state_missing: IntCounterVec,
    pub prometheus_up: IntGauge,
}

fn register<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    r.register(Box::new(c.clone()))
        .expect("metric names are constant and unique");
    c
}

impl Metrics {
    /// Built once at start; the definitions are constants, so construction cannot fail.
    pub fn new() -> Arc<Self> {
        let r = Registry::new_custom(Some("flink_hpa_bridge".into()), None)
            .expect("constant registry prefix");
        let latency_buckets = vec![
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            2.5, 5.0, 10.0,
        ];
        let m = Metrics {
            http_requests: register(
                &r,
                IntCounterVec::new(
                    Opts::new("http_requests_total", "HTTP requests by route and status code."),
                    &["route", "code"],
                )
                .expect("constant metric definition"),
            ),
            http_duration: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new("http_request_duration_seconds", "HTTP request latency by route.")
                        .buckets(latency_buckets.clone()),
                    &["route"],
                )
                .expect("constant metric definition"),
            ),
            job_state_missing: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "job_state_missing_total",
                        "Evaluations of a signal with a restart hold whose Flink job has no JobManager series (flink_jobmanager_job_runningTime / numRestarts): the hold cannot engage.",
                    ),
                    &["signal"],
                )
                .expect("constant metric definition"),
            ),
            http_in_flight: register(
                &r,
                IntGauge::new("http_requests_in_flight", "HTTP requests being served.")
                    .expect("constant metric definition"),
            ),
            queries: register(
                &r,
                IntCounterVec::new(
                    Opts::new("prometheus_queries_total", "Queries sent to Prometheus by signal and outcome."),
                    &["signal", "outcome"],
                )
                .expect("constant metric definition"),
            ),
            query_duration: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new("prometheus_query_duration_seconds", "Prometheus query latency by signal.")
                        .buckets(latency_buckets),
                    &["signal"],
                )
                .expect("constant metric definition"),
            ),
            cache_lookups: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "cache_lookups_total",
                        "Value cache lookups: hit (fresh), stale (served while refreshing), miss (waited for Prometheus).",
                    ),
                    &["result"],
                )
                .expect("constant metric definition"),
            ),
            cache_evictions: register(
                &r,
                IntCounter::new("cache_evictions_total", "Cache entries dropped for idleness or size.")
                    .expect("constant metric definition"),
            ),
            cache_entries: register(
                &r,
                IntGauge::new("cache_entries", "Entries in the value cache.")
                    .expect("constant metric definition"),
            ),
            served_value_age: register(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "served_value_age_seconds",
                        "Age of the newest sample behind each served value.",
                    )
                    .buckets(vec![1.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0]),
                )
                .expect("constant metric definition"),
            ),
            prometheus_up: register(
                &r,
                IntGauge::new(
                    "prometheus_up",
                    "1 when Prometheus answered the last query or start-up probe, 0 when it could not be reached or timed out.",
                )
                .expect("constant metric definition"),
            ),
            registry: r,
        };
        Arc::new(m)
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
