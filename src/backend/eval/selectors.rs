//! Instant and range selectors over the store: which series match, and which of their
//! samples a lookback window or a closed range takes in.

use promql_parser::label::Matchers;
use promql_parser::parser::{Offset, VectorSelector};

use super::{EvalError, Evaluator, MSeries, NAME};
use crate::backend::memory::{is_stale, Labels};

pub(super) fn duration_ms(d: &std::time::Duration) -> i64 {
    d.as_millis() as i64
}

fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(d),
        Some(Offset::Neg(d)) => -duration_ms(d),
    }
}

fn matches(matchers: &Matchers, name: &Option<String>, labels: &Labels) -> bool {
    let get = |k: &str| labels.get(k).map(String::as_str).unwrap_or("");
    if let Some(n) = name {
        if get(NAME) != n {
            return false;
        }
    }
    let all = |ms: &[promql_parser::label::Matcher]| ms.iter().all(|m| m.is_match(get(&m.name)));
    all(&matchers.matchers)
        && (matchers.or_matchers.is_empty() || matchers.or_matchers.iter().any(|ms| all(ms)))
}

impl Evaluator<'_> {
    fn check_selector(vs: &VectorSelector) -> Result<(), EvalError> {
        if vs.at.is_some() {
            return Err(EvalError::Unsupported("the @ modifier".into()));
        }
        Ok(())
    }

    /// An instant selector: per matching series, the newest sample within the lookback
    /// delta (`[t - lookback, t]`, as Prometheus 2.x), unless it is a staleness marker.
    /// Returns each sample's own time as well, for `timestamp()`.
    pub(super) fn select(&self, vs: &VectorSelector) -> Result<Vec<(Labels, i64, f64)>, EvalError> {
        Self::check_selector(vs)?;
        let at = self.ts - offset_ms(&vs.offset);
        let mut out = Vec::new();
        for s in self.store.candidates(vs.name.as_deref()) {
            if !matches(&vs.matchers, &vs.name, &s.labels) {
                continue;
            }
            if let Some((t, v)) = s.at_or_before(at) {
                if t >= at - self.lookback_ms && !is_stale(v) {
                    out.push((s.labels.clone(), t, v));
                }
            }
        }
        Ok(out)
    }

    pub(super) fn select_range(
        &self,
        vs: &VectorSelector,
        range_ms: i64,
    ) -> Result<Vec<MSeries>, EvalError> {
        Self::check_selector(vs)?;
        let off = offset_ms(&vs.offset);
        let at = self.ts - off;
        Ok(self
            .store
            .candidates(vs.name.as_deref())
            .filter(|s| matches(&vs.matchers, &vs.name, &s.labels))
            .map(|s| MSeries {
                labels: s.labels.clone(),
                points: s.range(at - range_ms, at),
                range_ms,
                offset_ms: off,
            })
            .filter(|m| !m.points.is_empty())
            .collect())
    }
}
