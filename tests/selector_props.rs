//! Properties of the label selector → PromQL translation: no string that arrives as a
//! `labelSelector` can make parsing panic, and a selector that translates selects, in memory
//! and in a real Prometheus, exactly the series the Kubernetes selector means.
//!
//! Case counts, for longer local runs: `SELECTOR_PROPS_CASES` (each in-memory property,
//! default 1000), `SELECTOR_PROPS_PROM_CASES` and `SELECTOR_PROPS_PROM_SERIES` (selectors sent
//! to Prometheus and series loaded into it, default 150 and 40). A failure prints the
//! shrunk input; `PROPTEST_RNG_SEED=<n>` makes a run repeatable.
//!
//! Empty values. Prometheus cannot hold a label with an empty value (it is the same as not
//! having the label), so generated series never carry one. Kubernetes reads `k=` as "k is
//! present and empty", which no series can satisfy, while PromQL's `k=""` also matches series
//! without `k`; the translation deliberately takes PromQL's reading, under which `k=` and `!k`
//! select the same series. The generators therefore do produce empty selector values
//! (`k=`, `k!=`, `k in (,v)`, `k notin (,v)`) and the expected answer is computed by
//! [`Req::promql`], which applies that rule: for requirements with values, an absent key
//! counts as the empty value. Whenever no selector value is empty that is exactly the
//! Kubernetes meaning, and the tests then also compare with `Selector::matches` directly.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use flink_hpa_bridge::fixtures::exporter::Series;
use flink_hpa_bridge::promql::{self, MatchOp, Matcher, TranslateError, Translation};
use flink_hpa_bridge::selector::{Selector, MAX_REQUIREMENTS, MAX_SELECTOR_LEN};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{TestCaseError, TestRunner};
use serde_json::Value;

/// A series' labels, or an object's.
type Labels = BTreeMap<String, String>;
/// A matcher as read back from text: label, operator, value bytes.
type ReadMatcher = (String, MatchOp, Vec<u8>);

fn env_count(name: &str, default: u32) -> u32 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a count")),
        Err(_) => default,
    }
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Failures are replayed from the printed input or the seed; nothing is written into
        // the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn memory_cases() -> u32 {
    env_count("SELECTOR_PROPS_CASES", 1000)
}

// ---------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------

/// Selector keys that are Prometheus label names as they stand.
const KEYS: &[&str] = &["job_name", "task_name", "pod", "a", "Zz", "k9"];
/// A Kubernetes-only key (not a Prometheus label name) that the translation renames.
const QUALIFIED_KEY: &str = "app.kubernetes.io/name";
const RENAMED_LABEL: &str = "app_name";

/// Characters of selector values: regex metacharacters, PromQL string delimiters and escapes,
/// and non-ASCII. `(`, `)`, `,`, `=`, `!`, `<`, `>` and whitespace cannot occur in a selector
/// value (they are the selector's own syntax), so only series values get them.
const META_CHARS: &[&str] = &[
    ".", "*", "+", "?", "|", "[", "]", "{", "}", "^", "$", "\\", "\"",
];
const OTHER_CHARS: &[&str] = &[
    "Z", "0", "_", ":", "-", "/", "'", "`", "#", "&", "~", "%", "@", ";", "é", "日", "🚀",
    "\u{200b}", "\u{fffd}",
];
const SERIES_ONLY_CHARS: &[&str] = &["(", ")", ",", "=", "!", "<", ">", " ", "\n"];

fn value_char() -> BoxedStrategy<&'static str> {
    // Mostly plain letters, so that values collide with each other and with the literal
    // readings of metacharacters (`a.` vs `aa`).
    prop_oneof![
        3 => Just("a"),
        2 => Just("b"),
        3 => prop::sample::select(META_CHARS),
        2 => prop::sample::select(OTHER_CHARS),
    ]
    .boxed()
}

fn value() -> BoxedStrategy<String> {
    prop::collection::vec(value_char(), 1..=3)
        .prop_map(|c| c.concat())
        .boxed()
}

/// The same value with its punctuation replaced by a letter: what an unescaped regex
/// (`a.`, `a*`, `a|b`) would wrongly select.
fn near_miss(v: &str) -> String {
    v.chars()
        .map(|c| if c.is_ascii_punctuation() { 'a' } else { c })
        .collect()
}

/// Values shared by the selectors and the series of one case, so that selectors often hit.
fn pool() -> BoxedStrategy<Vec<String>> {
    prop::collection::vec(value(), 2..=6).boxed()
}

fn series_value(pool: &[String]) -> BoxedStrategy<String> {
    let near: Vec<String> = pool.iter().map(|v| near_miss(v)).collect();
    prop_oneof![
        5 => prop::sample::select(pool.to_vec()),
        2 => prop::sample::select(near),
        1 => prop::collection::vec(
            prop_oneof![value_char(), prop::sample::select(SERIES_ONLY_CHARS)],
            1..=3,
        )
        .prop_map(|c| c.concat()),
    ]
    .boxed()
}

/// A series' labels, with Prometheus names; never an empty value (see the module comment).
fn label_set(pool: &[String]) -> BoxedStrategy<Labels> {
    let names: Vec<&'static str> = KEYS.iter().copied().chain([RENAMED_LABEL]).collect();
    prop::collection::btree_map(
        prop::sample::select(names),
        series_value(pool),
        0..=KEYS.len() + 1,
    )
    .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    .boxed()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    In,
    NotIn,
    Exists,
    NotExists,
    Gt,
    Lt,
}

/// The operators that have a PromQL matcher.
const OPS: &[Op] = &[Op::Eq, Op::Ne, Op::In, Op::NotIn, Op::Exists, Op::NotExists];
const ALL_OPS: &[Op] = &[
    Op::Eq,
    Op::Ne,
    Op::In,
    Op::NotIn,
    Op::Exists,
    Op::NotExists,
    Op::Gt,
    Op::Lt,
];

/// One requirement as the test means it, independent of the parser's representation.
#[derive(Debug, Clone)]
struct Req {
    key: &'static str,
    op: Op,
    values: Vec<String>,
    /// Picks among the spellings the grammar allows (spaces, `==`).
    style: u8,
}

impl Req {
    fn render(&self) -> String {
        let sp = if self.style & 1 == 1 { " " } else { "" };
        let k = self.key;
        let v = self.values.first().map(String::as_str).unwrap_or("");
        let set = || self.values.join(&format!(",{sp}"));
        match self.op {
            Op::Eq if self.style & 2 == 2 => format!("{k}{sp}=={sp}{v}"),
            Op::Eq => format!("{k}{sp}={sp}{v}"),
            Op::Ne => format!("{k}{sp}!={sp}{v}"),
            Op::In => format!("{k} in{sp}({})", set()),
            Op::NotIn => format!("{k} notin{sp}({})", set()),
            Op::Exists => format!("{sp}{k}{sp}"),
            Op::NotExists => format!("!{sp}{k}"),
            Op::Gt => format!("{k}{sp}>{sp}{v}"),
            Op::Lt => format!("{k}{sp}<{sp}{v}"),
        }
    }

    /// Kubernetes semantics (`k8s.io/apimachinery/pkg/labels`), on selector keys.
    fn kubernetes(&self, labels: &Labels) -> bool {
        let actual = labels.get(self.key);
        let listed = actual.is_some_and(|a| self.values.contains(a));
        let int = |s: &str| s.parse::<i64>().ok();
        let compare =
            |ord: std::cmp::Ordering| match (actual.and_then(|a| int(a)), int(&self.values[0])) {
                (Some(a), Some(b)) => a.cmp(&b) == ord,
                _ => false,
            };
        match self.op {
            Op::Eq | Op::In => listed,
            Op::Ne | Op::NotIn => !listed,
            Op::Exists => actual.is_some(),
            Op::NotExists => actual.is_none(),
            Op::Gt => compare(std::cmp::Ordering::Greater),
            Op::Lt => compare(std::cmp::Ordering::Less),
        }
    }

    /// What the translation promises: Kubernetes semantics, except that for requirements with
    /// values an absent key counts as the empty value (see the module comment).
    fn promql(&self, labels: &Labels) -> bool {
        let actual = labels.get(self.key).map(String::as_str).unwrap_or("");
        let listed = self.values.iter().any(|v| v == actual);
        match self.op {
            Op::Eq | Op::In => listed,
            Op::Ne | Op::NotIn => !listed,
            Op::Exists => !actual.is_empty(),
            Op::NotExists => actual.is_empty(),
            Op::Gt | Op::Lt => panic!("{self:?} has no PromQL meaning"),
        }
    }

    fn with_values(&self, f: impl Fn(&str) -> String) -> Self {
        Self {
            values: self.values.iter().map(|v| f(v)).collect(),
            ..self.clone()
        }
    }
}

fn render(reqs: &[Req]) -> String {
    let sep = match reqs.first() {
        Some(r) if r.style & 4 == 4 => " , ",
        _ => ",",
    };
    reqs.iter().map(Req::render).collect::<Vec<_>>().join(sep)
}

fn has_empty_value(reqs: &[Req]) -> bool {
    reqs.iter().any(|r| r.values.iter().any(String::is_empty))
}

fn requirement(keys: Vec<&'static str>, ops: &'static [Op], pool: &[String]) -> BoxedStrategy<Req> {
    let any_value = prop_oneof![
        8 => prop::sample::select(pool.to_vec()),
        1 => Just(String::new()),
        1 => value(),
    ]
    .boxed();
    // A set needs one non-empty value: `k in ()` and `k in (,)` are rejected.
    let first_in_set = prop_oneof![4 => prop::sample::select(pool.to_vec()), 1 => value()];
    (
        prop::sample::select(keys),
        prop::sample::select(ops),
        any::<u8>(),
        any_value.clone(),
        first_in_set,
        prop::collection::vec(any_value, 0..3),
        -3i64..=3,
    )
        .prop_map(|(key, op, style, one, first, more, int)| {
            let values = match op {
                Op::Eq | Op::Ne => vec![one],
                Op::In | Op::NotIn => std::iter::once(first).chain(more).collect(),
                Op::Exists | Op::NotExists => vec![],
                Op::Gt | Op::Lt => vec![int.to_string()],
            };
            Req {
                key,
                op,
                values,
                style,
            }
        })
        .boxed()
}

fn selector_keys() -> Vec<&'static str> {
    KEYS.iter().copied().chain([QUALIFIED_KEY]).collect()
}

fn selector(pool: &[String]) -> BoxedStrategy<Vec<Req>> {
    prop::collection::vec(requirement(selector_keys(), OPS, pool), 0..=4).boxed()
}

fn selector_and_label_sets() -> BoxedStrategy<(Vec<Req>, Vec<Labels>)> {
    pool()
        .prop_flat_map(|pool| {
            (
                selector(&pool),
                prop::collection::vec(label_set(&pool), 4..=16),
            )
        })
        .boxed()
}

fn rename_map() -> Labels {
    [
        (QUALIFIED_KEY.to_string(), RENAMED_LABEL.to_string()),
        ("x.y".to_string(), "__x".to_string()),
    ]
    .into()
}

/// A series' labels as the selector sees them (selector keys instead of Prometheus names).
fn kubernetes_view(labels: &Labels) -> Labels {
    labels
        .iter()
        .map(|(k, v)| {
            let k = if k == RENAMED_LABEL { QUALIFIED_KEY } else { k };
            (k.to_string(), v.clone())
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// An independent reading of rendered matchers, following Prometheus' lexer (promql/parser/
// lex.go) and Go's strconv.Unquote, which PromQL uses for label matcher values.
// ---------------------------------------------------------------------------------------

/// Reads one double-quoted string literal at the start of `s`; returns the bytes it denotes
/// and the text after its closing quote.
fn read_string(s: &str) -> Result<(Vec<u8>, &str), String> {
    let mut chars = s.char_indices();
    if chars.next().map(|(_, c)| c) != Some('"') {
        return Err(format!("no opening quote in {s:?}"));
    }
    let mut out = Vec::new();
    let mut utf8 = [0u8; 4];
    loop {
        let Some((i, c)) = chars.next() else {
            return Err(format!("unterminated string {s:?}"));
        };
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\n' => return Err(format!("raw newline in {s:?}")),
            '\\' => {
                let Some((_, e)) = chars.next() else {
                    return Err(format!("escape at the end of {s:?}"));
                };
                let mut digits = |n: usize, radix: u32| -> Result<u32, String> {
                    let mut x = 0u32;
                    for _ in 0..n {
                        let d = chars
                            .next()
                            .and_then(|(_, d)| d.to_digit(radix))
                            .ok_or_else(|| format!("short escape in {s:?}"))?;
                        x = x * radix + d;
                    }
                    Ok(x)
                };
                match e {
                    'a' => out.push(7),
                    'b' => out.push(8),
                    'f' => out.push(12),
                    'n' => out.push(b'\n'),
                    'r' => out.push(b'\r'),
                    't' => out.push(b'\t'),
                    'v' => out.push(11),
                    '\\' => out.push(b'\\'),
                    '"' => out.push(b'"'),
                    '0'..='7' => {
                        let rest = digits(2, 8)?;
                        let x = (e as u32 - '0' as u32) * 64 + rest;
                        let byte = u8::try_from(x)
                            .map_err(|_| format!("octal escape above 255 in {s:?}"))?;
                        out.push(byte);
                    }
                    'x' => out.push(digits(2, 16)? as u8),
                    'u' | 'U' => {
                        let x = digits(if e == 'u' { 4 } else { 8 }, 16)?;
                        let c = char::from_u32(x)
                            .ok_or_else(|| format!("escape of invalid code point in {s:?}"))?;
                        out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                    }
                    other => return Err(format!("escape \\{other} in {s:?}")),
                }
            }
            c => out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes()),
        }
    }
}

/// Reads `label op "value"` at the start of `s`.
fn read_matcher(s: &str) -> Result<(ReadMatcher, &str), String> {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    let label = &s[..end];
    if label.is_empty() || label.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("no label name at the start of {s:?}"));
    }
    let rest = &s[end..];
    let (op, rest) = [
        ("=~", MatchOp::Re),
        ("!~", MatchOp::NotRe),
        ("!=", MatchOp::Ne),
        ("=", MatchOp::Eq),
    ]
    .into_iter()
    .find_map(|(text, op)| rest.strip_prefix(text).map(|r| (op, r)))
    .ok_or_else(|| format!("no matcher operator in {s:?}"))?;
    let (value, rest) = read_string(rest)?;
    Ok(((label.to_string(), op, value), rest))
}

/// `metric{m1,m2,...}` must read back as exactly `matchers`: a value that closed its string
/// early would leave text behind, add a matcher or change one.
fn check_vector(metric: &str, matchers: &[Matcher]) -> Result<(), String> {
    let text = promql::vector(metric, matchers);
    let mut rest = text
        .strip_prefix(metric)
        .and_then(|r| r.strip_prefix('{'))
        .ok_or_else(|| format!("{text:?} does not start with {metric}{{"))?;
    let mut read = Vec::new();
    while !rest.starts_with('}') {
        if !read.is_empty() {
            rest = rest
                .strip_prefix(',')
                .ok_or_else(|| format!("no ',' between matchers in {text:?}"))?;
        }
        let (m, r) = read_matcher(rest).map_err(|e| format!("{e} (in {text:?})"))?;
        read.push(m);
        rest = r;
    }
    if rest != "}" {
        return Err(format!("{text:?} goes on after its closing brace"));
    }
    let want: Vec<ReadMatcher> = matchers
        .iter()
        .map(|m| (m.label.to_string(), m.op, m.value.as_bytes().to_vec()))
        .collect();
    if read != want {
        return Err(format!("{text:?} reads back as {read:?}, not {want:?}"));
    }
    Ok(())
}

/// PromQL's meaning of one matcher; label regexes are anchored at both ends. The regex crate
/// stands in for RE2 here; the Prometheus test checks the real engine.
fn matcher_selects(m: &Matcher, labels: &Labels) -> bool {
    let actual = labels
        .get(m.label.as_str())
        .map(String::as_str)
        .unwrap_or("");
    match m.op {
        MatchOp::Eq => actual == m.value,
        MatchOp::Ne => actual != m.value,
        MatchOp::Re | MatchOp::NotRe => {
            let re = regex::Regex::new(&format!("^(?:{})$", m.value))
                .unwrap_or_else(|e| panic!("{m} is not a valid regex: {e}"));
            re.is_match(actual) == (m.op == MatchOp::Re)
        }
    }
}

fn fail(msg: impl Into<String>) -> TestCaseError {
    TestCaseError::fail(msg.into())
}

// ---------------------------------------------------------------------------------------
// a. Arbitrary input
// ---------------------------------------------------------------------------------------

/// Fragments that make up selectors, near-selectors and things a hostile client might send.
const PIECES: &[&str] = &[
    "a",
    "k",
    "job_name",
    QUALIFIED_KEY,
    "x/y",
    "-",
    "_",
    ".",
    "=",
    "==",
    "!=",
    "!",
    "(",
    ")",
    ",",
    " ",
    " in ",
    " notin ",
    "in",
    "notin",
    ">",
    "<",
    "1",
    "-2",
    "\"",
    "'",
    "`",
    "{",
    "}",
    "\\",
    "|",
    ".*",
    "\t",
    "\n",
    "\r",
    "\u{0}",
    "\u{1b}",
    "\u{7f}",
    "\u{85}",
    "\u{a0}",
    "\u{2028}",
    "\u{3000}",
    "é",
    "日",
    "🚀",
    "\u{fffd}",
    "\u{200b}",
    "\u{202e}",
    "\u{feff}",
];

/// A valid selector with a few characters replaced or inserted: reaches the parser's deeper
/// states far more often than random text does.
fn damaged_selector() -> BoxedStrategy<String> {
    let edit = (
        any::<prop::sample::Index>(),
        any::<bool>(),
        prop_oneof![
            any::<char>().prop_map(String::from),
            // ASCII and the C0 and C1 control characters.
            prop::char::range('\0', '\u{9f}').prop_map(String::from),
            prop::sample::select(PIECES).prop_map(String::from),
        ],
    );
    (
        pool().prop_flat_map(|pool| selector(&pool)),
        prop::collection::vec(edit, 1..=3),
    )
        .prop_map(|(reqs, edits)| {
            let mut chars: Vec<String> = render(&reqs).chars().map(String::from).collect();
            for (at, replace, text) in edits {
                if chars.is_empty() {
                    chars.push(text);
                    continue;
                }
                let i = at.index(chars.len());
                if replace {
                    chars[i] = text;
                } else {
                    chars.insert(i, text);
                }
            }
            chars.concat()
        })
        .boxed()
}

fn arbitrary_input() -> BoxedStrategy<String> {
    prop_oneof![
        1 => any::<String>(),
        1 => prop::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter),
        3 => prop::collection::vec(prop::sample::select(PIECES), 0..40).prop_map(|p| p.concat()),
        3 => damaged_selector(),
    ]
    .boxed()
}

fn check_arbitrary(input: &str) -> Result<(), TestCaseError> {
    let sel = match Selector::parse(input) {
        Ok(sel) => sel,
        Err(e) => {
            prop_assert!(!e.reason.is_empty(), "an error must say why: {:?}", e);
            return Ok(());
        }
    };
    prop_assert!(input.len() <= MAX_SELECTOR_LEN);
    prop_assert!(sel.requirements().len() <= MAX_REQUIREMENTS);
    let text = sel.to_string();
    // Values go into queries and logs: the grammar must keep control characters out.
    prop_assert!(
        !text.chars().any(char::is_control),
        "control character accepted: {:?}",
        text
    );
    let again = Selector::parse(&text);
    prop_assert_eq!(again.as_ref(), Ok(&sel), "normalised form {:?}", text);
    prop_assert_eq!(again.map(|s| s.to_string()), Ok(text.clone()));
    let rename = rename_map();
    for t in [
        Translation::default(),
        Translation {
            rename: Some(&rename),
            flink_values: true,
            reserved: &["namespace"],
        },
    ] {
        if let Ok(matchers) = t.matchers(&sel) {
            check_vector("m", &matchers).map_err(fail)?;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(memory_cases()))]

    #[test]
    fn any_string_parses_or_fails_cleanly_and_round_trips(input in arbitrary_input()) {
        check_arbitrary(&input)?;
    }

    /// b. The filters (used for in-memory answers) and the rendered matchers (sent to
    /// Prometheus) select what the selector means.
    #[test]
    fn filters_and_matchers_select_what_the_selector_means(
        (reqs, label_sets) in selector_and_label_sets()
    ) {
        let text = render(&reqs);
        let sel = Selector::parse(&text).map_err(|e| fail(format!("{text:?} must parse: {e}")))?;
        let rename = rename_map();
        let t = Translation { rename: Some(&rename), flink_values: false, reserved: &["namespace"] };
        let filters = t.filters(&sel).map_err(|e| fail(format!("{text:?}: {e}")))?;
        let matchers = t.matchers(&sel).map_err(|e| fail(format!("{text:?}: {e}")))?;
        prop_assert_eq!(matchers.len(), sel.requirements().len());
        check_vector("m", &matchers).map_err(fail)?;
        for labels in &label_sets {
            let view = kubernetes_view(labels);
            let kubernetes = reqs.iter().all(|r| r.kubernetes(&view));
            prop_assert_eq!(sel.matches(&view), kubernetes, "Selector::matches({:?}) on {:?}", text, view);
            let expected = reqs.iter().all(|r| r.promql(&view));
            let by_filters = filters.iter().all(|f| f.matches(labels));
            let by_matchers = matchers.iter().all(|m| matcher_selects(m, labels));
            prop_assert_eq!(by_filters, expected, "filters {:?} of {:?} on {:?}", filters, text, labels);
            prop_assert_eq!(by_matchers, expected, "{} from {:?} on {:?}", promql::join(&matchers), text, labels);
            if !has_empty_value(&reqs) {
                prop_assert_eq!(by_filters, sel.matches(&view));
            }
        }
    }

    /// With Flink's value filter on, a selector value means the value Flink would report.
    #[test]
    fn flink_values_select_the_values_flink_reports(
        (reqs, label_sets) in selector_and_label_sets()
    ) {
        let text = render(&reqs);
        let sel = Selector::parse(&text).map_err(|e| fail(format!("{text:?} must parse: {e}")))?;
        let rename = rename_map();
        let t = Translation { rename: Some(&rename), flink_values: true, reserved: &[] };
        let filters = t.filters(&sel).map_err(|e| fail(format!("{text:?}: {e}")))?;
        let matchers = t.matchers(&sel).map_err(|e| fail(format!("{text:?}: {e}")))?;
        check_vector("m", &matchers).map_err(fail)?;
        // Flink's reporter replaces every character outside [a-zA-Z0-9:_] with '_'.
        let flink = |v: &str| -> String {
            v.chars().map(|c| if c.is_ascii_alphanumeric() || c == ':' || c == '_' { c } else { '_' }).collect()
        };
        let as_reported: Vec<Req> = reqs.iter().map(|r| r.with_values(flink)).collect();
        for labels in &label_sets {
            let labels: Labels =
                labels.iter().map(|(k, v)| (k.clone(), flink(v))).collect();
            let view = kubernetes_view(&labels);
            let expected = as_reported.iter().all(|r| r.promql(&view));
            prop_assert_eq!(filters.iter().all(|f| f.matches(&labels)), expected, "{:?} on {:?}", text, labels);
            prop_assert_eq!(matchers.iter().all(|m| matcher_selects(m, &labels)), expected, "{:?} on {:?}", text, labels);
        }
    }

    /// `Selector::matches` as used on Kubernetes objects (pods), which, unlike series, can
    /// have labels with empty values, and with `>`/`<` on integer values.
    #[test]
    fn selector_matches_kubernetes_objects((reqs, objects) in pool().prop_flat_map(|pool| {
        let object_value = prop_oneof![
            4 => prop::sample::select(pool.clone()),
            1 => Just(String::new()),
            2 => (-4i64..=4).prop_map(|i| i.to_string()),
        ];
        (
            prop::collection::vec(requirement(KEYS.to_vec(), ALL_OPS, &pool), 0..=4),
            prop::collection::vec(
                prop::collection::btree_map(
                    prop::sample::select(KEYS).prop_map(String::from),
                    object_value,
                    0..=KEYS.len(),
                ),
                4..=16,
            ),
        )
    })) {
        let text = render(&reqs);
        let sel = Selector::parse(&text).map_err(|e| fail(format!("{text:?} must parse: {e}")))?;
        for labels in &objects {
            let meant = reqs.iter().all(|r| r.kubernetes(labels));
            prop_assert_eq!(sel.matches(labels), meant, "{:?} on {:?}", text, labels);
        }
    }

    /// A selector either becomes matchers with its full meaning or is refused: keys that are
    /// no Prometheus label name, reserved labels and `>`/`<` never translate to something
    /// weaker.
    #[test]
    fn translation_refuses_exactly_what_has_no_matcher(reqs in pool().prop_flat_map(|pool| {
        let keys: Vec<&'static str> = KEYS.iter().copied().chain([
            QUALIFIED_KEY, "x.y", "a-b", "example.com/b", "namespace", "bridge_part",
        ]).collect();
        prop::collection::vec(requirement(keys, ALL_OPS, &pool), 1..=4)
    })) {
        let text = render(&reqs);
        let sel = Selector::parse(&text).map_err(|e| fail(format!("{text:?} must parse: {e}")))?;
        let rename = rename_map();
        let t = Translation { rename: Some(&rename), flink_values: false, reserved: &["namespace"] };
        let translatable = |r: &Req| {
            !matches!(r.op, Op::Gt | Op::Lt) && (KEYS.contains(&r.key) || r.key == QUALIFIED_KEY)
        };
        match t.matchers(&sel) {
            Ok(matchers) => {
                prop_assert!(reqs.iter().all(translatable), "{:?} was translated to {}", text, promql::join(&matchers));
                check_vector("m", &matchers).map_err(fail)?;
            }
            Err(e) => {
                prop_assert!(!reqs.iter().all(translatable), "{:?} was refused: {}", text, e);
                let kind_fits = reqs.iter().filter(|r| !translatable(r)).any(|r| match &e {
                    TranslateError::Unsupported { .. } => matches!(r.op, Op::Gt | Op::Lt),
                    TranslateError::Reserved { key, .. } => key == r.key && matches!(r.key, "x.y" | "namespace" | "bridge_part"),
                    TranslateError::InvalidLabel { key } => key == r.key && matches!(r.key, "a-b" | "example.com/b"),
                });
                prop_assert!(kind_fits, "{:?} was refused for the wrong reason: {}", text, e);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// c. Against the real Prometheus
// ---------------------------------------------------------------------------------------

const METRIC: &str = "selector_props_series";
const RUN_LABEL: &str = "selector_props_run";
const ID_LABEL: &str = "selector_props_id";

/// Sends an instant query; returns the series of the answer, or why there is none.
async fn query(client: &reqwest::Client, url: &str, query: &str) -> Result<Vec<Value>, String> {
    let resp = client
        .post(url)
        .form(&[("query", query)])
        .send()
        .await
        .map_err(|e| format!("{query}: {e}"))?;
    let status = resp.status();
    let body: Value = resp
        .json()
        .await
        .map_err(|e| format!("{query}: HTTP {status}, body is not JSON: {e}"))?;
    if body["status"] != "success" {
        return Err(format!("{query}: HTTP {status}: {body}"));
    }
    if let Some(w) = body.get("warnings") {
        return Err(format!("{query}: warnings {w}"));
    }
    body["data"]["result"]
        .as_array()
        .cloned()
        .ok_or_else(|| format!("{query}: no result in {body}"))
}

/// The ids of the series an instant query selects.
async fn selected(client: &reqwest::Client, url: &str, q: &str) -> Result<BTreeSet<usize>, String> {
    query(client, url, q)
        .await?
        .iter()
        .map(|s| {
            s["metric"][ID_LABEL]
                .as_str()
                .and_then(|id| id.parse().ok())
                .ok_or_else(|| format!("{q}: series without an id: {s}"))
        })
        .collect()
}

#[test]
fn prometheus_selects_exactly_what_the_selector_means() {
    let n_series = env_count("SELECTOR_PROPS_PROM_SERIES", 40) as usize;
    let cases = env_count("SELECTOR_PROPS_PROM_CASES", 150);
    let bed = common::bed();
    let run = common::unique("selector-props");
    let mut runner = TestRunner::new(config(cases));
    let (pool, label_sets) = pool()
        .prop_flat_map(move |pool| {
            (
                Just(pool.clone()),
                prop::collection::vec(label_set(&pool), n_series),
            )
        })
        .new_tree(&mut runner)
        .expect("series")
        .current();
    let series = label_sets
        .iter()
        .enumerate()
        .map(|(i, labels)| {
            let id = i.to_string();
            let mut pairs: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            pairs.push((RUN_LABEL, &run));
            pairs.push((ID_LABEL, &id));
            Series::new(METRIC, &pairs, 1.0)
        })
        .collect();
    bed.store.set(&run, series);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(common::wait_scraped(
        &format!("{METRIC}{{{RUN_LABEL}=\"{run}\"}}"),
        n_series,
    ));
    let url = format!("{}/api/v1/query", bed.prometheus_url);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    // Every label value must have survived the exposition format and the scrape, or the
    // comparisons below would be against values Prometheus does not hold.
    let stored = rt
        .block_on(query(
            &client,
            &url,
            &format!("{METRIC}{{{RUN_LABEL}=\"{run}\"}}"),
        ))
        .expect("the loaded series");
    let mut held = BTreeMap::new();
    for s in stored {
        let Value::Object(labels) = &s["metric"] else {
            panic!("series without labels: {s}");
        };
        let id: usize = labels[ID_LABEL]
            .as_str()
            .and_then(|i| i.parse().ok())
            .expect("id");
        let labels: Labels = labels
            .iter()
            .filter(|(k, _)| {
                !["__name__", "job", "instance", RUN_LABEL, ID_LABEL].contains(&k.as_str())
            })
            .map(|(k, v)| (k.clone(), v.as_str().expect("a string value").to_string()))
            .collect();
        held.insert(id, labels);
    }
    let loaded: BTreeMap<usize, Labels> = label_sets.iter().cloned().enumerate().collect();
    assert_eq!(
        held, loaded,
        "Prometheus holds other label values than were exported"
    );

    let started = Instant::now();
    let rename = rename_map();
    let t = Translation {
        rename: Some(&rename),
        flink_values: false,
        reserved: &["namespace"],
    };
    let outcome = runner.run(&selector(&pool), |reqs| {
        let text = render(&reqs);
        let sel = Selector::parse(&text).map_err(|e| fail(format!("{text:?} must parse: {e}")))?;
        let mut matchers = t
            .matchers(&sel)
            .map_err(|e| fail(format!("{text:?}: {e}")))?;
        matchers.push(Matcher::eq(RUN_LABEL, run.as_str()));
        let query = promql::vector(METRIC, &matchers);
        let got = rt.block_on(selected(&client, &url, &query)).map_err(fail)?;
        let meant = |r: fn(&Req, &Labels) -> bool| -> BTreeSet<usize> {
            label_sets
                .iter()
                .enumerate()
                .filter(|(_, l)| reqs.iter().all(|q| r(q, &kubernetes_view(l))))
                .map(|(i, _)| i)
                .collect()
        };
        prop_assert_eq!(&got, &meant(Req::promql), "selector {:?} → {}", text, query);
        if !has_empty_value(&reqs) {
            let by_selector: BTreeSet<usize> = label_sets
                .iter()
                .enumerate()
                .filter(|(_, l)| sel.matches(&kubernetes_view(l)))
                .map(|(i, _)| i)
                .collect();
            prop_assert_eq!(&got, &by_selector, "selector {:?} → {}", text, query);
        }
        Ok(())
    });
    let elapsed = started.elapsed();
    bed.store.remove(&run);
    if let Err(e) = outcome {
        panic!("{e}\nseries: {label_sets:#?}");
    }
    eprintln!("{cases} selectors over {n_series} series answered by Prometheus in {elapsed:?}");
}

// ---------------------------------------------------------------------------------------
// Bugs found by the properties above, pinned to their smallest inputs.
// ---------------------------------------------------------------------------------------

/// Prometheus' lexer reads the decoded rune U+FFFD as invalid UTF-8 and refuses the query,
/// though U+FFFD is a valid character (the UTF-8 bytes EF BF BD) that a selector value may hold.
#[test]
fn prometheus_parses_a_value_holding_u_fffd() {
    let bed = common::bed();
    let sel = Selector::parse("job_name=a\u{fffd}").expect("a valid selector");
    let matchers = Translation::default().matchers(&sel).expect("translates");
    let query = promql::vector(METRIC, &matchers);
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/query", bed.prometheus_url);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    assert_eq!(
        rt.block_on(selected(&client, &url, &query)),
        Ok(BTreeSet::new())
    );
}

#[test]
fn set_of_only_empty_values_is_refused_as_the_empty_set_is() {
    // `(,)` would print as `()`, which does not parse: both are refused.
    for input in ["a in ()", "a in (,)", "a notin (,,)"] {
        assert!(Selector::parse(input).is_err(), "{input:?} accepted");
    }
}

#[test]
fn selector_at_the_length_limit_round_trips() {
    // Normal form exactly at the limit: accepted, and prints back to itself.
    let input = format!("a in ({})", "x".repeat(MAX_SELECTOR_LEN - "a in ()".len()));
    assert_eq!(input.len(), MAX_SELECTOR_LEN);
    let sel = Selector::parse(&input).expect("at the limit");
    assert_eq!(sel.to_string(), input);
    // Input at the limit whose normal form is one byte longer: refused, since what is
    // accepted must parse again.
    let squeezed = format!("a in({})", "x".repeat(MAX_SELECTOR_LEN - "a in()".len()));
    assert_eq!(squeezed.len(), MAX_SELECTOR_LEN);
    assert!(Selector::parse(&squeezed).is_err());
}
