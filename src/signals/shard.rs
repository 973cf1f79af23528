//! Grouped queries too large for one answer, sent in shards.
//!
//! A grouped query answers every HPA of a signal from one result, so its size grows with the
//! platform. When Prometheus' answer would hold more series than `prometheus.maxSeries`, the
//! query is split by its job (or namespace) label: one small query counts each value's
//! groups, the values are packed into shards of at most half the cap, and each shard goes out
//! as the same query with a regex matcher on those values. The samples are joined again as
//! if from one answer. Once a query needed shards, later refreshes go to them directly.

use std::sync::Arc;

use crate::backend::QueryBackend;
use crate::prometheus::{PromError, QueryResult};
use crate::promql::{regex_escape, Matcher};

use super::plan::{Part, QuerySpec};

/// A query's parts for extra matchers.
pub type BuildParts = Arc<dyn Fn(&[Matcher]) -> Vec<Part> + Send + Sync>;

/// How a grouped query is rebuilt for one shard.
#[derive(Clone)]
pub struct Sharding {
    /// The label the shards split on.
    pub label: String,
    pub by: Vec<String>,
    pub build: BuildParts,
}

impl std::fmt::Debug for Sharding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sharding")
            .field("label", &self.label)
            .field("by", &self.by)
            .finish()
    }
}

impl Sharding {
    /// Splits on `job_name` when the query groups by it, else on its first label (the
    /// namespace where the signal is namespaced); `None` when it groups by nothing.
    pub fn new(by: &[String], build: BuildParts) -> Option<Self> {
        let label = by
            .iter()
            .find(|l| *l == "job_name")
            .or_else(|| by.first())?
            .clone();
        Some(Self {
            label,
            by: by.to_vec(),
            build,
        })
    }
}

/// Values packed in order into shards whose estimated series stay within `budget`; a value
/// over the budget alone is a shard of its own.
pub fn pack(counts: &[(String, f64)], per_value: f64, budget: f64) -> Vec<Vec<String>> {
    let mut shards: Vec<Vec<String>> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut size = 0.0;
    for (value, count) in counts {
        let series = count * per_value;
        if !current.is_empty() && size + series > budget {
            shards.push(std::mem::take(&mut current));
            size = 0.0;
        }
        current.push(value.clone());
        size += series;
    }
    if !current.is_empty() {
        shards.push(current);
    }
    shards
}

/// The grouped query in shards of at most half of `cap` series each.
pub async fn run(
    backend: &dyn QueryBackend,
    sharding: &Sharding,
    cap: usize,
) -> Result<QueryResult, PromError> {
    let parts = (sharding.build)(&[]);
    let Some(first) = parts.first() else {
        return Ok(QueryResult::default());
    };
    let label = &sharding.label;
    let census = backend
        .instant(&format!("count by ({label}) ({})", first.expr), None)
        .await?;
    let counts: Vec<(String, f64)> = census
        .samples
        .iter()
        .map(|s| (s.labels.get(label).cloned().unwrap_or_default(), s.value))
        .collect();
    let shards = pack(&counts, parts.len() as f64, (cap / 2).max(1) as f64);
    tracing::debug!(
        label,
        shards = shards.len(),
        values = counts.len(),
        cap,
        "grouped query sent in shards"
    );
    let mut out = QueryResult {
        warnings: census.warnings,
        infos: census.infos,
        ..QueryResult::default()
    };
    for values in shards {
        let regex = values
            .iter()
            .map(|v| regex_escape(v))
            .collect::<Vec<_>>()
            .join("|");
        let spec = QuerySpec {
            parts: (sharding.build)(&[Matcher::re(label.clone(), regex)]),
            by: sharding.by.clone(),
            keep_samples: false,
        };
        let r = backend.instant(&spec.promql(), None).await?;
        out.samples.extend(r.samples);
        out.warnings.extend(r.warnings);
        out.infos.extend(r.infos);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_packed_within_the_budget() {
        let counts: Vec<(String, f64)> = (0..10).map(|i| (format!("job-{i}"), 8.0)).collect();
        // 8 groups × 5 parts = 40 series per job; 100 per shard: 2 jobs each.
        let shards = pack(&counts, 5.0, 100.0);
        assert_eq!(shards.len(), 5);
        assert!(shards.iter().all(|s| s.len() == 2));
        let big = vec![("a".to_string(), 100.0), ("b".to_string(), 1.0)];
        assert_eq!(pack(&big, 5.0, 100.0).len(), 2);
    }
}
