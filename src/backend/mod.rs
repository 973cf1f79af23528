//! Where query answers come from.
//!
//! Signals ask a [`QueryBackend`] for instant and range results of PromQL text. The Prometheus
//! HTTP client is the production backend; the value cache sits in front of it. Tests and the
//! offline simulator implement the same trait over recorded or generated series, so they run
//! the very code the server runs.

mod eval;
pub mod memory;

pub use eval::EvalError;
pub use memory::MemoryBackend;

use async_trait::async_trait;

use crate::prometheus::{self, PromError, QueryResult, RangeResult};

#[async_trait]
pub trait QueryBackend: Send + Sync + 'static {
    /// Evaluates `query` at `time` (Unix seconds), or at the backend's present when `None`.
    async fn instant(&self, query: &str, time: Option<f64>) -> Result<QueryResult, PromError>;

    /// Evaluates `query` at every `step` seconds from `start` to `end` (Unix seconds).
    async fn range(
        &self,
        query: &str,
        start: f64,
        end: f64,
        step: f64,
    ) -> Result<RangeResult, PromError>;

    /// Whether answers that carry warnings may be used (they may be partial).
    fn accepts_warnings(&self) -> bool;

    /// Where answers come from, for messages (a URL, or a description of the data).
    fn describe(&self) -> String;

    /// The backend's present, Unix seconds: the evaluation time of an answer without samples.
    fn now(&self) -> f64 {
        crate::signals::now_unix()
    }
}

#[async_trait]
impl QueryBackend for prometheus::Client {
    async fn instant(&self, query: &str, time: Option<f64>) -> Result<QueryResult, PromError> {
        self.instant_at(query, time).await
    }

    async fn range(
        &self,
        query: &str,
        start: f64,
        end: f64,
        step: f64,
    ) -> Result<RangeResult, PromError> {
        prometheus::Client::range(self, query, start, end, step).await
    }

    fn accepts_warnings(&self) -> bool {
        prometheus::Client::accepts_warnings(self)
    }

    fn describe(&self) -> String {
        self.base_url().to_string()
    }
}
