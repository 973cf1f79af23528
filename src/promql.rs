//! Turning Kubernetes label selectors into PromQL label matchers.
//!
//! Every value that reaches a query goes through [`quote`] (and, for set operators, through
//! [`regex_escape`] first), so no selector can change a query's structure: the worst a
//! selector can do is select nothing.

use std::collections::BTreeMap;
use std::fmt;

use crate::labels::Label;
use crate::selector::{Operator, Selector};

/// Label that the server adds to tell the parts of a combined query apart; selectors may not
/// use it.
pub const PART_LABEL: &str = "bridge_part";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatchOp {
    Eq,
    Ne,
    Re,
    NotRe,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Matcher {
    pub label: Label,
    pub op: MatchOp,
    /// The raw value (for regex operators: the raw, already escaped regex); quoted on output.
    /// Inline up to 24 bytes: a cache entry keeps its request's matchers between refreshes.
    pub value: Label,
}

impl Matcher {
    pub fn eq(label: impl Into<Label>, value: impl Into<Label>) -> Self {
        Self {
            label: label.into(),
            op: MatchOp::Eq,
            value: value.into(),
        }
    }

    pub fn re(label: impl Into<Label>, regex: impl Into<Label>) -> Self {
        Self {
            label: label.into(),
            op: MatchOp::Re,
            value: regex.into(),
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            MatchOp::Eq => "=",
            MatchOp::Ne => "!=",
            MatchOp::Re => "=~",
            MatchOp::NotRe => "!~",
        };
        write!(f, "{}{}{}", self.label, op, quote(&self.value))
    }
}

/// A metric name with matchers, e.g. `flink_x{namespace="a",job_name="b"}`.
pub fn vector(metric: &str, matchers: &[Matcher]) -> String {
    format!("{metric}{{{}}}", join(matchers))
}

pub fn join(matchers: &[Matcher]) -> String {
    matchers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// A PromQL double-quoted string literal. PromQL unquotes with Go's `strconv.Unquote`, which
/// accepts every escape produced here.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            // Prometheus' lexer takes a literal U+FFFD for a decoding error and refuses the
            // query; escaped, it is the character itself.
            '\u{fffd}' => out.push_str("\\ufffd"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Escapes a literal for RE2 (Prometheus' regex engine): every ASCII punctuation character is
/// backslash-escaped, which RE2 reads as the literal character.
pub fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_punctuation() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub fn is_valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Flink's Prometheus reporter replaces every character outside `[a-zA-Z0-9:_]` in label
/// values with `_`; applying the same filter to selector values lets an HPA say
/// `job_name=orders-enrich` for a job Flink reports as `orders_enrich`.
pub fn flink_label_value(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == ':' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    #[error("label selector key {key:?} is not a valid Prometheus label name; map it to one in the signal's `labels`")]
    InvalidLabel { key: String },
    #[error("label selector key {key:?} is reserved: {why}")]
    Reserved { key: String, why: String },
    #[error("label selector operator in {requirement:?} has no PromQL label matcher equivalent")]
    Unsupported { requirement: String },
}

/// How a signal maps selector keys and values onto its series.
#[derive(Debug, Clone, Default)]
pub struct Translation<'a> {
    /// Selector key → Prometheus label.
    pub rename: Option<&'a BTreeMap<String, String>>,
    /// Apply Flink's label-value filter to values.
    pub flink_values: bool,
    /// Labels the request itself sets (e.g. `namespace`); selectors may not override them.
    pub reserved: &'a [&'a str],
}

impl Translation<'_> {
    pub fn label_for(&self, key: &str) -> String {
        self.rename
            .and_then(|m| m.get(key))
            .cloned()
            .unwrap_or_else(|| key.to_string())
    }

    fn value(&self, v: &str) -> String {
        if self.flink_values {
            flink_label_value(v)
        } else {
            v.to_string()
        }
    }

    /// Translates a selector into label filters with the selector's exact meaning under
    /// PromQL's rule that a missing label equals the empty string: `k!=v` and `k notin (..)`
    /// also match series without `k`, as they do for Kubernetes objects.
    pub fn filters(&self, selector: &Selector) -> Result<Vec<LabelFilter>, TranslateError> {
        let mut out = Vec::with_capacity(selector.requirements().len());
        for r in selector.requirements() {
            let label = self.label_for(&r.key);
            if label.starts_with("__") || label == PART_LABEL {
                return Err(TranslateError::Reserved {
                    key: r.key.clone(),
                    why: "labels starting with '__' and the server's own labels cannot be selected"
                        .into(),
                });
            }
            if self.reserved.contains(&label.as_str()) {
                return Err(TranslateError::Reserved {
                    key: r.key.clone(),
                    why: "it is set from the request path".into(),
                });
            }
            if !is_valid_label_name(&label) {
                return Err(TranslateError::InvalidLabel { key: r.key.clone() });
            }
            let values: Vec<String> = r.values.iter().map(|v| self.value(v)).collect();
            let (values, negate) = match r.operator {
                Operator::Equals | Operator::In => (values, false),
                Operator::NotEquals | Operator::NotIn => (values, true),
                Operator::Exists => (vec![String::new()], true),
                Operator::DoesNotExist => (vec![String::new()], false),
                Operator::GreaterThan | Operator::LessThan => {
                    return Err(TranslateError::Unsupported {
                        requirement: r.to_string(),
                    })
                }
            };
            out.push(LabelFilter {
                label,
                values,
                negate,
            });
        }
        Ok(out)
    }

    /// The same filters as PromQL matchers.
    pub fn matchers(&self, selector: &Selector) -> Result<Vec<Matcher>, TranslateError> {
        Ok(self
            .filters(selector)?
            .iter()
            .map(LabelFilter::matcher)
            .collect())
    }
}

/// One requirement on one label: the label's value (empty when absent) is one of `values`,
/// or with `negate`, none of them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LabelFilter {
    pub label: String,
    pub values: Vec<String>,
    pub negate: bool,
}

impl LabelFilter {
    pub fn eq(label: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            values: vec![value.into()],
            negate: false,
        }
    }

    pub fn matches(&self, labels: &impl crate::labels::LabelValue) -> bool {
        let actual = labels.label(&self.label).unwrap_or("");
        self.values.iter().any(|v| v == actual) != self.negate
    }

    pub fn matcher(&self) -> Matcher {
        let label = Label::from(self.label.as_str());
        match (self.values.as_slice(), self.negate) {
            ([one], false) => Matcher {
                label,
                op: MatchOp::Eq,
                value: one.as_str().into(),
            },
            ([one], true) => Matcher {
                label,
                op: MatchOp::Ne,
                value: one.as_str().into(),
            },
            (many, negate) => Matcher {
                label,
                op: if negate { MatchOp::NotRe } else { MatchOp::Re },
                value: many
                    .iter()
                    .map(|v| regex_escape(v))
                    .collect::<Vec<_>>()
                    .join("|")
                    .into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(sel: &str) -> Result<String, TranslateError> {
        let s = Selector::parse(sel).unwrap();
        Translation {
            reserved: &["namespace"],
            ..Default::default()
        }
        .matchers(&s)
        .map(|m| join(&m))
    }

    #[test]
    fn translates_each_operator() {
        assert_eq!(tr("job_name=a").unwrap(), r#"job_name="a""#);
        assert_eq!(tr("job_name!=a").unwrap(), r#"job_name!="a""#);
        assert_eq!(tr("job_name in (a)").unwrap(), r#"job_name="a""#);
        assert_eq!(tr("job_name in (b.x,a)").unwrap(), r#"job_name=~"a|b\\.x""#);
        assert_eq!(tr("job_name notin (a,b)").unwrap(), r#"job_name!~"a|b""#);
        assert_eq!(tr("job_name").unwrap(), r#"job_name!="""#);
        assert_eq!(tr("!job_name").unwrap(), r#"job_name="""#);
    }

    #[test]
    fn values_cannot_break_out_of_the_string() {
        // The tokenizer lets quotes and backslashes through; the quoting must hold them.
        assert_eq!(tr(r#"a=x"}or{b"#).unwrap(), r#"a="x\"}or{b""#);
        assert_eq!(tr(r"a=x\").unwrap(), r#"a="x\\""#);
        assert_eq!(tr(r#"a in (x|.*,y)"#).unwrap(), r#"a=~"x\\|\\.\\*|y""#);
    }

    #[test]
    fn rejects_what_cannot_be_a_matcher() {
        assert!(matches!(
            tr("app.kubernetes.io/name=x"),
            Err(TranslateError::InvalidLabel { .. })
        ));
        assert!(matches!(
            tr("a-b=x"),
            Err(TranslateError::InvalidLabel { .. })
        ));
        let rename: BTreeMap<String, String> = [("n".to_string(), "__name__".to_string())].into();
        let t = Translation {
            rename: Some(&rename),
            ..Default::default()
        };
        let s = Selector::parse("n=up").unwrap();
        assert!(matches!(
            t.matchers(&s),
            Err(TranslateError::Reserved { .. })
        ));
        assert!(matches!(
            tr("bridge_part=x"),
            Err(TranslateError::Reserved { .. })
        ));
        assert!(matches!(
            tr("namespace=other"),
            Err(TranslateError::Reserved { .. })
        ));
        assert!(matches!(tr("a>1"), Err(TranslateError::Unsupported { .. })));
    }

    #[test]
    fn renames_and_flink_value_filter() {
        let rename: BTreeMap<String, String> =
            [("app.kubernetes.io/name".to_string(), "app".to_string())].into();
        let t = Translation {
            rename: Some(&rename),
            flink_values: true,
            reserved: &[],
        };
        let s = Selector::parse("app.kubernetes.io/name=orders-enrich.v2").unwrap();
        assert_eq!(join(&t.matchers(&s).unwrap()), r#"app="orders_enrich_v2""#);
    }

    #[test]
    fn filters_match_in_memory_as_the_matchers_do_in_prometheus() {
        let labels: BTreeMap<String, String> = [("job_name".to_string(), "a.b".to_string())].into();
        let t = Translation::default();
        let check = |sel: &str| {
            t.filters(&Selector::parse(sel).unwrap())
                .unwrap()
                .iter()
                .all(|f| f.matches(&labels))
        };
        assert!(check("job_name=a.b"));
        assert!(!check("job_name in (a.c,x)"));
        assert!(check("job_name notin (axb,x)"));
        assert!(check("task_name!=x"));
        assert!(check("!task_name"));
        assert!(!check("task_name"));
        assert!(check("job_name"));
    }

    #[test]
    fn quote_escapes_control_characters() {
        assert_eq!(quote("a\u{1}b\u{7f}"), r#""a\x01b\x7f""#);
        assert_eq!(quote("a\u{fffd}"), r#""a\ufffd""#);
        assert_eq!(quote("é"), "\"é\"");
    }

    #[test]
    fn label_and_metric_names() {
        assert!(is_valid_label_name("job_name"));
        assert!(!is_valid_label_name("9x"));
        assert!(!is_valid_label_name("a:b"));
        assert!(is_valid_metric_name("flink:busy_max"));
        assert!(!is_valid_metric_name("flink-busy"));
    }
}
