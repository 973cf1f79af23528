//! Until when an evaluation's answer stays what a new evaluation would give, so that the
//! serialized answer can be served again as it is.
//!
//! Between two refreshes of the value cache the data cannot change; what can is the clock:
//! a group turns stale once its newest sample is older than `maxAge`. A restart hold, a
//! remembered answer or a list of pods from the Kubernetes API depends on more than the
//! snapshot, so such answers are never promised.

use std::time::{Duration, Instant};

use super::plan::{Group, PartName};

/// The earliest of: each snapshot's end of freshness (`fetched_at + refresh`), and the moment
/// the first of `groups` turns stale. `None` when that moment has passed already.
pub(super) fn until(
    refresh: Duration,
    snapshots: &[Instant],
    groups: &[Group],
    max_age: Option<Duration>,
    now: f64,
) -> Option<Instant> {
    let mut until = snapshots.iter().map(|at| *at + refresh).min()?;
    if let Some(max_age) = max_age {
        let ages_left = groups
            .iter()
            .filter_map(|g| g.part(PartName::NEWEST))
            .map(|newest| newest + max_age.as_secs_f64() - now)
            // Already stale stays stale: only a group still fresh can change the answer.
            .filter(|left| *left > 0.0);
        if let Some(left) = ages_left.reduce(f64::min) {
            until = until.min(Instant::now() + Duration::from_secs_f64(left));
        }
    }
    (until > Instant::now()).then_some(until)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(newest: f64) -> Group {
        Group::new(crate::labels::Labels::new()).with(PartName::NEWEST, newest)
    }

    #[test]
    fn the_first_snapshot_to_expire_or_group_to_turn_stale_ends_it() {
        let now = Instant::now();
        let refresh = Duration::from_secs(5);
        let u = until(
            refresh,
            &[now, now - Duration::from_secs(2)],
            &[],
            None,
            0.0,
        );
        assert!(u.is_some_and(|u| u <= now + Duration::from_secs(3)));
        // A group 119 s old with maxAge 120 s turns stale in a second.
        let u = until(
            refresh,
            &[now],
            &[group(1000.0 - 119.0), group(1000.0 - 200.0)],
            Some(Duration::from_secs(120)),
            1000.0,
        );
        assert!(u.is_some_and(|u| u <= Instant::now() + Duration::from_millis(1001)));
        assert!(until(refresh, &[now - refresh * 2], &[], None, 0.0).is_none());
        assert!(until(refresh, &[], &[], None, 0.0).is_none());
    }
}
