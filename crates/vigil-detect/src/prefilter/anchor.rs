//! The anchors the automaton searches instead of the literal cores: every core is found
//! through one substring of it of a fixed length (its anchor), and each anchor occurrence is
//! verified against the cores anchored on it.
//!
//! Why: the automaton's SIMD prefilter (Teddy) tests the first four bytes of every pattern, so
//! cores that start like the text around them (`system:`, `nodes"`, `auth...`: in every
//! Kubernetes audit event) make it stop and verify many times per event, and each extra pattern
//! widens its buckets' byte masks. Anchoring each core on a substring rare in audit text, and
//! letting cores share an anchor (`host` for `hostpid"`, `hostipc"`, `hostpath`...), makes
//! fewer patterns with fewer false candidates.
//!
//! Soundness does not depend on the choice: every anchor is a substring of each core anchored
//! on it, at a known offset, so an occurrence of the core contains one of its anchor; the scan
//! reports every anchor occurrence (see the parent module) and checks each core anchored there.
//! The frequencies used to choose are only a speed hint.

use std::collections::HashMap;

/// Every anchor has this length (the shortest core's, at most 4: what Teddy compares), so that
/// no anchor contains another and at most one starts at any position.
pub(super) const ANCHOR: usize = 4;

/// The cores anchored on one anchor: each core's index and the anchor's offset inside it.
pub(super) type Anchored = Vec<(u32, u32)>;

/// Representative Kubernetes audit text (lease renewals, reads by service accounts, watches,
/// a pod create with its body, events, node status, a denied request): which byte sequences
/// are common in audit events. Only a speed hint.
const SAMPLE: &str = include_str!("sample.jsonl");

/// An anchor's cost in sample occurrences: one more pattern in the automaton costs about as
/// much as this many extra candidates over the sample.
const PATTERN_COST: f64 = 2.0;

/// How often each `n`-byte sequence occurs in `text` (the lowercased sample). Keys borrow the
/// text: this runs at every start, where a copy of each window was most of its cost.
fn sample_counts(text: &[u8], n: usize) -> HashMap<&[u8], u32, foldhash::fast::FixedState> {
    let mut counts = HashMap::default();
    for w in text.windows(n) {
        *counts.entry(w).or_insert(0) += 1;
    }
    counts
}

/// The anchors for these cores (lowercase, at least `len` bytes each), each with the cores
/// anchored on it and the offset of the anchor inside each. Greedy set cover: repeatedly the
/// substring of an uncovered core with the lowest (sample occurrences + pattern cost) per core
/// it covers; ties go to the smaller substring bytewise, so the choice is deterministic.
pub(super) fn choose(cores: &[Vec<u8>], len: usize) -> Vec<(Vec<u8>, Anchored)> {
    let sample = SAMPLE.to_ascii_lowercase();
    let counts = sample_counts(sample.as_bytes(), len);
    let mut left: Vec<usize> = (0..cores.len()).collect();
    let mut out: Vec<(Vec<u8>, Anchored)> = Vec::new();
    while !left.is_empty() {
        let mut best: Option<(f64, &[u8])> = None;
        for &i in &left {
            for g in cores[i].windows(len) {
                let covers = left
                    .iter()
                    .filter(|&&j| memchr::memmem::find(&cores[j], g).is_some())
                    .count();
                let seen = counts.get(g).copied().unwrap_or(0) as f64;
                let score = (seen + PATTERN_COST) / covers as f64;
                if best.is_none_or(|(s, b)| score < s || (score == s && g < b)) {
                    best = Some((score, g));
                }
            }
        }
        // Every core left has at least one window: it is at least `len` bytes long.
        let Some((_, g)) = best else {
            unreachable!("cores shorter than the anchor length")
        };
        let g = g.to_vec();
        let mut anchored = Vec::new();
        left.retain(|&j| match memchr::memmem::find(&cores[j], &g) {
            Some(o) => {
                anchored.push((j as u32, o as u32));
                false
            }
            None => true,
        });
        out.push((g, anchored));
    }
    out
}

/// For each anchor, the smallest offset `k >= 1` inside it where another anchor could start
/// (a suffix of it is a prefix of an anchor); its length when none can. Anchors have one
/// length, so an anchor starting inside a match runs past its end.
pub(super) fn restarts(anchors: &[Vec<u8>]) -> Vec<usize> {
    anchors
        .iter()
        .map(|p| {
            (1..p.len())
                .find(|&k| anchors.iter().any(|q| q.starts_with(&p[k..])))
                .unwrap_or(p.len())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_contains_its_anchor() {
        let cores: Vec<Vec<u8>> = ["hostpid\"", "hostipc\"", "hostpath", "secrets\"", "pods\""]
            .iter()
            .map(|c| c.as_bytes().to_vec())
            .collect();
        let anchors = choose(&cores, ANCHOR);
        let mut seen = vec![false; cores.len()];
        for (a, cs) in &anchors {
            assert_eq!(a.len(), ANCHOR);
            for &(c, o) in cs {
                let (c, o) = (c as usize, o as usize);
                assert_eq!(&cores[c][o..o + ANCHOR], &a[..]);
                assert!(!seen[c]);
                seen[c] = true;
            }
        }
        assert!(seen.iter().all(|&s| s));
        // The three `host` cores share one anchor.
        assert!(anchors.iter().any(|(a, cs)| a == b"host" && cs.len() == 3));
    }

    #[test]
    fn restart_where_an_anchor_may_start() {
        let a: Vec<Vec<u8>> = vec![b"abcd".to_vec(), b"cdxy".to_vec(), b"zzzz".to_vec()];
        assert_eq!(restarts(&a), vec![2, 4, 1]);
    }
}
