//! The boundary between the Kubernetes-facing API and whatever computes metric values.
//!
//! The API layer knows requests, selectors and values; it does not know Prometheus. Caching,
//! coalescing and other backends plug in behind [`MetricsProvider`].

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::selector::Selector;

/// What a metric is served as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricTarget {
    External,
    /// A custom metric describing objects of `resource` (a group-resource such as `pods` or
    /// `deployments.apps`).
    Custom {
        resource: String,
        namespaced: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricInfo {
    pub name: String,
    pub target: MetricTarget,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExternalRequest {
    pub namespace: String,
    pub metric: String,
    pub selector: Selector,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ObjectName {
    All,
    Named(String),
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectName::All => f.write_str("*"),
            ObjectName::Named(n) => f.write_str(n),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CustomRequest {
    /// `None` for root-scoped objects (nodes, namespaces).
    pub namespace: Option<String>,
    pub resource: String,
    pub name: ObjectName,
    pub metric: String,
    /// `labelSelector`: selects the objects.
    pub selector: Selector,
    /// `metricLabelSelector`: selects the series.
    pub metric_selector: Selector,
}

/// One value; `timestamp` is the time of the newest sample behind it (Unix seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalValue {
    pub labels: crate::labels::Labels,
    pub value: f64,
    pub timestamp: f64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub kind: String,
    pub api_version: String,
    pub namespace: Option<String>,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CustomValue {
    pub object: ObjectRef,
    pub value: f64,
    pub timestamp: f64,
}

/// Why a value could not be served. Each kind maps to one HTTP status; the messages are meant
/// for the person reading `kubectl describe hpa`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricError {
    #[error("the server could not find the metric {metric} for {resource}")]
    UnknownMetric { metric: String, resource: String },
    #[error("{0}")]
    BadRequest(String),
    /// The backend answered, but no series matched.
    #[error("{0}")]
    NoData(String),
    /// Series exist but give no usable value now (NaN, stale, zero rate).
    #[error("{0}")]
    Unusable(String),
    /// The backend could not be reached or timed out.
    #[error("{0}")]
    BackendUnavailable(String),
    /// The backend answered with an error or something unreadable.
    #[error("{0}")]
    BackendFailed(String),
    /// The backend's own error while computing `signal`; `unavailable` when it could not be
    /// reached, timed out or was overloaded (503), otherwise it failed (500).
    #[error("{signal}: {source}")]
    Backend {
        signal: String,
        unavailable: bool,
        #[source]
        source: Shared,
    },
    /// The objects of a `pods/*` request cannot be resolved now.
    #[error(transparent)]
    Pods(#[from] crate::signals::PodListError),
}

/// An error shared by every waiter of one coalesced query (errors are not `Clone`). Equal
/// when the same error.
#[derive(Debug, Clone)]
pub struct Shared(pub Arc<dyn std::error::Error + Send + Sync>);

impl Shared {
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(e))
    }
}

impl fmt::Display for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Shared {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Shared {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Shared {}

/// Values, and until when asking again would give the same answer: `None` when that cannot
/// be promised (no cache, a job restarting, data that depends on the moment it is read).
#[derive(Debug, Clone, PartialEq)]
pub struct Current<T> {
    pub values: T,
    pub until: Option<std::time::Instant>,
}

#[async_trait]
pub trait MetricsProvider: Send + Sync + 'static {
    /// Every metric served, for discovery. Must be cheap: discovery is an availability probe.
    fn metrics(&self) -> Vec<MetricInfo>;

    async fn external(&self, req: &ExternalRequest) -> Result<Vec<ExternalValue>, MetricError>;

    async fn custom(&self, req: &CustomRequest) -> Result<Vec<CustomValue>, MetricError>;

    /// [`MetricsProvider::external`], with how long the answer holds.
    async fn external_current(
        &self,
        req: &ExternalRequest,
    ) -> Result<Current<Vec<ExternalValue>>, MetricError> {
        self.external(req).await.map(|values| Current {
            values,
            until: None,
        })
    }

    /// [`MetricsProvider::custom`], with how long the answer holds.
    async fn custom_current(
        &self,
        req: &CustomRequest,
    ) -> Result<Current<Vec<CustomValue>>, MetricError> {
        self.custom(req).await.map(|values| Current {
            values,
            until: None,
        })
    }
}
