//! Matching: whether a rule value's matcher holds for an event value ([`Matcher::matches`],
//! with its description for explanations), and [`StrSet`], the many plain strings of an OR
//! list folded into one automaton and one hash set.

use std::net::IpAddr;

use aho_corasick::AhoCorasick;
use serde_json::Value;

use super::numeric::{as_number, numeric_text};
use super::*;
use crate::event::with_text;
use crate::pattern;

/// Exact strings of a set. The set is fixed by the rules and only looked up per event, so a
/// fast fixed-seed hash is safe (no input can make it grow collisions); SipHash cost 0.5% of
/// the built-in pack's time here.
pub type ExactSet = std::collections::HashSet<String, foldhash::fast::FixedState>;

#[derive(Debug, Clone)]
pub struct StrSet {
    exact: ExactSet,
    contains: Option<AhoCorasick>,
    contains_lits: Vec<String>,
    /// Rendered patterns, for explanations.
    pub sources: Vec<String>,
}

impl StrSet {
    /// Folds plain, case-insensitive, ASCII `lit` and `*lit*` patterns; returns the rest.
    pub fn fold(ms: Vec<Matcher>) -> Vec<Matcher> {
        let mut exact = ExactSet::default();
        let mut contains = Vec::new();
        let mut sources = Vec::new();
        let mut rest = Vec::new();
        let mut n = 0;
        for m in &ms {
            if let Matcher::Str(p) = m {
                if !p.is_cased()
                    && (p.exact().is_some_and(str::is_ascii)
                        || p.contains_literal()
                            .is_some_and(|s| s.is_ascii() && !s.is_empty()))
                {
                    n += 1;
                }
            }
        }
        if n < 6 {
            return ms;
        }
        for m in ms {
            match m {
                Matcher::Str(p) if !p.is_cased() && p.exact().is_some_and(str::is_ascii) => {
                    exact.insert(p.exact().unwrap_or_default().to_string());
                    sources.push(p.source.clone());
                }
                Matcher::Str(p)
                    if !p.is_cased()
                        && p.contains_literal()
                            .is_some_and(|s| s.is_ascii() && !s.is_empty()) =>
                {
                    contains.push(p.contains_literal().unwrap_or_default().to_string());
                    sources.push(p.source.clone());
                }
                m => rest.push(m),
            }
        }
        let ac = if contains.is_empty() {
            None
        } else {
            AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(&contains)
                .ok()
        };
        rest.insert(
            0,
            Matcher::StrSet(Box::new(StrSet {
                exact,
                contains: ac,
                contains_lits: contains,
                sources,
            })),
        );
        rest
    }

    fn matches(&self, s: &str) -> bool {
        if !self.exact.is_empty() {
            let hit = if s.bytes().any(|b| b.is_ascii_uppercase()) || !s.is_ascii() {
                self.exact.contains(pattern::fold(s).as_ref())
            } else {
                self.exact.contains(s)
            };
            if hit {
                return true;
            }
        }
        match &self.contains {
            None => false,
            Some(ac) => {
                if s.is_ascii() {
                    ac.is_match(s)
                } else {
                    // The automaton folds ASCII only; fold the rest the Unicode way first.
                    let l = s.to_lowercase();
                    self.contains_lits.iter().any(|c| l.contains(c.as_str()))
                }
            }
        }
    }

    /// The exact strings, when the set has no `contains` patterns.
    pub fn exact_only(&self) -> Option<&ExactSet> {
        self.contains_lits.is_empty().then_some(&self.exact)
    }

    /// Every pattern of the set: `(text, true)` for exact strings, `(text, false)` for
    /// `*text*`.
    pub fn patterns(&self) -> impl Iterator<Item = (&str, bool)> {
        self.exact
            .iter()
            .map(|s| (s.as_str(), true))
            .chain(self.contains_lits.iter().map(|s| (s.as_str(), false)))
    }
}

impl Matcher {
    /// Whether this rule value matches the event value `v` (never an array: callers flatten).
    pub fn matches(&self, v: &Value, doc: &Value) -> bool {
        match self {
            Matcher::Str(p) => {
                if p.is_any() {
                    !v.is_null()
                } else {
                    with_text(v, |s| p.matches(s)).unwrap_or(false)
                }
            }
            Matcher::StrSet(set) => with_text(v, |s| set.matches(s)).unwrap_or(false),
            Matcher::Num { n, text } => {
                // An integer in a rule matches integral JSON numbers (401, not 401.0) and strings
                // holding that integer; a fraction matches numbers and numeric strings equal to it.
                let int = (n.fract() == 0.0 && n.abs() < 9.0e18).then_some(*n as i64);
                match (v, int) {
                    (Value::Number(x), Some(i)) => {
                        x.as_i64() == Some(i) || (i >= 0 && x.as_u64() == Some(i as u64))
                    }
                    (Value::Number(x), None) => x.as_f64() == Some(*n),
                    (Value::String(s), Some(i)) => {
                        s == text || s.trim().parse::<i64>().ok() == Some(i)
                    }
                    (Value::String(s), None) => s == text || numeric_text(s) == Some(*n),
                    _ => false,
                }
            }
            Matcher::Bool(b) => match v {
                Value::Bool(x) => x == b,
                Value::String(s) => s.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
                _ => false,
            },
            Matcher::Null => v.is_null(),
            Matcher::Regex(re) => with_text(v, |s| re.is_match(s)).unwrap_or(false),
            Matcher::Cidr(c) => match v {
                Value::String(s) => s.trim().parse::<IpAddr>().is_ok_and(|ip| c.contains(ip)),
                _ => false,
            },
            Matcher::Cmp(op, n) => as_number(v).is_some_and(|x| op.apply(x, *n)),
            Matcher::FieldRef {
                paths, mode, cased, ..
            } => with_text(v, |s| {
                let a = if *cased {
                    std::borrow::Cow::Borrowed(s)
                } else {
                    pattern::fold(s)
                };
                paths.iter().any(|p| {
                    p.any(doc, &mut |o| {
                        with_text(o, |t| {
                            let b = if *cased {
                                std::borrow::Cow::Borrowed(t)
                            } else {
                                pattern::fold(t)
                            };
                            match mode {
                                RefMode::Equal => a == b,
                                RefMode::Prefix => a.starts_with(b.as_ref()),
                                RefMode::Suffix => a.ends_with(b.as_ref()),
                                RefMode::Contains => a.contains(b.as_ref()),
                            }
                        })
                        .unwrap_or(false)
                    })
                })
            })
            .unwrap_or(false),
            Matcher::TimePart { part, op, n } => parse_time_ms(v)
                .and_then(|ms| part.of(ms))
                .is_some_and(|x| op.apply(x, *n)),
        }
    }

    /// Sigma-like text of the value, for explanations.
    pub fn describe(&self) -> String {
        match self {
            Matcher::Str(p) => format!(
                "'{}'{}",
                p.source,
                if p.is_cased() { " (cased)" } else { "" }
            ),
            Matcher::StrSet(s) => {
                let mut v: Vec<String> = s.sources.iter().map(|x| format!("'{x}'")).collect();
                v.sort();
                format!("one of [{}]", v.join(", "))
            }
            Matcher::Num { text, .. } => text.clone(),
            Matcher::Bool(b) => b.to_string(),
            Matcher::Null => "null".into(),
            Matcher::Regex(r) => format!("/{}/", r.as_str()),
            Matcher::Cidr(c) => format!("cidr {}/{}", c.net, c.prefix),
            Matcher::Cmp(op, n) => format!("{} {n}", op.symbol()),
            Matcher::FieldRef { name, mode, .. } => format!("fieldref {name} ({mode:?})"),
            Matcher::TimePart { part, op, n } => format!("{part:?} {} {n}", op.symbol()),
        }
    }
}
