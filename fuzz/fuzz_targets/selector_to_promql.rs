//! Arbitrary UTF-8 as a `labelSelector`: parsing and translating must not panic, and every
//! value must stay inside its PromQL string literal, so that no selector can add to or change
//! the query it is put into.
//!
//! The check below reads the rendered text the way Prometheus' lexer and Go's
//! `strconv.Unquote` do, without using the quoting code under test. (The lexer also refuses a
//! raw U+FFFD; that and the selection semantics are checked against a real Prometheus in
//! `tests/selector_props.rs`.)

#![no_main]

use std::collections::BTreeMap;

use flink_hpa_bridge::promql::{self, MatchOp, Matcher, Translation};
use flink_hpa_bridge::selector::Selector;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(selector) = Selector::parse(input) else {
        return;
    };
    let rename: BTreeMap<String, String> =
        [("app.kubernetes.io/name".to_string(), "app".to_string())].into();
    for translation in [
        Translation::default(),
        Translation {
            rename: Some(&rename),
            flink_values: true,
            reserved: &["namespace"],
        },
    ] {
        let Ok(matchers) = translation.matchers(&selector) else {
            continue;
        };
        let vector = promql::vector("m", &matchers);
        if let Err(why) = check_vector(&vector, &matchers) {
            panic!("selector {input:?} rendered as {vector:?}: {why}");
        }
    }
});

/// `m{...}` must hold exactly `matchers`, each value decoding back to itself: a quote that
/// closed a string early would leave text behind, add a matcher or shorten a value.
fn check_vector(text: &str, matchers: &[Matcher]) -> Result<(), String> {
    let mut rest = text.strip_prefix("m{").ok_or("no 'm{'")?;
    for (i, m) in matchers.iter().enumerate() {
        if i > 0 {
            rest = rest.strip_prefix(',').ok_or("no ',' between matchers")?;
        }
        rest = rest
            .strip_prefix(m.label.as_str())
            .ok_or_else(|| format!("matcher {i} does not start with {:?}", m.label))?;
        let op = match m.op {
            MatchOp::Eq => "=",
            MatchOp::Ne => "!=",
            MatchOp::Re => "=~",
            MatchOp::NotRe => "!~",
        };
        rest = rest
            .strip_prefix(op)
            .ok_or_else(|| format!("matcher {i} has no {op:?}"))?;
        let (value, after) = read_string(rest)?;
        if value != m.value.as_bytes() {
            return Err(format!("matcher {i} decodes to {value:?}"));
        }
        rest = after;
    }
    if rest != "}" {
        return Err(format!("{rest:?} follows the last matcher"));
    }
    Ok(())
}

/// Reads a double-quoted literal at the start of `s`; returns the bytes it denotes and the
/// text after its closing quote. Accepts only the escapes Go's `strconv.Unquote` accepts in a
/// double-quoted string.
fn read_string(s: &str) -> Result<(Vec<u8>, &str), String> {
    let mut chars = s.char_indices();
    if chars.next().map(|(_, c)| c) != Some('"') {
        return Err("no opening quote".into());
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4];
    loop {
        let (i, c) = chars.next().ok_or("unterminated string")?;
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\n' => return Err("raw newline in a string".into()),
            '\\' => {
                let (_, e) = chars.next().ok_or("escape at the end")?;
                let mut digits = |n: usize, radix: u32| -> Result<u32, String> {
                    (0..n).try_fold(0u32, |x, _| {
                        chars
                            .next()
                            .and_then(|(_, d)| d.to_digit(radix))
                            .map(|d| x * radix + d)
                            .ok_or_else(|| format!("short \\{e} escape"))
                    })
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
                        let x = (e as u32 - '0' as u32) * 64 + digits(2, 8)?;
                        out.push(u8::try_from(x).map_err(|_| "octal escape above 255")?);
                    }
                    'x' => out.push(digits(2, 16)? as u8),
                    'u' | 'U' => {
                        let x = digits(if e == 'u' { 4 } else { 8 }, 16)?;
                        let c = char::from_u32(x).ok_or("escape of an invalid code point")?;
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                    other => return Err(format!("escape \\{other} that Go refuses")),
                }
            }
            c => out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
        }
    }
}
