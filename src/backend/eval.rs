//! A PromQL evaluator over the in-memory [`Store`], following Prometheus 2.x's engine
//! (`promql/engine.go`, `promql/functions.go`): lookback delta and staleness markers for
//! instant selectors, closed ranges `[t - range, t]` for range selectors, `extrapolatedRate`
//! for `rate`/`increase`/`delta`, least-squares regression for `deriv`/`predict_linear`, and
//! vector matching with `on`/`ignoring`/`group_left`/`group_right`.
//!
//! What it does not implement (subqueries, `@`, histograms, `topk`, ...) is refused with
//! [`EvalError::Unsupported`] naming the construct, never answered approximately.

use std::collections::{BTreeMap, HashMap, HashSet};

use promql_parser::label::{MatchOp, Matchers};
use promql_parser::parser::{
    AggregateExpr, BinaryExpr, Call, Expr, LabelModifier, Offset, VectorMatchCardinality,
    VectorSelector,
};

use super::memory::{is_stale, Labels, Store};
use crate::prometheus::Sample;

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

fn duration_ms(d: &std::time::Duration) -> i64 {
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

    fn check_selector(vs: &VectorSelector) -> Result<(), EvalError> {
        if vs.at.is_some() {
            return Err(EvalError::Unsupported("the @ modifier".into()));
        }
        Ok(())
    }

    /// An instant selector: per matching series, the newest sample within the lookback
    /// delta (`[t - lookback, t]`, as Prometheus 2.x), unless it is a staleness marker.
    /// Returns each sample's own time as well, for `timestamp()`.
    fn select(&self, vs: &VectorSelector) -> Result<Vec<(Labels, i64, f64)>, EvalError> {
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

    fn select_range(&self, vs: &VectorSelector, range_ms: i64) -> Result<Vec<MSeries>, EvalError> {
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

    fn aggregate(&self, a: &AggregateExpr) -> Result<Value, EvalError> {
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

    fn binary(&self, b: &BinaryExpr) -> Result<Value, EvalError> {
        let op_name = b.op.to_string();
        let op = op_name.as_str();
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        if let Some(m) = &b.modifier {
            if m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some() {
                return Err(EvalError::Unsupported("fill modifiers".into()));
            }
        }
        let lhs = self.eval(&b.lhs)?;
        let rhs = self.eval(&b.rhs)?;
        let comparison = b.op.is_comparison_operator();
        match (lhs, rhs) {
            (Value::Scalar(l), Value::Scalar(r)) => {
                let (v, keep) = elem_binop(op, l, r)?;
                Ok(Value::Scalar(if comparison {
                    if keep {
                        1.0
                    } else {
                        0.0
                    }
                } else {
                    v
                }))
            }
            (Value::Vector(l), Value::Scalar(r)) => Ok(Value::Vector(vector_scalar(
                op,
                l,
                r,
                false,
                return_bool,
                comparison,
            )?)),
            (Value::Scalar(l), Value::Vector(r)) => Ok(Value::Vector(vector_scalar(
                op,
                r,
                l,
                true,
                return_bool,
                comparison,
            )?)),
            (Value::Vector(l), Value::Vector(r)) => {
                let matching = b.modifier.as_ref().and_then(|m| m.matching.clone());
                if b.op.is_set_operator() {
                    return Ok(Value::Vector(set_op(op, l, r, matching.as_ref())));
                }
                let card = b
                    .modifier
                    .as_ref()
                    .map(|m| m.card.clone())
                    .unwrap_or(VectorMatchCardinality::OneToOne);
                Ok(Value::Vector(vector_vector(
                    op,
                    l,
                    r,
                    matching.as_ref(),
                    &card,
                    return_bool,
                    comparison,
                )?))
            }
            _ => Err(EvalError::Execution(format!(
                "binary {op} between a range vector or string and another value"
            ))),
        }
    }

    fn call(&self, c: &Call) -> Result<Value, EvalError> {
        let name = c.func.name;
        let args: Vec<&Expr> = c.args.args.iter().map(|a| a.as_ref()).collect();
        let arg = |i: usize| -> Result<&Expr, EvalError> {
            args.get(i)
                .copied()
                .ok_or_else(|| EvalError::Execution(format!("{name}: missing argument {i}")))
        };
        let math = |f: fn(f64) -> f64| -> Result<Value, EvalError> {
            let v = self.vector(arg(0)?)?;
            let out: Vec<VSample> = v
                .into_iter()
                .map(|s| VSample {
                    labels: drop_name(s.labels),
                    v: f(s.v),
                })
                .collect();
            check_unique(&out)?;
            Ok(Value::Vector(out))
        };
        match name {
            "time" => Ok(Value::Scalar(self.ts as f64 / 1000.0)),
            "pi" => Ok(Value::Scalar(std::f64::consts::PI)),
            "vector" => Ok(Value::Vector(vec![VSample {
                labels: Labels::new(),
                v: self.scalar(arg(0)?)?,
            }])),
            "scalar" => {
                let v = self.vector(arg(0)?)?;
                Ok(Value::Scalar(match v.as_slice() {
                    [one] => one.v,
                    _ => f64::NAN,
                }))
            }
            "abs" => math(f64::abs),
            "ceil" => math(f64::ceil),
            "floor" => math(f64::floor),
            "exp" => math(f64::exp),
            "ln" => math(f64::ln),
            "log2" => math(f64::log2),
            "log10" => math(f64::log10),
            "sqrt" => math(f64::sqrt),
            "sgn" => math(|v| {
                if v > 0.0 {
                    1.0
                } else if v < 0.0 {
                    -1.0
                } else {
                    v
                }
            }),
            "round" => {
                let to = match args.get(1) {
                    Some(e) => self.scalar(e)?,
                    None => 1.0,
                };
                let inv = 1.0 / to;
                let v = self.vector(arg(0)?)?;
                let out: Vec<VSample> = v
                    .into_iter()
                    .map(|s| VSample {
                        labels: drop_name(s.labels),
                        // Prometheus rounds half up: floor(v*inv + 0.5) / inv.
                        v: (s.v * inv + 0.5).floor() / inv,
                    })
                    .collect();
                check_unique(&out)?;
                Ok(Value::Vector(out))
            }
            "clamp" | "clamp_min" | "clamp_max" => {
                let v = self.vector(arg(0)?)?;
                let (lo, hi) = match name {
                    "clamp" => (self.scalar(arg(1)?)?, self.scalar(arg(2)?)?),
                    "clamp_min" => (self.scalar(arg(1)?)?, f64::INFINITY),
                    _ => (f64::NEG_INFINITY, self.scalar(arg(1)?)?),
                };
                if name == "clamp" && lo > hi {
                    return Ok(Value::Vector(Vec::new()));
                }
                let out: Vec<VSample> = v
                    .into_iter()
                    .map(|s| VSample {
                        labels: drop_name(s.labels),
                        // Go's math.Max/Min propagate NaN, as f64::max/min do not.
                        v: if s.v.is_nan() || lo.is_nan() || hi.is_nan() {
                            f64::NAN
                        } else {
                            s.v.max(lo).min(hi)
                        },
                    })
                    .collect();
                check_unique(&out)?;
                Ok(Value::Vector(out))
            }
            "timestamp" => {
                // Over a selector, the samples' own times (engine.go special-cases it);
                // over anything else, the evaluation time.
                let out: Vec<VSample> = match unwrap_parens(arg(0)?) {
                    Expr::VectorSelector(vs) => self
                        .select(vs)?
                        .into_iter()
                        .map(|(labels, t, _)| VSample {
                            labels: drop_name(labels),
                            v: t as f64 / 1000.0,
                        })
                        .collect(),
                    e => self
                        .vector(e)?
                        .into_iter()
                        .map(|s| VSample {
                            labels: drop_name(s.labels),
                            v: self.ts as f64 / 1000.0,
                        })
                        .collect(),
                };
                check_unique(&out)?;
                Ok(Value::Vector(out))
            }
            "label_replace" => {
                let v = self.vector(arg(0)?)?;
                let dst = self.string(arg(1)?)?;
                let repl = self.string(arg(2)?)?;
                let src = self.string(arg(3)?)?;
                let re_text = self.string(arg(4)?)?;
                let re = regex::Regex::new(&format!("^(?s:{re_text})$")).map_err(|e| {
                    EvalError::Execution(format!(
                        "invalid regular expression in label_replace(): {e}"
                    ))
                })?;
                if !crate::promql::is_valid_label_name(&dst) {
                    return Err(EvalError::Execution(format!(
                        "invalid destination label name in label_replace(): {dst}"
                    )));
                }
                let mut out = Vec::with_capacity(v.len());
                for mut s in v {
                    let value = s.labels.get(&src).cloned().unwrap_or_default();
                    if let Some(caps) = re.captures(&value) {
                        let mut res = String::new();
                        // Go's `$1`, `${name}` templates read the same in Rust's regex (`$1x` is the
                        // group named `1x` in both, so empty).
                        caps.expand(&repl, &mut res);
                        if res.is_empty() {
                            s.labels.remove(&dst);
                        } else {
                            s.labels.insert(dst.clone(), res);
                        }
                    }
                    out.push(s);
                }
                check_unique(&out)?;
                Ok(Value::Vector(out))
            }
            "sort" | "sort_desc" => {
                let mut v = self.vector(arg(0)?)?;
                v.sort_by(|a, b| a.v.total_cmp(&b.v));
                if name == "sort_desc" {
                    v.reverse();
                }
                Ok(Value::Vector(v))
            }
            "absent" => {
                let v = self.vector(arg(0)?)?;
                if !v.is_empty() {
                    return Ok(Value::Vector(Vec::new()));
                }
                let mut labels = Labels::new();
                if let Expr::VectorSelector(vs) = unwrap_parens(arg(0)?) {
                    for m in &vs.matchers.matchers {
                        if matches!(m.op, MatchOp::Equal) && m.name != NAME {
                            labels.insert(m.name.clone(), m.value.clone());
                        }
                    }
                }
                Ok(Value::Vector(vec![VSample { labels, v: 1.0 }]))
            }
            "rate" | "increase" | "delta" | "irate" | "idelta" | "deriv" | "predict_linear"
            | "avg_over_time" | "min_over_time" | "max_over_time" | "sum_over_time"
            | "count_over_time" | "last_over_time" | "present_over_time" | "stddev_over_time"
            | "stdvar_over_time" | "changes" | "resets" | "quantile_over_time" => {
                let (m_arg, extra) = match name {
                    "quantile_over_time" => (arg(1)?, Some(self.scalar(arg(0)?)?)),
                    "predict_linear" => (arg(0)?, Some(self.scalar(arg(1)?)?)),
                    _ => (arg(0)?, None),
                };
                if !matches!(unwrap_parens(m_arg), Expr::MatrixSelector(_)) {
                    return Err(EvalError::Unsupported(format!(
                        "{name} over anything but a range selector"
                    )));
                }
                let m = self.matrix(m_arg)?;
                let mut out = Vec::with_capacity(m.len());
                for s in m {
                    if let Some(v) = range_function(name, &s, self.ts, extra) {
                        let labels = if name == "last_over_time" {
                            s.labels
                        } else {
                            drop_name(s.labels)
                        };
                        out.push(VSample { labels, v });
                    }
                }
                check_unique(&out)?;
                Ok(Value::Vector(out))
            }
            other => Err(EvalError::Unsupported(format!("function {other}()"))),
        }
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
fn quantile(q: f64, vs: &[f64]) -> f64 {
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

/// `(value, keep)` as Prometheus' `vectorElemBinop`: comparisons keep the left value.
fn elem_binop(op: &str, l: f64, r: f64) -> Result<(f64, bool), EvalError> {
    Ok(match op {
        "+" => (l + r, true),
        "-" => (l - r, true),
        "*" => (l * r, true),
        "/" => (l / r, true),
        "%" => (l % r, true),
        "^" => (l.powf(r), true),
        "atan2" => (l.atan2(r), true),
        "==" => (l, l == r),
        "!=" => (l, l != r),
        ">" => (l, l > r),
        "<" => (l, l < r),
        ">=" => (l, l >= r),
        "<=" => (l, l <= r),
        other => return Err(EvalError::Unsupported(format!("operator {other}"))),
    })
}

fn vector_scalar(
    op: &str,
    v: Vec<VSample>,
    s: f64,
    scalar_left: bool,
    return_bool: bool,
    comparison: bool,
) -> Result<Vec<VSample>, EvalError> {
    let mut out = Vec::with_capacity(v.len());
    for mut e in v {
        let (l, r) = if scalar_left { (s, e.v) } else { (e.v, s) };
        let (mut value, keep) = elem_binop(op, l, r)?;
        // The vector's value is kept whichever side it is on.
        if comparison && scalar_left {
            value = e.v;
        }
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        if !comparison || return_bool {
            e.labels = drop_name(e.labels);
        }
        e.v = value;
        out.push(e);
    }
    Ok(out)
}

/// The labels two sides match on: only those of `on (...)`, or all but those of
/// `ignoring (...)` and the metric name.
fn signature(l: &Labels, matching: Option<&LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(on)) => l
            .iter()
            .filter(|(k, _)| on.labels.iter().any(|x| x == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        Some(LabelModifier::Exclude(ig)) => l
            .iter()
            .filter(|(k, _)| *k != NAME && !ig.labels.iter().any(|x| x == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        None => l
            .iter()
            .filter(|(k, _)| *k != NAME)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

fn set_op(
    op: &str,
    l: Vec<VSample>,
    r: Vec<VSample>,
    matching: Option<&LabelModifier>,
) -> Vec<VSample> {
    let rsigs: HashSet<Labels> = r.iter().map(|s| signature(&s.labels, matching)).collect();
    match op {
        "and" => l
            .into_iter()
            .filter(|s| rsigs.contains(&signature(&s.labels, matching)))
            .collect(),
        "unless" => l
            .into_iter()
            .filter(|s| !rsigs.contains(&signature(&s.labels, matching)))
            .collect(),
        _ => {
            let lsigs: HashSet<Labels> = l.iter().map(|s| signature(&s.labels, matching)).collect();
            let mut out = l;
            out.extend(
                r.into_iter()
                    .filter(|s| !lsigs.contains(&signature(&s.labels, matching))),
            );
            out
        }
    }
}

fn vector_vector(
    op: &str,
    lhs: Vec<VSample>,
    rhs: Vec<VSample>,
    matching: Option<&LabelModifier>,
    card: &VectorMatchCardinality,
    return_bool: bool,
    comparison: bool,
) -> Result<Vec<VSample>, EvalError> {
    let one_to_many = matches!(card, VectorMatchCardinality::OneToMany(_));
    let (lhs, rhs) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let mut right: HashMap<Labels, &VSample> = HashMap::with_capacity(rhs.len());
    for s in &rhs {
        let sig = signature(&s.labels, matching);
        if right.insert(sig.clone(), s).is_some() {
            return Err(EvalError::Execution(format!(
                "found duplicate series for the match group {sig:?} on the {} hand-side of the operation; many-to-many matching not allowed: matching labels must be unique on one side",
                if one_to_many { "left" } else { "right" }
            )));
        }
    }
    let include: Vec<String> = card.labels().map(|l| l.labels.clone()).unwrap_or_default();
    let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
    let mut matched_sigs: HashSet<Labels> = HashSet::new();
    let mut result_sets: HashSet<Labels> = HashSet::new();
    let mut out = Vec::new();
    for ls in lhs {
        let sig = signature(&ls.labels, matching);
        let Some(rs) = right.get(&sig) else { continue };
        let (vl, vr) = if one_to_many {
            (rs.v, ls.v)
        } else {
            (ls.v, rs.v)
        };
        let (mut value, keep) = elem_binop(op, vl, vr)?;
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        let mut metric = ls.labels.clone();
        if !comparison || return_bool {
            metric.remove(NAME);
        }
        if one_to_one {
            match matching {
                Some(LabelModifier::Include(on)) => {
                    metric.retain(|k, _| on.labels.iter().any(|x| x == k));
                }
                Some(LabelModifier::Exclude(ig)) => {
                    metric.retain(|k, _| !ig.labels.iter().any(|x| x == k));
                }
                None => {}
            }
        }
        for name in &include {
            match rs.labels.get(name) {
                Some(v) if !v.is_empty() => {
                    metric.insert(name.clone(), v.clone());
                }
                _ => {
                    metric.remove(name);
                }
            }
        }
        if one_to_one {
            if !matched_sigs.insert(sig.clone()) {
                return Err(EvalError::Execution(format!(
                    "multiple matches for labels {sig:?}: many-to-one matching must be explicit (group_left/group_right)"
                )));
            }
        } else if !result_sets.insert(metric.clone()) {
            return Err(EvalError::Execution(
                "multiple matches for labels: grouping labels must ensure unique matches".into(),
            ));
        }
        out.push(VSample {
            labels: metric,
            v: value,
        });
    }
    Ok(out)
}

/// Prometheus' `extrapolatedRate` (functions.go): the change over the samples in the window,
/// extrapolated to the window's edges when the first and last samples lie within 1.1 average
/// intervals of them (else by half an interval), never below a counter's zero point.
pub fn extrapolated_rate(
    points: &[(i64, f64)],
    range_start_ms: i64,
    range_end_ms: i64,
    range_seconds: f64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (first_t, first_v) = points[0];
    let (last_t, last_v) = points[points.len() - 1];
    let mut result = last_v - first_v;
    if is_counter {
        let mut last = 0.0;
        for &(_, v) in points {
            if v < last {
                result += last;
            }
            last = v;
        }
    }
    let mut to_start = (first_t - range_start_ms) as f64 / 1000.0;
    let to_end = (range_end_ms - last_t) as f64 / 1000.0;
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let avg = sampled / (points.len() - 1) as f64;
    if is_counter && result > 0.0 && first_v >= 0.0 {
        let to_zero = sampled * (first_v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = avg * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        avg / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        avg / 2.0
    };
    result *= interval / sampled;
    if is_rate {
        result /= range_seconds;
    }
    Some(result)
}

/// Least-squares slope and intercept of `points` with x in seconds from `intercept_ms`
/// (Prometheus' `linearRegression`); a constant series has slope 0.
pub fn linear_regression(points: &[(i64, f64)], intercept_ms: i64) -> (f64, f64) {
    let init = points[0].1;
    let const_y = points.iter().all(|&(_, v)| v == init);
    if const_y {
        if init.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init);
    }
    let n = points.len() as f64;
    let (mut sx, mut sy, mut sxy, mut sx2) = (0.0, 0.0, 0.0, 0.0);
    for &(t, v) in points {
        let x = (t - intercept_ms) as f64 / 1000.0;
        sx += x;
        sy += v;
        sxy += x * v;
        sx2 += x * x;
    }
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

fn range_function(name: &str, s: &MSeries, ts: i64, extra: Option<f64>) -> Option<f64> {
    let p = &s.points;
    if p.is_empty() {
        return None;
    }
    let end = ts - s.offset_ms;
    let start = end - s.range_ms;
    let range_seconds = s.range_ms as f64 / 1000.0;
    let values = || p.iter().map(|&(_, v)| v);
    let n = p.len() as f64;
    match name {
        "rate" => extrapolated_rate(p, start, end, range_seconds, true, true),
        "increase" => extrapolated_rate(p, start, end, range_seconds, true, false),
        "delta" => extrapolated_rate(p, start, end, range_seconds, false, false),
        "irate" | "idelta" => {
            if p.len() < 2 {
                return None;
            }
            let (t1, v1) = p[p.len() - 2];
            let (t2, v2) = p[p.len() - 1];
            let mut d = v2 - v1;
            if name == "irate" {
                if v2 < v1 {
                    d = v2;
                }
                let dt = (t2 - t1) as f64 / 1000.0;
                if dt == 0.0 {
                    return None;
                }
                d /= dt;
            }
            Some(d)
        }
        "deriv" => (p.len() >= 2).then(|| linear_regression(p, p[0].0).0),
        "predict_linear" => (p.len() >= 2).then(|| {
            let (slope, intercept) = linear_regression(p, ts);
            slope * extra.unwrap_or(0.0) + intercept
        }),
        "avg_over_time" => Some(values().sum::<f64>() / n),
        "sum_over_time" => Some(values().sum()),
        "count_over_time" => Some(n),
        "present_over_time" => Some(1.0),
        "last_over_time" => Some(p[p.len() - 1].1),
        "max_over_time" => {
            Some(
                values()
                    .skip(1)
                    .fold(p[0].1, |m, v| if v > m || m.is_nan() { v } else { m }),
            )
        }
        "min_over_time" => {
            Some(
                values()
                    .skip(1)
                    .fold(p[0].1, |m, v| if v < m || m.is_nan() { v } else { m }),
            )
        }
        "stddev_over_time" | "stdvar_over_time" => {
            let mean = values().sum::<f64>() / n;
            let var = values().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
            Some(if name == "stddev_over_time" {
                var.sqrt()
            } else {
                var
            })
        }
        "changes" => Some(
            p.windows(2)
                .filter(|w| w[1].1 != w[0].1 && !(w[1].1.is_nan() && w[0].1.is_nan()))
                .count() as f64,
        ),
        "resets" => Some(p.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64),
        "quantile_over_time" => Some(quantile(
            extra.unwrap_or(f64::NAN),
            &values().collect::<Vec<_>>(),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_extrapolates_to_the_window_edges_by_hand() {
        // Counter 0, 10, 20, 30 at 15 s spacing, window [0, 60] s evaluated at 60 s: the
        // samples at 5, 20, 35, 50 s. Sampled interval 45 s, avg 15 s; 5 s to the start
        // (< 16.5, but the zero point is 0 s before the first sample at value 0 → 0 s);
        // 10 s to the end (< 16.5). Increase 30 × (45 + 0 + 10) / 45 = 36.67; rate / 60.
        let p = [(5_000, 0.0), (20_000, 10.0), (35_000, 20.0), (50_000, 30.0)];
        let inc = extrapolated_rate(&p, 0, 60_000, 60.0, true, false).unwrap();
        assert!((inc - 30.0 * 55.0 / 45.0).abs() < 1e-9, "{inc}");
        let rate = extrapolated_rate(&p, 0, 60_000, 60.0, true, true).unwrap();
        assert!((rate - inc / 60.0).abs() < 1e-12);
        // A reset: 0, 10, 3 → 10 + 3 = 13 of increase before extrapolation.
        let p = [(0, 0.0), (10_000, 10.0), (20_000, 3.0)];
        let inc = extrapolated_rate(&p, 0, 20_000, 20.0, true, false).unwrap();
        assert!((inc - 13.0).abs() < 1e-9, "{inc}");
        // Far from the edges: half an interval each side. 10 → 20 over 10 s in [0, 100]:
        // 10 × (10 + 5 + 5) / 10 = 20.
        let p = [(40_000, 10.0), (50_000, 20.0)];
        let d = extrapolated_rate(&p, 0, 100_000, 100.0, false, false).unwrap();
        assert!((d - 20.0).abs() < 1e-9, "{d}");
        assert!(extrapolated_rate(&p[..1], 0, 100_000, 100.0, true, true).is_none());
    }

    #[test]
    fn regression_by_hand() {
        // y = 2x + 1 at x = 0, 1, 2 s.
        let p = [(0, 1.0), (1000, 3.0), (2000, 5.0)];
        let (slope, intercept) = linear_regression(&p, 0);
        assert!((slope - 2.0).abs() < 1e-12 && (intercept - 1.0).abs() < 1e-12);
        // Intercept at t = 2 s: 5.
        let (_, at2) = linear_regression(&p, 2000);
        assert!((at2 - 5.0).abs() < 1e-12);
        assert_eq!(linear_regression(&[(0, 4.0), (1000, 4.0)], 0), (0.0, 4.0));
    }

    #[test]
    fn quantile_interpolates() {
        assert_eq!(quantile(0.5, &[1.0, 2.0, 3.0, 4.0]), 2.5);
        assert_eq!(quantile(0.0, &[3.0, 1.0]), 1.0);
        assert_eq!(quantile(2.0, &[1.0]), f64::INFINITY);
    }
}
