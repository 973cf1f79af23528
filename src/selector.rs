//! Kubernetes label selectors, as they arrive in `labelSelector` and `metricLabelSelector`.
//!
//! The grammar follows `k8s.io/apimachinery/pkg/labels`: comma-separated requirements of the
//! forms `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, `k>n`, `k<n`.
//! Keys are validated as Kubernetes qualified names. Values are accepted more leniently than
//! the API server does (anything but whitespace and the selector's own punctuation), because
//! people query Flink label values such as `Source:_orders` with `kubectl get --raw`; every
//! consumer of a value must therefore escape it.

use std::fmt;

/// Longest selector string accepted; the HPA never sends anything close to this.
pub const MAX_SELECTOR_LEN: usize = 4096;
/// Most requirements in one selector.
pub const MAX_REQUIREMENTS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector {input:?}: {reason}")]
pub struct SelectorError {
    pub input: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operator {
    Equals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    /// Sorted and deduplicated, as Kubernetes normalises them.
    pub values: Vec<String>,
}

/// A parsed selector; requirements are kept sorted by key so that equal selectors compare and
/// print equal whatever order the client wrote them in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    pub fn everything() -> Self {
        Self::default()
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether any requirement is about `key`.
    pub fn mentions(&self, key: &str) -> bool {
        self.requirements.iter().any(|r| r.key == key)
    }

    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        let err = |reason: String| SelectorError {
            input: truncate_for_message(input),
            reason,
        };
        if input.len() > MAX_SELECTOR_LEN {
            return Err(err(format!("longer than {MAX_SELECTOR_LEN} characters")));
        }
        let tokens = tokenize(input).map_err(err)?;
        let mut parser = Parser { tokens, pos: 0 };
        let mut requirements = Vec::new();
        if parser.peek().is_none() {
            return Ok(Self::everything());
        }
        loop {
            requirements.push(parser.requirement().map_err(err)?);
            if requirements.len() > MAX_REQUIREMENTS {
                return Err(err(format!("more than {MAX_REQUIREMENTS} requirements")));
            }
            match parser.next() {
                None => break,
                Some(Token::Comma) => continue,
                Some(t) => return Err(err(format!("expected ',' but found {}", t.describe()))),
            }
        }
        requirements.sort();
        requirements.dedup();
        let selector = Self { requirements };
        // The normal form can be longer than the input (`k in(a)` prints as `k in (a)`); it
        // must parse again, so it is held to the same limit.
        if selector.to_string().len() > MAX_SELECTOR_LEN {
            return Err(err(format!("longer than {MAX_SELECTOR_LEN} bytes")));
        }
        Ok(selector)
    }

    /// Evaluates the selector against a label set, with Kubernetes semantics: `!=` and `notin`
    /// match objects that lack the key.
    pub fn matches(&self, labels: &impl crate::labels::LabelValue) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl Requirement {
    pub fn matches(&self, labels: &impl crate::labels::LabelValue) -> bool {
        let value = labels.label(&self.key);
        match self.operator {
            Operator::Equals | Operator::In => {
                value.is_some_and(|v| self.values.iter().any(|x| x == v))
            }
            Operator::NotEquals | Operator::NotIn => {
                !value.is_some_and(|v| self.values.iter().any(|x| x == v))
            }
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(v), Some(bound)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|b| b.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    v > bound
                } else {
                    v < bound
                }
            }
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = &self.key;
        match self.operator {
            Operator::Equals => write!(f, "{k}={}", self.values[0]),
            Operator::NotEquals => write!(f, "{k}!={}", self.values[0]),
            Operator::In => write!(f, "{k} in ({})", self.values.join(",")),
            Operator::NotIn => write!(f, "{k} notin ({})", self.values.join(",")),
            Operator::Exists => write!(f, "{k}"),
            Operator::DoesNotExist => write!(f, "!{k}"),
            Operator::GreaterThan => write!(f, "{k}>{}", self.values[0]),
            Operator::LessThan => write!(f, "{k}<{}", self.values[0]),
        }
    }
}

fn truncate_for_message(s: &str) -> String {
    const MAX: usize = 200;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Equals,
    DoubleEquals,
    NotEquals,
    Bang,
    Open,
    Close,
    Comma,
    Greater,
    Less,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Ident(s) => format!("{s:?}"),
            Token::Equals => "'='".into(),
            Token::DoubleEquals => "'=='".into(),
            Token::NotEquals => "'!='".into(),
            Token::Bang => "'!'".into(),
            Token::Open => "'('".into(),
            Token::Close => "')'".into(),
            Token::Comma => "','".into(),
            Token::Greater => "'>'".into(),
            Token::Less => "'<'".into(),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '<' | '>')
}

fn tokenize(input: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c.is_control() {
            return Err(format!("control character at byte {start}"));
        }
        if is_special(c) {
            chars.next();
            let next_is_eq = matches!(chars.peek(), Some(&(_, '=')));
            let tok = match c {
                '=' if next_is_eq => {
                    chars.next();
                    Token::DoubleEquals
                }
                '=' => Token::Equals,
                '!' if next_is_eq => {
                    chars.next();
                    Token::NotEquals
                }
                '!' => Token::Bang,
                '(' => Token::Open,
                ')' => Token::Close,
                ',' => Token::Comma,
                '>' => Token::Greater,
                _ => Token::Less,
            };
            out.push(tok);
            continue;
        }
        let mut end = start;
        while let Some(&(i, c)) = chars.peek() {
            if c.is_whitespace() || is_special(c) {
                break;
            }
            if c.is_control() {
                return Err(format!("control character at byte {i}"));
            }
            end = i + c.len_utf8();
            chars.next();
        }
        out.push(Token::Ident(input[start..end].to_string()));
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn key(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Ident(k)) => {
                validate_key(&k)?;
                Ok(k)
            }
            Some(t) => Err(format!("expected a label key but found {}", t.describe())),
            None => Err("expected a label key but the selector ended".into()),
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        if self.peek() == Some(&Token::Bang) {
            self.next();
            let key = self.key()?;
            return Ok(Requirement {
                key,
                operator: Operator::DoesNotExist,
                values: vec![],
            });
        }
        let key = self.key()?;
        let operator = match self.peek() {
            None | Some(Token::Comma) => {
                return Ok(Requirement {
                    key,
                    operator: Operator::Exists,
                    values: vec![],
                })
            }
            Some(Token::Equals) | Some(Token::DoubleEquals) => Operator::Equals,
            Some(Token::NotEquals) => Operator::NotEquals,
            Some(Token::Greater) => Operator::GreaterThan,
            Some(Token::Less) => Operator::LessThan,
            Some(Token::Ident(w)) if w == "in" => Operator::In,
            Some(Token::Ident(w)) if w == "notin" => Operator::NotIn,
            Some(t) => {
                return Err(format!(
                    "expected an operator after {key:?} but found {}",
                    t.describe()
                ))
            }
        };
        self.next();
        let mut values = match operator {
            Operator::In | Operator::NotIn => self.value_set()?,
            Operator::GreaterThan | Operator::LessThan => {
                let v = self.single_value()?;
                if v.parse::<i64>().is_err() {
                    return Err(format!("value {v:?} for '>' or '<' must be an integer"));
                }
                vec![v]
            }
            _ => vec![self.single_value()?],
        };
        values.sort();
        values.dedup();
        Ok(Requirement {
            key,
            operator,
            values,
        })
    }

    /// A value after `=`, `==`, `!=`; may be empty (`k=`), as in Kubernetes.
    fn single_value(&mut self) -> Result<String, String> {
        match self.peek() {
            None | Some(Token::Comma) => Ok(String::new()),
            Some(Token::Ident(v)) => {
                let v = v.clone();
                self.pos += 1;
                Ok(v)
            }
            Some(t) => Err(format!("expected a value but found {}", t.describe())),
        }
    }

    fn value_set(&mut self) -> Result<Vec<String>, String> {
        match self.next() {
            Some(Token::Open) => {}
            Some(t) => return Err(format!("expected '(' but found {}", t.describe())),
            None => return Err("expected '(' but the selector ended".into()),
        }
        let mut values = Vec::new();
        loop {
            let v = match self.peek() {
                Some(Token::Ident(v)) => {
                    let v = v.clone();
                    self.pos += 1;
                    v
                }
                Some(Token::Comma) | Some(Token::Close) => String::new(),
                Some(t) => return Err(format!("expected a value but found {}", t.describe())),
                None => return Err("expected ')' but the selector ended".into()),
            };
            values.push(v);
            match self.next() {
                Some(Token::Comma) => continue,
                Some(Token::Close) => break,
                Some(t) => return Err(format!("expected ',' or ')' but found {}", t.describe())),
                None => return Err("expected ')' but the selector ended".into()),
            }
        }
        // `(,)` holds only the empty value, which prints as `()`: refuse it as `()` is.
        if values.iter().all(String::is_empty) {
            return Err("for 'in' and 'notin' the set of values can't be empty".into());
        }
        Ok(values)
    }
}

/// Kubernetes qualified name: `[prefix/]name`, name ≤ 63 chars of `[A-Za-z0-9._-]` starting
/// and ending alphanumeric; prefix a DNS subdomain ≤ 253 chars.
fn validate_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let bad = |why: &str| Err(format!("invalid label key {key:?}: {why}"));
    if name.is_empty() || name.len() > 63 {
        return bad("the name part must be 1 to 63 characters");
    }
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if !name.chars().all(ok_char)
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        return bad(
            "the name part must be alphanumeric, '-', '_' or '.', starting and ending alphanumeric",
        );
    }
    if let Some(p) = prefix {
        if p.is_empty() || p.len() > 253 {
            return bad("the prefix must be 1 to 253 characters");
        }
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if !p.split('.').all(label_ok) {
            return bad("the prefix must be a lower-case DNS subdomain");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_every_operator_and_normalises_order() {
        let s = Selector::parse("z notin (b,a), a=1,b==2,c!=3,d in (y, x),e,!f,g>4,h<5").unwrap();
        assert_eq!(
            s.to_string(),
            "a=1,b=2,c!=3,d in (x,y),e,!f,g>4,h<5,z notin (a,b)"
        );
        assert_eq!(s.requirements().len(), 9);
    }

    #[test]
    fn empty_selector_is_everything() {
        assert!(Selector::parse("").unwrap().is_empty());
        assert!(Selector::parse("   ").unwrap().is_empty());
    }

    #[test]
    fn empty_values_are_allowed_where_kubernetes_allows_them() {
        let s = Selector::parse("a=,b!=").unwrap();
        assert_eq!(s.requirements()[0].values, vec![String::new()]);
        assert!(Selector::parse("a in ()").is_err());
    }

    #[test]
    fn rejects_malformed_selectors() {
        for bad in [
            "a=b=c",
            "a in b",
            "a in (b",
            "=b",
            "a,,b",
            "a>x",
            "a b",
            "-a=b",
            "a/b/c=d",
            "Example.com/a=b",
            "a=(b)",
            "a=b\u{7}",
        ] {
            assert!(Selector::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn accepts_qualified_keys_and_flink_style_values() {
        let s = Selector::parse("app.kubernetes.io/name=flink,task_name=Source:_orders").unwrap();
        assert_eq!(s.requirements()[0].key, "app.kubernetes.io/name");
        assert_eq!(
            s.requirements()[1].values,
            vec!["Source:_orders".to_string()]
        );
    }

    #[test]
    fn limits_size_and_requirement_count() {
        let long = format!("a={}", "x".repeat(MAX_SELECTOR_LEN));
        assert!(Selector::parse(&long).is_err());
        let many = (0..=MAX_REQUIREMENTS)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(Selector::parse(&many).is_err());
    }

    #[test]
    fn matches_with_kubernetes_semantics() {
        let l = labels(&[("app", "tm"), ("tier", "3")]);
        let yes = [
            "app=tm",
            "app in (jm,tm)",
            "env!=prod",
            "env notin (a)",
            "app",
            "!env",
            "tier>2",
            "tier<4",
        ];
        for s in yes {
            assert!(Selector::parse(s).unwrap().matches(&l), "{s}");
        }
        let no = ["app=jm", "app notin (tm)", "env", "!app", "tier>3", "app>1"];
        for s in no {
            assert!(!Selector::parse(s).unwrap().matches(&l), "{s}");
        }
    }
}
