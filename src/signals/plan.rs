//! Query plans: the PromQL for one evaluation and how its result becomes groups.
//!
//! A plan has named parts (a value, the time of the newest sample, a rate), each aggregated by
//! the same labels. Several parts go to Prometheus as one query, each part tagged with
//! [`PART_LABEL`], and are joined again on their labels here.

use std::collections::BTreeMap;

use crate::labels::Labels;

use crate::model::quality::Observed;
use crate::prometheus::Sample;
use crate::promql::{LabelFilter, PART_LABEL};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    Max,
    Min,
    Sum,
}

impl Agg {
    pub fn combine(self, a: Option<f64>, b: Option<f64>) -> Option<f64> {
        match (a, b) {
            (Some(x), Some(y)) => Some(match self {
                Agg::Max => x.max(y),
                Agg::Min => x.min(y),
                Agg::Sum => x + y,
            }),
            (x, None) => x,
            (None, y) => y,
        }
    }
}

/// The name of a query part. The set is open: a signal kind names the parts it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartName(pub &'static str);

impl PartName {
    /// The aggregate of the measured metric's finite, non-negative samples.
    pub const VALUE: PartName = PartName("value");
    /// The time of the newest sample.
    pub const NEWEST: PartName = PartName("newest");
    /// A rate (records/s).
    pub const RATE: PartName = PartName("rate");
    /// How many samples are negative (finite).
    pub const NEGATIVE: PartName = PartName("negative");
    /// How many samples are +Inf or -Inf.
    pub const INFINITE: PartName = PartName("infinite");
    /// A Flink job's running time, ms.
    pub const RUNNING: PartName = PartName("running");
    /// A Flink job's restart count.
    pub const RESTARTS: PartName = PartName("restarts");
    /// How many subtasks (series) a vertex has.
    pub const SUBTASKS: PartName = PartName("subtasks");

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

#[derive(Debug, Clone)]
pub struct Part {
    pub name: PartName,
    pub expr: String,
    /// How groups of this part combine when a request takes several of them together.
    pub agg: Agg,
}

#[derive(Debug, Clone)]
pub struct QuerySpec {
    pub parts: Vec<Part>,
    /// The labels every part is aggregated by.
    pub by: Vec<String>,
    /// Keep the raw samples (user-written queries, and `query` for people).
    pub keep_samples: bool,
}

/// The values of the parts for one label set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    pub labels: Labels,
    values: Vec<(PartName, f64)>,
}

impl Group {
    pub fn new(labels: Labels) -> Self {
        Self {
            labels,
            values: Vec::new(),
        }
    }

    pub fn part(&self, name: PartName) -> Option<f64> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    pub fn set(&mut self, name: PartName, value: Option<f64>) {
        match (self.values.iter().position(|(n, _)| *n == name), value) {
            (Some(i), Some(v)) => self.values[i].1 = v,
            (Some(i), None) => {
                self.values.swap_remove(i);
            }
            (None, Some(v)) => self.values.push((name, v)),
            (None, None) => {}
        }
    }

    pub fn with(mut self, name: PartName, value: f64) -> Self {
        self.set(name, Some(value));
        self
    }

    /// The measured metric as the data-quality check reads it.
    pub fn observed(&self) -> Observed {
        Observed {
            value: self.part(PartName::VALUE),
            newest: self.part(PartName::NEWEST),
            negative: self.part(PartName::NEGATIVE),
            infinite: self.part(PartName::INFINITE),
        }
    }
}

impl QuerySpec {
    pub fn promql(&self) -> String {
        if let [only] = self.parts.as_slice() {
            return only.expr.clone();
        }
        self.parts
            .iter()
            .map(|p| {
                format!(
                    "label_replace({}, \"{PART_LABEL}\", \"{}\", \"\", \"\")",
                    p.expr,
                    p.name.as_str()
                )
            })
            .collect::<Vec<_>>()
            .join(" or ")
    }

    pub fn part(&self, name: PartName) -> Option<&Part> {
        self.parts.iter().find(|p| p.name == name)
    }

    /// Splits the samples by part and joins them on the grouping labels.
    pub fn groups(&self, samples: &[Sample]) -> Vec<Group> {
        let mut groups: BTreeMap<Labels, Group> = BTreeMap::new();
        let single = self.parts.len() == 1;
        for s in samples {
            let part = if single {
                self.parts[0].name
            } else {
                let tag = s.labels.get(PART_LABEL).map(String::as_str);
                match self.parts.iter().find(|p| Some(p.name.as_str()) == tag) {
                    Some(p) => p.name,
                    None => continue,
                }
            };
            // Exact capacities: these groups stay in the cache, thousands of them.
            let mut key = Labels::with_capacity(self.by.len());
            for l in &self.by {
                if let Some(v) = s.labels.get(l) {
                    key.insert(l.as_str().into(), v.as_str().into());
                }
            }
            let g = groups.entry(key.clone()).or_insert_with(|| Group {
                labels: key,
                values: Vec::with_capacity(self.parts.len()),
            });
            g.set(part, Some(s.value));
        }
        groups.into_values().collect()
    }

    /// The groups that pass `filters`, re-aggregated by `by` with each part's aggregation.
    pub fn regroup(&self, groups: &[Group], filters: &[LabelFilter], by: &[String]) -> Vec<Group> {
        let mut out: BTreeMap<Labels, Group> = BTreeMap::new();
        for g in groups
            .iter()
            .filter(|g| filters.iter().all(|f| f.matches(&g.labels)))
        {
            let key: Labels = by
                .iter()
                .filter_map(|l| {
                    g.labels
                        .get(l.as_str())
                        .map(|v| (l.as_str().into(), v.clone()))
                })
                .collect();
            let target = out.entry(key.clone()).or_insert_with(|| Group::new(key));
            for p in &self.parts {
                let merged = p.agg.combine(target.part(p.name), g.part(p.name));
                target.set(p.name, merged);
            }
        }
        out.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(by: &[&str]) -> QuerySpec {
        QuerySpec {
            parts: vec![
                Part {
                    name: PartName::VALUE,
                    expr: "max by (job_name) (x >= 0)".into(),
                    agg: Agg::Max,
                },
                Part {
                    name: PartName::NEWEST,
                    expr: "max by (job_name) (timestamp(x))".into(),
                    agg: Agg::Max,
                },
            ],
            by: by.iter().map(|s| s.to_string()).collect(),
            keep_samples: false,
        }
    }

    #[test]
    fn parts_go_out_as_one_query() {
        assert_eq!(
            spec(&["job_name"]).promql(),
            "label_replace(max by (job_name) (x >= 0), \"bridge_part\", \"value\", \"\", \"\") or label_replace(max by (job_name) (timestamp(x)), \"bridge_part\", \"newest\", \"\", \"\")"
        );
    }

    fn sample(part: &str, labels: &[(&str, &str)], v: f64) -> Sample {
        let mut l: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.insert(PART_LABEL.into(), part.into());
        Sample {
            labels: l,
            value: v,
            timestamp: 100.0,
        }
    }

    #[test]
    fn groups_join_parts_and_regroup_filters_and_aggregates() {
        let s = spec(&["job_name", "task_name"]);
        let groups = s.groups(&[
            sample("value", &[("job_name", "a"), ("task_name", "t1")], 5.0),
            sample("newest", &[("job_name", "a"), ("task_name", "t1")], 90.0),
            sample("newest", &[("job_name", "a"), ("task_name", "t2")], 99.0),
            sample("value", &[("job_name", "b"), ("task_name", "t1")], 7.0),
            sample("newest", &[("job_name", "b"), ("task_name", "t1")], 98.0),
        ]);
        assert_eq!(groups.len(), 3);
        let by = vec!["job_name".to_string()];
        let a = s.regroup(&groups, &[LabelFilter::eq("job_name", "a")], &by);
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].part(PartName::VALUE), a[0].part(PartName::NEWEST)),
            (Some(5.0), Some(99.0))
        );
        let all = s.regroup(&groups, &[], &by);
        assert_eq!(all.len(), 2);
    }
}
