//! Function calls: the math and label functions over instant vectors, and the functions over
//! range vectors (`rate` and its kin, `deriv`/`predict_linear`, `*_over_time`).

use promql_parser::label::MatchOp;
use promql_parser::parser::{Call, Expr};

use super::aggregation::quantile;
use super::{
    check_unique, drop_name, unwrap_parens, EvalError, Evaluator, MSeries, VSample, Value, NAME,
};
use crate::backend::memory::Labels;

impl Evaluator<'_> {
    pub(super) fn call(&self, c: &Call) -> Result<Value, EvalError> {
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
