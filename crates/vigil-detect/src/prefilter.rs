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

/// A disjunction: the rule needs at least one of these literals in the text. The rule's first
/// (most selective) clause is searched by the automaton; the others are checked afterwards,
/// only for rules whose first clause held, with one SIMD substring search per literal.
#[derive(Debug, Clone)]
pub(crate) struct Clause {
    /// Automaton pattern ids (first clause) or indices into `Prefilter::finders` (the others).
    lits: Vec<u32>,
    by_automaton: bool,
    numeric: bool,
}

#[derive(Debug)]
pub(crate) struct Prefilter {
    ac: AhoCorasick,
    npats: usize,
    /// For each pattern, every pattern it contains (itself included): found with it.
    implied: Vec<Vec<u32>>,
    /// For each pattern, the smallest offset inside it where another pattern could start and
    /// run past its end (its length when none can).
    restart: Vec<usize>,
    finders: Vec<memchr::memmem::Finder<'static>>,
    pub(crate) patterns: Vec<String>,
}

/// Per-thread scratch space, reused from event to event.
#[derive(Default)]
struct Buffers {
    folded: Vec<u8>,
    found: Vec<u64>,
    /// Per finder: 0 not searched yet, 1 present, 2 absent.
    memo: Vec<u8>,
}

thread_local! {
    static BUFFERS: std::cell::RefCell<Buffers> = std::cell::RefCell::new(Buffers::default());
}

pub(crate) struct Scan<'r> {
    pf: &'r Prefilter,
    buf: std::cell::RefCell<Buffers>,
    poisoned: bool,
    raw: &'r str,
    odd_numbers: std::cell::OnceCell<bool>,
}

impl Drop for Scan<'_> {
    fn drop(&mut self) {
        let buf = std::mem::take(self.buf.get_mut());
        BUFFERS.with(|b| *b.borrow_mut() = buf);
    }
}

/// Finders for what makes the text unreliable: `\u` and `\/` escapes (an escaped backslash
/// before `u` counts too: harmless), and the two characters whose lowercase is ASCII (KELVIN
/// SIGN, LATIN CAPITAL LETTER I WITH DOT ABOVE).
fn poison_finders() -> &'static [memchr::memmem::Finder<'static>; 4] {
    static F: std::sync::OnceLock<[memchr::memmem::Finder<'static>; 4]> =
        std::sync::OnceLock::new();
    F.get_or_init(|| {
        [
            memchr::memmem::Finder::new(b"\\u"),
            memchr::memmem::Finder::new(b"\\/"),
            memchr::memmem::Finder::new("\u{212A}".as_bytes()),
            memchr::memmem::Finder::new("\u{130}".as_bytes()),
        ]
    })
}

fn poisoned(b: &[u8]) -> bool {
    let f = poison_finders();
    if f[0].find(b).is_some() || f[1].find(b).is_some() {
        return true;
    }
    // Both characters start with a byte above 0x7f: skip the search for ASCII text.
    !b.is_ascii() && (f[2].find(b).is_some() || f[3].find(b).is_some())
}

impl Prefilter {
    pub(crate) fn scan<'r>(&'r self, raw: &'r str) -> Scan<'r> {
        let mut buf = BUFFERS.with(|b| std::mem::take(&mut *b.borrow_mut()));
        let poisoned = poisoned(raw.as_bytes());
        if !poisoned {
            buf.folded.clear();
            buf.folded
                .extend(raw.bytes().map(|b| b.to_ascii_lowercase()));
            buf.found.clear();
            buf.found.resize(self.npats.div_ceil(64), 0);
            buf.memo.clear();
            buf.memo.resize(self.finders.len(), 0);
            self.search(&mut buf);
        }
        Scan {
            pf: self,
            buf: std::cell::RefCell::new(buf),
            poisoned,
            raw,
            odd_numbers: std::cell::OnceCell::new(),
        }
    }

    /// Marks every automaton pattern present in the folded text.
    fn search(&self, buf: &mut Buffers) {
        let text = &buf.folded;
        let found = &mut buf.found;
        let mut at = 0;
        'outer: while at < text.len() {
            let input = aho_corasick::Input::new(text).range(at..);
            for m in self.ac.find_iter(input) {
                let id = m.pattern().as_usize();
                for &p in &self.implied[id] {
                    found[(p / 64) as usize] |= 1 << (p % 64);
                }
                let k = self.restart[id];
                if k < m.len() {
                    // A longer pattern may start inside this match: search again from there.
                    at = m.start() + k;
                    continue 'outer;
                }
            }
            break;
        }
    }
}

impl Scan<'_> {
    /// False when the rule provably cannot match the event.
    pub(crate) fn may_match(&self, required: &[Clause]) -> bool {
        if self.poisoned {
            return true;
        }
        let mut buf = self.buf.borrow_mut();
        let buf = &mut *buf;
        required.iter().all(|c| {
            let present = if c.by_automaton {
                c.lits
                    .iter()
                    .any(|&p| buf.found[(p / 64) as usize] & (1 << (p % 64)) != 0)
            } else {
                c.lits.iter().any(|&f| {
                    let f = f as usize;
                    if buf.memo[f] == 0 {
                        let hit = self.pf.finders[f].find(&buf.folded).is_some();
                        buf.memo[f] = if hit { 1 } else { 2 };
                    }
                    buf.memo[f] == 1
                })
            };
            present || (c.numeric && *self.odd_numbers.get_or_init(|| has_odd_numbers(self.raw)))
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
        c.iter().map(|l| l.text.len()).min().unwrap_or(0),
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
    all.truncate(3);
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

/// Makes a clause cheaper to search without losing soundness: a literal that contains another
/// literal of the clause is implied by it and dropped; groups of literals sharing a substring of
/// at least 4 characters are replaced by that substring (it occurs whenever any of them does).
fn compress(clause: Vec<Lit>) -> Vec<Lit> {
    let mut lits: Vec<Lit> = Vec::new();
    for l in clause {
        if !lits.iter().any(|x| x.text == l.text) {
            lits.push(l);
        }
    }
    let drop_implied = |lits: Vec<Lit>| -> Vec<Lit> {
        let keep: Vec<bool> =
            lits.iter()
                .enumerate()
                .map(|(i, l)| {
                    !lits.iter().enumerate().any(|(j, o)| {
                        j != i && l.text.contains(&o.text) && (o.text != l.text || j < i)
                    })
                })
                .collect();
        lits.into_iter()
            .zip(keep)
            .filter_map(|(l, k)| k.then_some(l))
            .collect()
    };
    lits = drop_implied(lits);
    if lits.len() <= 4 || lits.len() > 400 {
        return lits;
    }
    loop {
        // The substring (4+ characters) shared by the most literals; ties go to the longer.
        let mut best: Option<(usize, usize, String)> = None;
        let mut seen = std::collections::HashSet::new();
        for l in &lits {
            let t = l.text.as_bytes();
            for i in 0..t.len() {
                for j in i + 4..=t.len().min(i + 24) {
                    let Ok(sub) = std::str::from_utf8(&t[i..j]) else {
                        continue;
                    };
                    if !seen.insert(sub.to_string()) {
                        continue;
                    }
                    let n = lits.iter().filter(|x| x.text.contains(sub)).count();
                    let cand = (n, sub.len(), sub.to_string());
                    if n >= 3 && best.as_ref().is_none_or(|b| (cand.0, cand.1) > (b.0, b.1)) {
                        best = Some(cand);
                    }
                }
            }
        }
        let Some((_, _, sub)) = best else {
            break;
        };
        let Some(new) = lit(&sub) else {
            break;
        };
        lits.retain(|x| !x.text.contains(&sub));
        lits.push(new);
        lits = drop_implied(lits);
        if lits.len() <= 4 {
            break;
        }
    }
    lits
}

/// Builds the dataset's automaton and fills each rule's `required` clauses.
pub(crate) fn build(rules: &mut [CompiledRule]) -> Option<Prefilter> {
    let mut pats: Vec<String> = Vec::new();
    let mut index = std::collections::HashMap::new();
    let mut finder_lits: Vec<String> = Vec::new();
    let mut finder_index = std::collections::HashMap::new();
    let mut any = false;
    for r in rules.iter_mut() {
        let mut cnf: Cnf = cond_cnf(r, &r.condition)
            .unwrap_or_default()
            .into_iter()
            .map(compress)
            .collect();
        cnf.sort_by_key(|c| std::cmp::Reverse(score(c)));
        r.required = cnf
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let numeric = c.iter().any(|l| l.numeric);
                let (table, idx) = if i == 0 {
                    (&mut pats, &mut index)
                } else {
                    (&mut finder_lits, &mut finder_index)
                };
                let mut lits: Vec<u32> = c
                    .into_iter()
                    .map(|l| {
                        *idx.entry(l.text.clone()).or_insert_with(|| {
                            table.push(l.text);
                            (table.len() - 1) as u32
                        })
                    })
                    .collect();
                lits.sort_unstable();
                lits.dedup();
                Clause {
                    lits,
                    by_automaton: i == 0,
                    numeric,
                }
            })
            .collect();
        any |= !r.required.is_empty();
    }
    if !any {
        return None;
    }
    let npats = pats.len();
    // The scan folds the text to lowercase; the patterns are folded the same way.
    let folded: Vec<Vec<u8>> = pats
        .iter()
        .map(|p| p.as_bytes().to_ascii_lowercase())
        .collect();
    // Leftmost-longest, non-overlapping search reports, at each reported start, the longest
    // pattern there. Every other occurrence either lies inside a reported match (then that
    // pattern is a substring of it: `implied`), or starts inside it and runs past its end (then
    // a suffix of the match is a prefix of that pattern: the search restarts at the earliest
    // such offset), or starts after it.
    let implied = folded
        .iter()
        .map(|p| {
            (0..npats)
                .filter(|&q| memchr::memmem::find(p, &folded[q]).is_some())
                .map(|q| q as u32)
                .collect()
        })
        .collect();
    let restart = folded
        .iter()
        .map(|p| {
            (1..p.len())
                .find(|&k| {
                    folded
                        .iter()
                        .any(|q| q.len() > p.len() - k && q.starts_with(&p[k..]))
                })
                .unwrap_or(p.len())
        })
        .collect();
    let ac = AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .build(&folded)
        .ok()?;
    Some(Prefilter {
        ac,
        npats,
        implied,
        restart,
        finders: finder_lits
            .iter()
            .map(|l| memchr::memmem::Finder::new(l.as_bytes()).into_owned())
            .collect(),
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
