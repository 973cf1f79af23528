//! What is asked of a signal and what it answers, independent of the API group.

use crate::prometheus::Sample;
use crate::provider::MetricError;
use crate::selector::Selector;

/// A signal's answer before it is shaped for an API version.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub labels: crate::labels::Labels,
    /// The described object's name, for custom metrics.
    pub object: Option<String>,
    pub value: f64,
    pub timestamp: f64,
}

/// Everything about one evaluation, for the `query` command and for logs.
#[derive(Debug)]
pub struct Evaluation {
    pub promql: Option<String>,
    /// Samples of this request (a grouped query's result also holds other requests' groups).
    pub samples: Vec<Sample>,
    /// How many samples Prometheus returned in all.
    pub samples_total: usize,
    /// The request as label matchers, applied to a grouped result in memory.
    pub selection: Option<String>,
    pub warnings: Vec<String>,
    /// In [`Mode::Inspect`]: the kind's account of its computation, if it gives one.
    pub explanation: Option<String>,
    pub result: Result<Vec<Item>, MetricError>,
    /// Until when `result` stays what a new evaluation would give, when that can be promised.
    pub until: Option<std::time::Instant>,
}

impl Evaluation {
    pub(crate) fn failed(e: MetricError) -> Self {
        Self {
            promql: None,
            samples: Vec::new(),
            samples_total: 0,
            selection: None,
            warnings: Vec::new(),
            explanation: None,
            result: Err(e),
            until: None,
        }
    }
}

/// What is being asked, independent of the API group.
#[derive(Debug, Clone)]
pub struct Request {
    pub namespace: Option<String>,
    /// Selects series (external `labelSelector`, custom `metricLabelSelector`).
    pub series: Selector,
    /// For custom metrics: which objects.
    pub objects: Option<Objects>,
}

impl Request {
    /// A key naming this request among a signal's requests.
    pub(crate) fn key(&self) -> String {
        format!(
            "{}|{}",
            self.namespace.as_deref().unwrap_or(""),
            self.series
        )
    }
}

#[derive(Debug, Clone)]
pub enum Objects {
    All(Selector),
    Named(String),
}

/// How an evaluation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Through the cache; raw samples are not kept.
    Serve,
    /// A fresh query, keeping the samples to show them.
    Inspect,
}
