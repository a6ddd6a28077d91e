//! One alert per request: kube-apiserver logs a request at up to four stages under one
//! auditID, and a rule that does not ask for a stage alerts on the first of them only.

use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasher;

/// Bounded memory of the (rule, request) pairs that already alerted: the newest `cap` pairs.
///
/// A pair is kept as a 128-bit keyed hash (two 64-bit hashes under independent random seeds),
/// 32 bytes with its place in the queue instead of about 100 for the strings; that keeps a
/// busy day's pairs in cache and memory flat. A pair is taken for another only if both hashes
/// collide, about 1e-27 for a million pairs, under seeds the input cannot know. (A client that
/// sets the `Audit-ID` header can reuse an auditID outright; the hashes add nothing to that.)
pub struct AlertDedup {
    set: HashSet<u128, foldhash::fast::RandomState>,
    order: VecDeque<u128>,
    cap: usize,
    keys: [foldhash::quality::RandomState; 2],
}

impl AlertDedup {
    /// Remembers at most `cap` pairs (the oldest are forgotten first).
    pub fn new(cap: usize) -> Self {
        AlertDedup {
            set: HashSet::default(),
            order: VecDeque::new(),
            cap: cap.max(1),
            keys: Default::default(),
        }
    }

    /// True the first time rule `rule` alerts on the request `id` (and remembers it).
    pub fn first_time(&mut self, rule: usize, id: &str) -> bool {
        let [a, b] = &self.keys;
        let key = (u128::from(a.hash_one((rule, id))) << 64) | u128::from(b.hash_one((rule, id)));
        if !self.set.insert(key) {
            return false;
        }
        if self.order.len() >= self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.order.push_back(key);
        true
    }

    /// Forgets every pair.
    pub fn clear(&mut self) {
        self.set.clear();
        self.order.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::AlertDedup;

    #[test]
    fn a_pair_alerts_once_until_it_is_forgotten() {
        let mut d = AlertDedup::new(3);
        assert!(d.first_time(0, "a"));
        assert!(!d.first_time(0, "a"));
        // Another rule, or another request, is another pair.
        assert!(d.first_time(1, "a"));
        assert!(d.first_time(0, "b"));
        assert!(!d.first_time(1, "a"));
        // A fourth pair pushes out the oldest, (0, "a").
        assert!(d.first_time(0, "c"));
        assert!(d.first_time(0, "a"));
        assert!(!d.first_time(0, "c"));
        assert!(!d.first_time(0, "b"));
    }

    #[test]
    fn many_distinct_pairs_are_all_new() {
        let mut d = AlertDedup::new(1 << 20);
        for i in 0..200_000 {
            assert!(d.first_time(i % 7, &format!("id-{i}")));
        }
        for i in 0..200_000 {
            assert!(!d.first_time(i % 7, &format!("id-{i}")));
        }
    }
}
