//! From a request to a query plan: which query answers it, and how its groups are picked
//! from the result.

use std::sync::Arc;

use crate::config::SignalSpec;
use crate::promql::{join, LabelFilter, Matcher, TranslateError, Translation};
use crate::provider::MetricError;

use super::fetch::Rebuild;
use super::kinds::Source;
use super::plan::QuerySpec;
use super::request::{Mode, Objects, Request};
use super::shard::{BuildParts, Sharding};
use super::PodLister;

/// A query to send and how the request's answer is taken from its result.
pub(super) struct Planned {
    pub query: QuerySpec,
    pub source: Source,
    /// For a grouped query: which of its groups belong to this request.
    pub filters: Vec<LabelFilter>,
    /// The labels the answer is grouped by.
    pub answer_by: Vec<String>,
    /// The request's own filters on the namespace and job, whether or not the query is
    /// grouped: the Flink jobs it covers.
    pub job_filters: Vec<LabelFilter>,
    /// The request's filters name only the namespace and the job, so every subtask of its
    /// jobs is in its groups (and their count is the job's parallelism).
    pub whole_jobs: bool,
    /// Pod names resolved through the Kubernetes API.
    pub keep_objects: Option<Vec<String>>,
    /// The request as matchers, for messages.
    pub described: String,
    /// How the grouped query splits when its answer is too large.
    pub sharding: Option<Sharding>,
    /// For a request's own query: how to build its parts again from the request's matchers.
    pub rebuild: Option<Rebuild>,
}

pub(super) fn plan(
    spec: &SignalSpec,
    req: &Request,
    pods: Option<&dyn PodLister>,
    mode: Mode,
) -> Result<Planned, MetricError> {
    let kind = spec.handler.as_ref();
    let source = kind.source(req);
    let namespaced = kind.namespaced(spec.namespaced, source);
    let ns_label = spec.namespace_label.as_str();
    let bad = |e: TranslateError| MetricError::BadRequest(e.to_string());

    // The request as label filters: namespace, series selector, objects.
    let mut filters = Vec::new();
    if namespaced {
        if let Some(ns) = &req.namespace {
            filters.push(LabelFilter::eq(ns_label, ns));
        }
    }
    let reserved_ns = [ns_label];
    let t = Translation {
        rename: Some(&spec.labels),
        flink_values: spec.flink_label_values && source == Source::Flink,
        reserved: if namespaced { &reserved_ns } else { &[] },
    };
    filters.extend(t.filters(&req.series).map_err(bad)?);
    let job_filters: Vec<LabelFilter> = filters
        .iter()
        .filter(|f| f.label == ns_label || f.label == "job_name")
        .cloned()
        .collect();
    let whole_jobs = req.objects.is_none() && job_filters.len() == filters.len();

    let object_label = kind.object_label();
    let mut keep_objects = None;
    match &req.objects {
        None => {}
        Some(Objects::Named(name)) => filters.push(LabelFilter::eq(object_label, name)),
        Some(Objects::All(selector)) => match (pods, &req.namespace, kind.resource()) {
            (Some(lister), Some(ns), "pods") => {
                keep_objects = Some(lister.pods(ns, selector).map_err(MetricError::Pods)?);
                // Every pod's series; the answer is filtered by name, never by a regex of
                // pod names in the query.
                filters.push(LabelFilter {
                    label: object_label.to_string(),
                    values: vec![String::new()],
                    negate: true,
                });
            }
            _ => {
                let reserved = [ns_label, object_label];
                let t = Translation {
                    rename: Some(&spec.labels),
                    flink_values: false,
                    reserved: &reserved,
                };
                filters.extend(t.filters(selector).map_err(bad)?);
            }
        },
    }
    let described = join(&filters.iter().map(LabelFilter::matcher).collect::<Vec<_>>());

    let grouping = kind.grouping(source);
    let mut fetch_by: Vec<String> = Vec::new();
    if namespaced {
        fetch_by.push(ns_label.to_string());
    }
    fetch_by.extend(grouping.fetch_by);
    let answer_by = grouping.answer_by;
    let keep_samples = kind.templated() || mode == Mode::Inspect;
    // The grouped query answers every request whose filters only name its labels.
    let grouped = !kind.templated() && filters.iter().all(|f| fetch_by.contains(&f.label));
    let mut sharding = None;
    let mut rebuild = None;
    let (query, filters) = if grouped {
        let by_text = fetch_by.join(", ");
        let parts = kind.parts(source, &[], &by_text);
        sharding = Sharding::new(&fetch_by, shard_parts(spec, source, Vec::new(), by_text));
        (
            QuerySpec {
                parts,
                by: fetch_by,
                keep_samples,
            },
            filters,
        )
    } else if !kind.templated() && kind.regroups_exactly(source) {
        // Filters on the grouping labels go into the query, the others are applied to its
        // groups: requests that differ only in those (`host!=a`, `host!=b`, …) share one
        // query, one cache entry and one answer, grouped by the labels they name.
        let (inside, outside): (Vec<LabelFilter>, Vec<LabelFilter>) = filters
            .into_iter()
            .partition(|f| fetch_by.contains(&f.label));
        let mut by = fetch_by;
        for f in &outside {
            if !by.contains(&f.label) {
                by.push(f.label.clone());
            }
        }
        let matchers: Vec<Matcher> = inside.iter().map(LabelFilter::matcher).collect();
        let build = shard_parts(spec, source, matchers.clone(), by.join(", "));
        sharding = Sharding::new(&by, build);
        let own = own_query(spec, source, matchers, by, keep_samples);
        let query = own.spec();
        rebuild = Some(own);
        (query, outside)
    } else {
        let matchers: Vec<Matcher> = filters.iter().map(LabelFilter::matcher).collect();
        let own = own_query(spec, source, matchers, answer_by.clone(), keep_samples);
        let query = own.spec();
        rebuild = Some(own);
        (query, Vec::new())
    };
    Ok(Planned {
        query,
        source,
        filters,
        answer_by,
        job_filters,
        whole_jobs,
        keep_objects,
        described,
        sharding,
        rebuild,
    })
}

/// A query over `matchers` grouped by `by`, kept as the means to build it again.
fn own_query(
    spec: &SignalSpec,
    source: Source,
    matchers: Vec<Matcher>,
    by: Vec<String>,
    keep_samples: bool,
) -> Rebuild {
    let handler = spec.handler.clone();
    Rebuild::new(move || QuerySpec {
        parts: handler.parts(source, &matchers, &by.join(", ")),
        by: by.clone(),
        keep_samples,
    })
}

/// A shard's parts: the query's own matchers (`base`) and the shard's.
fn shard_parts(
    spec: &SignalSpec,
    source: Source,
    base: Vec<Matcher>,
    by_text: String,
) -> BuildParts {
    let handler = spec.handler.clone();
    Arc::new(move |m: &[Matcher]| {
        let mut all = base.clone();
        all.extend_from_slice(m);
        handler.parts(source, &all, &by_text)
    })
}
