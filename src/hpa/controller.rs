//! One HPA as the controller's `reconcileAutoscaler` treats it, sync after sync
//! (`pkg/controller/podautoscaler/horizontal.go`): per-metric proposals, their maximum, the
//! error rules, then `normalizeDesiredReplicas` (no `behavior`) or
//! `normalizeDesiredReplicasWithBehaviors`, with the recommendation and scale-event histories
//! the controller keeps in memory.

use super::calc::{self, Tolerances};
pub use super::calc::{Pod, PodPhase};
use super::{HpaSpec, MetricKind, ScalingRules, SelectPolicy, Target};

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

const SCALE_UP_LIMIT_FACTOR: f64 = 2.0;
const SCALE_UP_LIMIT_MINIMUM: f64 = 4.0;

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

    /// `normalizeDesiredReplicas`: highest recommendation of the downscale window, then the
    /// `max(2 × current, 4)` scale-up limit and [min, max] (`convertDesiredReplicasWithRules`).
    fn normalize(&mut self, now: f64, current: i32, pre: i32, out: &mut SyncOutcome) -> i32 {
        // stabilizeRecommendation: a sample counts unless `timestamp.Before(now − window)`.
        let cutoff = now - self.config.downscale_stabilization_seconds as f64;
        let mut stabilized = pre;
        for &(t, r) in &self.recommendations {
            if t >= cutoff && r > stabilized {
                stabilized = r;
            }
        }
        self.recommendations.retain(|&(t, _)| t >= cutoff);
        self.recommendations.push((now, pre));
        out.stabilized = Some(stabilized);
        out.able_to_scale = Condition {
            status: true,
            reason: if stabilized != pre {
                "ScaleDownStabilized"
            } else {
                "ReadyForNewScale"
            },
        };
        let scale_up_limit =
            (SCALE_UP_LIMIT_FACTOR * current as f64).max(SCALE_UP_LIMIT_MINIMUM) as i32;
        let (max_allowed, max_reason) = if self.spec.max_replicas > scale_up_limit {
            (scale_up_limit, "ScaleUpLimit")
        } else {
            (self.spec.max_replicas, "TooManyReplicas")
        };
        let (desired, reason) = if stabilized < self.spec.min_replicas {
            (self.spec.min_replicas, "TooFewReplicas")
        } else if stabilized > max_allowed {
            (max_allowed, max_reason)
        } else {
            (stabilized, "DesiredWithinRange")
        };
        out.scaling_limited = Some(Condition {
            status: desired != stabilized,
            reason,
        });
        desired
    }

    fn rules(&self) -> (ScalingRules, ScalingRules) {
        let b = self
            .spec
            .behavior
            .clone()
            .unwrap_or_else(|| super::Behavior {
                scale_up: ScalingRules::default_scale_up(),
                scale_down: ScalingRules::default_scale_down(),
            });
        (b.scale_up, b.scale_down)
    }

    /// `normalizeDesiredReplicasWithBehaviors`: `stabilizeRecommendationWithBehaviors`, then
    /// `convertDesiredReplicasWithBehaviorRate`.
    fn normalize_with_behaviors(
        &mut self,
        now: f64,
        current: i32,
        pre: i32,
        out: &mut SyncOutcome,
    ) -> i32 {
        let (up, down) = self.rules();
        // maybeInitScaleDownStabilizationWindow: a nil scale-down window is the controller flag.
        let up_window = up.stabilization_window_seconds.unwrap_or(0) as f64;
        let down_window =
            down.stabilization_window_seconds
                .unwrap_or(self.config.downscale_stabilization_seconds) as f64;
        // Samples count when `timestamp.After(now − window)`: strictly newer than the cutoff.
        let up_cutoff = now - up_window;
        let down_cutoff = now - down_window;
        let mut up_rec = pre;
        let mut down_rec = pre;
        for &(t, r) in &self.recommendations {
            if t > up_cutoff {
                up_rec = up_rec.min(r);
            }
            if t > down_cutoff {
                down_rec = down_rec.max(r);
            }
        }
        // The window bounds clamp the *current* count: a rise must hold for the whole up-window
        // (its lowest sample), a fall for the whole down-window (its highest).
        let mut stabilized = current;
        if stabilized < up_rec {
            stabilized = up_rec;
        }
        if stabilized > down_rec {
            stabilized = down_rec;
        }
        self.recommendations
            .retain(|&(t, _)| !(t < up_cutoff && t < down_cutoff));
        self.recommendations.push((now, pre));
        out.stabilized = Some(stabilized);
        out.able_to_scale = Condition {
            status: true,
            reason: if stabilized == pre {
                "ReadyForNewScale"
            } else if pre >= current {
                "ScaleUpStabilized"
            } else {
                "ScaleDownStabilized"
            },
        };

        let (min, max) = (self.spec.min_replicas, self.spec.max_replicas);
        let (desired, reason) = if stabilized > current {
            let limit = self.scale_up_limit(now, current, &up).max(current);
            let (allowed, why) = if max > limit {
                (limit, "ScaleUpLimit")
            } else {
                (max, "TooManyReplicas")
            };
            if stabilized > allowed {
                (allowed, why)
            } else {
                (stabilized, "DesiredWithinRange")
            }
        } else if stabilized < current {
            let limit = self.scale_down_limit(now, current, &down).min(current);
            let (allowed, why) = if min < limit {
                (limit, "ScaleDownLimit")
            } else {
                (min, "TooFewReplicas")
            };
            if stabilized < allowed {
                (allowed, why)
            } else {
                (stabilized, "DesiredWithinRange")
            }
        } else {
            (stabilized, "DesiredWithinRange")
        };
        out.scaling_limited = Some(Condition {
            status: desired != stabilized,
            reason,
        });
        desired
    }

    /// `getReplicasChangePerPeriod`: events strictly newer than `now − period`.
    fn change_in_period(events: &[(f64, i32)], now: f64, period: i32) -> i32 {
        let cutoff = now - period as f64;
        events
            .iter()
            .filter(|(t, _)| *t > cutoff)
            .map(|(_, c)| *c)
            .sum()
    }

    fn period_start(&self, now: f64, current: i32, period: i32) -> i32 {
        current - Self::change_in_period(&self.scale_up_events, now, period)
            + Self::change_in_period(&self.scale_down_events, now, period)
    }

    /// `calculateScaleUpLimitWithScalingRules`.
    fn scale_up_limit(&self, now: f64, current: i32, rules: &ScalingRules) -> i32 {
        let (mut result, pick): (i32, fn(i32, i32) -> i32) = match rules.select_policy {
            SelectPolicy::Disabled => return current,
            SelectPolicy::Min => (i32::MAX, std::cmp::min),
            SelectPolicy::Max => (i32::MIN, std::cmp::max),
        };
        for p in &rules.policies {
            let start = self.period_start(now, current, p.period_seconds);
            let proposed = match p.kind {
                super::PolicyKind::Pods => start + p.value,
                // Rounded up so that a small percentage still adds a pod.
                super::PolicyKind::Percent => {
                    (start as f64 * (1.0 + p.value as f64 / 100.0)).ceil() as i32
                }
            };
            result = pick(result, proposed);
        }
        result
    }

    /// `calculateScaleDownLimitWithBehaviors`.
    fn scale_down_limit(&self, now: f64, current: i32, rules: &ScalingRules) -> i32 {
        let (mut result, pick): (i32, fn(i32, i32) -> i32) = match rules.select_policy {
            SelectPolicy::Disabled => return current,
            // The smallest change down is the highest count.
            SelectPolicy::Min => (i32::MIN, std::cmp::max),
            SelectPolicy::Max => (i32::MAX, std::cmp::min),
        };
        for p in &rules.policies {
            let start = self.period_start(now, current, p.period_seconds);
            let proposed = match p.kind {
                super::PolicyKind::Pods => start - p.value,
                // Go's int32(float64) truncates.
                super::PolicyKind::Percent => {
                    (start as f64 * (1.0 - p.value as f64 / 100.0)) as i32
                }
            };
            result = pick(result, proposed);
        }
        result
    }

    /// `storeScaleEvent`: kept only with a `behavior`, and only as long as the longest policy
    /// period of its direction needs them (`markScaleEventsOutdated`).
    fn store_scale_event(&mut self, now: f64, prev: i32, new: i32) {
        if self.spec.behavior.is_none() {
            return;
        }
        let (up, down) = self.rules();
        let longest = |r: &ScalingRules| {
            r.policies
                .iter()
                .map(|p| p.period_seconds)
                .max()
                .unwrap_or(0) as f64
        };
        if new > prev {
            let keep = longest(&up);
            self.scale_up_events.retain(|(t, _)| *t >= now - keep);
            self.scale_up_events.push((now, new - prev));
        } else {
            let keep = longest(&down);
            self.scale_down_events.retain(|(t, _)| *t >= now - keep);
            self.scale_down_events.push((now, prev - new));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Behavior, MetricSpec, Policy, PolicyKind};
    use super::*;

    fn external(name: &str, target: Target) -> MetricSpec {
        MetricSpec {
            kind: MetricKind::External,
            name: name.into(),
            target,
        }
    }

    fn spec(min: i32, max: i32, metrics: Vec<MetricSpec>, behavior: Option<Behavior>) -> HpaSpec {
        HpaSpec {
            name: "t".into(),
            min_replicas: min,
            max_replicas: max,
            metrics,
            behavior,
        }
    }

    fn pods(n: usize) -> Vec<Pod> {
        (0..n).map(|i| Pod::running(&format!("tm-{i}"))).collect()
    }

    /// Syncs with one External `Value` reading per metric and `current` running pods.
    fn sync(h: &mut Hpa, now: f64, current: i32, readings: &[MetricReading]) -> SyncOutcome {
        let p = pods(current as usize);
        h.sync(&SyncInput {
            now,
            spec_replicas: current,
            status_replicas: current,
            pods: &p,
            readings,
        })
    }

    fn busy(v: f64) -> Vec<MetricReading> {
        vec![Ok(Reading::Value(v))]
    }

    fn busy_hpa(min: i32, max: i32, behavior: Option<Behavior>) -> Hpa {
        Hpa::new(
            spec(
                min,
                max,
                vec![external("busy", Target::Value(700_000))],
                behavior,
            ),
            ControllerConfig::default(),
        )
    }

    #[test]
    fn legacy_scale_up_limit_is_twice_current_or_four() {
        // normalizeDesiredReplicas / calculateScaleUpLimit: max(2 × current, 4).
        // 1 pod at busy 7000 → ratio 10 → 10 proposed, limited to max(2, 4) = 4.
        let mut h = busy_hpa(1, 16, None);
        let o = sync(&mut h, 0.0, 1, &busy(7000.0));
        assert_eq!(o.recommendation, Some(10));
        assert_eq!(o.desired_replicas, 4);
        assert_eq!(
            o.scaling_limited,
            Some(Condition {
                status: true,
                reason: "ScaleUpLimit"
            })
        );
        // 5 pods at busy 2800 → ratio 4 → 20, limited to 2 × 5 = 10.
        let mut h = busy_hpa(1, 16, None);
        assert_eq!(sync(&mut h, 0.0, 5, &busy(2800.0)).desired_replicas, 10);
        // 8 pods at 2800 → 32; max(16, 4) = 16 is not below maxReplicas 12 → TooManyReplicas.
        let mut h = busy_hpa(1, 12, None);
        let o = sync(&mut h, 0.0, 8, &busy(2800.0));
        assert_eq!(o.desired_replicas, 12);
        assert_eq!(o.scaling_limited.unwrap().reason, "TooManyReplicas");
    }

    #[test]
    fn legacy_downscale_waits_for_the_five_minute_window() {
        // stabilizeRecommendation keeps samples not Before(now − 300 s): the sample of t = 0
        // (6) still counts at t = 300 and is gone at t = 315.
        let mut h = busy_hpa(1, 16, None);
        assert_eq!(sync(&mut h, 0.0, 6, &busy(700.0)).desired_replicas, 6);
        for k in 1..=20 {
            let o = sync(&mut h, 15.0 * k as f64, 6, &busy(350.0));
            assert_eq!(o.recommendation, Some(3));
            assert_eq!(o.desired_replicas, 6, "t={}", 15 * k);
            assert_eq!(o.able_to_scale.reason, "ScaleDownStabilized");
        }
        let o = sync(&mut h, 315.0, 6, &busy(350.0));
        assert_eq!(o.desired_replicas, 3);
        assert!(o.rescale);
    }

    #[test]
    fn bounds_come_before_metrics() {
        let mut h = busy_hpa(2, 5, None);
        // reconcileAutoscaler: current > max → max, without reading metrics.
        let o = sync(&mut h, 0.0, 7, &[Err("down".into())]);
        assert_eq!((o.desired_replicas, o.blocked), (5, false));
        assert_eq!(
            o.reason,
            "Current number of replicas above Spec.MaxReplicas"
        );
        let o = sync(&mut h, 15.0, 1, &busy(0.0));
        assert_eq!(o.desired_replicas, 2);
        // spec 0 with minReplicas ≠ 0: scaling disabled.
        let o = sync(&mut h, 30.0, 0, &busy(7000.0));
        assert_eq!(o.desired_replicas, 0);
        assert_eq!(o.scaling_active.reason, "ScalingDisabled");
        // A proposal of 0 is held first by the seed sample, then clamped to minReplicas.
        let mut h = busy_hpa(3, 10, None);
        let o = sync(&mut h, 0.0, 3, &busy(0.0));
        assert_eq!(o.recommendation, Some(0));
        assert_eq!(o.able_to_scale.reason, "ScaleDownStabilized");
        let o = sync(&mut h, 400.0, 3, &busy(0.0));
        assert_eq!(o.desired_replicas, 3);
        assert_eq!(
            o.scaling_limited,
            Some(Condition {
                status: true,
                reason: "TooFewReplicas"
            })
        );
    }

    #[test]
    fn max_over_metrics_and_error_rules() {
        let hpa = || {
            Hpa::new(
                spec(
                    1,
                    16,
                    vec![
                        external("busy", Target::Value(700_000)),
                        external("lag", Target::Value(300_000)),
                    ],
                    None,
                ),
                ControllerConfig::default(),
            )
        };
        // busy 1400 on 4 pods → 8; lag 150 → ceil(0.5 × 4) = 2: the maximum, 8, wins.
        let mut h = hpa();
        let o = sync(
            &mut h,
            0.0,
            4,
            &[Ok(Reading::Value(1400.0)), Ok(Reading::Value(150.0))],
        );
        assert_eq!(o.proposals, vec![Ok(8), Ok(2)]);
        assert_eq!((o.desired_replicas, o.metric.as_deref()), (8, Some("busy")));
        assert_eq!(o.reason, "busy above target");

        // computeReplicasForMetrics: lag fails and busy says 2 < 4 → no scaling at all.
        let mut h = hpa();
        let o = sync(
            &mut h,
            0.0,
            4,
            &[Ok(Reading::Value(350.0)), Err("no data".into())],
        );
        assert!(o.blocked);
        assert_eq!(o.desired_replicas, 4);
        assert_eq!(
            o.scaling_active,
            Condition {
                status: false,
                reason: "FailedGetExternalMetric"
            }
        );
        // …but the valid metric may still scale up: busy 1400 → 8.
        let o = sync(
            &mut h,
            15.0,
            4,
            &[Ok(Reading::Value(1400.0)), Err("no data".into())],
        );
        assert!(!o.blocked);
        assert_eq!(o.desired_replicas, 8);
        // All invalid: blocked. A NaN is invalid, never 0.
        let o = sync(
            &mut h,
            30.0,
            8,
            &[Ok(Reading::Value(f64::NAN)), Err("no data".into())],
        );
        assert!(o.blocked);
        assert_eq!(o.desired_replicas, 8);
    }

    fn pods_policy(value: i32, period: i32) -> Policy {
        Policy {
            kind: PolicyKind::Pods,
            value,
            period_seconds: period,
        }
    }

    fn rules(window: i32, select: SelectPolicy, policies: Vec<Policy>) -> ScalingRules {
        ScalingRules {
            stabilization_window_seconds: Some(window),
            select_policy: select,
            policies,
            tolerance: None,
        }
    }

    #[test]
    fn pods_policy_counts_changes_within_its_period() {
        // busy-time.yaml's scale-up: Pods 4 / 120 s, no window.
        let b = Behavior {
            scale_up: rules(0, SelectPolicy::Max, vec![pods_policy(4, 120)]),
            scale_down: ScalingRules::default_scale_down(),
        };
        let mut h = busy_hpa(1, 16, Some(b));
        // 2 pods at 4200 → 12; period start 2 + 4 = 6.
        let o = sync(&mut h, 0.0, 2, &busy(4200.0));
        assert_eq!(o.recommendation, Some(12));
        assert_eq!(o.desired_replicas, 6);
        assert_eq!(o.scaling_limited.unwrap().reason, "ScaleUpLimit");
        // t = 15 … 105: +4 within the last 120 s → start 6 − 4 = 2 → limit 6: no change.
        for k in 1..=7 {
            let o = sync(&mut h, 15.0 * k as f64, 6, &busy(1400.0));
            assert_eq!(o.desired_replicas, 6, "t={}", 15 * k);
        }
        // t = 120: the event of t = 0 is not After(120 − 120) → start 6 → limit 10.
        let o = sync(&mut h, 120.0, 6, &busy(1400.0));
        assert_eq!(o.desired_replicas, 10);
    }

    #[test]
    fn default_behavior_policies_select_max_of_four_pods_and_double() {
        let b = Behavior {
            scale_up: ScalingRules::default_scale_up(),
            scale_down: ScalingRules::default_scale_down(),
        };
        // 10 pods: Pods → 14, Percent 100 → 20; Max → 20.
        let mut h = busy_hpa(1, 100, Some(b.clone()));
        assert_eq!(sync(&mut h, 0.0, 10, &busy(7000.0)).desired_replicas, 20);
        // Min → 14.
        let mut b_min = b.clone();
        b_min.scale_up.select_policy = SelectPolicy::Min;
        let mut h = busy_hpa(1, 100, Some(b_min));
        assert_eq!(sync(&mut h, 0.0, 10, &busy(7000.0)).desired_replicas, 14);
        // Disabled: scaleUpLimit = current.
        let mut b_off = b;
        b_off.scale_up.select_policy = SelectPolicy::Disabled;
        let mut h = busy_hpa(1, 100, Some(b_off));
        let o = sync(&mut h, 0.0, 10, &busy(7000.0));
        assert_eq!(o.desired_replicas, 10);
        assert!(!o.rescale);
    }

    #[test]
    fn scale_up_window_takes_the_lowest_recent_recommendation() {
        let b = Behavior {
            scale_up: rules(
                60,
                SelectPolicy::Max,
                ScalingRules::default_scale_up().policies,
            ),
            scale_down: rules(0, SelectPolicy::Max, vec![pods_policy(100, 15)]),
        };
        let mut h = busy_hpa(1, 16, Some(b));
        // t=0 first sync, the seed sample is 4 (current) and the proposal 4.
        assert_eq!(sync(&mut h, 0.0, 4, &busy(700.0)).desired_replicas, 4);
        // From t = 15 the load asks for 8. Samples strictly newer than now − 60 count, so the
        // t = 0 sample (4) holds the count through t = 59 and drops out at t = 60.
        for t in [15.0, 30.0, 45.0] {
            let o = sync(&mut h, t, 4, &busy(1400.0));
            assert_eq!(o.recommendation, Some(8));
            assert_eq!(o.desired_replicas, 4, "t={t}");
            assert_eq!(o.able_to_scale.reason, "ScaleUpStabilized");
        }
        let o = sync(&mut h, 60.0, 4, &busy(1400.0));
        assert_eq!(o.desired_replicas, 8);
    }

    #[test]
    fn scale_down_window_takes_the_highest_and_clamps_current() {
        // Down window 120 s, no rate limit to speak of.
        let b = Behavior {
            scale_up: ScalingRules::default_scale_up(),
            scale_down: rules(120, SelectPolicy::Max, vec![pods_policy(100, 15)]),
        };
        let mut h = busy_hpa(1, 16, Some(b));
        sync(&mut h, 0.0, 8, &busy(700.0)); // samples 8 (seed) and 8
        sync(&mut h, 15.0, 8, &busy(525.0)); // proposes 6 → held at 8
        let o = sync(&mut h, 30.0, 8, &busy(175.0)); // proposes 2
        assert_eq!((o.recommendation, o.desired_replicas), (Some(2), 8));
        // t = 120: the t = 0 samples are not After(0) → highest left is 6 (t = 15).
        let o = sync(&mut h, 120.0, 8, &busy(175.0));
        assert_eq!(o.desired_replicas, 6);
        assert_eq!(o.able_to_scale.reason, "SucceededRescale");
        // t = 135: the t = 15 sample drops out; highest is 2 → down to 2 at once.
        let o = sync(&mut h, 135.0, 6, &busy(175.0 * 6.0 / 8.0));
        assert_eq!(o.recommendation, Some(2));
        assert_eq!(o.desired_replicas, 2);
    }

    #[test]
    fn nil_scale_down_window_is_the_controller_flag() {
        let b = Behavior {
            scale_up: ScalingRules::default_scale_up(),
            scale_down: ScalingRules::default_scale_down(),
        };
        let mut h = busy_hpa(1, 16, Some(b));
        sync(&mut h, 0.0, 4, &busy(700.0));
        // Proposals of 2 from t = 15; the t = 0 sample of 4 counts while After(now − 300).
        for k in 1..20 {
            assert_eq!(
                sync(&mut h, 15.0 * k as f64, 4, &busy(350.0)).desired_replicas,
                4
            );
        }
        assert_eq!(sync(&mut h, 300.0, 4, &busy(350.0)).desired_replicas, 2);
    }

    #[test]
    fn percent_scale_down_truncates_and_counts_recent_removals() {
        // Percent 50 / 60 s: floor(10 × 0.5) = 5, then start 5 + 5 = 10 → 5 again: hold.
        let b = Behavior {
            scale_up: ScalingRules::default_scale_up(),
            scale_down: rules(
                0,
                SelectPolicy::Max,
                vec![Policy {
                    kind: PolicyKind::Percent,
                    value: 50,
                    period_seconds: 60,
                }],
            ),
        };
        let mut h = busy_hpa(1, 16, Some(b));
        // The first sync is held by its own seed sample only for a window > 0; window 0 here.
        let o = sync(&mut h, 0.0, 10, &busy(70.0));
        assert_eq!(o.recommendation, Some(1));
        assert_eq!(o.desired_replicas, 5);
        assert_eq!(o.scaling_limited.unwrap().reason, "ScaleDownLimit");
        let o = sync(&mut h, 15.0, 5, &busy(35.0));
        assert_eq!(o.desired_replicas, 5);
        // 7 pods, 50 %: int32(7 × 0.5) = 3, not 4.
        let b2 = Behavior {
            scale_up: ScalingRules::default_scale_up(),
            scale_down: rules(
                0,
                SelectPolicy::Max,
                vec![Policy {
                    kind: PolicyKind::Percent,
                    value: 50,
                    period_seconds: 60,
                }],
            ),
        };
        let mut h = busy_hpa(1, 16, Some(b2));
        assert_eq!(sync(&mut h, 0.0, 7, &busy(10.0)).desired_replicas, 3);
    }

    #[test]
    fn scale_down_select_min_takes_the_smallest_step() {
        // Pods 1 / 60 s and Percent 50 / 60 s on 10: 9 and 5; Min change → 9, Max → 5.
        let policies = vec![
            pods_policy(1, 60),
            Policy {
                kind: PolicyKind::Percent,
                value: 50,
                period_seconds: 60,
            },
        ];
        for (select, want) in [(SelectPolicy::Min, 9), (SelectPolicy::Max, 5)] {
            let b = Behavior {
                scale_up: ScalingRules::default_scale_up(),
                scale_down: rules(0, select, policies.clone()),
            };
            let mut h = busy_hpa(1, 16, Some(b));
            assert_eq!(
                sync(&mut h, 0.0, 10, &busy(70.0)).desired_replicas,
                want,
                "{select:?}"
            );
        }
    }

    #[test]
    fn pods_metric_uses_the_pod_list() {
        let s = spec(
            1,
            16,
            vec![MetricSpec {
                kind: MetricKind::Pods,
                name: "busy".into(),
                target: Target::AverageValue(700_000),
            }],
            None,
        );
        let mut h = Hpa::new(s, ControllerConfig::default());
        let p = pods(3);
        // (800 + 900 + 1000) / 3 = 900 → 1.2857 × 3 → 4.
        let r = vec![Ok(Reading::PerPod(vec![
            ("tm-0".into(), 800.0),
            ("tm-1".into(), 900.0),
            ("tm-2".into(), 1000.0),
        ]))];
        let o = h.sync(&SyncInput {
            now: 0.0,
            spec_replicas: 3,
            status_replicas: 3,
            pods: &p,
            readings: &r,
        });
        assert_eq!(o.desired_replicas, 4);
        // A single value cannot stand for per-pod items.
        let o = h.sync(&SyncInput {
            now: 15.0,
            spec_replicas: 4,
            status_replicas: 4,
            pods: &p,
            readings: &[Ok(Reading::Value(1.0))],
        });
        assert!(o.blocked);
    }

    #[test]
    fn external_average_value_uses_status_replicas() {
        let s = spec(
            1,
            16,
            vec![external("lag", Target::AverageValue(50_000_000))],
            None,
        );
        let mut h = Hpa::new(s, ControllerConfig::default());
        // spec says 4 but only 2 pods exist yet: 300k / (50k × 2) = 3 → ceil(300k / 50k) = 6.
        let p = pods(2);
        let o = h.sync(&SyncInput {
            now: 0.0,
            spec_replicas: 4,
            status_replicas: 2,
            pods: &p,
            readings: &[Ok(Reading::Value(300_000.0))],
        });
        assert_eq!(o.desired_replicas, 6);
    }
}
