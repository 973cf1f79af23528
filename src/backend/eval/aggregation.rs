//! Aggregation operators (`sum by`, `avg without`, `quantile`, ...) and the quantile
//! interpolation `quantile_over_time` shares with them.

use std::collections::BTreeMap;

use promql_parser::parser::{AggregateExpr, LabelModifier};

use super::{EvalError, Evaluator, VSample, Value, NAME};
use crate::backend::memory::Labels;

impl Evaluator<'_> {
    pub(super) fn aggregate(&self, a: &AggregateExpr) -> Result<Value, EvalError> {
        let op_name = a.op.to_string();
        let op = op_name.as_str();
        let param = match (&a.param, op) {
            (Some(p), "quantile") => Some(self.scalar(p)?),
            (Some(_), other) => return Err(EvalError::Unsupported(format!("aggregation {other}"))),
            (None, _) => None,
        };
        if !matches!(
            op,
            "sum" | "avg" | "count" | "min" | "max" | "group" | "stddev" | "stdvar" | "quantile"
        ) {
            return Err(EvalError::Unsupported(format!("aggregation {op}")));
        }
        let input = self.vector(&a.expr)?;
        let key = |l: &Labels| -> Labels {
            match &a.modifier {
                Some(LabelModifier::Include(ls)) => l
                    .iter()
                    .filter(|(k, _)| ls.labels.iter().any(|x| x == *k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                Some(LabelModifier::Exclude(ls)) => l
                    .iter()
                    .filter(|(k, _)| *k != NAME && !ls.labels.iter().any(|x| x == *k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                None => Labels::new(),
            }
        };
        let mut groups: BTreeMap<Labels, Vec<f64>> = BTreeMap::new();
        for s in input {
            groups.entry(key(&s.labels)).or_default().push(s.v);
        }
        let out = groups
            .into_iter()
            .map(|(labels, vs)| VSample {
                labels,
                v: aggregate_values(op, &vs, param),
            })
            .collect();
        Ok(Value::Vector(out))
    }
}

fn aggregate_values(op: &str, vs: &[f64], param: Option<f64>) -> f64 {
    let n = vs.len() as f64;
    match op {
        "sum" => vs.iter().sum(),
        "count" => n,
        "group" => 1.0,
        "avg" => vs.iter().sum::<f64>() / n,
        // Prometheus: a NaN is replaced by any later value, so NaN only when all are.
        "max" => vs
            .iter()
            .skip(1)
            .fold(vs[0], |m, &v| if v > m || m.is_nan() { v } else { m }),
        "min" => vs
            .iter()
            .skip(1)
            .fold(vs[0], |m, &v| if v < m || m.is_nan() { v } else { m }),
        "stdvar" | "stddev" => {
            let mean = vs.iter().sum::<f64>() / n;
            let var = vs.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
            if op == "stddev" {
                var.sqrt()
            } else {
                var
            }
        }
        "quantile" => quantile(param.unwrap_or(f64::NAN), vs),
        _ => f64::NAN,
    }
}

/// Prometheus' `quantile` (functions.go): linear interpolation between ranks.
pub(super) fn quantile(q: f64, vs: &[f64]) -> f64 {
    if vs.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    let mut s = vs.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let w = rank - rank.floor();
    s[lower as usize] * (1.0 - w) + s[upper as usize] * w
}
