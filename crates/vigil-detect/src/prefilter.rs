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

mod pruned;

/// A disjunction: the rule needs at least one of these literals in the text. The rule's first
/// (most selective) clause is searched by the automaton; the others too while the automaton
/// has room, else they are checked afterwards, only for rules whose first clauses held, with
/// one SIMD substring search per literal (at most once per event).
#[derive(Debug, Clone)]
pub(crate) struct Clause {
    /// Automaton literal ids.
    lits: Vec<u32>,
    /// Indices into `Prefilter::finders`: literals searched on demand.
    finds: Vec<u32>,
    numeric: bool,
    /// For a rule's first clause made of automaton literals only: the rule's position, whose
    /// bit the scan sets when one of them is found (`u32::MAX`: not such a clause).
    gate: u32,
}

/// What must surround an occurrence of a literal's core (its text without a leading quote).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
struct Context {
    /// A `"` right before the core.
    quote_before: bool,
    /// No digit 1-9 right before and no digit right after (an integer's digits).
    digits: bool,
}

impl Context {
    fn holds(self, text: &[u8], start: usize, end: usize) -> bool {
        let before = start.checked_sub(1).map(|i| text[i]);
        if self.quote_before && before != Some(b'"') {
            return false;
        }
        if self.digits
            && (matches!(before, Some(b'1'..=b'9'))
                || text.get(end).is_some_and(u8::is_ascii_digit))
        {
            return false;
        }
        true
    }
}

#[derive(Debug)]
struct Finder {
    core: memchr::memmem::Finder<'static>,
    context: Context,
}

impl Finder {
    fn present(&self, text: &[u8]) -> bool {
        let n = self.core.needle().len();
        if self.context == Context::default() {
            return self.core.find(text).is_some();
        }
        self.core
            .find_iter(text)
            .any(|s| self.context.holds(text, s, s + n))
    }
}

#[derive(Debug)]
pub(crate) struct Prefilter {
    /// Over the cores of the automaton literals (deduplicated).
    ac: AhoCorasick,
    /// How many automaton literals there are (bits of `Buffers::found`).
    nlits: usize,
    /// Per core: its literals, each with the context its occurrence must have.
    core_lits: Vec<Vec<(u32, Context)>>,
    /// Per core: the literals of every other core it contains, found with it (unchecked:
    /// counting a literal present is always safe).
    implied: Vec<Vec<u32>>,
    /// For each core, the smallest offset inside it where another core could start and run
    /// past its end (its length when none can).
    restart: Vec<usize>,
    finders: Vec<Finder>,
    finder_lits: Vec<String>,
    /// The automaton literals.
    pub(crate) patterns: Vec<String>,
    /// Per automaton literal: the positions of the rules whose first clause it is part of.
    gated: Vec<Vec<u32>>,
    /// Per rule position: the rule's clauses, the paths it reads, and whether it reads more
    /// than its fields (keywords: every value), so that it is given the whole document.
    rules: Vec<RuleReads>,
    /// Identifies this prefilter in the per-thread cache of pruning trees.
    id: u64,
}

#[derive(Debug)]
struct RuleReads {
    required: Vec<Clause>,
    paths: Vec<crate::event::FieldPath>,
    whole: bool,
}

/// Per thread: pruning trees by prefilter, then by the set of rules the prefilter let through.
type TreeCache =
    std::collections::HashMap<u64, std::collections::HashMap<Vec<u64>, std::rc::Rc<pruned::Tree>>>;

thread_local! {
    static TREES: std::cell::RefCell<TreeCache> = std::cell::RefCell::new(TreeCache::new());
}

/// Per-thread scratch space, reused from event to event.
#[derive(Default)]
struct Buffers {
    folded: Vec<u8>,
    found: Vec<u64>,
    /// Rule positions whose first clause holds (see [`Clause::gate`]).
    open: Vec<u64>,
    /// Per finder: 0 not searched yet, 1 present, 2 absent.
    memo: Vec<u8>,
}

thread_local! {
    static BUFFERS: std::cell::RefCell<Buffers> = std::cell::RefCell::new(Buffers::default());
}

pub(crate) struct Scan<'r> {
    pf: &'r Prefilter,
    /// Rule positions whose first clause holds (see [`Clause::gate`]), out of `buf`.
    open: Vec<u64>,
    buf: std::cell::RefCell<Buffers>,
    poisoned: bool,
    raw: &'r str,
    odd_numbers: std::cell::OnceCell<bool>,
    /// The event parsed down to what the rules it may match read.
    pruned: std::cell::OnceCell<Option<serde_json::Value>>,
}

impl Drop for Scan<'_> {
    fn drop(&mut self) {
        let mut buf = std::mem::take(self.buf.get_mut());
        buf.open = std::mem::take(&mut self.open);
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
            buf.found.resize(self.nlits.div_ceil(64), 0);
            buf.memo.clear();
            buf.memo.resize(self.finders.len(), 0);
            self.search(&mut buf);
            buf.open.clear();
            buf.open.resize(self.rules.len().div_ceil(64), 0);
            for (w, &bits) in buf.found.iter().enumerate() {
                let mut bits = bits;
                while bits != 0 {
                    let l = w * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    for &r in &self.gated[l] {
                        buf.open[(r / 64) as usize] |= 1 << (r % 64);
                    }
                }
            }
        }
        Scan {
            pf: self,
            open: std::mem::take(&mut buf.open),
            buf: std::cell::RefCell::new(buf),
            poisoned,
            raw,
            odd_numbers: std::cell::OnceCell::new(),
            pruned: std::cell::OnceCell::new(),
        }
    }

    /// Marks every automaton literal present in the folded text.
    fn search(&self, buf: &mut Buffers) {
        let text = &buf.folded;
        let found = &mut buf.found;
        let mut at = 0;
        'outer: while at < text.len() {
            let input = aho_corasick::Input::new(text).range(at..);
            for m in self.ac.find_iter(input) {
                let id = m.pattern().as_usize();
                for &(l, cx) in &self.core_lits[id] {
                    if cx.holds(text, m.start(), m.end()) {
                        found[(l / 64) as usize] |= 1 << (l % 64);
                    }
                }
                for &l in &self.implied[id] {
                    found[(l / 64) as usize] |= 1 << (l % 64);
                }
                let k = self.restart[id];
                if k < m.len() {
                    // A longer core may start inside this match: search again from there.
                    at = m.start() + k;
                    continue 'outer;
                }
            }
            break;
        }
    }
}

impl<'r> Scan<'r> {
    /// The document to evaluate rules on: the event's own when it is parsed already, else the
    /// raw text parsed down to the fields read by the rules the prefilter lets through (see
    /// [`pruned`]), else (the pruned parse cannot tell) the whole document. `None`: the text is
    /// not a JSON object.
    pub(crate) fn doc<'s>(&'s self, ev: &'s crate::Event<'_>) -> Option<&'s serde_json::Value> {
        if ev.is_parsed() || ev.raw().map(str::as_ptr) != Some(self.raw.as_ptr()) {
            return ev.doc();
        }
        match self.pruned.get_or_init(|| self.tree().parse(self.raw)) {
            Some(v) => Some(v),
            None => ev.doc(),
        }
    }

    /// The pruning tree for the rules this event may match (cached per thread).
    fn tree(&self) -> std::rc::Rc<pruned::Tree> {
        let rules = &self.pf.rules;
        let mut set = [0u64; 4];
        let mut big = Vec::new();
        let set: &mut [u64] = if rules.len() <= 256 {
            &mut set[..rules.len().div_ceil(64)]
        } else {
            big.resize(rules.len().div_ceil(64), 0);
            &mut big
        };
        for (i, r) in rules.iter().enumerate() {
            if !r.whole && self.may_match(&r.required) {
                set[i / 64] |= 1 << (i % 64);
            }
        }
        TREES.with(|c| {
            let mut c = c.borrow_mut();
            let c = c.entry(self.pf.id).or_default();
            if let Some(t) = c.get(&*set) {
                return t.clone();
            }
            if c.len() >= 4096 {
                c.clear();
            }
            let paths: Vec<&crate::event::FieldPath> = rules
                .iter()
                .enumerate()
                .filter(|(i, _)| set[i / 64] & (1 << (i % 64)) != 0)
                .flat_map(|(_, r)| r.paths.iter())
                .collect();
            let t = std::rc::Rc::new(pruned::Tree::new(&paths));
            c.insert(set.to_vec(), t.clone());
            t
        })
    }

    /// Whether the rule at this position needs the whole document (see [`Scan::doc`]).
    pub(crate) fn needs_whole(&self, pos: usize) -> bool {
        self.pf.rules.get(pos).is_none_or(|r| r.whole)
    }

    /// False when the rule provably cannot match the event.
    #[inline]
    pub(crate) fn may_match(&self, required: &[Clause]) -> bool {
        if self.poisoned {
            return true;
        }
        match required.first() {
            Some(c) if c.gate != u32::MAX => {
                self.open[(c.gate / 64) as usize] & (1 << (c.gate % 64)) != 0
                    && self.holds(&required[1..])
            }
            _ => self.holds(required),
        }
    }

    /// Whether every clause holds.
    fn holds(&self, clauses: &[Clause]) -> bool {
        if clauses.is_empty() {
            return true;
        }
        let mut buf = self.buf.borrow_mut();
        let buf = &mut *buf;
        clauses.iter().all(|c| {
            let present = c
                .lits
                .iter()
                .any(|&p| buf.found[(p / 64) as usize] & (1 << (p % 64)) != 0)
                || c.finds.iter().any(|&f| {
                    let f = f as usize;
                    if buf.memo[f] == 0 {
                        let hit = self.pf.finders[f].present(&buf.folded);
                        buf.memo[f] = if hit { 1 } else { 2 };
                    }
                    buf.memo[f] == 1
                });
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
    /// The digits of an integer: they occur with no digit right after them nor a digit 1-9
    /// right before.
    digits: bool,
}

impl Lit {
    fn same(&self, o: &Lit) -> bool {
        self.text == o.text && self.digits == o.digits
    }
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
        digits: false,
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

/// Values found in many Kubernetes audit events (control-plane namespaces, node and lease
/// traffic). Only a speed hint.
const FREQUENT_VALUES: &[&str] = &[
    "kube-system",
    "kube-node-lease",
    "default",
    "nodes",
    "leases",
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
    if FREQUENT_KEYS.contains(&t) || FREQUENT_VALUES.contains(&t) {
        return 0.3;
    }
    if l.digits {
        return if l.text.len() >= 3 { 0.1 } else { 1.0 };
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
        let key = |c: &Vec<Lit>| -> Vec<(String, bool)> {
            let mut t: Vec<(String, bool)> = c.iter().map(|l| (l.text.clone(), l.digits)).collect();
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
        if !lits.iter().any(|x| x.same(&l)) {
            lits.push(l);
        }
    }
    let drop_implied = |lits: Vec<Lit>| -> Vec<Lit> {
        let keep: Vec<bool> = lits
            .iter()
            .enumerate()
            .map(|(i, l)| {
                !lits.iter().enumerate().any(|(j, o)| {
                    // `o` is there whenever `l` is (its digits need their context: no).
                    j != i && !o.digits && l.text.contains(&o.text) && (o.text != l.text || j < i)
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
            digits: false,
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

/// The shortest core the automaton searches: its SIMD prefilter (Teddy) compares the first
/// bytes of every core, so short cores make it report many candidates.
const MIN_CORE: usize = 4;

/// The part of a literal the automaton or a finder searches for (the literal without its
/// leading quote), and the context the literal adds.
fn core(l: &Lit) -> (&str, Context) {
    match l.text.strip_prefix('"') {
        Some(rest) if !rest.is_empty() => (
            rest,
            Context {
                quote_before: true,
                digits: l.digits,
            },
        ),
        _ => (
            l.text.as_str(),
            Context {
                quote_before: false,
                digits: l.digits,
            },
        ),
    }
}

/// At most this many distinct cores go into the automaton (its SIMD prefilter handles up to 64
/// patterns): the first clause of every rule while there is room, and later clauses whose
/// cores it has anyway.
const MAX_CORES: usize = 64;

#[derive(Default)]
struct Tables {
    /// Automaton literals, their cores and contexts.
    pats: Vec<String>,
    pat_cx: Vec<(String, Context)>,
    index: std::collections::HashMap<(String, bool), u32>,
    cores: std::collections::HashSet<String>,
    finder_lits: Vec<String>,
    finders: Vec<Finder>,
    finder_index: std::collections::HashMap<(String, bool), u32>,
}

impl Tables {
    fn auto(&mut self, l: &Lit) -> u32 {
        let key = (l.text.clone(), l.digits);
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        let (c, cx) = core(l);
        self.cores.insert(c.to_string());
        self.pat_cx.push((c.to_string(), cx));
        self.pats.push(l.text.clone());
        self.index.insert(key, (self.pats.len() - 1) as u32);
        (self.pats.len() - 1) as u32
    }

    fn finder(&mut self, l: &Lit) -> u32 {
        let key = (l.text.clone(), l.digits);
        if let Some(&i) = self.finder_index.get(&key) {
            return i;
        }
        let (c, context) = core(l);
        self.finders.push(Finder {
            core: memchr::memmem::Finder::new(c.as_bytes()).into_owned(),
            context,
        });
        self.finder_lits.push(l.text.clone());
        self.finder_index
            .insert(key, (self.finders.len() - 1) as u32);
        (self.finders.len() - 1) as u32
    }

    /// How many new cores the automaton would need for the clause (`None`: a core is short).
    fn new_cores(&self, c: &[Lit]) -> Option<usize> {
        let mut new = std::collections::HashSet::new();
        for l in c {
            let (core, _) = core(l);
            if core.len() < MIN_CORE {
                return None;
            }
            if !self.cores.contains(core) {
                new.insert(core);
            }
        }
        Some(new.len())
    }
}

/// Builds the dataset's automaton and fills each rule's `required` clauses.
pub(crate) fn build(rules: &mut [CompiledRule]) -> Option<Prefilter> {
    let mut t = Tables::default();
    let mut cnfs: Vec<Cnf> = Vec::new();
    for r in rules.iter() {
        let mut cnf: Cnf = cond_cnf(r, &r.condition)
            .unwrap_or_default()
            .into_iter()
            .map(compress)
            .collect();
        sort_clauses(&mut cnf);
        // The automaton takes the best clause whose cores are long enough.
        if let Some(i) = cnf.iter().position(|c| t.new_cores(c).is_some()) {
            let c = cnf.remove(i);
            cnf.insert(0, c);
        }
        cnfs.push(cnf);
    }
    // First clauses first, then the others in order, while the automaton has room.
    let mut in_auto: Vec<Vec<bool>> = cnfs.iter().map(|c| vec![false; c.len()]).collect();
    let depth = cnfs.iter().map(Vec::len).max().unwrap_or(0);
    for d in 0..depth {
        for (cnf, flags) in cnfs.iter().zip(in_auto.iter_mut()) {
            let Some(c) = cnf.get(d) else { continue };
            match t.new_cores(c) {
                // More cores make the automaton slower than the searches they save: later
                // clauses only use cores it has anyway.
                Some(n) if t.cores.len() + n <= MAX_CORES && (d == 0 || n == 0) => {
                    for l in c {
                        t.auto(l);
                    }
                    flags[d] = true;
                }
                _ => {}
            }
        }
    }
    let mut any = false;
    for (pos, ((r, cnf), auto)) in rules.iter_mut().zip(cnfs).zip(in_auto).enumerate() {
        r.required = cnf
            .into_iter()
            .zip(auto)
            .enumerate()
            .map(|(i, (c, auto))| {
                let numeric = c.iter().any(|l| l.numeric);
                let (mut lits, mut finds) = (Vec::new(), Vec::new());
                for l in &c {
                    if auto {
                        lits.push(t.auto(l));
                    } else if let Some(&i) = t.index.get(&(l.text.clone(), l.digits)) {
                        // The automaton has this literal for another clause: its bit answers
                        // (found, or implied: counting it present is safe), no search needed.
                        lits.push(i);
                    } else {
                        finds.push(t.finder(l));
                    }
                }
                lits.sort_unstable();
                lits.dedup();
                finds.sort_unstable();
                finds.dedup();
                Clause {
                    gate: if i == 0 && auto && !numeric {
                        pos as u32
                    } else {
                        u32::MAX
                    },
                    lits,
                    finds,
                    numeric,
                }
            })
            .collect();
        any |= !r.required.is_empty();
    }
    if !any {
        return None;
    }
    let Tables {
        pats,
        pat_cx,
        finder_lits,
        finders,
        ..
    } = t;
    let mut gated = vec![Vec::new(); pats.len()];
    for r in rules.iter() {
        if let Some(c) = r.required.first().filter(|c| c.gate != u32::MAX) {
            for &l in &c.lits {
                gated[l as usize].push(c.gate);
            }
        }
    }
    // What each rule reads (field references included), for the pruned parse.
    let reads = rules
        .iter()
        .map(|r| {
            let mut paths = Vec::new();
            let mut keywords = false;
            for s in &r.selections {
                collect_paths(&s.node, &mut paths, &mut keywords);
            }
            RuleReads {
                required: r.required.clone(),
                paths: paths.into_iter().cloned().collect(),
                whole: keywords,
            }
        })
        .collect();
    // The automaton searches each distinct core once; a match checks the context of each
    // literal with that core.
    let mut cores: Vec<Vec<u8>> = Vec::new();
    let mut core_lits: Vec<Vec<(u32, Context)>> = Vec::new();
    for (l, (c, cx)) in pat_cx.iter().enumerate() {
        let c = c.as_bytes().to_ascii_lowercase();
        let i = match cores.iter().position(|x| *x == c) {
            Some(i) => i,
            None => {
                cores.push(c);
                core_lits.push(vec![]);
                cores.len() - 1
            }
        };
        core_lits[i].push((l as u32, *cx));
    }
    let ncores = cores.len();
    // Leftmost-longest, non-overlapping search reports, at each reported start, the longest
    // core there. Every other occurrence either lies inside a reported match (then that core is
    // a substring of it: `implied`), or starts inside it and runs past its end (then a suffix
    // of the match is a prefix of that core: the search restarts at the earliest such offset),
    // or starts after it.
    let implied = cores
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (0..ncores)
                .filter(|&q| q != i && memchr::memmem::find(p, &cores[q]).is_some())
                .flat_map(|q| core_lits[q].iter().map(|&(l, _)| l))
                .collect()
        })
        .collect();
    let restart = cores
        .iter()
        .map(|p| {
            (1..p.len())
                .find(|&k| {
                    cores
                        .iter()
                        .any(|q| q.len() > p.len() - k && q.starts_with(&p[k..]))
                })
                .unwrap_or(p.len())
        })
        .collect();
    let ac = AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .build(&cores)
        .ok()?;
    Some(Prefilter {
        ac,
        nlits: pats.len(),
        core_lits,
        implied,
        restart,
        finders,
        finder_lits,
        patterns: pats,
        gated,
        rules: reads,
        id: {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        },
    })
}

fn collect_paths<'a>(
    n: &'a SelNode,
    out: &mut Vec<&'a crate::event::FieldPath>,
    keywords: &mut bool,
) {
    match n {
        SelNode::Item(i) => {
            *keywords |= i.paths.is_empty();
            out.extend(i.paths.iter());
            for m in &i.matchers {
                if let Matcher::FieldRef { paths, .. } = m {
                    out.extend(paths.iter());
                }
            }
        }
        SelNode::And(xs) | SelNode::Or(xs) => {
            xs.iter().for_each(|x| collect_paths(x, out, keywords))
        }
    }
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
                    Some(pf) => {
                        r.required
                            .iter()
                            .map(|c| {
                                c.lits
                                    .iter()
                                    .map(|&i| pf.patterns[i as usize].clone())
                                    .chain(c.finds.iter().map(|&i| {
                                        format!("{} (searched)", pf.finder_lits[i as usize])
                                    }))
                                    .collect()
                            })
                            .collect()
                    }
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
