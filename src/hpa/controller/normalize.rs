//! From a sync's proposal to the replicas it sets (`normalizeDesiredReplicas*`): the
//! stabilization windows over past recommendations, the scaling policies over past scale
//! events, and the [min, max] bounds.

use super::{Condition, Hpa, SyncOutcome};
use crate::hpa::{Behavior, PolicyKind, ScalingRules, SelectPolicy};

const SCALE_UP_LIMIT_FACTOR: f64 = 2.0;
const SCALE_UP_LIMIT_MINIMUM: f64 = 4.0;

impl Hpa {
    /// `normalizeDesiredReplicas`: highest recommendation of the downscale window, then the
    /// `max(2 × current, 4)` scale-up limit and [min, max] (`convertDesiredReplicasWithRules`).
    pub(super) fn normalize(
        &mut self,
        now: f64,
        current: i32,
        pre: i32,
        out: &mut SyncOutcome,
    ) -> i32 {
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
        let b = self.spec.behavior.clone().unwrap_or_else(|| Behavior {
            scale_up: ScalingRules::default_scale_up(),
            scale_down: ScalingRules::default_scale_down(),
        });
        (b.scale_up, b.scale_down)
    }

    /// `normalizeDesiredReplicasWithBehaviors`: `stabilizeRecommendationWithBehaviors`, then
    /// `convertDesiredReplicasWithBehaviorRate`.
    pub(super) fn normalize_with_behaviors(
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
                PolicyKind::Pods => start + p.value,
                // Rounded up so that a small percentage still adds a pod.
                PolicyKind::Percent => {
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
                PolicyKind::Pods => start - p.value,
                // Go's int32(float64) truncates.
                PolicyKind::Percent => (start as f64 * (1.0 - p.value as f64 / 100.0)) as i32,
            };
            result = pick(result, proposed);
        }
        result
    }

    /// `storeScaleEvent`: kept only with a `behavior`, and only as long as the longest policy
    /// period of its direction needs them (`markScaleEventsOutdated`).
    pub(super) fn store_scale_event(&mut self, now: f64, prev: i32, new: i32) {
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
