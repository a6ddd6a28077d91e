//! The per-event scan: the automaton search over the ASCII-lowercased raw text (after the
//! poison check), the on-demand finder searches and the fractional-number check that answer
//! whether a rule may match, and the pruned parse of the event down to what the rules the scan
//! lets through read. Kept apart from building the prefilter: this is the hot path.

use super::{pruned, scoped, Clause, Prefilter};

/// Per thread: pruning trees by prefilter and set of rules the prefilter let through (the key
/// is the prefilter's id, flags, then the set's bit words; see
/// [`Scan::tree`]), and the last one asked for (consecutive events often let the same rules
/// through).
#[derive(Default)]
struct TreeCache {
    trees: std::collections::HashMap<
        Box<[u64]>,
        std::rc::Rc<pruned::Tree>,
        foldhash::fast::FixedState,
    >,
    last: Option<(Box<[u64]>, std::rc::Rc<pruned::Tree>)>,
}

/// Flags of a pruning tree key's second word (see [`Scan::tree_key`]): the tree keeps what
/// correlations read; the tree captures the rules' values.
const CORR: u64 = 1;
const CAPTURE: u64 = 2;

thread_local! {
    static TREES: std::cell::RefCell<TreeCache> = std::cell::RefCell::new(TreeCache::default());
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
    /// The values after scoped finders' keys: per key, a range of `values` (start `u32::MAX`:
    /// not searched yet).
    key_values: Vec<(u32, u32)>,
    values: Vec<scoped::Value>,
}

thread_local! {
    // Boxed: handing the buffers to a scan and back moves a pointer, not the six vectors
    // (those moves were about 1% of the built-in pack's time).
    static BUFFERS: std::cell::Cell<Option<Box<Buffers>>> = const { std::cell::Cell::new(None) };
}

/// An event's text parsed for the rules it may match.
enum Parsed {
    /// Parsed down to the fields the rules read (and the kept ones, see [`Prefilter::keep`]).
    Doc(serde_json::Value),
    /// The values of the rules' fields, captured by slot; and the document of the kept
    /// fields, if any are kept.
    Captured(Option<serde_json::Value>, pruned::Captured),
}

/// What the rules read of an event (see [`Scan::read`]).
pub(crate) enum Reading<'s> {
    Doc(&'s serde_json::Value),
    Captured(&'s pruned::Captured),
}

pub(crate) struct Scan<'r> {
    pf: &'r Prefilter,
    /// Rule positions whose first clause holds (see [`Clause::gate`]), out of `buf`.
    open: Vec<u64>,
    /// Always `Some` until the scan is dropped (then the buffers go back to the thread).
    buf: std::cell::RefCell<Option<Box<Buffers>>>,
    poisoned: bool,
    raw: &'r str,
    odd_numbers: std::cell::OnceCell<bool>,
    /// The event parsed down to what the rules it may match read.
    pruned: std::cell::OnceCell<Option<Parsed>>,
    /// The rule positions [`Scan::may_match`] is true for, once [`Scan::tree`] has asked for
    /// every candidate: the rule loop then reads its answer instead of asking again.
    holding: std::cell::OnceCell<Vec<u64>>,
}

impl Drop for Scan<'_> {
    fn drop(&mut self) {
        if let Some(mut buf) = self.buf.get_mut().take() {
            buf.open = std::mem::take(&mut self.open);
            BUFFERS.with(|b| b.set(Some(buf)));
        }
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

/// Whether the text is poisoned, told whether it has a backslash and a byte above 0x7f (which
/// the fold finds on its way: see [`fold`]).
fn poisoned(b: &[u8], backslash: bool, non_ascii: bool) -> bool {
    let f = poison_finders();
    // Both escapes start with a backslash, which most events do not have at all.
    if backslash && (f[0].find(b).is_some() || f[1].find(b).is_some()) {
        return true;
    }
    // Both characters start with a byte above 0x7f: no search for ASCII text.
    non_ascii && (f[2].find(b).is_some() || f[3].find(b).is_some())
}

/// `raw` ASCII-lowercased into `out`, and whether it has a backslash and a byte above 0x7f:
/// one pass instead of three (the two checks ride along the fold's vector loop).
fn fold(raw: &[u8], out: &mut Vec<u8>) -> (bool, bool) {
    out.clear();
    let (mut any, mut slash) = (0u8, 0u8);
    out.extend(raw.iter().map(|&b| {
        any |= b;
        slash |= u8::from(b == b'\\');
        b.to_ascii_lowercase()
    }));
    (slash != 0, any >= 0x80)
}

impl Prefilter {
    pub(crate) fn scan<'r>(&'r self, raw: &'r str) -> Scan<'r> {
        // None: the thread's first scan, or one nested in another (each then has its own).
        let mut buf = BUFFERS.with(|b| b.take()).unwrap_or_default();
        let (backslash, non_ascii) = fold(raw.as_bytes(), &mut buf.folded);
        let poisoned = poisoned(raw.as_bytes(), backslash, non_ascii);
        if !poisoned {
            buf.found.clear();
            buf.found.resize(self.nlits.div_ceil(64), 0);
            buf.memo.clear();
            buf.memo.resize(self.finders.len(), 0);
            buf.key_values.clear();
            buf.key_values.resize(self.keys.len(), (u32::MAX, 0));
            buf.values.clear();
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
            buf: std::cell::RefCell::new(Some(buf)),
            poisoned,
            raw,
            odd_numbers: std::cell::OnceCell::new(),
            pruned: std::cell::OnceCell::new(),
            holding: std::cell::OnceCell::new(),
        }
    }

    /// Marks every automaton literal present in the folded text: every anchor occurrence is
    /// found (see the parent module), and the cores anchored there are compared with the text.
    fn search(&self, buf: &mut Buffers) {
        let text = &buf.folded;
        let found = &mut buf.found;
        let mut at = 0;
        while let Some((a, s)) = self.searcher.find(text, at) {
            for &(c, o) in &self.anchored[a] {
                let core = &self.cores[c as usize];
                let Some(start) = s.checked_sub(o as usize) else {
                    continue;
                };
                let end = start + core.len();
                if !text
                    .get(start..end)
                    .is_some_and(|t| super::same_bytes(t, core))
                {
                    continue;
                }
                for &(l, cx) in &self.core_lits[c as usize] {
                    if cx.holds(text, start, end) {
                        found[(l / 64) as usize] |= 1 << (l % 64);
                    }
                }
            }
            at = s + self.restart[a];
        }
    }
}

impl<'r> Scan<'r> {
    /// What to evaluate rules on: the event's own document when it is parsed already; else,
    /// from the raw text, the values of the fields read by the rules the prefilter lets
    /// through, captured by slot (when all of them allow it: see `RuleReads::captured`),
    /// or the text parsed down to those fields (see [`pruned`]); else (neither can tell) the
    /// whole document. `None`: the text is not a JSON object.
    pub(crate) fn read<'s>(&'s self, ev: &'s crate::Event<'_>) -> Option<Reading<'s>> {
        if ev.is_parsed() || ev.raw().map(str::as_ptr) != Some(self.raw.as_ptr()) {
            return ev.doc().map(Reading::Doc);
        }
        match self.pruned.get_or_init(|| self.parse()) {
            Some(Parsed::Doc(v)) => Some(Reading::Doc(v)),
            Some(Parsed::Captured(_, c)) => Some(Reading::Captured(c)),
            None => ev.doc().map(Reading::Doc),
        }
    }

    fn parse(&self) -> Option<Parsed> {
        // The tree's key: on the stack for up to four words of rules.
        let words = self.pf.rules.len().div_ceil(64);
        let (mut small, mut big) = ([0u64; 6], Vec::new());
        let key: &mut [u64] = if words + 2 <= small.len() {
            &mut small[..words + 2]
        } else {
            big.resize(words + 2, 0);
            &mut big
        };
        if self.tree_key(key) {
            if let Some((doc, values)) = self.tree(key).capture(self.raw) {
                return Some(Parsed::Captured(doc, values));
            }
            // The capture gave up: parse down to every field instead.
            key[1] &= !CAPTURE;
        }
        self.tree(key).parse(self.raw).map(Parsed::Doc)
    }

    /// The document handed to the caller (see [`crate::RuleSet::matches_doc`]), if the event
    /// was parsed down: to the rules' and the kept fields, or (values captured) to the kept
    /// fields only.
    pub(crate) fn take_pruned(&mut self) -> Option<serde_json::Value> {
        match self.pruned.take().flatten()? {
            Parsed::Doc(v) => Some(v),
            Parsed::Captured(doc, _) => doc,
        }
    }

    /// Writes into `key` (zeroed, two words more than the rules take) the key of the pruning
    /// tree for the rules this event may match (see [`Scan::tree`]): the prefilter's id, the
    /// flags ([`CORR`], [`CAPTURE`]), then the rule set's bit words. True when their values
    /// can be captured. Records which rules may match ([`Scan::holding`]).
    fn tree_key(&self, key: &mut [u64]) -> bool {
        let rules = &self.pf.rules;
        key[0] = self.pf.id;
        let mut holding = vec![0u64; rules.len().div_ceil(64)];
        let mut capture = true;
        let mut corr = false;
        for i in self.candidates() {
            let r = &rules[i];
            if self.may_match(&r.required) {
                holding[i / 64] |= 1 << (i % 64);
                if !r.whole {
                    key[2 + i / 64] |= 1 << (i % 64);
                    capture &= r.captured.is_some();
                }
                corr |= r.feeds;
            }
        }
        key[1] = if corr { CORR } else { 0 } | if capture { CAPTURE } else { 0 };
        let _ = self.holding.set(holding);
        capture
    }

    /// The pruning tree for a key of [`Scan::tree_key`] (cached per thread): it keeps what
    /// the rules in the key's set read (or captures it, with [`CAPTURE`]), what the caller
    /// keeps, and, when one of the rules feeds a correlation (whether it reads the pruned or
    /// the whole document), what correlations read, so that a match's pruned document serves
    /// them.
    fn tree(&self, key: &[u64]) -> std::rc::Rc<pruned::Tree> {
        let rules = &self.pf.rules;
        TREES.with(|c| {
            let mut c = c.borrow_mut();
            if let Some((k, t)) = &c.last {
                if **k == *key {
                    return t.clone();
                }
            }
            let t = match c.trees.get(key) {
                Some(t) => t.clone(),
                None => {
                    if c.trees.len() >= 4096 {
                        c.trees.clear();
                    }
                    let set = &key[2..];
                    let corr: &[crate::event::FieldPath] = if key[1] & CORR != 0 {
                        &self.pf.corr_paths
                    } else {
                        &[]
                    };
                    let chosen = || {
                        rules
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| set[i / 64] & (1 << (i % 64)) != 0)
                            .map(|(_, r)| r)
                    };
                    let kept = self.pf.keep.iter().chain(corr);
                    let t = if key[1] & CAPTURE != 0 {
                        let captured: Vec<(&crate::event::FieldPath, u32)> = chosen()
                            .flat_map(|r| r.captured.iter().flatten())
                            .map(|(p, s)| (p, *s))
                            .collect();
                        pruned::Tree::with_captures(&kept.collect::<Vec<_>>(), &captured)
                    } else {
                        let paths: Vec<&crate::event::FieldPath> =
                            chosen().flat_map(|r| r.paths.iter()).chain(kept).collect();
                        pruned::Tree::new(&paths)
                    };
                    let t = std::rc::Rc::new(t);
                    c.trees.insert(key.into(), t.clone());
                    t
                }
            };
            match &mut c.last {
                Some((k, last)) if k.len() == key.len() => {
                    k.copy_from_slice(key);
                    *last = t.clone();
                }
                last => *last = Some((key.into(), t.clone())),
            }
            t
        })
    }

    /// The rule positions [`Scan::may_match`] can be true for, in increasing order: those whose
    /// first clause the automaton found, and those without such a clause (every position when
    /// the text is poisoned). The others need not be asked.
    pub(crate) fn candidates(&self) -> impl Iterator<Item = usize> + '_ {
        let n = self.pf.rules.len();
        (0..n.div_ceil(64)).flat_map(move |w| {
            let mut bits = if self.poisoned {
                u64::MAX
            } else {
                self.open[w] | self.pf.ungated[w]
            };
            let left = n - w * 64;
            if left < 64 {
                bits &= (1u64 << left) - 1;
            }
            std::iter::from_fn(move || {
                (bits != 0).then(|| {
                    let i = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    w * 64 + i
                })
            })
        })
    }

    /// Whether the rule at this position needs the whole document (see [`Scan::doc`]).
    pub(crate) fn needs_whole(&self, pos: usize) -> bool {
        self.pf.rules.get(pos).is_none_or(|r| r.whole)
    }

    /// [`Scan::may_match`] for the rule at position `pos`, whose clauses are `required`.
    #[inline]
    pub(crate) fn may_match_at(&self, pos: usize, required: &[Clause]) -> bool {
        match self.holding.get() {
            Some(h) => h[pos / 64] & (1 << (pos % 64)) != 0,
            None => self.may_match(required),
        }
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
        let Some(buf) = buf.as_deref_mut() else {
            return true;
        };
        clauses.iter().all(|c| {
            let present = c
                .lits
                .iter()
                .any(|&p| buf.found[(p / 64) as usize] & (1 << (p % 64)) != 0)
                || c.finds.iter().any(|&f| {
                    let f = f as usize;
                    if buf.memo[f] == 0 {
                        let finder = &self.pf.finders[f];
                        let values: &[scoped::Value] = match finder.key {
                            None => &[],
                            Some(k) => {
                                let k = k as usize;
                                if buf.key_values[k].0 == u32::MAX {
                                    let start = buf.values.len();
                                    buf.values
                                        .extend(scoped::values(&buf.folded, &self.pf.keys[k]));
                                    buf.key_values[k] =
                                        (start as u32, (buf.values.len() - start) as u32);
                                }
                                let (s, n) = buf.key_values[k];
                                &buf.values[s as usize..(s + n) as usize]
                            }
                        };
                        let hit = finder.present(&buf.folded, values);
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
