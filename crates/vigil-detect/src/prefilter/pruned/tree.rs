//! The pruning tree: which keys to keep at each object on the way to the paths, and, for
//! captured paths, where their values end up.

use std::collections::{BTreeMap, HashMap};

use crate::event::FieldPath;

/// The keys to keep, as a graph: a node is the set of (path, segment) positions a lookup can be
/// at; its children are the keys that move some position on.
#[derive(Debug, Default)]
pub(crate) struct Tree {
    pub(super) nodes: Vec<Node>,
    /// The captured paths that go on below a whole node (see [`Node::below`]).
    pub(super) below_paths: Vec<FieldPath>,
}

#[derive(Debug, Default)]
pub(super) struct Node {
    /// Keep the whole value (some path ends here).
    pub(super) whole: bool,
    /// The built document holds this node's value: a kept (not captured) path reaches it.
    pub(super) builds: bool,
    /// The slots of the captured paths that end here.
    pub(super) ends: Box<[u32]>,
    /// At a whole node, the captured paths that go on below it: (slot, index into
    /// [`Tree::below_paths`], segment position), resolved in the parsed value.
    pub(super) below: Box<[(u32, u32, u32)]>,
    /// Key -> child node, sorted by key length.
    children: Vec<(Box<str>, u32)>,
    /// For each key length, where its keys start in `children` (one more entry at the end).
    by_len: Vec<u32>,
    /// Per child: the bits (see [`Node::bit`]) of the children through which one of the
    /// captured paths its key leads to can be reached too, its own included: in one object,
    /// two such keys (or the same key twice) make the capture give up, as the path's values
    /// would then depend on which key the lookup prefers (nested over joined) or on which
    /// duplicate wins. Zero for a child without captured paths.
    pub(super) clash: Vec<u128>,
    /// Per child: its bit in the clash masks (`NO_BIT`: it has none; a clash then gives up).
    pub(super) bit: Vec<u8>,
}

pub(super) const NO_BIT: u8 = u8::MAX;

/// How a path is read: kept in the built document, or captured into a slot.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Keep,
    Capture(u32),
}

impl Tree {
    /// The tree for these paths, all kept (none: keep nothing).
    pub(crate) fn new(paths: &[&FieldPath]) -> Tree {
        Tree::with_captures(paths, &[])
    }

    /// The tree that keeps `keep` in the built document and captures the values of each of
    /// `capture` into its slot.
    pub(crate) fn with_captures(keep: &[&FieldPath], capture: &[(&FieldPath, u32)]) -> Tree {
        let mut capture = capture.to_vec();
        capture.sort_by_key(|&(_, s)| s);
        capture.dedup_by_key(|&mut (_, s)| s);
        let all: Vec<(&FieldPath, Kind)> = keep
            .iter()
            .map(|p| (*p, Kind::Keep))
            .chain(capture.iter().map(|&(p, s)| (p, Kind::Capture(s))))
            .collect();
        let segs: Vec<Vec<&str>> = all
            .iter()
            .map(|(p, _)| {
                if p.text.is_empty() {
                    vec![""]
                } else {
                    p.text.split('.').collect()
                }
            })
            .collect();
        let mut tree = Tree::default();
        let mut ids: HashMap<Vec<(usize, usize)>, u32> = HashMap::new();
        let mut below_ids: HashMap<usize, u32> = HashMap::new();
        let start: Vec<(usize, usize)> = (0..segs.len()).map(|p| (p, 0)).collect();
        let mut queue = vec![start.clone()];
        ids.insert(start, 0);
        tree.nodes.push(Node::default());
        while let Some(set) = queue.pop() {
            let id = ids[&set] as usize;
            let mut by_key: BTreeMap<String, Vec<(usize, usize)>> = BTreeMap::new();
            let mut node = Node {
                builds: set.iter().any(|&(p, _)| all[p].1 == Kind::Keep),
                whole: set.iter().any(|&(p, i)| i == segs[p].len()),
                ..Node::default()
            };
            let mut ends = Vec::new();
            let mut below = Vec::new();
            for &(p, i) in &set {
                let s = &segs[p];
                if let Kind::Capture(slot) = all[p].1 {
                    if i == s.len() {
                        ends.push(slot);
                    } else if node.whole {
                        let next = below_ids.len() as u32;
                        let at = *below_ids.entry(p).or_insert(next);
                        if at == next {
                            tree.below_paths.push(all[p].0.clone());
                        }
                        below.push((slot, at, i as u32));
                    }
                }
                if i == s.len() || node.whole {
                    continue;
                }
                for j in i..s.len() {
                    by_key
                        .entry(s[i..=j].join("."))
                        .or_default()
                        .push((p, j + 1));
                }
            }
            ends.sort_unstable();
            ends.dedup();
            node.ends = ends.into();
            node.below = below.into();
            // A whole node keeps everything below it anyway. Per child: its key, its node, and
            // the captured paths it leads to (see `Node::clash`).
            let mut entries: Vec<(Box<str>, u32, Vec<usize>)> = Vec::new();
            for (key, mut next) in by_key {
                next.sort_unstable();
                next.dedup();
                let mut captured: Vec<usize> = next
                    .iter()
                    .filter(|&&(p, _)| matches!(all[p].1, Kind::Capture(_)))
                    .map(|&(p, _)| p)
                    .collect();
                captured.dedup();
                let child = match ids.get(&next) {
                    Some(&c) => c,
                    None => {
                        let c = tree.nodes.len() as u32;
                        tree.nodes.push(Node::default());
                        ids.insert(next.clone(), c);
                        queue.push(next.clone());
                        c
                    }
                };
                entries.push((key.into_boxed_str(), child, captured));
            }
            entries.sort_by_key(|(k, _, _)| k.len());
            let captured: Vec<Vec<usize>> = entries.iter().map(|e| e.2.clone()).collect();
            node.children = entries.into_iter().map(|(k, c, _)| (k, c)).collect();
            let max = node.children.last().map_or(0, |(k, _)| k.len());
            node.by_len = (0..=max + 1)
                .map(|len| node.children.partition_point(|(k, _)| k.len() < len) as u32)
                .collect();
            node.set_clashes(&captured);
            tree.nodes[id] = node;
        }
        tree
    }
}

impl Node {
    /// The child at this key: its index in the node's children, and its node.
    #[inline]
    pub(super) fn child(&self, key: &str) -> Option<(usize, u32)> {
        let n = key.len();
        if n + 1 >= self.by_len.len() {
            return None;
        }
        let (a, b) = (self.by_len[n] as usize, self.by_len[n + 1] as usize);
        self.children[a..b]
            .iter()
            .position(|(k, _)| super::super::same_bytes(k.as_bytes(), key.as_bytes()))
            .map(|i| (a + i, self.children[a + i].1))
    }

    /// Fills [`Node::clash`] and [`Node::bit`], given the captured paths each child leads to
    /// (in the order of `children`).
    fn set_clashes(&mut self, captured: &[Vec<usize>]) {
        // Keys without dots (the nested route, what documents nearly always have) get the
        // first bits.
        let mut order: Vec<usize> = (0..self.children.len())
            .filter(|&c| !captured[c].is_empty())
            .collect();
        order.sort_by_key(|&c| self.children[c].0.contains('.'));
        self.bit = vec![NO_BIT; self.children.len()];
        for (b, &c) in order.iter().take(128).enumerate() {
            self.bit[c] = b as u8;
        }
        self.clash = (0..self.children.len())
            .map(|c| {
                let mut mask = 0u128;
                for (d, ps) in captured.iter().enumerate() {
                    if !captured[c].is_empty()
                        && ps.iter().any(|p| captured[c].contains(p))
                        && self.bit[d] != NO_BIT
                    {
                        mask |= 1 << self.bit[d];
                    }
                }
                // A child with captured paths but no bit clashes with everything: any mask
                // that is not zero stands for it (see the scanner).
                if !captured[c].is_empty() && mask == 0 {
                    mask = u128::MAX;
                }
                mask
            })
            .collect();
    }
}
