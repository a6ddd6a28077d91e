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
//! The automaton does not search the literals' cores themselves but anchors: substrings of one
//! length (4 bytes), each core anchored on one of its substrings at a known offset (several
//! cores may share an anchor; see `anchor` for why and how they are chosen). The scan finds
//! every anchor occurrence, then compares each core anchored there with the text around it
//! and checks its literals' context. Every anchor occurrence is found although the search is
//! not overlapping: the search from a position reports the leftmost occurrence at or after it
//! (anchors have one length and are distinct, so one anchor starts there); an anchor starting
//! inside that match would run past its end, so a suffix of the match would be a prefix of it,
//! and the search restarts at the first offset inside the match where that is so (one past
//! the match when nowhere). Every occurrence of a literal contains an occurrence of its core's
//! anchor at the core's offset, so every literal present is marked found (and only those).
//!
//! This module holds the prefilter's data; the work is in submodules: `cnf` extracts literals
//! and builds a condition's clauses, `rank` orders them by selectivity, `build` makes the
//! automaton and finders of a dataset (`anchor` picks the anchors; `scoped` searches a literal
//! only in the values of its field's key), `scan` runs them over an
//! event (and the pruned parse, `pruned`), `report` gives the diagnostics the bench example
//! prints.

use aho_corasick::AhoCorasick;

mod anchor;
mod build;
mod cnf;
mod pruned;
mod rank;
mod report;
mod scan;
mod scoped;
#[cfg(test)]
mod tests;

pub(crate) use build::build;
pub(crate) use pruned::Captured;
pub(crate) use scan::Reading;
// The pruning tree's benchmark test reads the rules' paths with it.
#[cfg(test)]
use build::collect_paths;

/// `a == b` for the short byte strings the scan compares (cores, keys: mostly under 32 bytes),
/// inlined: the first and last 8 (or 4) bytes settle nearly every unequal pair without a call
/// into libc's `memcmp`, which cost 2-3% of the built-in pack's time at these call sites.
#[inline]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        if n >= 4 {
            let word = |s: &[u8], at: usize| u32::from_ne_bytes(s[at..at + 4].try_into().unwrap());
            return word(a, 0) == word(b, 0) && word(a, n - 4) == word(b, n - 4);
        }
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let word = |s: &[u8], at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().unwrap());
    word(a, 0) == word(b, 0)
        && word(a, n - 8) == word(b, n - 8)
        && (n <= 16 || a[8..n - 8] == b[8..n - 8])
}

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
    /// The end of the key whose values must hold the core (see [`scoped`]): an index into
    /// `Prefilter::keys`.
    key: Option<u32>,
}

impl Finder {
    /// Whether the core occurs with its context: anywhere in the text, or (scoped to a key)
    /// inside one of the values that follow the key, which the caller gives.
    fn present(&self, text: &[u8], values: &[scoped::Value]) -> bool {
        match self.key {
            None => self.present_in(text, 0, text.len()),
            Some(_) => values.iter().any(|v| match *v {
                scoped::Value::Token(s, e) => self.present_in(text, s, e),
                scoped::Value::Unknown => true,
            }),
        }
    }

    /// Whether the core occurs inside `text[from..to]` with its context (which may look just
    /// outside the range).
    fn present_in(&self, text: &[u8], from: usize, to: usize) -> bool {
        let n = self.core.needle().len();
        if self.context == Context::default() {
            return self.core.find(&text[from..to]).is_some();
        }
        self.core
            .find_iter(&text[from..to])
            .any(|s| self.context.holds(text, from + s, from + s + n))
    }
}

/// The search over the anchors: Teddy itself where the CPU has it (no automaton behind it:
/// anchors are short and Teddy reports exact matches), else an automaton.
#[derive(Debug)]
enum Searcher {
    Packed(aho_corasick::packed::Searcher),
    Automaton(AhoCorasick),
}

impl Searcher {
    /// The anchor and start of the leftmost anchor occurrence starting at or after `at`.
    #[inline]
    fn find(&self, text: &[u8], at: usize) -> Option<(usize, usize)> {
        let m = match self {
            Searcher::Packed(s) => s.find_in(text, aho_corasick::Span::from(at..text.len()))?,
            Searcher::Automaton(ac) => ac.find(aho_corasick::Input::new(text).range(at..))?,
        };
        Some((m.pattern().as_usize(), m.start()))
    }
}

#[derive(Debug)]
pub(crate) struct Prefilter {
    /// Over the anchors (see the module docs).
    searcher: Searcher,
    /// How many automaton literals there are (bits of `Buffers::found`).
    nlits: usize,
    /// The automaton literals' cores (deduplicated, lowercase).
    cores: Vec<Vec<u8>>,
    /// Per core: its literals, each with the context its occurrence must have.
    core_lits: Vec<Vec<(u32, Context)>>,
    /// Per anchor: the cores anchored on it, each with the anchor's offset inside it.
    anchored: Vec<Vec<(u32, u32)>>,
    /// Per anchor: the smallest offset inside it where an anchor could start (its length when
    /// none can): the search goes on from there after a match.
    restart: Vec<usize>,
    finders: Vec<Finder>,
    finder_lits: Vec<String>,
    /// The keys scoped finders look after (`code"`), each searched at most once per event.
    keys: Vec<memchr::memmem::Finder<'static>>,
    /// The automaton literals.
    pub(crate) patterns: Vec<String>,
    /// Per automaton literal: the positions of the rules whose first clause it is part of.
    gated: Vec<Vec<u32>>,
    /// Bit set of the rule positions without such a first clause (see [`Scan::candidates`]).
    ungated: Vec<u64>,
    /// Per rule position: the rule's clauses, the paths it reads, and whether it reads more
    /// than its fields (keywords: every value), so that it is given the whole document.
    rules: Vec<RuleReads>,
    /// Paths every pruned document keeps besides those of the rules (see [`Prefilter::keep`]).
    keep: Vec<crate::event::FieldPath>,
    /// Identifies this prefilter in the per-thread cache of pruning trees.
    id: u64,
    /// The pruning tree of what correlations read from the dataset's events (see
    /// [`Prefilter::correlation_doc`]).
    corr: Option<pruned::Tree>,
    /// The paths of `corr`: pruned documents keep them too when a rule that may match feeds a
    /// correlation (see [`Scan::doc`]).
    corr_paths: Vec<crate::event::FieldPath>,
}

/// A fresh identity for a prefilter's pruning trees.
fn next_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl Prefilter {
    /// Sets the paths correlations read from this dataset's events.
    pub(crate) fn set_correlation_reads(&mut self, paths: &[crate::event::FieldPath]) {
        self.corr = Some(pruned::Tree::new(&paths.iter().collect::<Vec<_>>()));
        self.corr_paths = paths.to_vec();
        // Trees cached for the old set of paths must not be reused.
        self.id = next_id();
    }

    /// `raw` parsed down to what correlations read (`None`: no correlation reads this dataset,
    /// or the text is not a JSON object or cannot be parsed down).
    pub(crate) fn correlation_doc(&self, raw: &str) -> Option<serde_json::Value> {
        self.corr.as_ref()?.parse(raw)
    }

    /// Makes every pruned document keep these paths too (what the caller reads from matched
    /// events): a pruned document then answers them as the whole
    /// one does.
    pub(crate) fn keep(&mut self, paths: &[crate::event::FieldPath]) {
        for p in paths {
            if !self.keep.iter().any(|k| k.text == p.text) {
                self.keep.push(p.clone());
            }
        }
        // Trees cached for the old set of paths must not be reused.
        self.id = next_id();
    }
}

#[derive(Debug)]
struct RuleReads {
    required: Vec<Clause>,
    paths: Vec<crate::event::FieldPath>,
    whole: bool,
    /// The rule feeds a correlation.
    feeds: bool,
    /// The rule's field paths and their slots (`Item::path_ids`), when the values it reads
    /// can be captured instead of looked up in a document: no field references (they look
    /// up their own paths in the document). See [`Scan::read`].
    captured: Option<Vec<(crate::event::FieldPath, u32)>>,
}
