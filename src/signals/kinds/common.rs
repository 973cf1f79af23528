//! What kinds share: the input of a computation, its failures, and the checked query parts.

use crate::labels::Labels;
use std::time::Duration;

use crate::model::quality::{self, BadData, DataPolicy};
use crate::prometheus::Sample;
use crate::provider::MetricError;

use super::super::plan::{Agg, Group, Part, PartName};
use super::super::request::Request;
use super::Source;

/// What is known of the Flink jobs a request covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobView {
    /// No JobManager series for them.
    Unknown,
    /// Every covered job is running past its warm-up.
    Running,
    /// A covered job is restarting or warming up.
    Restarting,
}

/// Everything a kind's computation reads.
pub struct Input<'a> {
    pub signal: &'a str,
    pub policy: &'a DataPolicy,
    pub max_age: Option<Duration>,
    pub source: Source,
    /// The request's groups, by the kind's `answer_by` labels.
    pub groups: &'a [Group],
    /// Raw samples, for user-written queries.
    pub samples: &'a [Sample],
    /// Prometheus' evaluation time, Unix seconds.
    pub now: f64,
    /// Pod names resolved through the Kubernetes API, for `pods/*` requests.
    pub keep_objects: Option<&'a [String]>,
    /// The request as matchers, for messages.
    pub described: &'a str,
    /// The measured metric's query text, for messages.
    pub value_expr: &'a str,
    pub request: &'a Request,
    pub job: JobView,
}

impl Input<'_> {
    pub fn no_series(&self) -> String {
        format!(
            "{}: no series match {{{}}} (query: {})",
            self.signal, self.described, self.value_expr
        )
    }

    pub fn missing(&self) -> Failure {
        Failure::Data(BadData::Missing, self.no_series())
    }

    /// A group's value with the data policy applied.
    pub fn resolve(&self, g: &Group) -> Result<f64, (BadData, String)> {
        quality::resolve(&g.observed(), self.now, self.max_age, self.policy)
    }

    /// Every group with its value, bad data replaced where the signal says so; refuses the
    /// whole answer if any group the request matched stays unusable, since dropping it would
    /// understate the sum or the maximum.
    pub fn usable(&self) -> Result<Vec<(&Group, f64)>, Failure> {
        if self.groups.is_empty() {
            return Err(self.missing());
        }
        let mut first_bad = None;
        let mut problems = Vec::new();
        let mut out = Vec::with_capacity(self.groups.len());
        for g in self.groups {
            match self.resolve(g) {
                Ok(v) => out.push((g, v)),
                Err((bad, why)) => {
                    first_bad.get_or_insert(bad);
                    problems.push(format!("{why}{}", describe_labels(&g.labels)));
                }
            }
        }
        match first_bad {
            Some(bad) => Err(Failure::Data(
                bad,
                format!("{}: {}", self.signal, problems.join("; ")),
            )),
            None => Ok(out),
        }
    }
}

/// Why a computation has no answer.
#[derive(Debug)]
pub enum Failure {
    Data(BadData, String),
    Other(MetricError),
}

impl From<MetricError> for Failure {
    fn from(e: MetricError) -> Self {
        Failure::Other(e)
    }
}

impl Failure {
    pub fn into_error(self) -> MetricError {
        match self {
            Failure::Data(BadData::Missing, m) => MetricError::NoData(m),
            Failure::Data(_, m) => MetricError::Unusable(m),
            Failure::Other(e) => e,
        }
    }
}

/// One metric's samples as checked parts: `value` aggregates the finite, non-negative ones
/// (NaN fails every comparison); `newest` is the time of the newest sample; `negative` and
/// `infinite` count the samples no built-in gauge can legitimately hold.
pub fn checked(base: &str, agg: Agg, by: &str) -> Vec<Part> {
    let agg_fn = match agg {
        Agg::Sum => "sum",
        Agg::Max => "max",
        Agg::Min => "min",
    };
    vec![
        Part {
            name: PartName::VALUE,
            expr: format!("{agg_fn} by ({by}) ({base} >= 0 < +Inf)"),
            agg,
        },
        Part {
            name: PartName::NEWEST,
            expr: format!("max by ({by}) (timestamp({base}))"),
            agg: Agg::Max,
        },
        Part {
            name: PartName::NEGATIVE,
            expr: format!("count by ({by}) ({base} < 0 > -Inf)"),
            agg: Agg::Sum,
        },
        Part {
            name: PartName::INFINITE,
            expr: format!("count by ({by}) (abs({base}) == +Inf)"),
            agg: Agg::Sum,
        },
    ]
}

pub fn describe_labels<'a, S: AsRef<str> + 'a>(
    labels: impl IntoIterator<Item = (&'a S, &'a S)>,
) -> String {
    let inner = labels
        .into_iter()
        .map(|(k, v)| format!("{}={}", k.as_ref(), v.as_ref()))
        .collect::<Vec<_>>()
        .join(",");
    if inner.is_empty() {
        return String::new();
    }
    format!(" for {{{inner}}}")
}

pub fn newest_of<'a>(groups: impl Iterator<Item = &'a Group>, now: f64) -> f64 {
    groups
        .map(|g| g.part(PartName::NEWEST).unwrap_or(now))
        .fold(f64::NEG_INFINITY, f64::max)
}

/// `labels` restricted to `keep`.
pub fn only<'a, S: AsRef<str> + 'a>(
    labels: impl IntoIterator<Item = (&'a S, &'a S)>,
    keep: &[&str],
) -> Labels {
    crate::labels::from_map(
        labels
            .into_iter()
            .filter(|(k, _)| keep.contains(&k.as_ref())),
    )
}

/// The restart hold of a kind that reads rates or slopes over `window`: the window must hold
/// only data from after the last restart, so the warm-up is at least the window, and a hold
/// lasts at least that long plus a minute for the restart itself. Such kinds answer job-wide
/// amounts, held as they are.
pub fn windowed_hold(
    hold: Option<crate::config::RestartHold>,
    window: Duration,
) -> Option<super::Hold> {
    hold.map(|h| {
        let warm_up = h.warm_up.max(window);
        super::Hold {
            timing: crate::config::RestartHold {
                warm_up,
                max_hold: h.max_hold.max(warm_up + Duration::from_secs(60)),
            },
            scaling: crate::model::hold::HoldScaling::Absolute,
        }
    })
}
