//! Per-metric replica proposals, as `pkg/controller/podautoscaler/replica_calculator.go`
//! computes them. All values are milli-units (`Quantity.MilliValue()`), as in the controller.

/// `Tolerances` of `replica_calculator.go`: both directions default to the controller's
/// `--horizontal-pod-autoscaler-tolerance` (0.1); `behavior.scale{Up,Down}.tolerance` overrides
/// one direction (k8s 1.33+).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerances {
    pub scale_down: f64,
    pub scale_up: f64,
}

impl Tolerances {
    pub fn uniform(t: f64) -> Self {
        Self {
            scale_down: t,
            scale_up: t,
        }
    }

    /// `isWithin`: `1 − scaleDown ≤ ratio ≤ 1 + scaleUp` (the older `|1 − ratio| ≤ tolerance`).
    pub fn is_within(&self, ratio: f64) -> bool {
        (1.0 - self.scale_down) <= ratio && ratio <= (1.0 + self.scale_up)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

/// A pod matched by the scale target's selector, as the controller's pod lister sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pod {
    pub name: String,
    pub phase: PodPhase,
    /// The `Ready` condition; only `getReadyPodsCount` (External/Object `Value`) looks at it.
    pub ready: bool,
    /// `deletionTimestamp` is set.
    pub deleted: bool,
}

impl Pod {
    pub fn running(name: &str) -> Self {
        Self {
            name: name.to_string(),
            phase: PodPhase::Running,
            ready: true,
            deleted: false,
        }
    }
}

fn ceil_i32(x: f64) -> i32 {
    // Go's int32(math.Ceil(x)); `as` saturates instead of wrapping, which only matters
    // beyond 2^31 replicas.
    x.ceil() as i32
}

/// `getReadyPodsCount`: pods that are Running and Ready; an error when the selector matches
/// no pod at all.
pub fn ready_pods(pods: &[Pod]) -> Result<i64, String> {
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    Ok(pods
        .iter()
        .filter(|p| p.phase == PodPhase::Running && p.ready)
        .count() as i64)
}

/// `getUsageRatioReplicaCount`, used by `GetExternalMetricReplicas` (usage = Σ items) and
/// `GetObjectMetricReplicas` with `currentReplicas = scale.spec.replicas`.
pub fn value_replicas(
    current_replicas: i32,
    usage: i64,
    target: i64,
    pods: &[Pod],
    tol: Tolerances,
) -> Result<i32, String> {
    let ratio = usage as f64 / target as f64;
    if current_replicas != 0 {
        if tol.is_within(ratio) {
            return Ok(current_replicas);
        }
        let ready = ready_pods(pods)?;
        Ok(ceil_i32(ratio * ready as f64))
    } else {
        // Scale from zero (HPAScaleToZero): readiness and tolerance are not considered.
        Ok(ceil_i32(ratio))
    }
}

/// `GetExternalPerPodMetricReplicas` / `GetObjectPerPodMetricReplicas`, called with
/// `scale.status.replicas`; readiness plays no part.
pub fn average_value_replicas(
    status_replicas: i32,
    usage: i64,
    target: i64,
    tol: Tolerances,
) -> i32 {
    let ratio = usage as f64 / (target as f64 * status_replicas as f64);
    if tol.is_within(ratio) {
        status_replicas
    } else {
        ceil_i32(usage as f64 / target as f64)
    }
}

/// `GetMetricUsageRatio`: integer average of the items, then a float ratio.
fn usage_ratio(metrics: &[(String, i64)], target: i64) -> f64 {
    let total: i64 = metrics.iter().fold(0i64, |a, (_, v)| a.saturating_add(*v));
    let avg = total / metrics.len() as i64;
    avg as f64 / target as f64
}

/// `calcPlainMetricReplicas` (Pods metrics): `metrics` are the items the custom metrics API
/// returned, keyed by pod name (items for pods outside the selector stay in, as in the
/// controller); `pods` are the pods the scale selector matches.
pub fn pods_replicas(
    current_replicas: i32,
    metrics: &[(String, i64)],
    pods: &[Pod],
    target: i64,
    tol: Tolerances,
) -> Result<i32, String> {
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    // groupPods, non-CPU branch: deleted or Failed → ignored; Pending → unready; no item →
    // missing; everything else counts as ready (readiness is only checked for CPU).
    let mut ready_count = 0i64;
    let mut unready: Vec<&str> = Vec::new();
    let mut missing: Vec<&str> = Vec::new();
    let mut ignored: Vec<&str> = Vec::new();
    for p in pods {
        if p.deleted || p.phase == PodPhase::Failed {
            ignored.push(&p.name);
        } else if p.phase == PodPhase::Pending {
            unready.push(&p.name);
        } else if !metrics.iter().any(|(n, _)| n == &p.name) {
            missing.push(&p.name);
        } else {
            ready_count += 1;
        }
    }
    // removeMetricsForPods(ignored), removeMetricsForPods(unready).
    let mut m: Vec<(String, i64)> = metrics
        .iter()
        .filter(|(n, _)| !ignored.contains(&n.as_str()) && !unready.contains(&n.as_str()))
        .cloned()
        .collect();
    if m.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let ratio = usage_ratio(&m, target);
    let scale_up_with_unready = !unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && missing.is_empty() {
        if tol.is_within(ratio) {
            return Ok(current_replicas);
        }
        return Ok(ceil_i32(ratio * ready_count as f64));
    }
    // Missing pods damp the move: as exactly the target on a scale-down, as 0 on a scale-up.
    if ratio < 1.0 {
        m.extend(missing.iter().map(|n| (n.to_string(), target)));
    } else if ratio > 1.0 {
        m.extend(missing.iter().map(|n| (n.to_string(), 0)));
    }
    if scale_up_with_unready {
        m.extend(unready.iter().map(|n| (n.to_string(), 0)));
    }
    let new_ratio = usage_ratio(&m, target);
    if tol.is_within(new_ratio)
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok(current_replicas);
    }
    let new_replicas = ceil_i32(new_ratio * m.len() as f64);
    if (new_ratio < 1.0 && new_replicas > current_replicas)
        || (new_ratio > 1.0 && new_replicas < current_replicas)
    {
        return Ok(current_replicas);
    }
    Ok(new_replicas)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: Tolerances = Tolerances {
        scale_down: 0.1,
        scale_up: 0.1,
    };

    fn running(n: usize) -> Vec<Pod> {
        (0..n).map(|i| Pod::running(&format!("tm-{i}"))).collect()
    }

    fn items(v: &[(&str, i64)]) -> Vec<(String, i64)> {
        v.iter().map(|(n, x)| (n.to_string(), *x)).collect()
    }

    #[test]
    fn external_value_inside_tolerance_keeps_spec_replicas() {
        // 750 / 700 = 1.071 ≤ 1.1 → keep 4 (getUsageRatioReplicaCount, isWithin).
        assert_eq!(value_replicas(4, 750_000, 700_000, &running(4), TOL), Ok(4));
        // The band is inclusive at both ends: 630 / 700 = 0.9 exactly.
        assert_eq!(value_replicas(4, 630_000, 700_000, &running(4), TOL), Ok(4));
    }

    #[test]
    fn external_value_multiplies_the_ratio_by_ready_pods_not_spec() {
        // 1000 / 700 = 1.4286; × 3 ready = 4.286 → 5.
        assert_eq!(
            value_replicas(3, 1_000_000, 700_000, &running(3), TOL),
            Ok(5)
        );
        // spec 4 but only 2 pods Running+Ready: ratio 2 × 2 = 4, no scale-up at all.
        let mut pods = running(4);
        pods[2].phase = PodPhase::Pending;
        pods[3].ready = false;
        assert_eq!(value_replicas(4, 1_400_000, 700_000, &pods, TOL), Ok(4));
        // No pod matched: an error, not a proposal.
        assert!(value_replicas(4, 1_400_000, 700_000, &[], TOL).is_err());
    }

    #[test]
    fn external_value_from_zero_ignores_pods_and_tolerance() {
        // spec 0 (HPAScaleToZero): ceil(1050 / 1000) = 2 though 1.05 is inside tolerance.
        assert_eq!(value_replicas(0, 1_050_000, 1_000_000, &[], TOL), Ok(2));
    }

    #[test]
    fn external_average_value_divides_by_status_replicas() {
        // 120k / (50k × 5) = 0.48 → ceil(120k / 50k) = 3.
        assert_eq!(average_value_replicas(5, 120_000_000, 50_000_000, TOL), 3);
        // 155k / (50k × 3) = 1.033 → within → keep status 3.
        assert_eq!(average_value_replicas(3, 155_000_000, 50_000_000, TOL), 3);
        // status 0: ratio +Inf, outside → ceil(155k / 50k) = 4.
        assert_eq!(average_value_replicas(0, 155_000_000, 50_000_000, TOL), 4);
    }

    #[test]
    fn per_direction_tolerance() {
        let t = Tolerances {
            scale_down: 0.1,
            scale_up: 0.02,
        };
        // 1.05 is outside a 2 % scale-up tolerance: ceil(1.05 × 4) = ceil(4.2) = 5.
        assert_eq!(value_replicas(4, 735_000, 700_000, &running(4), t), Ok(5));
        // 0.95 is inside the 10 % scale-down tolerance.
        assert_eq!(value_replicas(4, 665_000, 700_000, &running(4), t), Ok(4));
    }

    #[test]
    fn pods_metric_plain_average() {
        // avg (800+900+1000)/3 = 900; 900/700 = 1.2857; × 3 = 3.857 → 4.
        let m = items(&[("tm-0", 800_000), ("tm-1", 900_000), ("tm-2", 1_000_000)]);
        assert_eq!(pods_replicas(3, &m, &running(3), 700_000, TOL), Ok(4));
    }

    #[test]
    fn missing_pod_counts_as_zero_on_scale_up() {
        // tm-2 has no item. ratio 1400/700 = 2 > 1 → tm-2 = 0; avg 2800000/3 = 933333 (integer
        // milli); 933333/700000 = 1.3333329 × 3 = 3.9999986 → 4.
        let m = items(&[("tm-0", 1_400_000), ("tm-1", 1_400_000)]);
        assert_eq!(pods_replicas(3, &m, &running(3), 700_000, TOL), Ok(4));
        // Where it changes the answer: 3 of 4 pods report 980 (ratio 1.4, undamped
        // ceil(1.4 × 3) = 5); with tm-3 as 0 the avg is 2940000/4 = 735000 → ratio 1.05,
        // inside the tolerance → keep 4.
        let m = items(&[("tm-0", 980_000), ("tm-1", 980_000), ("tm-2", 980_000)]);
        assert_eq!(pods_replicas(4, &m, &running(4), 700_000, TOL), Ok(4));
    }

    #[test]
    fn missing_pod_counts_as_target_on_scale_down() {
        // ratio 350/700 = 0.5 → tm-2 = 700; avg 1400000/3 = 466666 → 0.66667 × 3 = 1.999998 → 2
        // (undamped it would be ceil(0.5 × 2) = 1).
        let m = items(&[("tm-0", 350_000), ("tm-1", 350_000)]);
        assert_eq!(pods_replicas(3, &m, &running(3), 700_000, TOL), Ok(2));
    }

    #[test]
    fn pending_pods_count_as_zero_only_when_scaling_up() {
        let mut pods = running(2);
        pods[1].phase = PodPhase::Pending;
        // tm-0 at 1400 → ratio 2; tm-1 Pending = 0 → avg 700 → ratio 1.0 → keep spec 2.
        let m = items(&[("tm-0", 1_400_000)]);
        assert_eq!(pods_replicas(2, &m, &pods, 700_000, TOL), Ok(2));
        // Scale-down with a Pending pod: no rebalancing, ceil(0.5 × 1 ready) = 1.
        let m = items(&[("tm-0", 350_000)]);
        assert_eq!(pods_replicas(2, &m, &pods, 700_000, TOL), Ok(1));
    }

    #[test]
    fn damping_that_flips_direction_keeps_spec() {
        // tm-0 800 → ratio 1.1429 (up); tm-1 missing → 0 → avg 400 → 0.571 (down): keep 2.
        let m = items(&[("tm-0", 800_000)]);
        assert_eq!(pods_replicas(2, &m, &running(2), 700_000, TOL), Ok(2));
    }

    #[test]
    fn ignored_pods_and_foreign_items() {
        let mut pods = running(3);
        pods[2].deleted = true;
        // tm-2's item is dropped (deleted pod); "other" is not a matched pod yet averages in:
        // (700 + 700 + 2800) / 3 = 1400 → ratio 2 × 2 ready = 4.
        let m = items(&[
            ("tm-0", 700_000),
            ("tm-1", 700_000),
            ("tm-2", 9_000_000),
            ("other", 2_800_000),
        ]);
        assert_eq!(pods_replicas(3, &m, &pods, 700_000, TOL), Ok(4));
    }

    #[test]
    fn no_usable_items_is_an_error() {
        let mut pods = running(1);
        pods[0].phase = PodPhase::Pending;
        let m = items(&[("tm-0", 1_000)]);
        assert!(pods_replicas(1, &m, &pods, 700_000, TOL).is_err());
        assert!(pods_replicas(1, &[], &running(1), 700_000, TOL).is_err());
    }
}
