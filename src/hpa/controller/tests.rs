use super::super::{Behavior, MetricSpec, Policy, PolicyKind, ScalingRules, SelectPolicy};
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
