//! Kubernetes `resource.Quantity` strings for metric values.
//!
//! The HPA reads every value with `MilliValue()`, i.e. `ceil(q × 1000)` as an int64. We emit
//! exactly that milli value, rounded up the same way, in canonical decimal-SI form
//! (`"750m"`, `"12k"`, `"1500"`), clamped to what an int64 of milli-units holds.

/// Largest magnitude in milli-units that `MilliValue()` can return without overflow.
pub const MAX_MILLI: i64 = i64::MAX;

#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("value {0} is not a finite number")]
pub struct NotFinite(pub f64);

/// The milli value the HPA will read, rounded up. Values within a rounding error of an integer
/// milli count are not pushed to the next one (0.7 × 1000 is 700.0000000000001 in binary).
pub fn to_milli(value: f64) -> Result<i64, NotFinite> {
    if !value.is_finite() {
        return Err(NotFinite(value));
    }
    let scaled = value * 1000.0;
    let nearest = scaled.round();
    let milli = if (scaled - nearest).abs() <= 1e-6 * nearest.abs().max(1.0) {
        nearest
    } else {
        scaled.ceil()
    };
    // `as` saturates at the int64 bounds, which is the clamp we want.
    Ok(if milli >= MAX_MILLI as f64 {
        MAX_MILLI
    } else if milli <= -(MAX_MILLI as f64) {
        -MAX_MILLI
    } else {
        milli as i64
    })
}

/// Canonical decimal-SI text for a milli value: the largest suffix that keeps an integer.
pub fn format_milli(milli: i64) -> String {
    if milli == 0 {
        return "0".to_string();
    }
    let negative = milli < 0;
    let mut mantissa = milli.unsigned_abs();
    // Exponent steps of 10^3 starting at milli.
    const SUFFIXES: [&str; 7] = ["m", "", "k", "M", "G", "T", "P"];
    let mut idx = 0;
    while idx + 1 < SUFFIXES.len() && mantissa % 1000 == 0 {
        mantissa /= 1000;
        idx += 1;
    }
    let sign = if negative { "-" } else { "" };
    format!("{sign}{mantissa}{}", SUFFIXES[idx])
}

pub fn format(value: f64) -> Result<String, NotFinite> {
    to_milli(value).map(format_milli)
}

/// Parses the decimal-SI subset this server emits, for tests and the `query` command.
pub fn parse_milli(q: &str) -> Option<i64> {
    let (num, mult): (&str, i64) = if let Some(n) = q.strip_suffix('m') {
        (n, 1)
    } else if let Some(n) = q.strip_suffix('k') {
        (n, 1_000_000)
    } else if let Some(n) = q.strip_suffix('M') {
        (n, 1_000_000_000)
    } else if let Some(n) = q.strip_suffix('G') {
        (n, 1_000_000_000_000)
    } else if let Some(n) = q.strip_suffix('T') {
        (n, 1_000_000_000_000_000)
    } else if let Some(n) = q.strip_suffix('P') {
        (n, 1_000_000_000_000_000_000)
    } else {
        (q, 1000)
    };
    num.parse::<i64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        let cases = [
            (0.0, "0"),
            (0.75, "750m"),
            (1.5, "1500m"),
            (1500.0, "1500"),
            (2000.0, "2k"),
            (12000.0, "12k"),
            (1e6, "1M"),
            (-2.5, "-2500m"),
            (0.7, "700m"),
            (33.3333, "33334m"),
            (0.0001, "1m"),
        ];
        for (v, want) in cases {
            assert_eq!(format(v).unwrap(), want, "{v}");
        }
    }

    #[test]
    fn rounds_up_like_milli_value() {
        assert_eq!(to_milli(0.0004).unwrap(), 1);
        assert_eq!(to_milli(1.0001).unwrap(), 1001);
        assert_eq!(to_milli(-1.0001).unwrap(), -1000);
    }

    #[test]
    fn clamps_and_refuses_non_finite() {
        assert_eq!(to_milli(1e300).unwrap(), i64::MAX);
        assert_eq!(to_milli(-1e300).unwrap(), -i64::MAX);
        assert!(format(f64::NAN).is_err());
        assert!(format(f64::INFINITY).is_err());
        assert!(format(f64::NEG_INFINITY).is_err());
    }

    #[test]
    fn parse_round_trips() {
        for m in [0, 1, 750, 1500, 2_000_000, 12_000_000, -2500, i64::MAX] {
            assert_eq!(parse_milli(&format_milli(m)), Some(m), "{m}");
        }
    }
}
