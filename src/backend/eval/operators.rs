//! Binary operators: arithmetic and comparisons between scalars and vectors, set operators,
//! and vector matching with `on`/`ignoring`/`group_left`/`group_right`.

use std::collections::{HashMap, HashSet};

use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::{drop_name, EvalError, Evaluator, VSample, Value, NAME};
use crate::backend::memory::Labels;

impl Evaluator<'_> {
    pub(super) fn binary(&self, b: &BinaryExpr) -> Result<Value, EvalError> {
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
