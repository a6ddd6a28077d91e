//! The literal prefilter: per dataset, one case-insensitive Aho-Corasick automaton over the raw
//! JSON text finds which of the literals the rules need are present; a rule none of whose
//! required literal sets is satisfied cannot match, and is skipped (and the event is never
//! parsed when every rule is skipped).
//!
//! Soundness. A rule is given required literals only from parts of its condition that must be
//! true for it to match (never under `not`, `neq`, `null` or `exists: false`, and no value
//! literals from regular expressions, CIDR, comparisons, field references, time parts or `*`).
//! A literal is a run of printable ASCII without `"` or `\` that the event's JSON text must
//! contain, possibly with a JSON quote on either side:
//! - a value the matcher needs (`*lit*` needs `lit`);
//! - an exact, prefix or suffix string value that no number or boolean renders as: only a JSON
//!   string can match it, so the quote on its anchored side(s) belongs to the literal
//!   (`"secrets"`, `"system:`, `_admin"`);
//! - the keys of a field that must have a value (any matcher but `null`, `exists: true`): the
//!   first segment of its path starts a key (`"requestobject`), the last ends one
//!   (`privileged"`), the others are inside keys (a key may hold dots: `"a.b"`).
//!
//! Such a literal appears verbatim in the (ASCII-lowercased) JSON text of any event the rule
//! matches, unless:
//! - the text uses `\uXXXX` or `\/` escapes: then nothing is skipped (poison patterns);
//! - a Unicode character lowercases to ASCII (KELVIN SIGN, LATIN CAPITAL LETTER I WITH DOT
//!   ABOVE): then nothing is skipped (poison patterns; a test checks these are the only two);
//! - the literal could be part of how a fractional JSON number is rendered for string matching
//!   (it consists of `0-9 . e E + -` only) and the event has a number that is not a plain integer
//!   of at most 18 digits: then such literals count as present. Integers in rules match only
//!   integral JSON numbers, which are rendered exactly as written, and strings holding the
//!   integer (which contain its digits) or equal to the rule's text (`0x1F`: also a literal).
//!
//! A condition's literals form a CNF: `and` keeps the most selective clauses of its parts, `or`
//! combines the best clauses of each alternative (`(a and b) or (c and d)` implies
//! `(a or c) and (b or d)` and so on); dropping a clause is always sound, and clauses with a
//! literal found in nearly every event (keys of fields every event has) are dropped.
//!
//! The scan finds every pattern occurrence without an overlapping search: a leftmost-longest
//! search restarted one byte after each match start reports the longest pattern starting at
//! each position, and every pattern that is a prefix of a found one is marked found with it.

use aho_corasick::{AhoCorasick, MatchKind};

use crate::compile::{CompiledRule, Cond, Item, SelNode};
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
    finder_lits: Vec<String>,
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
    /// Known to be in most events (a key of a field nearly every event has).
    common: bool,
}

type Cnf = Vec<Vec<Lit>>;

/// Whether a character may appear in a literal: printable ASCII other than `"` and `\`, whose
/// JSON encoding is the character itself (or a `\u`/`\/` escape, which poisons the text).
fn clean(c: char) -> bool {
    (c.is_ascii_graphic() || c == ' ') && c != '"' && c != '\\'
}

/// The longest run of safe characters in `s`.
fn clean_run(s: &str) -> Option<String> {
    let mut best = "";
    for run in s.split(|c: char| !clean(c)) {
        if run.len() > best.len() {
            best = run;
        }
    }
    (!best.is_empty()).then(|| best.to_ascii_lowercase())
}

/// Whether the text could be (part of) the text form of a JSON number.
fn numeric_chars(t: &str) -> bool {
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
    })
}

/// A literal that may contain the quotes of a JSON string or key (`"secrets"`, `"system:`,
/// `privileged"`): its other characters must be clean.
fn quoted(text: String) -> Lit {
    Lit {
        text: text.to_ascii_lowercase(),
        numeric: false,
        common: false,
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
                // Integral JSON numbers are written with these digits (strings holding the
                // integer contain them too); a string equal to the rule's text also matches.
                let digits = format!("{}", *n as i64);
                let mut out = vec![Lit {
                    text: digits.clone(),
                    numeric: false,
                    common: false,
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
        COMMON_PATHS
            .iter()
            .any(|c| *c == prefix || c.starts_with(&format!("{prefix}.")))
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

/// Words found in most events of some dataset: poor literals to filter on. Only a speed hint.
const COMMON: &[&str] = &[
    "get", "list", "watch", "create", "update", "patch", "delete", "pods", "apps", "allow", "true",
    "false", "null", "v1", "event", "events", "user", "root", "tcp", "udp",
];

/// Fields nearly every event of some dataset has (Kubernetes audit, ECS documents), lowercase:
/// their keys say little. Only a speed hint.
const COMMON_PATHS: &[&str] = &[
    "kind",
    "apiversion",
    "level",
    "auditid",
    "stage",
    "requesturi",
    "verb",
    "user.username",
    "user.uid",
    "user.groups",
    "sourceips",
    "useragent",
    "objectref.resource",
    "objectref.namespace",
    "objectref.name",
    "objectref.apigroup",
    "objectref.apiversion",
    "responsestatus.code",
    "responsestatus.metadata",
    "requestreceivedtimestamp",
    "stagetimestamp",
    "annotations.authorization.k8s.io/decision",
    "annotations.authorization.k8s.io/reason",
    "@timestamp",
    "message",
    "event.kind",
    "event.category",
    "event.type",
    "event.action",
    "event.outcome",
    "event.dataset",
    "event.module",
    "host.name",
    "host.hostname",
    "source.ip",
    "source.port",
    "destination.ip",
    "destination.port",
    "user.name",
    "process.name",
    "process.pid",
];

/// Keys found in most events of some dataset (Kubernetes audit, ECS documents): their key
/// literals say little. Only a speed hint.
const COMMON_KEYS: &[&str] = &[
    "kind",
    "apiversion",
    "level",
    "auditid",
    "stage",
    "requesturi",
    "verb",
    "user",
    "username",
    "uid",
    "groups",
    "sourceips",
    "useragent",
    "objectref",
    "resource",
    "namespace",
    "name",
    "apigroup",
    "responsestatus",
    "code",
    "metadata",
    "requestreceivedtimestamp",
    "stagetimestamp",
    "annotations",
    "authorization.k8s.io/decision",
    "decision",
    "authorization.k8s.io/reason",
    "reason",
    "@timestamp",
    "message",
    "host",
    "hostname",
    "event",
    "dataset",
    "action",
    "outcome",
    "source",
    "ip",
    "type",
    "spec",
    "status",
];

/// Keys of request and response bodies: found in many events.
const FREQUENT_KEYS: &[&str] = &[
    "subresource",
    "requestobject",
    "responseobject",
    "containers",
    "securitycontext",
    "image",
    "template",
    "labels",
    "volumes",
    "data",
    "rules",
    "subjects",
    "value",
    "path",
    "op",
];

/// A rough chance that an event contains the literal (lower is more selective).
fn weight(l: &Lit) -> f64 {
    if l.common {
        return 1.0;
    }
    let t = l.text.trim_matches('"');
    let quoted = t.len() != l.text.len();
    if COMMON_KEYS.contains(&t) {
        return 1.0;
    }
    if COMMON.contains(&t) {
        return if quoted { 0.3 } else { 1.0 };
    }
    if FREQUENT_KEYS.contains(&t) {
        return 0.3;
    }
    match l.text.len() {
        0..=2 => 1.0,
        3 => 0.5,
        4 => 0.25,
        5 => 0.12,
        6 | 7 => 0.06,
        _ => 0.03,
    }
}

/// A clause's rough chance of holding: the sum over its literals.
fn clause_weight(c: &[Lit]) -> f64 {
    c.iter().map(weight).sum::<f64>().min(1.0)
}

/// Clauses with a literal found in (nearly) every event are dropped: harmless, and cheaper to
/// search without.
fn useful(c: &[Lit]) -> bool {
    !c.is_empty() && c.iter().all(|l| weight(l) < 1.0)
}

fn sort_clauses(cnf: &mut Cnf) {
    cnf.retain(|c| useful(c));
    cnf.sort_by(|a, b| {
        clause_weight(a)
            .total_cmp(&clause_weight(b))
            .then(a.len().cmp(&b.len()))
    });
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
                    if !u.iter().any(|x| x.text == l.text) {
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
        let key = |c: &Vec<Lit>| {
            let mut t: Vec<&str> = c.iter().map(|l| l.text.as_str()).collect();
            t.sort_unstable();
            t.join("\u{0}")
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

fn node_cnf(n: &SelNode) -> Option<Cnf> {
    match n {
        SelNode::Item(i) => item_cnf(i),
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
        // A substring of literals: present whenever one of them is (quotes included).
        let new = Lit {
            numeric: numeric_chars(&sub),
            text: sub.clone(),
            common: false,
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
        sort_clauses(&mut cnf);
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
        finder_lits,
        patterns: pats,
    })
}

impl crate::RuleSet {
    /// Per rule of `dataset`: its title and the literal clauses the prefilter requires (each
    /// clause needs one of its literals; the first is searched by the automaton). Diagnostics.
    #[doc(hidden)]
    pub fn prefilter_report(&self, dataset: &str) -> Vec<(String, Vec<Vec<String>>)> {
        let Some(ds) = self.datasets.iter().find(|d| d.name == dataset) else {
            return vec![];
        };
        ds.rules
            .iter()
            .map(|r| {
                let clauses = match &ds.prefilter {
                    None => vec![],
                    Some(pf) => r
                        .required
                        .iter()
                        .map(|c| {
                            c.lits
                                .iter()
                                .map(|&i| {
                                    let i = i as usize;
                                    if c.by_automaton {
                                        pf.patterns[i].clone()
                                    } else {
                                        pf.finder_lits[i].clone()
                                    }
                                })
                                .collect()
                        })
                        .collect(),
                };
                (self.rules[r.rule].title.clone(), clauses)
            })
            .collect()
    }

    /// Per rule of `dataset` (in [`Self::prefilter_report`] order): whether the prefilter lets
    /// the raw event through to that rule. Diagnostics.
    #[doc(hidden)]
    pub fn prefilter_pass(&self, dataset: &str, raw: &str) -> Vec<bool> {
        let Some(ds) = self.datasets.iter().find(|d| d.name == dataset) else {
            return vec![];
        };
        match &ds.prefilter {
            None => vec![true; ds.rules.len()],
            Some(pf) => {
                let scan = pf.scan(raw);
                ds.rules
                    .iter()
                    .map(|r| scan.may_match(&r.required))
                    .collect()
            }
        }
    }
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
