//! A PromQL evaluator over the in-memory [`Store`], following Prometheus 2.x's engine
//! (`promql/engine.go`, `promql/functions.go`): lookback delta and staleness markers for
//! instant selectors, closed ranges `[t - range, t]` for range selectors, `extrapolatedRate`
//! for `rate`/`increase`/`delta`, least-squares regression for `deriv`/`predict_linear`, and
//! vector matching with `on`/`ignoring`/`group_left`/`group_right`.
//!
//! What it does not implement (subqueries, `@`, histograms, `topk`, ...) is refused with
//! [`EvalError::Unsupported`] naming the construct, never answered approximately.

mod aggregation;
mod functions;
mod operators;
mod selectors;
#[cfg(test)]
mod tests;

use std::collections::HashSet;

use promql_parser::parser::Expr;

use super::memory::{Labels, Store};
use crate::prometheus::Sample;
use selectors::duration_ms;

const NAME: &str = "__name__";

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("cannot parse the query: {0}")]
    Parse(String),
    #[error("not supported by the in-memory PromQL evaluator: {0}")]
    Unsupported(String),
    #[error("{0}")]
    Execution(String),
}

pub fn parse(query: &str) -> Result<Expr, EvalError> {
    promql_parser::parser::parse(query).map_err(EvalError::Parse)
}

#[derive(Debug, Clone, PartialEq)]
struct VSample {
    labels: Labels,
    v: f64,
}

#[derive(Debug, Clone)]
struct MSeries {
    labels: Labels,
    points: Vec<(i64, f64)>,
    /// The selector's range and offset, ms: rate's extrapolation needs the window bounds.
    range_ms: i64,
    offset_ms: i64,
}

#[derive(Debug, Clone)]
enum Value {
    Scalar(f64),
    Vector(Vec<VSample>),
    Matrix(Vec<MSeries>),
    Str(String),
}

/// Evaluates `expr` at `t_ms`; the answer as Prometheus' instant query API gives it.
pub fn instant(
    store: &Store,
    expr: &Expr,
    t_ms: i64,
    lookback_ms: i64,
) -> Result<Vec<Sample>, EvalError> {
    let ev = Evaluator {
        store,
        ts: t_ms,
        lookback_ms,
    };
    let t = t_ms as f64 / 1000.0;
    match ev.eval(expr)? {
        Value::Scalar(v) => Ok(vec![Sample {
            labels: Labels::new(),
            value: v,
            timestamp: t,
        }]),
        Value::Vector(v) => Ok(v
            .into_iter()
            .map(|s| Sample {
                labels: s.labels,
                value: s.v,
                timestamp: t,
            })
            .collect()),
        Value::Matrix(_) => Err(EvalError::Unsupported(
            "a range vector as the query's result".into(),
        )),
        Value::Str(_) => Err(EvalError::Unsupported(
            "a string as the query's result".into(),
        )),
    }
}

struct Evaluator<'a> {
    store: &'a Store,
    ts: i64,
    lookback_ms: i64,
}

fn drop_name(mut l: Labels) -> Labels {
    l.remove(NAME);
    l
}

fn unwrap_parens(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unwrap_parens(&p.expr),
        other => other,
    }
}

/// Prometheus refuses a vector with two equal label sets (after a function dropped the
/// metric name, say): the answer would be ambiguous.
fn check_unique(v: &[VSample]) -> Result<(), EvalError> {
    let mut seen = HashSet::with_capacity(v.len());
    for s in v {
        if !seen.insert(&s.labels) {
            return Err(EvalError::Execution(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
    }
    Ok(())
}

impl Evaluator<'_> {
    fn eval(&self, e: &Expr) -> Result<Value, EvalError> {
        match e {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Value::Str(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr),
            Expr::Unary(u) => match self.eval(&u.expr)? {
                Value::Scalar(v) => Ok(Value::Scalar(-v)),
                Value::Vector(v) => Ok(Value::Vector(
                    v.into_iter()
                        .map(|s| VSample {
                            labels: drop_name(s.labels),
                            v: -s.v,
                        })
                        .collect(),
                )),
                _ => Err(EvalError::Unsupported(
                    "unary minus on a range vector".into(),
                )),
            },
            Expr::VectorSelector(vs) => Ok(Value::Vector(
                self.select(vs)?
                    .into_iter()
                    .map(|(labels, _, v)| VSample { labels, v })
                    .collect(),
            )),
            Expr::MatrixSelector(ms) => {
                let range = duration_ms(&ms.range);
                Ok(Value::Matrix(self.select_range(&ms.vs, range)?))
            }
            Expr::Aggregate(a) => self.aggregate(a),
            Expr::Binary(b) => self.binary(b),
            Expr::Call(c) => self.call(c),
            Expr::Subquery(_) => Err(EvalError::Unsupported("subqueries".into())),
            Expr::Extension(_) => Err(EvalError::Unsupported("extension expressions".into())),
        }
    }

    fn vector(&self, e: &Expr) -> Result<Vec<VSample>, EvalError> {
        match self.eval(e)? {
            Value::Vector(v) => Ok(v),
            _ => Err(EvalError::Execution(format!(
                "expected an instant vector: {e}"
            ))),
        }
    }

    fn scalar(&self, e: &Expr) -> Result<f64, EvalError> {
        match self.eval(e)? {
            Value::Scalar(v) => Ok(v),
            _ => Err(EvalError::Execution(format!("expected a scalar: {e}"))),
        }
    }

    fn string(&self, e: &Expr) -> Result<String, EvalError> {
        match self.eval(e)? {
            Value::Str(v) => Ok(v),
            _ => Err(EvalError::Execution(format!("expected a string: {e}"))),
        }
    }

    fn matrix(&self, e: &Expr) -> Result<Vec<MSeries>, EvalError> {
        match self.eval(e)? {
            Value::Matrix(v) => Ok(v),
            _ => Err(EvalError::Execution(format!(
                "expected a range vector: {e}"
            ))),
        }
    }
}
