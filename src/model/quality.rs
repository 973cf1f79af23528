//! Data quality: what counts as bad data, and what a signal answers for each kind of it.
//!
//! A wrong 0 makes the HPA scale a job down, so every kind of bad data is an error unless the
//! signal's configuration names a value for it.

use std::time::Duration;

use serde::Serialize;

/// A kind of bad data; each has its own setting in a [`DataPolicy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadData {
    /// No series match.
    Missing,
    /// Series exist but every sample is NaN.
    NaN,
    /// A sample is +Inf or -Inf.
    Infinite,
    /// A sample is negative (none of the built-in gauges can be).
    Negative,
    /// The newest sample is older than `maxAge`.
    Stale,
}

/// What a signal answers for one kind of bad data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Fallback {
    /// An error: the HPA keeps the current replica count.
    #[default]
    Error,
    /// This value instead. Only where it is truly what the data means ("no backlog series
    /// means no backlog"), since a wrong 0 makes the HPA scale down.
    Value(f64),
}

/// The answer for each kind of bad data (`onMissing`, `onNaN`, `onInfinite`, `onNegative`,
/// `onStale`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataPolicy {
    pub missing: Fallback,
    pub nan: Fallback,
    pub infinite: Fallback,
    pub negative: Fallback,
    pub stale: Fallback,
}

impl DataPolicy {
    pub fn on(&self, bad: BadData) -> Fallback {
        match bad {
            BadData::Missing => self.missing,
            BadData::NaN => self.nan,
            BadData::Infinite => self.infinite,
            BadData::Negative => self.negative,
            BadData::Stale => self.stale,
        }
    }
}

/// What the query saw of one metric for one label set.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Observed {
    /// The aggregate of the finite, non-negative samples; `None` when there is none.
    pub value: Option<f64>,
    /// Time of the newest sample (Unix seconds), NaN ones included.
    pub newest: Option<f64>,
    /// How many samples are negative and finite.
    pub negative: Option<f64>,
    /// How many samples are infinite.
    pub infinite: Option<f64>,
}

/// The value, or which kind of bad data stands in its way and why.
pub fn check(o: &Observed, now: f64, max_age: Option<Duration>) -> Result<f64, (BadData, String)> {
    if let (Some(max_age), Some(newest)) = (max_age, o.newest) {
        let age = now - newest;
        if age > max_age.as_secs_f64() {
            return Err((
                BadData::Stale,
                format!(
                    "the newest sample is {:.0}s old, older than maxAge {}",
                    age,
                    crate::signals::promql_duration(max_age)
                ),
            ));
        }
    }
    if let Some(n) = o.infinite.filter(|n| *n > 0.0) {
        return Err((BadData::Infinite, format!("{n} samples are infinite")));
    }
    if let Some(n) = o.negative.filter(|n| *n > 0.0) {
        return Err((BadData::Negative, format!("{n} samples are negative")));
    }
    match o.value {
        Some(v) => Ok(v),
        None if o.newest.is_some() => Err((BadData::NaN, "every sample is NaN".into())),
        None => Err((BadData::Missing, "no series of the measured metric".into())),
    }
}

/// [`check`] with the policy applied: a configured value stands in for bad data.
pub fn resolve(
    o: &Observed,
    now: f64,
    max_age: Option<Duration>,
    policy: &DataPolicy,
) -> Result<f64, (BadData, String)> {
    check(o, now, max_age).or_else(|(bad, why)| match policy.on(bad) {
        Fallback::Value(v) => Ok(v),
        Fallback::Error => Err((bad, why)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_000.0;

    fn obs(value: Option<f64>, newest: Option<f64>) -> Observed {
        Observed {
            value,
            newest,
            ..Default::default()
        }
    }

    #[test]
    fn a_fresh_value_passes() {
        let o = obs(Some(640.0), Some(990.0));
        assert_eq!(check(&o, NOW, Some(Duration::from_secs(120))), Ok(640.0));
    }

    #[test]
    fn each_kind_of_bad_data_is_named() {
        let max_age = Some(Duration::from_secs(120));
        // 1000 - 870 = 130 s old, past 120 s.
        let stale = check(&obs(Some(1.0), Some(870.0)), NOW, max_age).unwrap_err();
        assert_eq!(stale.0, BadData::Stale);
        assert!(stale.1.contains("130s old"), "{}", stale.1);
        // Exactly 120 s old is still fresh.
        assert_eq!(check(&obs(Some(1.0), Some(880.0)), NOW, max_age), Ok(1.0));
        assert_eq!(
            check(&obs(None, Some(990.0)), NOW, max_age).unwrap_err().0,
            BadData::NaN
        );
        assert_eq!(
            check(&obs(None, None), NOW, max_age).unwrap_err().0,
            BadData::Missing
        );
        let inf = Observed {
            infinite: Some(2.0),
            ..obs(Some(1.0), Some(990.0))
        };
        assert_eq!(check(&inf, NOW, max_age).unwrap_err().0, BadData::Infinite);
        let neg = Observed {
            negative: Some(1.0),
            ..obs(Some(1.0), Some(990.0))
        };
        assert_eq!(check(&neg, NOW, max_age).unwrap_err().0, BadData::Negative);
        // Counts of zero are no bad data.
        let clean = Observed {
            negative: Some(0.0),
            infinite: Some(0.0),
            ..obs(Some(3.0), Some(990.0))
        };
        assert_eq!(check(&clean, NOW, max_age), Ok(3.0));
    }

    #[test]
    fn the_policy_replaces_only_what_it_names() {
        let policy = DataPolicy {
            nan: Fallback::Value(0.0),
            ..Default::default()
        };
        assert_eq!(
            resolve(&obs(None, Some(990.0)), NOW, None, &policy),
            Ok(0.0)
        );
        assert_eq!(
            resolve(&obs(None, None), NOW, None, &policy).unwrap_err().0,
            BadData::Missing
        );
        // Without maxAge nothing is stale.
        assert_eq!(
            resolve(&obs(Some(5.0), Some(0.0)), NOW, None, &policy),
            Ok(5.0)
        );
    }
}
