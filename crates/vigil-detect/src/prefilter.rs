//! The literal prefilter: per dataset, one case-insensitive Aho-Corasick automaton over the raw
//! JSON text finds which of the literals the rules need are present; a rule none of whose
//! required literal sets is satisfied cannot match, and is skipped (and the event is never
//! parsed when every rule is skipped).
//!
//! Soundness. A rule is given required literals only from parts of its condition that must be
//! true for it to match (never under `not`, `neq`, `null`, `exists`, regular expressions, CIDR,
//! comparisons, field references or time parts, and never from `*`). A literal is a run of
//! printable ASCII without `"` or `\` taken from a value the event must contain. Such a run
//! appears verbatim in the JSON text of any event whose decoded value contains it, unless:
//! - the text uses `\uXXXX` or `\/` escapes: then nothing is skipped (poison patterns);
//! - a Unicode character lowercases to ASCII (KELVIN SIGN, LATIN CAPITAL LETTER I WITH DOT
//!   ABOVE): then nothing is skipped (poison patterns; a test checks these are the only two);
//! - the literal could be part of how a fractional JSON number is rendered for string matching
//!   (it consists of `0-9 . e E + -` only) and the event has a number that is not a plain integer
//!   of at most 18 digits: then such literals count as present. Integers in rules match only
//!   integral JSON numbers, which are rendered exactly as written, so they need no such care.
//!
//! The scan finds every pattern occurrence without an overlapping search: a leftmost-longest
//! search restarted one byte after each match start reports the longest pattern starting at
//! each position, and every pattern that is a prefix of a found one is marked found with it.

use aho_corasick::{AhoCorasick, MatchKind};

use crate::compile::{CompiledRule, Cond, SelNode};
use crate::value::Matcher;

/// A disjunction: the rule needs at least one of these pattern ids in the text.
#[derive(Debug, Clone)]
pub(crate) struct Clause {
    pats: Vec<u32>,
    numeric: bool,
}

#[derive(Debug)]
pub(crate) struct Prefilter {
    ac: AhoCorasick,
    /// Patterns with an id at or above this are poison.
    poison_from: u32,
    npats: usize,
    /// For each pattern, itself and every pattern that is a prefix of it (ASCII case folded).
    prefixes: Vec<Vec<u32>>,
    pub(crate) patterns: Vec<String>,
}

pub(crate) struct Scan<'r> {
    found: Vec<u64>,
    poisoned: bool,
    raw: &'r str,
    odd_numbers: std::cell::OnceCell<bool>,
}

const POISON: &[&str] = &["\\u", "\\/", "\u{212A}", "\u{130}"];

thread_local! {
    static LOWER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Prefilter {
    pub(crate) fn scan<'r>(&self, raw: &'r str) -> Scan<'r> {
        LOWER.with(|buf| {
            let mut buf = buf.borrow_mut();
            buf.clear();
            buf.extend(raw.bytes().map(|b| b.to_ascii_lowercase()));
            self.scan_folded(&buf, raw)
        })
    }

    /// Scans text already folded to ASCII lowercase (`raw` is kept for the number check).
    fn scan_folded<'r>(&self, text: &[u8], raw: &'r str) -> Scan<'r> {
        let mut found = vec![0u64; self.npats.div_ceil(64)];
        let mut poisoned = false;
        let mut at = 0;
        while at < text.len() {
            let input = aho_corasick::Input::new(text).range(at..);
            let Some(m) = self.ac.find(input) else {
                break;
            };
            let id = m.pattern().as_usize();
            if id as u32 >= self.poison_from {
                poisoned = true;
                break;
            }
            for &p in &self.prefixes[id] {
                found[(p / 64) as usize] |= 1 << (p % 64);
            }
            at = m.start() + 1;
        }
        Scan {
            found,
            poisoned,
            raw,
            odd_numbers: std::cell::OnceCell::new(),
        }
    }
}

impl Scan<'_> {
    /// False when the rule provably cannot match the event.
    pub(crate) fn may_match(&self, required: &[Clause]) -> bool {
        if self.poisoned {
            return true;
        }
        required.iter().all(|c| {
            c.pats
                .iter()
                .any(|&p| self.found[(p / 64) as usize] & (1 << (p % 64)) != 0)
                || (c.numeric && *self.odd_numbers.get_or_init(|| has_odd_numbers(self.raw)))
        })
    }
}

/// Whether the JSON text has a number (outside strings) that is not a plain integer of at most
/// 18 digits.
pub(crate) fn has_odd_numbers(raw: &str) -> bool {
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                // Skip the string.
                i += 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', &b[i..]) {
                        None => return false,
                        Some(o) => {
                            if b[i + o] == b'\\' {
                                i += o + 2;
                            } else {
                                i += o + 1;
                                break;
                            }
                        }
                    }
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                let mut digits = 0;
                while i < b.len() {
                    match b[i] {
                        b'0'..=b'9' => digits += 1,
                        b'-' | b'+' => {}
                        b'.' | b'e' | b'E' => return true,
                        _ => break,
                    }
                    i += 1;
                }
                if digits >= 19 || i == start {
                    return true;
                }
            }
            _ => i += 1,
        }
    }
    false
}

#[derive(Debug, Clone)]
struct Lit {
    text: String,
    numeric: bool,
}

type Cnf = Vec<Vec<Lit>>;

/// The longest run of safe characters in `s`.
fn clean_run(s: &str) -> Option<String> {
    let mut best = "";
    for run in s.split(|c: char| !(c.is_ascii_graphic() || c == ' ') || c == '"' || c == '\\') {
        if run.len() > best.len() {
            best = run;
        }
    }
    (!best.is_empty()).then(|| best.to_ascii_lowercase())
}

fn lit(s: &str) -> Option<Lit> {
    let text = clean_run(s)?;
    let numeric = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'+' | b'-'));
    Some(Lit { text, numeric })
}

/// One of these literals must occur for the matcher to match some value.
fn matcher_lits(m: &Matcher) -> Option<Vec<Lit>> {
    match m {
        Matcher::Str(p) => {
            if p.is_any() {
                return None;
            }
            let best = p
                .literals()
                .into_iter()
                .filter_map(clean_run)
                .max_by_key(|s| s.len())?;
            lit(&best).map(|l| vec![l])
        }
        Matcher::StrSet(s) => s.literals().into_iter().map(lit).collect(),
        Matcher::Num { n, .. } => {
            if n.fract() == 0.0 && n.abs() < 1e15 {
                Some(vec![Lit {
                    text: format!("{}", *n as i64),
                    numeric: false,
                }])
            } else {
                None
            }
        }
        Matcher::Bool(b) => Some(vec![Lit {
            text: b.to_string(),
            numeric: false,
        }]),
        _ => None,
    }
}

/// Words found in most events of some dataset: poor literals to filter on. Only a speed hint.
const COMMON: &[&str] = &[
    "get", "list", "watch", "create", "update", "patch", "delete", "pods", "apps", "allow", "true",
    "false", "null", "v1", "event", "events", "user", "root", "tcp", "udp",
];

/// Higher is better: clauses of rare (uncommon, long) literals, few alternatives.
fn score(c: &[Lit]) -> (bool, usize, std::cmp::Reverse<usize>) {
    (
        !c.iter().any(|l| COMMON.contains(&l.text.as_str())),
        c.iter().map(|l| l.text.len()).min().unwrap_or(0).min(12),
        std::cmp::Reverse(c.len()),
    )
}

fn best(cnf: &Cnf) -> Option<&Vec<Lit>> {
    cnf.iter().max_by_key(|c| score(c))
}

fn or(parts: Vec<Option<Cnf>>) -> Option<Cnf> {
    let mut union = Vec::new();
    for p in parts {
        let p = p?;
        union.extend(best(&p)?.iter().cloned());
    }
    (!union.is_empty()).then(|| vec![union])
}

fn and(parts: Vec<Option<Cnf>>) -> Option<Cnf> {
    let mut all: Cnf = parts.into_iter().flatten().flatten().collect();
    if all.is_empty() {
        return None;
    }
    all.sort_by_key(|c| std::cmp::Reverse(score(c)));
    all.truncate(2);
    Some(all)
}

fn node_cnf(n: &SelNode) -> Option<Cnf> {
    match n {
        SelNode::Item(i) => {
            if i.negate || i.exists.is_some() {
                return None;
            }
            if i.all {
                and(i
                    .matchers
                    .iter()
                    .map(|m| matcher_lits(m).map(|l| vec![l]))
                    .collect())
            } else {
                let mut u = Vec::new();
                for m in &i.matchers {
                    u.extend(matcher_lits(m)?);
                }
                (!u.is_empty()).then(|| vec![u])
            }
        }
        SelNode::And(xs) => and(xs.iter().map(node_cnf).collect()),
        SelNode::Or(xs) => or(xs.iter().map(node_cnf).collect()),
    }
}

fn cond_cnf(r: &CompiledRule, c: &Cond) -> Option<Cnf> {
    match c {
        Cond::Sel(i) => node_cnf(&r.selections[*i].node),
        Cond::Not(_) => None,
        Cond::And(xs) => and(xs.iter().map(|x| cond_cnf(r, x)).collect()),
        Cond::Or(xs) => or(xs.iter().map(|x| cond_cnf(r, x)).collect()),
        Cond::Of { min, sels, .. } => {
            let parts = sels
                .iter()
                .map(|&s| node_cnf(&r.selections[s].node))
                .collect();
            match min {
                None => and(parts),
                // With at least one needed, any of them may be the one.
                Some(_) => or(parts),
            }
        }
    }
}

/// Builds the dataset's automaton and fills each rule's `required` clauses.
pub(crate) fn build(rules: &mut [CompiledRule]) -> Option<Prefilter> {
    let mut pats: Vec<String> = Vec::new();
    let mut index = std::collections::HashMap::new();
    let mut any = false;
    for r in rules.iter_mut() {
        // One clause per rule: enough to skip, and fewer patterns keep the scan fast.
        let cnf: Cnf = cond_cnf(r, &r.condition)
            .and_then(|c| best(&c).cloned())
            .into_iter()
            .collect();
        r.required = cnf
            .into_iter()
            .map(|c| {
                let numeric = c.iter().any(|l| l.numeric);
                let mut ids: Vec<u32> = c
                    .into_iter()
                    .map(|l| {
                        *index.entry(l.text.clone()).or_insert_with(|| {
                            pats.push(l.text);
                            (pats.len() - 1) as u32
                        })
                    })
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                Clause { pats: ids, numeric }
            })
            .collect();
        any |= !r.required.is_empty();
    }
    if !any {
        return None;
    }
    let poison_from = pats.len() as u32;
    let npats = pats.len();
    pats.extend(POISON.iter().map(|s| s.to_string()));
    // The scan folds the text to lowercase; the patterns are folded the same way.
    let folded: Vec<Vec<u8>> = pats
        .iter()
        .map(|p| p.as_bytes().to_ascii_lowercase())
        .collect();
    let prefixes = folded
        .iter()
        .map(|p| {
            (0..npats)
                .filter(|&q| p.starts_with(&folded[q]))
                .map(|q| q as u32)
                .collect()
        })
        .collect();
    let ac = AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .build(&folded)
        .ok()?;
    Some(Prefilter {
        ac,
        poison_from,
        npats,
        prefixes,
        patterns: pats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_two_characters_lowercase_into_ascii() {
        // The poison list relies on this: no other non-ASCII character has a lowercase form
        // containing an ASCII character.
        let mut found = Vec::new();
        for c in (0u32..=0x10FFFF).filter_map(char::from_u32) {
            if !c.is_ascii() && c.to_lowercase().any(|l| l.is_ascii()) {
                found.push(c);
            }
        }
        assert_eq!(found, vec!['\u{130}', '\u{212A}']);
    }

    #[test]
    fn odd_numbers() {
        assert!(!has_odd_numbers(r#"{"a":401,"b":"4.01e2","c":[1,-2]}"#));
        assert!(has_odd_numbers(r#"{"a":4.01e2}"#));
        assert!(has_odd_numbers(r#"{"a":401.0}"#));
        assert!(has_odd_numbers(r#"{"a":1234567890123456789}"#));
        assert!(!has_odd_numbers(r#"{"a":"x\"1.5","b":true}"#));
    }

    #[test]
    fn clean_runs() {
        assert_eq!(clean_run("ab\"cdef").as_deref(), Some("cdef"));
        assert_eq!(
            clean_run("C:\\Windows\\system32").as_deref(),
            Some("system32")
        );
        assert_eq!(clean_run("é"), None);
        assert_eq!(clean_run("ÉcoleX"), Some("colex".into()));
    }
}
