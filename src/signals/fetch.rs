//! Sending a query plan to the backend, through the value cache, with one retry.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::backend::QueryBackend;
use crate::cache::{Fetch, Refetch};
use crate::metrics::Metrics;
use crate::prometheus::{PromError, QueryResult, Sample};
use crate::provider::{MetricError, Shared};

use super::plan::{Group, QuerySpec};
use super::request::Mode;
use super::shard::{self, Sharding};
use super::Signals;

/// Builds a request's own query again. A cache entry keeps this (the request's few
/// matchers) rather than the query: thousands of entries would otherwise each keep a
/// kilobyte of PromQL text between refreshes.
#[derive(Clone)]
pub struct Rebuild(Arc<dyn Fn() -> QuerySpec + Send + Sync>);

impl Rebuild {
    pub fn new(build: impl Fn() -> QuerySpec + Send + Sync + 'static) -> Self {
        Self(Arc::new(build))
    }

    /// The query, built now.
    pub fn spec(&self) -> QuerySpec {
        (self.0)()
    }
}

/// What a cache entry keeps to send its query again.
enum Kept {
    Spec(QuerySpec),
    Rebuilt(Rebuild),
}

impl Kept {
    fn spec(&self) -> Cow<'_, QuerySpec> {
        match self {
            Kept::Spec(spec) => Cow::Borrowed(spec),
            Kept::Rebuilt(rebuild) => Cow::Owned(rebuild.spec()),
        }
    }
}

/// Everything a cache entry needs to send its query again, in one allocation.
struct Query {
    backend: Arc<dyn QueryBackend>,
    metrics: Arc<Metrics>,
    signal: Arc<str>,
    kept: Kept,
    shards: Shards,
}

impl Refetch<Outcome> for Query {
    fn fetch(self: Arc<Self>) -> BoxFuture<'static, Outcome> {
        run_query(self).boxed()
    }
}

/// One backend answer, grouped.
#[derive(Debug)]
pub struct Fetched {
    pub groups: Vec<Group>,
    pub samples: Vec<Sample>,
    pub warnings: Vec<String>,
    /// The backend's evaluation time (Unix seconds), and when the query was sent from here
    /// (the backend evaluates it as it arrives): ages are measured on the backend's clock,
    /// advanced by local elapsed time.
    pub eval_time: f64,
    pub fetched_at: Instant,
}

impl Fetched {
    pub fn now(&self) -> f64 {
        self.eval_time + self.fetched_at.elapsed().as_secs_f64()
    }
}

pub type Outcome = Result<Arc<Fetched>, MetricError>;

impl Signals {
    pub(super) async fn fetch(
        &self,
        signal: &str,
        spec: &QuerySpec,
        rebuild: Option<Rebuild>,
        sharding: Option<Sharding>,
        mode: Mode,
    ) -> Outcome {
        self.fetch_since(signal, spec, rebuild, sharding, mode, None)
            .await
    }

    /// [`Signals::fetch`] with an answer stored no earlier than `since`.
    pub(super) async fn fetch_since(
        &self,
        signal: &str,
        spec: &QuerySpec,
        rebuild: Option<Rebuild>,
        sharding: Option<Sharding>,
        mode: Mode,
        since: Option<Instant>,
    ) -> Outcome {
        let promql = spec.promql();
        let make = || -> Fetch<Outcome> {
            Arc::new(Query {
                backend: self.backend.clone(),
                metrics: self.metrics.clone(),
                signal: Arc::from(signal),
                kept: match rebuild {
                    Some(rebuild) => Kept::Rebuilt(rebuild),
                    None => Kept::Spec(spec.clone()),
                },
                shards: Shards {
                    sharding: sharding.clone(),
                    cap: AtomicUsize::new(0),
                },
            })
        };
        match (&self.cache, mode) {
            (Some(cache), Mode::Serve) => (*cache.get_since(&promql, make, since).await).clone(),
            _ => make().fetch().await,
        }
    }
}

async fn run_query(query: Arc<Query>) -> Outcome {
    let Query {
        backend,
        metrics,
        signal,
        kept,
        shards,
    } = &*query;
    let signal: &str = signal;
    let spec = kept.spec();
    let promql = spec.promql();
    let started = Instant::now();
    let mut result = shards.send(&**backend, &promql).await;
    // One retry for a refused connection or a 5xx, after a short jittered pause: Prometheus
    // restarting answers again within seconds. Never after a timeout (the budget is spent),
    // and single flight means one retry per query, however many HPAs wait for it.
    if matches!(&result, Err(e) if e.is_unavailable() && !matches!(e, PromError::Timeout { .. })) {
        let jitter = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() % 200)
            .unwrap_or(100);
        tokio::time::sleep(Duration::from_millis(100 + u64::from(jitter))).await;
        result = shards.send(&**backend, &promql).await;
    }
    metrics
        .query_duration
        .with_label_values(&[signal])
        .observe(started.elapsed().as_secs_f64());
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics.queries.with_label_values(&[signal, outcome]).inc();
    let reached = !matches!(
        &result,
        Err(PromError::Unreachable { .. } | PromError::Timeout { .. })
    );
    metrics.prometheus_up.set(i64::from(reached));
    let result = result.map_err(|e| backend_error(signal, e))?;
    if !result.warnings.is_empty() && !backend.accepts_warnings() {
        // Thanos and Cortex flag partial answers (a store down) with warnings: a partial sum
        // is a wrong number.
        return Err(MetricError::Unusable(format!(
            "{signal}: Prometheus answered with warnings, so the result may be partial: {}",
            result.warnings.join("; ")
        )));
    }
    let eval_time = result
        .samples
        .first()
        .map(|s| s.timestamp)
        .unwrap_or_else(|| backend.now());
    Ok(Arc::new(Fetched {
        groups: spec.groups(&result.samples),
        samples: if spec.keep_samples {
            result.samples
        } else {
            Vec::new()
        },
        warnings: result.warnings,
        eval_time,
        fetched_at: started,
    }))
}

/// A query's sharding, and the series cap that made it needed (0 while one answer fits).
struct Shards {
    sharding: Option<Sharding>,
    cap: AtomicUsize,
}

impl Shards {
    /// The query as one, or in shards once one answer was too large.
    async fn send(
        &self,
        backend: &dyn QueryBackend,
        promql: &str,
    ) -> Result<QueryResult, PromError> {
        let Some(sharding) = &self.sharding else {
            return backend.instant(promql, None).await;
        };
        let cap = self.cap.load(Ordering::Relaxed);
        if cap > 0 {
            return shard::run(backend, sharding, cap).await;
        }
        match backend.instant(promql, None).await {
            Err(PromError::TooManySeries(n, cap)) => {
                tracing::info!(series = n, cap, label = %sharding.label, "a grouped query's answer is over the series cap: sending it in shards from now on");
                self.cap.store(cap, Ordering::Relaxed);
                shard::run(backend, sharding, cap).await
            }
            other => other,
        }
    }
}

fn backend_error(signal: &str, e: PromError) -> MetricError {
    MetricError::Backend {
        signal: signal.to_string(),
        unavailable: e.is_unavailable(),
        source: Shared::new(e),
    }
}
