//! One HPA as the controller's `reconcileAutoscaler` treats it, sync after sync
//! (`pkg/controller/podautoscaler/horizontal.go`): per-metric proposals, their maximum, the
//! error rules, then `normalizeDesiredReplicas` (no `behavior`) or
//! `normalizeDesiredReplicasWithBehaviors`, with the recommendation and scale-event histories
//! the controller keeps in memory.

mod normalize;
#[cfg(test)]
mod tests;

use super::calc::{self, Tolerances};
pub use super::calc::{Pod, PodPhase};
use super::{HpaSpec, MetricKind, Target};

/// Controller flags (`kube-controller-manager --horizontal-pod-autoscaler-*`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControllerConfig {
    /// `--horizontal-pod-autoscaler-sync-period`, 15 s.
    pub sync_period_seconds: f64,
    /// `--horizontal-pod-autoscaler-tolerance`, 0.1.
    pub tolerance: f64,
    /// `--horizontal-pod-autoscaler-downscale-stabilization`, 5 min.
    pub downscale_stabilization_seconds: i32,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            sync_period_seconds: 15.0,
            tolerance: 0.1,
            downscale_stabilization_seconds: 300,
        }
    }
}

/// What one metric read returned at a sync.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// External or Object metric: the sum of the returned items (the controller sums them).
    Value(f64),
    /// Pods metric: one item per pod name.
    PerPod(Vec<(String, f64)>),
}

pub type MetricReading = Result<Reading, String>;

/// The world as the controller sees it at one sync.
#[derive(Debug, Clone, Copy)]
pub struct SyncInput<'a> {
    pub now: f64,
    /// `scale.spec.replicas`.
    pub spec_replicas: i32,
    /// `scale.status.replicas` (pods that exist).
    pub status_replicas: i32,
    /// Pods matching the scale selector.
    pub pods: &'a [Pod],
    /// One reading per `spec.metrics` entry, in order.
    pub readings: &'a [MetricReading],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Condition {
    pub status: bool,
    pub reason: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyncOutcome {
    /// The replica count the target has after this sync.
    pub desired_replicas: i32,
    pub rescale: bool,
    /// One proposal per metric (`computeReplicasForMetric`).
    pub proposals: Vec<Result<i32, String>>,
    /// The metric whose proposal won (`rescaleMetric`).
    pub metric: Option<String>,
    /// The maximum proposal before normalisation, when the metrics gave one.
    pub recommendation: Option<i32>,
    /// After the stabilisation window, before rate limits and bounds.
    pub stabilized: Option<i32>,
    /// True when an invalid metric stopped this sync (all invalid, or the valid ones would
    /// scale down).
    pub blocked: bool,
    pub scaling_active: Condition,
    pub able_to_scale: Condition,
    pub scaling_limited: Option<Condition>,
    /// The controller's `rescaleReason`.
    pub reason: String,
}

/// One HPA with the state the controller keeps for it between syncs.
#[derive(Debug, Clone)]
pub struct Hpa {
    pub spec: HpaSpec,
    pub config: ControllerConfig,
    recommendations: Vec<(f64, i32)>,
    scale_up_events: Vec<(f64, i32)>,
    scale_down_events: Vec<(f64, i32)>,
}

impl Hpa {
    pub fn new(spec: HpaSpec, config: ControllerConfig) -> Self {
        Self {
            spec,
            config,
            recommendations: Vec::new(),
            scale_up_events: Vec::new(),
            scale_down_events: Vec::new(),
        }
    }

    fn tolerances(&self) -> Tolerances {
        let mut t = Tolerances::uniform(self.config.tolerance);
        if let Some(b) = &self.spec.behavior {
            if let Some(x) = b.scale_down.tolerance {
                t.scale_down = x;
            }
            if let Some(x) = b.scale_up.tolerance {
                t.scale_up = x;
            }
        }
        t
    }

    fn proposal(&self, i: usize, input: &SyncInput) -> Result<i32, String> {
        let m = &self.spec.metrics[i];
        let reading = input
            .readings
            .get(i)
            .cloned()
            .unwrap_or_else(|| Err("no reading".into()))?;
        let tol = self.tolerances();
        let milli = |v: f64| crate::quantity::to_milli(v).map_err(|e| e.to_string());
        match (m.kind, m.target, reading) {
            (MetricKind::Pods, Target::AverageValue(target), Reading::PerPod(items)) => {
                let items = items
                    .into_iter()
                    .map(|(n, v)| milli(v).map(|v| (n, v)))
                    .collect::<Result<Vec<_>, _>>()?;
                calc::pods_replicas(input.spec_replicas, &items, input.pods, target, tol)
            }
            (MetricKind::Pods, _, Reading::Value(_)) => {
                Err("a Pods metric needs one value per pod".into())
            }
            (_, target, reading) => {
                let usage = match reading {
                    Reading::Value(v) => milli(v)?,
                    Reading::PerPod(items) => items
                        .into_iter()
                        .try_fold(0i64, |a, (_, v)| milli(v).map(|v| a.saturating_add(v)))?,
                };
                match target {
                    Target::Value(t) => {
                        calc::value_replicas(input.spec_replicas, usage, t, input.pods, tol)
                    }
                    Target::AverageValue(t) => Ok(calc::average_value_replicas(
                        input.status_replicas,
                        usage,
                        t,
                        tol,
                    )),
                }
            }
        }
    }

    /// One `reconcileAutoscaler` pass at `input.now`.
    pub fn sync(&mut self, input: &SyncInput) -> SyncOutcome {
        let now = input.now;
        let current = input.spec_replicas;
        // recordInitialRecommendation: the first sync seeds the history with the current count,
        // so neither path scales down on its first sync.
        if self.recommendations.is_empty() {
            self.recommendations.push((now, current));
        }
        let min = self.spec.min_replicas;
        let max = self.spec.max_replicas;
        let mut out = SyncOutcome {
            desired_replicas: current,
            rescale: false,
            proposals: Vec::new(),
            metric: None,
            recommendation: None,
            stabilized: None,
            blocked: false,
            scaling_active: Condition {
                status: true,
                reason: "ValidMetricFound",
            },
            able_to_scale: Condition {
                status: true,
                reason: "SucceededGetScale",
            },
            scaling_limited: None,
            reason: String::new(),
        };
        let desired;
        if current == 0 && min != 0 {
            out.scaling_active = Condition {
                status: false,
                reason: "ScalingDisabled",
            };
            out.desired_replicas = 0;
            return out;
        } else if current > max {
            out.reason = "Current number of replicas above Spec.MaxReplicas".into();
            desired = max;
        } else if current < min {
            out.reason = "Current number of replicas below Spec.MinReplicas".into();
            desired = min;
        } else {
            // computeReplicasForMetrics: the maximum valid proposal; an invalid metric stops
            // the sync when all are invalid or the valid ones would scale down (k8s ≥ 1.21).
            let mut replicas = 0i32;
            let mut invalid = 0usize;
            let mut first_invalid: Option<(usize, String)> = None;
            for i in 0..self.spec.metrics.len() {
                let p = self.proposal(i, input);
                match &p {
                    Ok(r) => {
                        if replicas == 0 || *r > replicas {
                            replicas = *r;
                            out.metric = Some(self.spec.metrics[i].name.clone());
                        }
                    }
                    Err(e) => {
                        invalid += 1;
                        if first_invalid.is_none() {
                            first_invalid = Some((i, e.clone()));
                        }
                    }
                }
                out.proposals.push(p);
            }
            if invalid >= self.spec.metrics.len() || (invalid > 0 && replicas < current) {
                let (i, e) = first_invalid.unwrap_or((0, "no metrics".into()));
                let reason = match self.spec.metrics.get(i).map(|m| m.kind) {
                    Some(MetricKind::Pods) => "FailedGetPodsMetric",
                    Some(MetricKind::Object) => "FailedGetObjectMetric",
                    _ => "FailedGetExternalMetric",
                };
                out.scaling_active = Condition {
                    status: false,
                    reason,
                };
                out.blocked = true;
                out.metric = None;
                out.reason = format!(
                    "invalid metrics ({invalid} invalid out of {}), first error is: {e}",
                    self.spec.metrics.len()
                );
                return out;
            }
            out.recommendation = Some(replicas);
            let metric_name = out.metric.clone().unwrap_or_default();
            let prenormalized = replicas.max(0);
            if prenormalized > current {
                out.reason = format!("{metric_name} above target");
            } else if prenormalized < current {
                out.reason = "All metrics below target".into();
            }
            desired = if self.spec.behavior.is_some() {
                self.normalize_with_behaviors(now, current, prenormalized, &mut out)
            } else {
                self.normalize(now, current, prenormalized, &mut out)
            };
        }
        out.desired_replicas = desired;
        out.rescale = desired != current;
        if out.rescale {
            out.able_to_scale = Condition {
                status: true,
                reason: "SucceededRescale",
            };
            self.store_scale_event(now, current, desired);
        }
        out
    }
}
