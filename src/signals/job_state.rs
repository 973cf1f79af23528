//! The Flink jobs' state, from the JobManager's series: which jobs restart or warm up, and
//! at what parallelism each runs. One grouped query answers every signal and request.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use crate::config::SignalSpec;
use crate::model::hold::{is_restarting, note_return, track_restarts, JobState, RestartCount};
use crate::promql::LabelFilter;

use super::kinds::JobView;
use super::plan::{Agg, Group, Part, PartName, QuerySpec};
use super::{BUSY_TIME, JOB_RESTARTS, JOB_RUNNING_TIME};

/// A job's parallelism: its widest vertex's subtask count.
const PARALLELISM: PartName = PartName("parallelism");
/// Most jobs whose restart counts and warnings are remembered.
const MAX_JOBS: usize = 10_000;

/// The job-state query for a signal's namespace settings.
pub(super) fn query(spec: &SignalSpec) -> QuerySpec {
    let mut by = Vec::new();
    if spec.namespaced {
        by.push(spec.namespace_label.clone());
    }
    by.push("job_name".to_string());
    let b = by.join(", ");
    QuerySpec {
        parts: vec![
            Part {
                name: PartName::RUNNING,
                expr: format!("min by ({b}) ({JOB_RUNNING_TIME})"),
                agg: Agg::Min,
            },
            Part {
                name: PartName::RESTARTS,
                expr: format!("max by ({b}) ({JOB_RESTARTS})"),
                agg: Agg::Max,
            },
            Part {
                name: PARALLELISM,
                expr: format!("max by ({b}) (count by ({b}, task_id) ({BUSY_TIME}))"),
                agg: Agg::Max,
            },
        ],
        by,
        keep_samples: false,
    }
}

/// What the jobs a request covers are doing.
#[derive(Debug, Clone)]
pub(super) struct Jobs {
    pub view: JobView,
    /// The covered jobs that are restarting or warming up.
    pub restarting: Vec<String>,
    /// The parallelism of the one covered job, when there is one job and it is known.
    pub parallelism: Option<f64>,
    /// The sum of the restarting jobs' restart counts: it names a restart episode, so a hold
    /// that ran out in one restart does not keep the next one from holding, whether or not
    /// an evaluation saw the job running in between.
    pub episode: Option<f64>,
    /// The latest return to running (state evaluation time) of the covered jobs that run.
    pub back_at: Option<f64>,
}

impl Jobs {
    pub fn unknown() -> Self {
        Self {
            view: JobView::Unknown,
            restarting: Vec::new(),
            parallelism: None,
            episode: None,
            back_at: None,
        }
    }
}

/// Remembered per job: its restart count, and whether its missing state was reported.
#[derive(Default)]
pub(super) struct Tracker {
    restarts: Mutex<HashMap<String, RestartCount>>,
    /// Requests already warned about, by a key of their text.
    warned: Mutex<HashSet<crate::text_key::TextKey>>,
    hasher: crate::text_key::TextHasher,
}

impl Tracker {
    /// The state of the jobs among `groups` that pass `filters` (the request's namespace and
    /// job filters; a request that names no job covers its namespace's jobs), read from a
    /// job-state answer evaluated at `state_time`.
    #[allow(clippy::too_many_arguments)]
    pub fn jobs(
        &self,
        spec: &SignalSpec,
        q: &QuerySpec,
        groups: &[Group],
        filters: &[LabelFilter],
        warm_up: Duration,
        now: f64,
        state_time: f64,
    ) -> Jobs {
        let covered = q.regroup(groups, filters, &q.by);
        let ns_label = &spec.namespace_label;
        let mut restarting = Vec::new();
        let mut episode: Option<f64> = None;
        let mut back_at: Option<f64> = None;
        let mut known = 0;
        let mut seen = self.restarts.lock().unwrap_or_else(|p| p.into_inner());
        for g in &covered {
            let job = g
                .labels
                .get("job_name")
                .map(|j| j.to_string())
                .unwrap_or_default();
            let key = format!(
                "{}|{job}",
                g.labels
                    .get(ns_label.as_str())
                    .map(|n| n.as_str())
                    .unwrap_or("")
            );
            let state = JobState {
                running_ms: g.part(PartName::RUNNING),
                restarts: g.part(PartName::RESTARTS),
            };
            if state.running_ms.is_none() && state.restarts.is_none() {
                continue;
            }
            known += 1;
            let count = match state.restarts {
                Some(c) if seen.len() < MAX_JOBS || seen.contains_key(&key) => {
                    let young = state
                        .running_ms
                        .is_some_and(|ms| ms < warm_up.as_secs_f64() * 1000.0);
                    Some(track_restarts(seen.get(&key).copied(), c, young, now))
                }
                _ => None,
            };
            let now_restarting = is_restarting(&state, count, warm_up, now);
            if let Some(c) = count {
                let c = note_return(c, now_restarting, state_time);
                if !now_restarting {
                    if let Some(t) = c.back_at {
                        back_at = Some(back_at.map_or(t, |b: f64| b.max(t)));
                    }
                }
                seen.insert(key, c);
            }
            if now_restarting {
                restarting.push(job);
                if let Some(c) = count {
                    *episode.get_or_insert(0.0) += c.count;
                }
            }
        }
        let parallelism = match covered.as_slice() {
            [one] => one.part(PARALLELISM),
            _ => None,
        };
        let view = if !restarting.is_empty() {
            JobView::Restarting
        } else if known > 0 {
            JobView::Running
        } else {
            JobView::Unknown
        };
        Jobs {
            view,
            restarting,
            parallelism,
            episode,
            back_at,
        }
    }

    /// Says once per request key that no JobManager series cover it, so the restart hold
    /// cannot engage: usually a scrape configuration that drops or renames Flink's
    /// `job_name` on the JobManager's series.
    pub fn warn_missing(&self, signal: &str, key: &str) -> bool {
        let id = self.hasher.key(&format!("{signal}|{key}"));
        let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
        if warned.len() >= MAX_JOBS || !warned.insert(id) {
            return false;
        }
        tracing::warn!(
            signal,
            request = key,
            "no JobManager series ({JOB_RUNNING_TIME}, {JOB_RESTARTS}) for the Flink job of this request: the restart hold cannot engage; check that the JobManager is scraped and keeps Flink's job_name label"
        );
        true
    }
}
