use super::aggregation::quantile;
use super::functions::{extrapolated_rate, linear_regression};

#[test]
fn rate_extrapolates_to_the_window_edges_by_hand() {
    // Counter 0, 10, 20, 30 at 15 s spacing, window [0, 60] s evaluated at 60 s: the
    // samples at 5, 20, 35, 50 s. Sampled interval 45 s, avg 15 s; 5 s to the start
    // (< 16.5, but the zero point is 0 s before the first sample at value 0 → 0 s);
    // 10 s to the end (< 16.5). Increase 30 × (45 + 0 + 10) / 45 = 36.67; rate / 60.
    let p = [(5_000, 0.0), (20_000, 10.0), (35_000, 20.0), (50_000, 30.0)];
    let inc = extrapolated_rate(&p, 0, 60_000, 60.0, true, false).unwrap();
    assert!((inc - 30.0 * 55.0 / 45.0).abs() < 1e-9, "{inc}");
    let rate = extrapolated_rate(&p, 0, 60_000, 60.0, true, true).unwrap();
    assert!((rate - inc / 60.0).abs() < 1e-12);
    // A reset: 0, 10, 3 → 10 + 3 = 13 of increase before extrapolation.
    let p = [(0, 0.0), (10_000, 10.0), (20_000, 3.0)];
    let inc = extrapolated_rate(&p, 0, 20_000, 20.0, true, false).unwrap();
    assert!((inc - 13.0).abs() < 1e-9, "{inc}");
    // Far from the edges: half an interval each side. 10 → 20 over 10 s in [0, 100]:
    // 10 × (10 + 5 + 5) / 10 = 20.
    let p = [(40_000, 10.0), (50_000, 20.0)];
    let d = extrapolated_rate(&p, 0, 100_000, 100.0, false, false).unwrap();
    assert!((d - 20.0).abs() < 1e-9, "{d}");
    assert!(extrapolated_rate(&p[..1], 0, 100_000, 100.0, true, true).is_none());
}

#[test]
fn regression_by_hand() {
    // y = 2x + 1 at x = 0, 1, 2 s.
    let p = [(0, 1.0), (1000, 3.0), (2000, 5.0)];
    let (slope, intercept) = linear_regression(&p, 0);
    assert!((slope - 2.0).abs() < 1e-12 && (intercept - 1.0).abs() < 1e-12);
    // Intercept at t = 2 s: 5.
    let (_, at2) = linear_regression(&p, 2000);
    assert!((at2 - 5.0).abs() < 1e-12);
    assert_eq!(linear_regression(&[(0, 4.0), (1000, 4.0)], 0), (0.0, 4.0));
}

#[test]
fn quantile_interpolates() {
    assert_eq!(quantile(0.5, &[1.0, 2.0, 3.0, 4.0]), 2.5);
    assert_eq!(quantile(0.0, &[3.0, 1.0]), 1.0);
    assert_eq!(quantile(2.0, &[1.0]), f64::INFINITY);
}
