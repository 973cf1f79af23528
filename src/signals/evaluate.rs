//! One evaluation: plan, fetch (the signal's query and the job state together), compute,
//! then the restart hold, the remembered answer and `onMissing`.

use crate::config::{Api, Fallback, SignalSpec};
use crate::model::hold::{held_value, hold_began, predates_return, within_hold};
use crate::model::quality::BadData;
use crate::provider::MetricError;

use super::job_state::{self, Jobs};
use super::kinds::{Failure, Hold, Input, Source};
use super::plan::PartName;
use super::planner::plan;
use super::request::{Evaluation, Item, Mode, Objects, Request};
use super::{promql_duration, Signals};

impl Signals {
    pub(super) async fn evaluate_spec(
        &self,
        spec: &SignalSpec,
        req: &Request,
        mode: Mode,
    ) -> Evaluation {
        let planned = match plan(spec, req, self.pods.as_deref(), mode) {
            Ok(p) => p,
            Err(e) => return Evaluation::failed(e),
        };
        let hold = spec
            .handler
            .hold()
            .filter(|_| planned.source == Source::Flink);
        let state_query = hold.map(|_| job_state::query(spec));
        let fetched = self
            .fetch(
                &spec.name,
                &planned.query,
                planned.rebuild.clone(),
                planned.sharding.clone(),
                mode,
            )
            .await;
        // The job's state must be at least as new as the data it qualifies: the two are cached
        // apart, and data from a restart read next to the state from before it would pass for
        // a running job's (a restart spike stored as the value to hold). So the state's query
        // is sent after the data's, and when the backend still evaluated it first (two
        // queries under way at once), it is sent again.
        let since = fetched.as_ref().ok().map(|f| f.fetched_at);
        let state = match &state_query {
            Some(q) => {
                let mut state = self
                    .fetch_since("flink_job_state", q, None, None, mode, since)
                    .await;
                if let (Ok(data), Ok(s)) = (&fetched, &state) {
                    if s.eval_time < data.eval_time {
                        let now = Some(std::time::Instant::now());
                        state = self
                            .fetch_since("flink_job_state", q, None, None, mode, now)
                            .await;
                    }
                }
                Some(state)
            }
            None => None,
        };
        let state_at = match &state {
            None => Ok(None),
            Some(Ok(s)) => Ok(Some(s.fetched_at)),
            Some(Err(_)) => Err(()),
        };
        let fetched = match fetched {
            Ok(f) => f,
            Err(e) => {
                return Evaluation {
                    promql: Some(planned.query.promql()),
                    ..Evaluation::failed(e)
                }
            }
        };
        let now = fetched.now();
        let jobs = match (&hold, &state_query, state) {
            (Some(h), Some(q), Some(Ok(state))) => self.jobs.jobs(
                spec,
                q,
                &state.groups,
                &planned.job_filters,
                h.timing.warm_up,
                now,
                state.eval_time,
            ),
            _ => Jobs::unknown(),
        };
        let groups = planned
            .query
            .regroup(&fetched.groups, &planned.filters, &planned.answer_by);
        let mut jobs = jobs;
        // Filtered to some subtasks (one vertex, one TaskManager), the groups do not show
        // the job's parallelism.
        if planned.whole_jobs {
            mark_rescale_in_flight(&mut jobs, &groups);
        }
        mark_data_from_the_restart(&mut jobs, &groups, fetched.eval_time);
        let value_expr = planned
            .query
            .part(PartName::VALUE)
            .map(|x| x.expr.as_str())
            .unwrap_or("");
        let input = Input {
            signal: &spec.name,
            policy: &spec.data,
            max_age: spec.max_age,
            source: planned.source,
            groups: &groups,
            samples: &fetched.samples,
            now,
            keep_objects: planned.keep_objects.as_deref(),
            described: &planned.described,
            value_expr,
            request: req,
            job: jobs.view,
        };
        let explanation = (mode == Mode::Inspect)
            .then(|| spec.handler.explain(&input))
            .flatten();
        let mut computed = spec.handler.compute(&input);
        let until = match (self.refresh_interval(), state_at) {
            (Some(refresh), Ok(state_at))
                if mode == Mode::Serve
                    && computed.is_ok()
                    && jobs.restarting.is_empty()
                    && !planned.query.keep_samples
                    && planned.keep_objects.is_none()
                    && spec.handler.remember_for().is_none() =>
            {
                let snapshots: Vec<_> = std::iter::once(fetched.fetched_at)
                    .chain(state_at)
                    .collect();
                super::current::until(refresh, &snapshots, &groups, spec.max_age, now)
            }
            _ => None,
        };
        if let Some(h) = hold {
            if jobs.view == super::kinds::JobView::Unknown
                && self.jobs.warn_missing(&spec.name, &req.key())
            {
                self.metrics
                    .job_state_missing
                    .with_label_values(&[spec.name.as_str()])
                    .inc();
            }
            computed = self.hold(spec, req, h, &jobs, computed, now);
        }
        if let Some(d) = spec.handler.remember_for() {
            computed = self.remember(spec, req, d, computed, now);
        }
        let samples = fetched
            .samples
            .iter()
            .filter(|s| planned.filters.iter().all(|f| f.matches(&s.labels)))
            .cloned()
            .collect();
        Evaluation {
            // Only people read it (`query`, `check`): a poll does not build it.
            promql: (mode == Mode::Inspect).then(|| planned.query.promql()),
            samples,
            samples_total: fetched.samples.len(),
            selection: (!planned.filters.is_empty()).then(|| format!("{{{}}}", planned.described)),
            warnings: fetched.warnings.clone(),
            explanation,
            result: finish(spec, computed, req, now),
            until,
        }
    }

    /// While a job the request covers restarts, the last good answer stands in, moved to the
    /// job's new parallelism where the value is a per-subtask ratio, for at most `maxHold`;
    /// without one, the answer is an error rather than the transient numbers.
    fn hold(
        &self,
        spec: &SignalSpec,
        req: &Request,
        hold: Hold,
        jobs: &Jobs,
        computed: Result<Vec<Item>, Failure>,
        now: f64,
    ) -> Result<Vec<Item>, Failure> {
        let key = format!("{}|{}", spec.name, req.key());
        self.memory.with(&key, |m| {
            if jobs.restarting.is_empty() {
                // Whatever this evaluation gave, the next restart starts a new hold.
                m.hold_since = None;
                m.hold_episode = None;
                if let Ok(items) = &computed {
                    m.items = Some(items.clone());
                    m.parallelism = jobs.parallelism;
                    m.at = now;
                }
                return computed;
            }
            let names = jobs.restarting.join(", ");
            let Some(items) = &m.items else {
                return Err(MetricError::Unusable(format!(
                    "{}: job {names} is restarting or warming up (running for less than {}), and there is no value from before to hold",
                    spec.name,
                    promql_duration(hold.timing.warm_up)
                ))
                .into());
            };
            let (since, episode) = hold_began(m.hold_since, m.hold_episode, jobs.episode, now);
            m.hold_since = Some(since);
            m.hold_episode = episode;
            if !within_hold(since, now, hold.timing.max_hold) {
                return computed;
            }
            let mut out = Vec::with_capacity(items.len());
            for i in items {
                let Some(value) = held_value(i.value, hold.scaling, m.parallelism, jobs.parallelism) else {
                    return Err(MetricError::Unusable(format!(
                        "{}: job {names} is restarting and its new parallelism is not known yet (no subtask series), so the value from before cannot be carried over",
                        spec.name
                    ))
                    .into());
                };
                out.push(Item { value, ..i.clone() });
            }
            tracing::debug!(signal = %spec.name, jobs = names, "holding the last good value while the job restarts");
            Ok(out)
        })
    }

    /// A kind whose series can leave the query window answers from memory for a bounded time.
    fn remember(
        &self,
        spec: &SignalSpec,
        req: &Request,
        remember_for: std::time::Duration,
        computed: Result<Vec<Item>, Failure>,
        now: f64,
    ) -> Result<Vec<Item>, Failure> {
        let ns = req
            .namespace
            .as_deref()
            .filter(|_| spec.namespaced)
            .unwrap_or("");
        let key = format!("{}|{ns}|{}", spec.name, req.series);
        self.memory.with(&key, |m| match computed {
            Ok(items) => {
                m.items = Some(items.clone());
                m.at = now;
                Ok(items)
            }
            Err(Failure::Data(BadData::Missing, why)) => match &m.items {
                Some(items) if now - m.at < remember_for.as_secs_f64() => Ok(items.clone()),
                _ => Err(Failure::Data(BadData::Missing, why)),
            },
            Err(e) => Err(e),
        })
    }
}

/// The answer, with `onMissing` applied where no series matched at all: a configured value
/// stands in for the one value of an external metric or a named object (a `*` request has no
/// list of objects to give it to).
fn finish(
    spec: &SignalSpec,
    computed: Result<Vec<Item>, Failure>,
    req: &Request,
    now: f64,
) -> Result<Vec<Item>, MetricError> {
    match computed {
        Ok(items) => Ok(items),
        Err(Failure::Data(BadData::Missing, message)) => {
            let (Fallback::Value(value), objects) = (spec.data.missing, &req.objects) else {
                return Err(MetricError::NoData(message));
            };
            let object = match objects {
                Some(Objects::All(_)) => return Err(MetricError::NoData(message)),
                None => None,
                Some(Objects::Named(n)) => Some(n.clone()),
            };
            Ok(vec![Item {
                labels: crate::labels::Labels::new(),
                object,
                value,
                timestamp: now,
            }])
        }
        Err(f) => Err(f.into_error()),
    }
}

/// What a signal is served as.
pub(super) fn target_of(spec: &SignalSpec) -> crate::provider::MetricTarget {
    match spec.api() {
        Api::External => crate::provider::MetricTarget::External,
        Api::Custom => crate::provider::MetricTarget::Custom {
            resource: spec.resource().to_string(),
            namespaced: !crate::path::is_cluster_scoped(spec.resource()),
        },
    }
}

/// Data evaluated before the job state first showed the job running again still shows the
/// restart (a cached answer can be older than the state next to it): the job counts as
/// restarting for it, so its numbers are neither served as the running job's nor kept to hold.
fn mark_data_from_the_restart(jobs: &mut Jobs, groups: &[super::plan::Group], data_time: f64) {
    if !jobs.restarting.is_empty() || !predates_return(jobs.back_at, data_time) {
        return;
    }
    let job = count_as_restarting(jobs, groups);
    tracing::debug!(job = %job, "the data predates the job's return to running");
}

/// Counts the job the groups belong to as restarting, and names it.
fn count_as_restarting(jobs: &mut Jobs, groups: &[super::plan::Group]) -> String {
    let job = groups
        .iter()
        .find_map(|g| g.labels.get("job_name").map(|j| j.to_string()))
        .unwrap_or_else(|| "(unnamed)".into());
    jobs.restarting.push(job.clone());
    jobs.view = super::kinds::JobView::Restarting;
    job
}

/// The job-state snapshot and a signal's own data are fetched (and cached) separately, and
/// Prometheus scrapes the JobManager and the TaskManagers at different moments, so around a
/// rescale one side can be newer than the other. When both tell the job's parallelism (its
/// widest vertex's subtasks) and they disagree, a rescale is under way that one of them has not
/// seen yet: the job counts as restarting rather than either side being trusted.
fn mark_rescale_in_flight(jobs: &mut Jobs, groups: &[super::plan::Group]) {
    let Some(state) = jobs.parallelism else {
        return;
    };
    let Some(data) = groups
        .iter()
        .filter_map(|g| g.part(PartName::SUBTASKS))
        .reduce(f64::max)
    else {
        return;
    };
    if data != state && jobs.restarting.is_empty() {
        let job = count_as_restarting(jobs, groups);
        tracing::debug!(
            job = %job,
            state,
            data,
            "parallelism differs between the job state and the data: a rescale is in flight"
        );
    }
}
