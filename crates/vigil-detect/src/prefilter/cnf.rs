//! Literal extraction and CNF building: the literals a matcher, a field's keys or a string
//! pattern force into the event's JSON text, and how `and`, `or` and `1 of` combine them into a
//! condition's clauses (see the soundness rules in the parent module).

use super::rank::{sort_clauses, weight, COMMON_PATHS};
use crate::compile::{CompiledRule, Cond, Item, SelNode};
use crate::value::Matcher;

#[derive(Debug, Clone)]
pub(super) struct Lit {
    pub(super) text: String,
    pub(super) numeric: bool,
    /// Known to be in most events (a key of a field nearly every event has).
    pub(super) common: bool,
    /// The digits of an integer: they occur with no digit right after them nor a digit 1-9
    /// right before.
    pub(super) digits: bool,
    /// For a value literal of a field (when the field's paths end with one clean segment): the
    /// end of that last key (`code"`), whose value must contain the literal (see
    /// [`super::scoped`]). Set for the digits of integers only; used by on-demand searches.
    pub(super) key: Option<String>,
}

impl Lit {
    pub(super) fn same(&self, o: &Lit) -> bool {
        self.text == o.text && self.digits == o.digits && self.key == o.key
    }
}

pub(super) type Cnf = Vec<Vec<Lit>>;

/// Whether a character may appear in a literal: printable ASCII other than `"` and `\`, whose
/// JSON encoding is the character itself (or a `\u`/`\/` escape, which poisons the text).
fn clean(c: char) -> bool {
    (c.is_ascii_graphic() || c == ' ') && c != '"' && c != '\\'
}

/// The longest run of safe characters in `s`.
pub(super) fn clean_run(s: &str) -> Option<String> {
    let mut best = "";
    for run in s.split(|c: char| !clean(c)) {
        if run.len() > best.len() {
            best = run;
        }
    }
    (!best.is_empty()).then(|| best.to_ascii_lowercase())
}

/// Whether the text could be (part of) the text form of a JSON number.
pub(super) fn numeric_chars(t: &str) -> bool {
    t.bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
}

fn lit(s: &str) -> Option<Lit> {
    let text = clean_run(s)?;
    let numeric = numeric_chars(&text);
    Some(Lit {
        text,
        numeric,
        common: false,
        digits: false,
        key: None,
    })
}

/// A literal that may contain the quotes of a JSON string or key (`"secrets"`, `"system:`,
/// `privileged"`): its other characters must be clean.
fn quoted(text: String) -> Lit {
    Lit {
        text: text.to_ascii_lowercase(),
        numeric: false,
        common: false,
        digits: false,
        key: None,
    }
}

/// The literal for a string pattern. A pattern anchored at the start or end of the value
/// (exact, prefix, suffix) whose text is clean and cannot be how a number or boolean is
/// rendered can only match a JSON string, whose text in the raw JSON is the value between
/// quotes: the quote on the anchored side(s) is part of the literal.
fn pattern_lit(p: &crate::pattern::StrPattern) -> Option<Lit> {
    if let Some((t, start, end)) = p.anchored_literal() {
        let low = t.to_ascii_lowercase();
        if !t.is_empty()
            && t.chars().all(clean)
            && !numeric_chars(t)
            && low != "true"
            && low != "false"
        {
            let mut q = String::with_capacity(t.len() + 2);
            if start {
                q.push('"');
            }
            q.push_str(t);
            if end {
                q.push('"');
            }
            return Some(quoted(q));
        }
    }
    let best = p
        .literals()
        .into_iter()
        .filter_map(clean_run)
        .max_by_key(|s| s.len())?;
    lit(&best)
}

/// One of these literals must occur for the matcher to match some value.
fn matcher_lits(m: &Matcher) -> Option<Vec<Lit>> {
    match m {
        Matcher::Str(p) => {
            if p.is_any() {
                return None;
            }
            pattern_lit(p).map(|l| vec![l])
        }
        Matcher::StrSet(s) => s
            .patterns()
            .map(|(t, exact)| {
                if exact {
                    pattern_lit(&crate::pattern::StrPattern::new(
                        &[crate::pattern::Tok::Lit(t.to_string())],
                        false,
                    ))
                } else {
                    lit(t)
                }
            })
            .collect(),
        Matcher::Num { n, text } => {
            if n.fract() == 0.0 && n.abs() < 1e15 {
                // An integral JSON number is written with these digits; a string holding the
                // integer has them too, maybe after a sign or zeros (`"+0401"`); a string
                // equal to the rule's text also matches (`0x1F`: its own literal).
                let digits = format!("{}", n.abs() as i64);
                let mut out = vec![Lit {
                    text: digits.clone(),
                    numeric: false,
                    common: false,
                    digits: true,
                    key: None,
                }];
                if !text.to_ascii_lowercase().contains(&digits) {
                    out.push(lit(text)?);
                }
                Some(out)
            } else {
                None
            }
        }
        Matcher::Bool(b) => Some(vec![Lit {
            text: b.to_string(),
            numeric: false,
            common: false,
            digits: false,
            key: None,
        }]),
        _ => None,
    }
}

/// Literals every event with a value at `path` contains, best first: the path's segments are
/// keys of the text, or parts of a key holding dots. The first starts the root key (a quote
/// precedes it), the last ends the innermost key (a quote follows it); a one-segment path is
/// the whole key.
fn key_lits(path: &crate::event::FieldPath) -> Vec<Lit> {
    let segs: Vec<&str> = path.text.split('.').collect();
    let n = segs.len();
    // Keys of fields nearly every event has say nothing, nor do the keys on their way.
    let common_path = |upto: usize| {
        let prefix = segs[..upto].join(".").to_ascii_lowercase();
        COMMON_PATHS.iter().any(|c| {
            c.strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
        })
    };
    let mut out = Vec::new();
    for (i, seg) in segs.iter().enumerate() {
        if seg.is_empty() {
            continue;
        }
        let common = common_path(i + 1);
        if !seg.chars().all(clean) {
            out.extend(lit(seg).map(|l| Lit { common, ..l }));
            continue;
        }
        let mut q = String::with_capacity(seg.len() + 2);
        if i == 0 {
            q.push('"');
        }
        q.push_str(seg);
        if i == n - 1 {
            q.push('"');
        }
        out.push(Lit {
            common,
            ..quoted(q)
        });
    }
    // The last key first on ties (most specific), then the first.
    out.reverse();
    out.sort_by(|a, b| weight(a).total_cmp(&weight(b)));
    out
}

/// How many clauses a condition part keeps.
const KEEP: usize = 4;

/// `(a1 and a2) or (b1 and b2)` implies `(a1 or b1) and (a1 or b2) and ...`: the best few
/// clauses of each part are combined.
fn or(parts: Vec<Option<Cnf>>) -> Option<Cnf> {
    let mut acc: Cnf = vec![vec![]];
    for p in parts {
        let mut p = p?;
        sort_clauses(&mut p);
        if p.is_empty() {
            return None;
        }
        let mut next: Cnf = Vec::new();
        for a in &acc {
            for c in p.iter().take(3) {
                let mut u = a.clone();
                for l in c {
                    if !u.iter().any(|x| x.same(l)) {
                        u.push(l.clone());
                    }
                }
                next.push(u);
            }
        }
        sort_clauses(&mut next);
        next.truncate(2 * KEEP);
        if next.is_empty() {
            return None;
        }
        acc = next;
    }
    acc.truncate(KEEP);
    Some(acc)
}

fn and(parts: Vec<Option<Cnf>>) -> Option<Cnf> {
    let mut all: Cnf = parts.into_iter().flatten().flatten().collect();
    sort_clauses(&mut all);
    let mut out: Cnf = Vec::new();
    for c in all {
        let key = |c: &Vec<Lit>| -> Vec<(String, bool, Option<String>)> {
            let mut t: Vec<_> = c
                .iter()
                .map(|l| (l.text.clone(), l.digits, l.key.clone()))
                .collect();
            t.sort_unstable();
            t
        };
        if !out.iter().any(|o| key(o) == key(&c)) {
            out.push(c);
        }
    }
    out.truncate(KEEP);
    (!out.is_empty()).then_some(out)
}

fn item_cnf(i: &Item) -> Option<Cnf> {
    if i.negate || i.exists == Some(false) {
        return None;
    }
    let mut cnf = Cnf::new();
    // Every matcher but `null` needs a value at one of the paths (so its key in the text).
    if !i.paths.is_empty() && !i.matchers.iter().any(|m| matches!(m, Matcher::Null)) {
        if let [p] = i.paths.as_slice() {
            // One path: each of its keys is needed.
            cnf.extend(key_lits(p).into_iter().map(|l| vec![l]));
        } else if let Some(keys) = i
            .paths
            .iter()
            .map(|p| key_lits(p).into_iter().next())
            .collect::<Option<Vec<_>>>()
        {
            cnf.push(keys);
        }
    }
    if i.exists.is_none() {
        let key = scope_key(&i.paths);
        let matcher_lits = |m: &Matcher| {
            matcher_lits(m).map(|ls| ls.into_iter().map(|l| scoped(l, &key)).collect::<Vec<_>>())
        };
        if i.all {
            for m in &i.matchers {
                if let Some(l) = matcher_lits(m) {
                    cnf.push(l);
                }
            }
        } else {
            let mut u = Vec::new();
            for m in &i.matchers {
                match matcher_lits(m) {
                    Some(l) => u.extend(l),
                    None => {
                        u.clear();
                        break;
                    }
                }
            }
            if !u.is_empty() {
                cnf.push(u);
            }
        }
    }
    and(vec![Some(cnf)])
}

/// The end of the key every path ends with (`code"` for `responseStatus.code` and
/// `code`), when it is clean: a value at any of the paths follows such a key.
fn scope_key(paths: &[crate::event::FieldPath]) -> Option<String> {
    let last = |p: &crate::event::FieldPath| p.text.rsplit('.').next().map(str::to_string);
    let seg = last(paths.first()?)?;
    if seg.is_empty()
        || !seg.chars().all(clean)
        || paths.iter().any(|p| last(p) != Some(seg.clone()))
    {
        return None;
    }
    Some(format!("{}\"", seg.to_ascii_lowercase()))
}

/// Scopes the digits of an integer to its field's key: searched only in the values after the
/// key (see [`super::scoped`]), since digits fill every event's timestamps and ids, and the
/// integers of one field share that key's search. Other literals stay unscoped: measured, a
/// search of the whole text for them is cheaper than the key's (bench example, built-in pack:
/// every value literal scoped ~560k events/s, none ~575k, digits only ~587k). The automaton
/// ignores scopes (finding a literal anywhere counts: safe).
fn scoped(l: Lit, key: &Option<String>) -> Lit {
    match key {
        Some(k) if l.digits => Lit {
            key: Some(k.clone()),
            ..l
        },
        _ => l,
    }
}

fn node_cnf(n: &SelNode) -> Option<Cnf> {
    match n {
        SelNode::Item(i) => item_cnf(i),
        SelNode::And(xs) => and(xs.iter().map(node_cnf).collect()),
        SelNode::Or(xs) => or(xs.iter().map(node_cnf).collect()),
    }
}

pub(super) fn cond_cnf(r: &CompiledRule, c: &Cond) -> Option<Cnf> {
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
