//! The restart hold: what a signal answers while its Flink job restarts.
//!
//! Every Reactive Mode rescale restarts the job from its last checkpoint. For a while its
//! throughput is zero, its backlog spikes and busy time reads ~1000 ms/s while tasks deploy
//! and restore; Flink's per-second meters then average over 60 s (`MeterView`), so rates ramp
//! for a minute more. Numbers from that window would make the HPA scale again, so a signal
//! holds its last good value instead, for a bounded time.

use std::time::Duration;

/// A job's state as the JobManager reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JobState {
    /// `flink_jobmanager_job_runningTime`, ms since the job last entered RUNNING.
    pub running_ms: Option<f64>,
    /// `flink_jobmanager_job_numRestarts`.
    pub restarts: Option<f64>,
}

/// The restart count last seen for a job, when (Unix seconds) it last rose, and whether the
/// job's `runningTime` has been seen to start again since.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestartCount {
    pub count: f64,
    pub rose_at: Option<f64>,
    pub running_reset: bool,
    /// Whether the job was restarting at the last reading.
    pub restarting: bool,
    /// When (the job state's evaluation time) the job was last seen running again after a
    /// restart: data evaluated before then may still show the restart.
    pub back_at: Option<f64>,
}

/// Updates the remembered restart count with a new reading at `now`; `young` tells whether
/// the reading's `runningTime` is below the warm-up (the new attempt's clock).
pub fn track_restarts(
    prev: Option<RestartCount>,
    count: f64,
    young: bool,
    now: f64,
) -> RestartCount {
    match prev {
        Some(p) if count > p.count => RestartCount {
            count,
            rose_at: Some(now),
            running_reset: young,
            ..p
        },
        Some(p) => RestartCount {
            count: count.max(p.count),
            rose_at: p.rose_at,
            running_reset: p.running_reset || young,
            ..p
        },
        None => RestartCount {
            count,
            rose_at: None,
            running_reset: young,
            restarting: false,
            back_at: None,
        },
    }
}

/// Whether the job is restarting or still warming up at `now`: its `runningTime` is below the
/// warm-up, or its restart count rose within the warm-up and `runningTime` has not started
/// again since. Flink 1.20 resets `runningTime` only once the job is RUNNING again and keeps
/// counting the old attempt's time while it restarts (seen on a real Reactive Mode rescale:
/// 224,799 ms reported while the REST API said RESTARTING, 11,777 ms fifteen seconds later),
/// whereas `numRestarts` rises as the restart begins, rescales included. Without a
/// `runningTime` series, the rise alone decides for the warm-up.
pub fn is_restarting(
    state: &JobState,
    seen: Option<RestartCount>,
    warm_up: Duration,
    now: f64,
) -> bool {
    let warm = warm_up.as_secs_f64();
    let young = state.running_ms.is_some_and(|ms| ms < warm * 1000.0);
    let rose = seen.is_some_and(|s| {
        s.rose_at.is_some_and(|t| now - t < warm)
            && (state.running_ms.is_none() || !s.running_reset)
    });
    young || rose
}

/// Records whether the job is `restarting` per the state evaluated at `state_time`; the first
/// reading that finds it running after one that found it restarting marks its return.
pub fn note_return(c: RestartCount, restarting: bool, state_time: f64) -> RestartCount {
    RestartCount {
        restarting,
        back_at: if c.restarting && !restarting {
            Some(state_time)
        } else {
            c.back_at
        },
        ..c
    }
}

/// Whether data evaluated at `data_time` predates the job's return to running at `back_at`:
/// the job state and the data are queried (and cached) apart, so a state that already shows
/// the job running can sit next to data from its restart, which must not be taken (or kept
/// to hold) as the running job's.
pub fn predates_return(back_at: Option<f64>, data_time: f64) -> bool {
    back_at.is_some_and(|t| data_time < t)
}

/// How a held value relates to the job's parallelism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldScaling {
    /// A job-wide amount (backlog records, segments, TaskManagers): held as it is.
    Absolute,
    /// A per-subtask ratio (busy time, lag in seconds): the same load spread over more
    /// subtasks reads proportionally lower. For an External `Value` target the HPA computes
    /// `ceil(value / target × readyPods)`; serving the old ratio unchanged after a scale-up
    /// N→N′ would ask for about N′²/N.
    PerSubtask,
}

/// What a value measured at parallelism `p_old` would read at `p_new`, or `None` when that
/// cannot be known (no parallelism on either side).
pub fn held_value(
    value: f64,
    scaling: HoldScaling,
    p_old: Option<f64>,
    p_new: Option<f64>,
) -> Option<f64> {
    match scaling {
        HoldScaling::Absolute => Some(value),
        HoldScaling::PerSubtask => match (p_old, p_new) {
            (Some(old), Some(new)) if old > 0.0 && new > 0.0 => Some(value * old / new),
            _ => None,
        },
    }
}

/// Whether a hold that began at `since` (Unix seconds) may still go on at `now`.
pub fn within_hold(since: f64, now: f64, max_hold: Duration) -> bool {
    now - since < max_hold.as_secs_f64()
}

/// When a hold began, and in which restart episode, for an evaluation at `now` that finds the
/// job restarting in `episode` (the restart counts of the restarting jobs; `None` for a
/// rescale seen only as a parallelism mismatch). A hold that ran out goes on counting as
/// over until the job is seen running, unless the restart count shows a new restart: an
/// evaluation need not have seen the job running in between.
pub fn hold_began(
    since: Option<f64>,
    began_in: Option<f64>,
    episode: Option<f64>,
    now: f64,
) -> (f64, Option<f64>) {
    match (since, began_in, episode) {
        (Some(_), Some(a), Some(b)) if a != b => (now, episode),
        (Some(t), _, _) => (t, episode.or(began_in)),
        (None, _, _) => (now, episode),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_from_before_the_return_to_running_is_told_apart() {
        let c = track_restarts(None, 0.0, false, 10.0);
        // Running from the first reading: no return to date anything by.
        let c = note_return(c, false, 10.0);
        assert_eq!(c.back_at, None);
        assert!(!predates_return(c.back_at, 5.0));
        // Count 1 at 20 with runningTime reset: restarting.
        let c = note_return(track_restarts(Some(c), 1.0, true, 20.0), true, 20.0);
        assert_eq!(c.back_at, None);
        // The state evaluated at 31.5 shows it running: back at 31.5.
        let c = note_return(track_restarts(Some(c), 1.0, false, 32.0), false, 31.5);
        assert_eq!(c.back_at, Some(31.5));
        // Data evaluated at 30 is from the restart; at 31.5 or later it is not.
        assert!(predates_return(c.back_at, 30.0));
        assert!(!predates_return(c.back_at, 31.5));
        // Later running readings keep the first return.
        let c = note_return(c, false, 45.0);
        assert_eq!(c.back_at, Some(31.5));
    }

    #[test]
    fn a_new_restart_count_begins_a_new_hold() {
        // First restart (count 1) seen at 100: the hold begins.
        assert_eq!(hold_began(None, None, Some(1.0), 100.0), (100.0, Some(1.0)));
        // Same restart at 400: the hold still dates from 100 (and is over with maxHold 5 min).
        assert_eq!(
            hold_began(Some(100.0), Some(1.0), Some(1.0), 400.0),
            (100.0, Some(1.0))
        );
        // Count 2 at 900 without a running evaluation in between: a new hold from 900.
        assert_eq!(
            hold_began(Some(100.0), Some(1.0), Some(2.0), 900.0),
            (900.0, Some(2.0))
        );
        // A hold begun on a parallelism mismatch (no episode) is not restarted when the
        // count then rises, so maxHold bounds it.
        assert_eq!(
            hold_began(Some(100.0), None, Some(3.0), 130.0),
            (100.0, Some(3.0))
        );
        // And a mismatch seen inside a counted restart keeps its episode.
        assert_eq!(
            hold_began(Some(100.0), Some(3.0), None, 130.0),
            (100.0, Some(3.0))
        );
    }

    const WARM_UP: Duration = Duration::from_secs(120);

    #[test]
    fn running_time_decides_when_present() {
        let young = JobState {
            running_ms: Some(119_999.0),
            restarts: Some(0.0),
        };
        assert!(is_restarting(&young, None, WARM_UP, 0.0));
        let warm = JobState {
            running_ms: Some(120_000.0),
            restarts: Some(7.0),
        };
        assert!(!is_restarting(&warm, None, WARM_UP, 0.0));
    }

    #[test]
    fn a_rise_of_restarts_counts_while_running_time_still_counts_the_old_attempt() {
        // Flink 1.20 during a rescale: numRestarts has risen, runningTime not reset yet.
        let restarting = JobState {
            running_ms: Some(224_799.0),
            restarts: Some(5.0),
        };
        let seen = track_restarts(
            Some(track_restarts(None, 4.0, false, 1_000.0)),
            5.0,
            false,
            1_015.0,
        );
        assert!(is_restarting(&restarting, Some(seen), WARM_UP, 1_016.0));
        // Long after the rise, a runningTime past the warm-up is warm.
        assert!(!is_restarting(&restarting, Some(seen), WARM_UP, 1_200.0));
        // RUNNING again: runningTime restarted (seen young), then past the warm-up it rules.
        let reset = track_restarts(Some(seen), 5.0, true, 1_030.0);
        let warm_again = JobState {
            running_ms: Some(121_000.0),
            restarts: Some(5.0),
        };
        assert!(!is_restarting(&warm_again, Some(reset), WARM_UP, 1_100.0));
    }

    #[test]
    fn without_running_time_a_recent_rise_of_restarts_decides() {
        let state = JobState {
            running_ms: None,
            restarts: Some(3.0),
        };
        let first = track_restarts(None, 2.0, false, 1_000.0);
        assert_eq!(first.rose_at, None, "the first reading is no rise");
        let rose = track_restarts(Some(first), 3.0, false, 1_010.0);
        assert_eq!(rose.rose_at, Some(1_010.0));
        // 1,100 - 1,010 = 90 s < 120 s: warming up; at 1,130 it is 120 s: done.
        assert!(is_restarting(&state, Some(rose), WARM_UP, 1_100.0));
        assert!(!is_restarting(&state, Some(rose), WARM_UP, 1_130.0));
        // A reading that goes down (a counter reset) is no rise.
        let after = track_restarts(Some(rose), 0.0, false, 1_200.0);
        assert_eq!(after.rose_at, Some(1_010.0));
    }

    #[test]
    fn per_subtask_ratios_are_moved_to_the_new_parallelism() {
        // Busy 900 ms/s at 2 subtasks; after a scale-up to 3 the same load reads 600.
        assert_eq!(
            held_value(900.0, HoldScaling::PerSubtask, Some(2.0), Some(3.0)),
            Some(600.0)
        );
        // After a scale-down 4 → 2: 300 reads 600.
        assert_eq!(
            held_value(300.0, HoldScaling::PerSubtask, Some(4.0), Some(2.0)),
            Some(600.0)
        );
        // Unknown new parallelism: no value rather than a guess.
        assert_eq!(
            held_value(300.0, HoldScaling::PerSubtask, Some(4.0), None),
            None
        );
        assert_eq!(
            held_value(5_000.0, HoldScaling::Absolute, Some(4.0), None),
            Some(5_000.0)
        );
    }

    #[test]
    fn holds_are_bounded() {
        let max = Duration::from_secs(300);
        assert!(within_hold(1_000.0, 1_299.0, max));
        assert!(!within_hold(1_000.0, 1_300.0, max));
    }
}
