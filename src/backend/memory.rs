//! An in-memory time-series store answering PromQL like Prometheus does: the offline
//! simulator scrapes its job model into it and the signal code queries it through the same
//! [`QueryBackend`] trait as a real Prometheus.
//!
//! Samples are kept per series (label set) in time order. A scrape that no longer exports a
//! series writes a staleness marker for it, as Prometheus' scrape loop does, so a vanished
//! subtask stops answering at once instead of lingering for the lookback delta.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::RwLock;

use async_trait::async_trait;

use super::eval::{self, EvalError};
use super::QueryBackend;
use crate::prometheus::{PromError, QueryResult, RangeResult, RangeSeries, Sample};

pub type Labels = BTreeMap<String, String>;

/// Prometheus' staleness marker: a NaN with this exact bit pattern (`value.StaleNaN`).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// Prometheus' default lookback delta: an instant selector sees a series' newest sample up to
/// this old.
pub const DEFAULT_LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// Most points a range query may return per series, as Prometheus' 11,000.
const MAX_RANGE_POINTS: f64 = 11_000.0;

#[derive(Debug, Clone)]
pub struct StoredSeries {
    pub labels: Labels,
    /// Sample times, ms, ascending.
    pub ts: Vec<i64>,
    pub vs: Vec<f64>,
}

impl StoredSeries {
    /// The newest sample at or before `t` (ms), if any.
    pub fn at_or_before(&self, t: i64) -> Option<(i64, f64)> {
        let i = self.ts.partition_point(|&x| x <= t);
        (i > 0).then(|| (self.ts[i - 1], self.vs[i - 1]))
    }

    /// Samples with `from <= t <= to` (ms), staleness markers left out.
    pub fn range(&self, from: i64, to: i64) -> Vec<(i64, f64)> {
        let a = self.ts.partition_point(|&x| x < from);
        let b = self.ts.partition_point(|&x| x <= to);
        (a..b)
            .filter(|&i| !is_stale(self.vs[i]))
            .map(|i| (self.ts[i], self.vs[i]))
            .collect()
    }
}

/// The series and their samples.
#[derive(Debug, Default)]
pub struct Store {
    series: Vec<StoredSeries>,
    index: HashMap<Labels, usize>,
    /// Per scrape target: the series its last scrape exported.
    last_scrape: HashMap<String, HashSet<usize>>,
    /// Series by metric name.
    by_name: HashMap<String, Vec<usize>>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StoreError {
    #[error("sample at {t} ms for {labels:?} is older than the series' newest ({newest} ms)")]
    OutOfOrder { labels: Labels, t: i64, newest: i64 },
    #[error("a series without a metric name: {0:?}")]
    NoName(Labels),
}

impl Store {
    pub fn series(&self) -> &[StoredSeries] {
        &self.series
    }

    /// Appends one sample. A sample at the same time as the newest replaces it.
    pub fn append(&mut self, labels: Labels, t_ms: i64, v: f64) -> Result<usize, StoreError> {
        if !labels.contains_key("__name__") {
            return Err(StoreError::NoName(labels));
        }
        let id = match self.index.get(&labels) {
            Some(&id) => id,
            None => {
                self.series.push(StoredSeries {
                    labels: labels.clone(),
                    ts: Vec::new(),
                    vs: Vec::new(),
                });
                let id = self.series.len() - 1;
                if let Some(n) = labels.get("__name__") {
                    self.by_name.entry(n.clone()).or_default().push(id);
                }
                self.index.insert(labels, id);
                id
            }
        };
        let s = &mut self.series[id];
        match s.ts.last().copied() {
            Some(newest) if t_ms < newest => {
                return Err(StoreError::OutOfOrder {
                    labels: s.labels.clone(),
                    t: t_ms,
                    newest,
                })
            }
            Some(newest) if t_ms == newest => {
                if let Some(last) = s.vs.last_mut() {
                    *last = v;
                }
            }
            _ => {
                s.ts.push(t_ms);
                s.vs.push(v);
            }
        }
        Ok(id)
    }

    /// One scrape of `target` at `t_ms`: every sample, and a staleness marker for each series
    /// the target's previous scrape exported and this one does not.
    pub fn scrape(
        &mut self,
        target: &str,
        t_ms: i64,
        samples: impl IntoIterator<Item = (Labels, f64)>,
    ) -> Result<(), StoreError> {
        let mut seen = HashSet::new();
        for (labels, v) in samples {
            seen.insert(self.append(labels, t_ms, v)?);
        }
        let gone: Vec<usize> = self
            .last_scrape
            .get(target)
            .map(|prev| prev.difference(&seen).copied().collect())
            .unwrap_or_default();
        for id in gone {
            let labels = self.series[id].labels.clone();
            self.append(labels, t_ms, f64::from_bits(STALE_NAN_BITS))?;
        }
        self.last_scrape.insert(target.to_string(), seen);
        Ok(())
    }

    /// Forgets samples older than `t_ms`, and series left without samples, keeping memory
    /// and query time bounded in long runs (every rescale starts new series).
    pub fn truncate_before(&mut self, t_ms: i64) {
        for s in &mut self.series {
            let i = s.ts.partition_point(|&x| x < t_ms);
            s.ts.drain(..i);
            s.vs.drain(..i);
        }
        if self.series.iter().all(|s| !s.ts.is_empty()) {
            return;
        }
        let mut remap = vec![None; self.series.len()];
        let mut kept = Vec::with_capacity(self.series.len());
        for (old, s) in std::mem::take(&mut self.series).into_iter().enumerate() {
            if !s.ts.is_empty() {
                remap[old] = Some(kept.len());
                kept.push(s);
            }
        }
        self.series = kept;
        self.index = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| (s.labels.clone(), i))
            .collect();
        for ids in self.last_scrape.values_mut() {
            *ids = ids.iter().filter_map(|&i| remap[i]).collect();
        }
        self.by_name.clear();
        for (i, s) in self.series.iter().enumerate() {
            if let Some(n) = s.labels.get("__name__") {
                self.by_name.entry(n.clone()).or_default().push(i);
            }
        }
    }

    /// The series a selector can match: those of its metric name, when it names one.
    pub fn candidates(&self, name: Option<&str>) -> Box<dyn Iterator<Item = &StoredSeries> + '_> {
        match name {
            Some(n) => Box::new(
                self.by_name
                    .get(n)
                    .into_iter()
                    .flatten()
                    .map(move |&i| &self.series[i]),
            ),
            None => Box::new(self.series.iter()),
        }
    }
}

/// A [`QueryBackend`] over a [`Store`], with its own clock: queries without a time are
/// evaluated at the time last set with [`MemoryBackend::set_now`].
pub struct MemoryBackend {
    store: RwLock<Store>,
    now: RwLock<f64>,
    lookback_ms: i64,
    name: String,
}

impl MemoryBackend {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            store: RwLock::new(Store::default()),
            now: RwLock::new(0.0),
            lookback_ms: DEFAULT_LOOKBACK_MS,
            name: name.into(),
        }
    }

    pub fn set_now(&self, t: f64) {
        if let Ok(mut n) = self.now.write() {
            *n = t;
        }
    }

    /// Runs `f` on the store (to load or scrape series).
    pub fn with_store<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let mut guard = match self.store.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    fn read_store(&self) -> std::sync::RwLockReadGuard<'_, Store> {
        match self.store.read() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Evaluates `query` at `t` (Unix seconds).
    pub fn eval_instant(&self, query: &str, t: f64) -> Result<Vec<Sample>, EvalError> {
        let expr = eval::parse(query)?;
        let store = self.read_store();
        eval::instant(&store, &expr, to_ms(t), self.lookback_ms)
    }
}

pub fn to_ms(t: f64) -> i64 {
    (t * 1000.0).round() as i64
}

fn to_prom(e: EvalError) -> PromError {
    let error_type = match e {
        EvalError::Parse(_) => "bad_data",
        EvalError::Unsupported(_) => "unsupported",
        EvalError::Execution(_) => "execution",
    };
    PromError::Api {
        status: 422,
        error_type: error_type.into(),
        error: e.to_string(),
    }
}

#[async_trait]
impl QueryBackend for MemoryBackend {
    async fn instant(&self, query: &str, time: Option<f64>) -> Result<QueryResult, PromError> {
        let t = time.unwrap_or_else(|| self.now());
        let samples = self.eval_instant(query, t).map_err(to_prom)?;
        Ok(QueryResult {
            samples,
            warnings: Vec::new(),
            infos: Vec::new(),
        })
    }

    async fn range(
        &self,
        query: &str,
        start: f64,
        end: f64,
        step: f64,
    ) -> Result<RangeResult, PromError> {
        if step.is_nan() || step <= 0.0 || end < start {
            return Err(to_prom(EvalError::Parse(format!(
                "invalid range: start {start}, end {end}, step {step}"
            ))));
        }
        if (end - start) / step > MAX_RANGE_POINTS {
            return Err(to_prom(EvalError::Parse(
                "exceeded maximum resolution of 11,000 points per timeseries".into(),
            )));
        }
        let expr = eval::parse(query).map_err(to_prom)?;
        let store = self.read_store();
        let mut series: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
        let (start_ms, end_ms, step_ms) = (to_ms(start), to_ms(end), to_ms(step).max(1));
        let mut t = start_ms;
        while t <= end_ms {
            for s in eval::instant(&store, &expr, t, self.lookback_ms).map_err(to_prom)? {
                series
                    .entry(s.labels)
                    .or_default()
                    .push((t as f64 / 1000.0, s.value));
            }
            t += step_ms;
        }
        Ok(RangeResult {
            series: series
                .into_iter()
                .map(|(labels, points)| RangeSeries { labels, points })
                .collect(),
            warnings: Vec::new(),
            infos: Vec::new(),
        })
    }

    fn accepts_warnings(&self) -> bool {
        false
    }

    fn describe(&self) -> String {
        self.name.clone()
    }

    fn now(&self) -> f64 {
        self.now.read().map(|n| *n).unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_series_missing_from_a_scrape_goes_stale_at_once() {
        let b = MemoryBackend::new("memory");
        b.with_store(|s| {
            s.scrape(
                "job",
                0,
                [
                    (l(&[("__name__", "x"), ("i", "0")]), 1.0),
                    (l(&[("__name__", "x"), ("i", "1")]), 2.0),
                ],
            )
            .unwrap();
            s.scrape("job", 5000, [(l(&[("__name__", "x"), ("i", "0")]), 3.0)])
                .unwrap();
        });
        let at = |t: f64| {
            let mut v: Vec<f64> = b
                .eval_instant("x", t)
                .unwrap()
                .iter()
                .map(|s| s.value)
                .collect();
            v.sort_by(f64::total_cmp);
            v
        };
        assert_eq!(at(4.0), vec![1.0, 2.0]);
        assert_eq!(at(5.0), vec![3.0]);
        // Without a newer sample the value holds for the 5 min lookback, inclusive.
        assert_eq!(at(305.0), vec![3.0]);
        assert!(at(305.001).is_empty());
    }

    #[test]
    fn truncation_drops_emptied_series_and_keeps_staleness_working() {
        let b = MemoryBackend::new("memory");
        b.with_store(|s| {
            s.scrape("job", 0, [(l(&[("__name__", "x"), ("i", "old")]), 1.0)])
                .unwrap();
            s.scrape(
                "job",
                10_000,
                [
                    (l(&[("__name__", "x"), ("i", "a")]), 2.0),
                    (l(&[("__name__", "x"), ("i", "b")]), 3.0),
                ],
            )
            .unwrap();
            // "old" got its staleness marker at 10 s, which survives this.
            s.truncate_before(5_000);
            assert_eq!(s.series().len(), 3);
            s.append(l(&[("__name__", "x"), ("i", "a")]), 12_000, 4.0)
                .unwrap();
            // Only "a" has a sample at or after 11 s.
            s.truncate_before(11_000);
            assert_eq!(s.series().len(), 1);
            // "a" disappearing from the next scrape still gets its marker.
            s.scrape("job", 15_000, [(l(&[("__name__", "y")]), 5.0)])
                .unwrap();
        });
        assert!(b.eval_instant("x", 15.0).unwrap().is_empty());
        assert_eq!(b.eval_instant("x", 14.0).unwrap()[0].value, 4.0);
        assert_eq!(b.eval_instant("y", 15.0).unwrap()[0].value, 5.0);
    }

    #[test]
    fn out_of_order_samples_are_refused() {
        let mut s = Store::default();
        s.append(l(&[("__name__", "x")]), 10, 1.0).unwrap();
        assert!(matches!(
            s.append(l(&[("__name__", "x")]), 5, 1.0),
            Err(StoreError::OutOfOrder { .. })
        ));
        assert!(matches!(
            s.append(l(&[("a", "x")]), 5, 1.0),
            Err(StoreError::NoName(_))
        ));
    }
}
