//! A model of the Kubernetes HorizontalPodAutoscaler controller, written from its code
//! (`pkg/controller/podautoscaler/horizontal.go` and `replica_calculator.go` in
//! kubernetes/kubernetes), so that an HPA manifest can be evaluated offline against simulated or
//! recorded metric values.
//!
//! Pure: time is an input in seconds, metric values are inputs, nothing is read or written.
//! [`HpaSpec`] is the subset of an `autoscaling/v2` HorizontalPodAutoscaler the controller's
//! arithmetic uses, with API defaulting applied (`pkg/apis/autoscaling/v2/defaults.go`);
//! [`calc`] holds the per-metric formulas of `replica_calculator.go`; [`controller`] the
//! per-sync normalisation of `horizontal.go` (stabilisation windows, scaling policies, bounds).

pub mod calc;
pub mod controller;

pub use controller::{Condition, ControllerConfig, Hpa, Pod, PodPhase, SyncInput, SyncOutcome};

use k8s_openapi::api::autoscaling::v2 as k8s;

/// Errors reading an HPA manifest into the model.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("not an autoscaling/v2 HorizontalPodAutoscaler: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("metric {index}: {message}")]
    Metric { index: usize, message: String },
    #[error("behavior.{direction}: {message}")]
    Behavior {
        direction: &'static str,
        message: String,
    },
    #[error("invalid quantity {0:?}")]
    Quantity(String),
}

/// What a metric's value is compared with, in milli-units as the controller reads every
/// quantity (`Quantity.MilliValue()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `target.type: Value`: the (summed) metric against one value.
    Value(i64),
    /// `target.type: AverageValue`: the metric divided over the pods.
    AverageValue(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    External,
    /// Custom metric per pod of the scale target (`type: Pods`, always `AverageValue`).
    Pods,
    /// Custom metric of one object (`type: Object`).
    Object,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricSpec {
    pub kind: MetricKind,
    pub name: String,
    pub target: Target,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    Pods,
    Percent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub kind: PolicyKind,
    pub value: i32,
    pub period_seconds: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectPolicy {
    Max,
    Min,
    Disabled,
}

/// `HPAScalingRules` after defaulting.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingRules {
    /// `None` only for scale-down, where the controller substitutes its
    /// `--horizontal-pod-autoscaler-downscale-stabilization` flag
    /// (`maybeInitScaleDownStabilizationWindow`).
    pub stabilization_window_seconds: Option<i32>,
    pub select_policy: SelectPolicy,
    pub policies: Vec<Policy>,
    /// Per-direction tolerance (`HPAConfigurableTolerance`, k8s 1.33+); `None` = controller flag.
    pub tolerance: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Behavior {
    pub scale_up: ScalingRules,
    pub scale_down: ScalingRules,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HpaSpec {
    pub name: String,
    pub min_replicas: i32,
    pub max_replicas: i32,
    pub metrics: Vec<MetricSpec>,
    /// `None` when the manifest has no `behavior`: the controller then takes the legacy path
    /// (`normalizeDesiredReplicas`), not the defaulted behavior.
    pub behavior: Option<Behavior>,
}

impl ScalingRules {
    /// `GenerateHPAScaleUpRules` in `pkg/apis/autoscaling/v2/defaults.go`: window 0 s,
    /// `Max` of `Pods 4 / 15 s` and `Percent 100 / 15 s`.
    pub fn default_scale_up() -> Self {
        Self {
            stabilization_window_seconds: Some(0),
            select_policy: SelectPolicy::Max,
            policies: vec![
                Policy {
                    kind: PolicyKind::Pods,
                    value: 4,
                    period_seconds: 15,
                },
                Policy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period_seconds: 15,
                },
            ],
            tolerance: None,
        }
    }

    /// `GenerateHPAScaleDownRules`: window left nil (the controller's 300 s flag), `Max` of
    /// `Percent 100 / 15 s`.
    pub fn default_scale_down() -> Self {
        Self {
            stabilization_window_seconds: None,
            select_policy: SelectPolicy::Max,
            policies: vec![Policy {
                kind: PolicyKind::Percent,
                value: 100,
                period_seconds: 15,
            }],
            tolerance: None,
        }
    }
}

impl HpaSpec {
    /// Reads an `autoscaling/v2` HorizontalPodAutoscaler manifest.
    pub fn from_yaml(text: &str) -> Result<Self, SpecError> {
        let hpa: k8s::HorizontalPodAutoscaler = serde_yaml::from_str(text)?;
        Self::from_k8s(&hpa)
    }

    pub fn from_k8s(hpa: &k8s::HorizontalPodAutoscaler) -> Result<Self, SpecError> {
        let spec = &hpa.spec;
        let metrics = spec
            .metrics
            .iter()
            .flatten()
            .enumerate()
            .map(|(index, m)| {
                metric_spec(m).map_err(|message| SpecError::Metric { index, message })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let behavior = match &spec.behavior {
            None => None,
            Some(b) => Some(Behavior {
                scale_up: match &b.scale_up {
                    None => ScalingRules::default_scale_up(),
                    Some(r) => rules(r, ScalingRules::default_scale_up(), "scaleUp")?,
                },
                scale_down: match &b.scale_down {
                    None => ScalingRules::default_scale_down(),
                    Some(r) => rules(r, ScalingRules::default_scale_down(), "scaleDown")?,
                },
            }),
        };
        Ok(Self {
            name: hpa.metadata.name.clone().unwrap_or_default(),
            // `reconcileAutoscaler`: "if hpa.Spec.MinReplicas != nil … else minReplicas = 1".
            min_replicas: spec.min_replicas.unwrap_or(1),
            max_replicas: spec.max_replicas,
            metrics,
            behavior,
        })
    }
}

fn metric_spec(m: &k8s::MetricSpec) -> Result<MetricSpec, String> {
    let target = |t: &k8s::MetricTarget| -> Result<Target, String> {
        // computeStatusForExternalMetric checks AverageValue first, then Value.
        if let Some(q) = &t.average_value {
            return quantity_milli(&q.0).map(Target::AverageValue);
        }
        if let Some(q) = &t.value {
            return quantity_milli(&q.0).map(Target::Value);
        }
        Err(format!(
            "target type {} without a value or averageValue",
            t.type_
        ))
    };
    match m.type_.as_str() {
        "External" => {
            let e = m
                .external
                .as_ref()
                .ok_or("type External without `external`")?;
            Ok(MetricSpec {
                kind: MetricKind::External,
                name: e.metric.name.clone(),
                target: target(&e.target)?,
            })
        }
        "Pods" => {
            let p = m.pods.as_ref().ok_or("type Pods without `pods`")?;
            let avg = p
                .target
                .average_value
                .as_ref()
                .ok_or("a Pods metric target needs averageValue")?;
            Ok(MetricSpec {
                kind: MetricKind::Pods,
                name: p.metric.name.clone(),
                target: Target::AverageValue(quantity_milli(&avg.0)?),
            })
        }
        "Object" => {
            let o = m.object.as_ref().ok_or("type Object without `object`")?;
            // computeStatusForObjectMetric dispatches on target.type, not on which field is set.
            let t = match o.target.type_.as_str() {
                "Value" => Target::Value(quantity_milli(
                    &o.target
                        .value
                        .as_ref()
                        .ok_or("Value target without value")?
                        .0,
                )?),
                "AverageValue" => Target::AverageValue(quantity_milli(
                    &o.target
                        .average_value
                        .as_ref()
                        .ok_or("AverageValue target without averageValue")?
                        .0,
                )?),
                other => return Err(format!("object target type {other:?}")),
            };
            Ok(MetricSpec {
                kind: MetricKind::Object,
                name: o.metric.name.clone(),
                target: t,
            })
        }
        other => Err(format!(
            "metric type {other:?} is not modelled (only External, Pods and Object are)"
        )),
    }
}

fn rules(
    r: &k8s::HPAScalingRules,
    defaults: ScalingRules,
    direction: &'static str,
) -> Result<ScalingRules, SpecError> {
    let err = |message: String| SpecError::Behavior { direction, message };
    let select_policy = match r.select_policy.as_deref() {
        None | Some("Max") => SelectPolicy::Max,
        Some("Min") => SelectPolicy::Min,
        Some("Disabled") => SelectPolicy::Disabled,
        Some(other) => return Err(err(format!("selectPolicy {other:?}"))),
    };
    let policies = match &r.policies {
        None => defaults.policies,
        Some(list) => list
            .iter()
            .map(|p| {
                let kind = match p.type_.as_str() {
                    "Pods" => PolicyKind::Pods,
                    "Percent" => PolicyKind::Percent,
                    other => return Err(err(format!("policy type {other:?}"))),
                };
                Ok(Policy {
                    kind,
                    value: p.value,
                    period_seconds: p.period_seconds,
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let tolerance = match &r.tolerance {
        None => None,
        Some(q) => Some(quantity_milli(&q.0).map_err(err)? as f64 / 1000.0),
    };
    Ok(ScalingRules {
        stabilization_window_seconds: r
            .stabilization_window_seconds
            .or(defaults.stabilization_window_seconds),
        select_policy,
        policies,
        tolerance,
    })
}

/// `resource.Quantity` text to its `MilliValue()` (rounded up), for decimal and binary SI
/// suffixes and exponents.
pub fn quantity_milli(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    let mult: f64 = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return Err(format!("invalid quantity {text:?}")),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid quantity {text:?}"))?;
    crate::quantity::to_milli(n * mult).map_err(|_| format!("invalid quantity {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_read_as_milli_values_rounded_up() {
        assert_eq!(quantity_milli("700"), Ok(700_000));
        assert_eq!(quantity_milli("50k"), Ok(50_000_000));
        assert_eq!(quantity_milli("500m"), Ok(500));
        assert_eq!(quantity_milli("0.1"), Ok(100));
        assert_eq!(quantity_milli("1Ki"), Ok(1_024_000));
        assert_eq!(quantity_milli("1e3"), Ok(1_000_000));
        // MilliValue() rounds up: 1.5 milli is 2 milli.
        assert_eq!(quantity_milli("1500u"), Ok(2));
        assert!(quantity_milli("7x").is_err());
    }

    #[test]
    fn every_shipped_example_parses() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/hpa-examples");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let spec =
                HpaSpec::from_yaml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!spec.metrics.is_empty(), "{}", path.display());
            assert!(spec.max_replicas >= spec.min_replicas);
            n += 1;
        }
        assert!(n >= 6, "found {n} examples");
    }

    #[test]
    fn combined_example_reads_as_written() {
        let text = include_str!("../../hpa-examples/combined.yaml");
        let spec = HpaSpec::from_yaml(text).unwrap();
        assert_eq!(spec.min_replicas, 1);
        assert_eq!(spec.max_replicas, 16);
        assert_eq!(
            spec.metrics,
            vec![
                MetricSpec {
                    kind: MetricKind::External,
                    name: "flink_busy_time_max".into(),
                    target: Target::Value(700_000),
                },
                MetricSpec {
                    kind: MetricKind::External,
                    name: "flink_kafka_lag_seconds".into(),
                    target: Target::Value(300_000),
                },
            ]
        );
        let b = spec.behavior.unwrap();
        assert_eq!(b.scale_up.stabilization_window_seconds, Some(180));
        assert_eq!(
            b.scale_up.policies,
            vec![Policy {
                kind: PolicyKind::Pods,
                value: 4,
                period_seconds: 180
            }]
        );
        assert_eq!(b.scale_down.stabilization_window_seconds, Some(900));
        assert_eq!(b.scale_down.select_policy, SelectPolicy::Max);
    }

    #[test]
    fn behavior_defaults_fill_only_what_is_missing() {
        let text = r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: x}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: tm}
  maxReplicas: 10
  metrics:
    - type: Pods
      pods:
        metric: {name: busy}
        target: {type: AverageValue, averageValue: "700"}
  behavior:
    scaleDown:
      selectPolicy: Disabled
"#;
        let spec = HpaSpec::from_yaml(text).unwrap();
        assert_eq!(spec.min_replicas, 1);
        let b = spec.behavior.unwrap();
        assert_eq!(b.scale_up, ScalingRules::default_scale_up());
        assert_eq!(b.scale_down.select_policy, SelectPolicy::Disabled);
        assert_eq!(b.scale_down.stabilization_window_seconds, None);
        assert_eq!(
            b.scale_down.policies,
            ScalingRules::default_scale_down().policies
        );
    }

    #[test]
    fn resource_metrics_are_refused_by_name() {
        let text = r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: x}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: tm}
  maxReplicas: 10
  metrics:
    - type: Resource
      resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
"#;
        let e = HpaSpec::from_yaml(text).unwrap_err().to_string();
        assert!(e.contains("Resource"), "{e}");
    }
}
