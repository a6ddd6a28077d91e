//! Building a dataset's prefilter: each rule's clauses are compressed and ranked, the best
//! clauses go into the Aho-Corasick automaton while it has room (the rest become on-demand
//! finders), the cores' anchors are chosen (`anchor`) and their restart offsets computed so that
//! the scan needs no overlapping search.

use aho_corasick::{AhoCorasick, MatchKind};

use super::cnf::{cond_cnf, numeric_chars, Cnf, Lit};
use super::rank::sort_clauses;
use super::{anchor, Clause, Context, Finder, Prefilter, RuleReads, Searcher};
use crate::compile::{CompiledRule, SelNode};
use crate::value::Matcher;

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
                    // `o` is there whenever `l` is (its digits need their context: no; in the
                    // value of `l`'s key when `o` is scoped to it).
                    j != i
                        && !o.digits
                        && (o.key.is_none() || o.key == l.key)
                        && l.text.contains(&o.text)
                        && (o.text != l.text || j < i)
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
        let mut seen: std::collections::HashSet<&str, foldhash::fast::FixedState> =
            Default::default();
        for l in &lits {
            let t = l.text.as_bytes();
            for i in 0..t.len() {
                for j in i + 4..=t.len().min(i + 24) {
                    let Ok(sub) = std::str::from_utf8(&t[i..j]) else {
                        continue;
                    };
                    if !seen.insert(sub) {
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
            key: None,
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
pub(super) const MIN_CORE: usize = 4;

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

/// Above this many anchors the search uses fat Teddy (see [`build`]).
const FAT_TEDDY: usize = 20;

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
    finder_index: std::collections::HashMap<(String, bool, Option<String>), u32>,
    /// The keys of scoped finders (deduplicated: each is searched once per event).
    keys: Vec<String>,
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
        let key = (l.text.clone(), l.digits, l.key.clone());
        if let Some(&i) = self.finder_index.get(&key) {
            return i;
        }
        let (c, context) = core(l);
        self.finders.push(Finder {
            core: memchr::memmem::Finder::new(c.as_bytes()).into_owned(),
            context,
            key: l.key.as_ref().map(|k| {
                let i = match self.keys.iter().position(|x| x == k) {
                    Some(i) => i,
                    None => {
                        self.keys.push(k.clone());
                        self.keys.len() - 1
                    }
                };
                i as u32
            }),
        });
        self.finder_lits.push(match &l.key {
            Some(k) => format!("{} in the value of {k}", l.text),
            None => l.text.clone(),
        });
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
                        // The automaton has this literal for another clause: its bit answers,
                        // no search needed.
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
        keys,
        ..
    } = t;
    let mut gated = vec![Vec::new(); pats.len()];
    // Rules no automaton literal opens: the scan always offers them.
    let mut ungated = vec![0u64; rules.len().div_ceil(64)];
    for (pos, r) in rules.iter().enumerate() {
        if r.required.first().is_none_or(|c| c.gate == u32::MAX) {
            ungated[pos / 64] |= 1 << (pos % 64);
        }
    }
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
            let mut slots = Some(Vec::new());
            for s in &r.selections {
                collect_paths(&s.node, &mut paths, &mut keywords);
                collect_slots(&s.node, &mut slots);
            }
            RuleReads {
                required: r.required.clone(),
                paths: paths.into_iter().cloned().collect(),
                whole: keywords,
                feeds: !r.feeds.is_empty(),
                captured: slots,
            }
        })
        .collect();
    // The automaton finds each distinct core once (through its anchor); a match checks the
    // context of each literal with that core.
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
    // Every core is at least MIN_CORE bytes long (shorter ones never enter the automaton).
    let len = cores.iter().map(Vec::len).min()?.min(anchor::ANCHOR);
    let (anchors, anchored): (Vec<Vec<u8>>, Vec<anchor::Anchored>) =
        anchor::choose(&cores, len).into_iter().unzip();
    let restart = anchor::restarts(&anchors);
    // Teddy picks its slim form (8 buckets, 32 bytes a step) up to 32 patterns, but past about
    // 20 its buckets mix so many patterns that the fat form (16 buckets) is faster: measured
    // on audit lines, 28 anchors take ~205 ns a line fat and ~270 ns slim. Fat needs AVX2.
    let packed = |fat: Option<bool>| {
        aho_corasick::packed::Config::new()
            .match_kind(aho_corasick::packed::MatchKind::LeftmostFirst)
            .only_teddy_fat(fat)
            .builder()
            .extend(&anchors)
            .build()
    };
    let fat = (anchors.len() > FAT_TEDDY)
        .then(|| packed(Some(true)))
        .flatten();
    let searcher = match fat.or_else(|| packed(None)) {
        Some(s) => Searcher::Packed(s),
        None => Searcher::Automaton(
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostFirst)
                .build(&anchors)
                .ok()?,
        ),
    };
    Some(Prefilter {
        searcher,
        nlits: pats.len(),
        cores,
        core_lits,
        anchored,
        restart,
        finders,
        finder_lits,
        keys: keys
            .iter()
            .map(|k| memchr::memmem::Finder::new(k.as_bytes()).into_owned())
            .collect(),
        patterns: pats,
        gated,
        ungated,
        rules: reads,
        keep: Vec::new(),
        id: super::next_id(),
        corr: None,
        corr_paths: Vec::new(),
    })
}

pub(super) fn collect_paths<'a>(
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

/// The rule's field paths with their slots, when its values can be captured (see
/// [`super::RuleReads::captured`]): every item's paths interned, no field references.
fn collect_slots(n: &SelNode, out: &mut Option<Vec<(crate::event::FieldPath, u32)>>) {
    let Some(list) = out else {
        return;
    };
    match n {
        SelNode::Item(i) => {
            let refs = i
                .matchers
                .iter()
                .any(|m| matches!(m, Matcher::FieldRef { .. }));
            if refs || i.path_ids.len() != i.paths.len() {
                *out = None;
                return;
            }
            list.extend(i.paths.iter().cloned().zip(i.path_ids.iter().copied()));
        }
        SelNode::And(xs) | SelNode::Or(xs) => xs.iter().for_each(|x| collect_slots(x, out)),
    }
}
