//! The HPA manifest as the simulator reads it: the controller's spec, and the metrics API
//! requests the controller would make for each of its metrics.

use std::path::Path;

use k8s_openapi::api::autoscaling::v2 as k8s;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::SimulateError;
use crate::hpa::controller::{MetricReading, Reading};
use crate::hpa::{HpaSpec, MetricKind};
use crate::provider::{CustomRequest, ExternalRequest, MetricsProvider, ObjectName};
use crate::selector::Selector;
use crate::signals::Signals;

/// One HPA metric as the HPA controller asks the metrics APIs for it.
#[derive(Debug, Clone)]
pub enum MetricRequest {
    External(ExternalRequest),
    /// A `Pods` metric: every pod of the scale target (`pods/*`), series picked by
    /// `metricLabelSelector`.
    Pods(CustomRequest),
    /// A metric type the simulator cannot ask for (`Object`): its reading is an error.
    Unsupported(String),
}

/// An HPA manifest: the controller's view and the requests it makes.
#[derive(Debug, Clone)]
pub struct HpaFile {
    pub spec: HpaSpec,
    pub namespace: String,
    pub requests: Vec<MetricRequest>,
    /// The Flink job the metrics select (`job_name` in a `matchLabels`), if any.
    pub job_name: Option<String>,
}

fn selector_of(s: Option<&LabelSelector>) -> Result<Selector, String> {
    let Some(s) = s else {
        return Ok(Selector::everything());
    };
    let mut parts = Vec::new();
    for (k, v) in s.match_labels.iter().flatten() {
        parts.push(format!("{k}={v}"));
    }
    for e in s.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => return Err(format!("unknown selector operator {other:?}")),
        });
    }
    Selector::parse(&parts.join(",")).map_err(|e| e.to_string())
}

impl HpaFile {
    /// The simulated job this HPA scales: the job its metrics select, in its namespace, with
    /// `slots` per TaskManager and `capacity` records/s per TaskManager.
    pub fn job_config(&self, slots: usize, capacity: f64) -> crate::sim::JobConfig {
        let defaults = crate::sim::JobConfig::default();
        crate::sim::JobConfig {
            namespace: self.namespace.clone(),
            job_name: self
                .job_name
                .clone()
                .unwrap_or_else(|| defaults.job_name.clone()),
            slots_per_task_manager: slots,
            capacity_per_slot: capacity / slots as f64,
            ..defaults
        }
    }

    pub fn parse(text: &str, path: &str) -> Result<Self, SimulateError> {
        let err = |message: String| SimulateError::Hpa {
            path: path.to_string(),
            message,
        };
        let spec = HpaSpec::from_yaml(text).map_err(|e| err(e.to_string()))?;
        let raw: k8s::HorizontalPodAutoscaler =
            serde_yaml::from_str(text).map_err(|e| err(e.to_string()))?;
        let namespace = raw
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let mut requests = Vec::new();
        let mut job_name = None;
        for (m, ms) in raw.spec.metrics.iter().flatten().zip(&spec.metrics) {
            let req = match (ms.kind, &m.external, &m.pods) {
                (MetricKind::External, Some(e), _) => MetricRequest::External(ExternalRequest {
                    namespace: namespace.clone(),
                    metric: e.metric.name.clone(),
                    selector: selector_of(e.metric.selector.as_ref()).map_err(&err)?,
                }),
                (MetricKind::Pods, _, Some(p)) => MetricRequest::Pods(CustomRequest {
                    namespace: Some(namespace.clone()),
                    resource: "pods".into(),
                    name: ObjectName::All,
                    metric: p.metric.name.clone(),
                    // The Deployment's pod selector selects Kubernetes pods; the simulated
                    // job's series carry no pod labels, so every pod of the namespace.
                    selector: Selector::everything(),
                    metric_selector: selector_of(p.metric.selector.as_ref()).map_err(&err)?,
                }),
                _ => MetricRequest::Unsupported(ms.name.clone()),
            };
            let selector = m
                .external
                .as_ref()
                .and_then(|e| e.metric.selector.as_ref())
                .or_else(|| m.pods.as_ref().and_then(|p| p.metric.selector.as_ref()));
            if let Some(j) = selector
                .and_then(|s| s.match_labels.as_ref())
                .and_then(|l| l.get("job_name"))
            {
                job_name.get_or_insert_with(|| j.clone());
            }
            requests.push(req);
        }
        Ok(Self {
            spec,
            namespace,
            requests,
            job_name,
        })
    }

    pub fn load(path: &Path) -> Result<Self, SimulateError> {
        let text = std::fs::read_to_string(path).map_err(|source| SimulateError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn metric_names(&self) -> Vec<String> {
        self.spec.metrics.iter().map(|m| m.name.clone()).collect()
    }
}

/// Asks `signals` for every HPA metric, as the controller would at this instant.
pub async fn read_metrics(signals: &Signals, requests: &[MetricRequest]) -> Vec<MetricReading> {
    let mut out = Vec::with_capacity(requests.len());
    for r in requests {
        out.push(match r {
            MetricRequest::External(req) => match signals.external(req).await {
                // The controller sums an External metric's items.
                Ok(items) => Ok(Reading::Value(items.iter().map(|i| i.value).sum())),
                Err(e) => Err(e.to_string()),
            },
            MetricRequest::Pods(req) => match signals.custom(req).await {
                Ok(items) => Ok(Reading::PerPod(
                    items
                        .into_iter()
                        .map(|i| (i.object.name, i.value))
                        .collect(),
                )),
                Err(e) => Err(e.to_string()),
            },
            MetricRequest::Unsupported(name) => Err(format!(
                "{name}: only External and Pods metrics can be simulated"
            )),
        });
    }
    out
}
