//! Field dispatch: per dataset, the field that most rules require to equal one of a few plain
//! strings (`objectRef.resource` for Kubernetes) is read once per event, and only the rules
//! indexed under its value — plus the rules without such a requirement — are evaluated.
//!
//! Sound by construction: a rule is indexed on a field only when every way its condition can
//! be true needs a value of that field equal (case-insensitively, as the matcher compares) to
//! one of the indexed strings; the lookup key is the event value folded the same way.

use std::collections::HashMap;

use crate::compile::{CompiledRule, Cond, SelNode};
use crate::eval::Cx;
use crate::event::{with_text, FieldPath};
use crate::pattern;
use crate::value::Matcher;

#[derive(Debug)]
pub(crate) struct Dispatch {
    pub path: FieldPath,
    pub path_id: u32,
    /// Folded value -> positions (in the dataset's rule list) of the rules indexed under it.
    /// Fixed by the rules, only looked up per event: a fixed-seed fast hash is safe.
    index: HashMap<String, Vec<u32>, foldhash::fast::FixedState>,
    /// Per rule position: whether it is indexed (else it is always evaluated).
    pub anchored: Vec<bool>,
}

/// (path text, path id, folded keys)
type Anchor = (String, u32, Vec<String>);

fn item_anchor(n: &SelNode) -> Vec<Anchor> {
    match n {
        SelNode::Item(i) => {
            if i.negate || i.exists.is_some() || i.all || i.paths.len() != 1 {
                return vec![];
            }
            let mut keys = Vec::new();
            for m in &i.matchers {
                match m {
                    Matcher::Str(p) => match p.exact() {
                        Some(e) if !p.is_cased() => keys.push(e.to_string()),
                        _ => return vec![],
                    },
                    Matcher::StrSet(s) => match s.exact_only() {
                        Some(e) => keys.extend(e.iter().cloned()),
                        None => return vec![],
                    },
                    _ => return vec![],
                }
            }
            if keys.is_empty() {
                return vec![];
            }
            vec![(i.paths[0].text.clone(), i.path_ids[0], keys)]
        }
        SelNode::And(xs) => xs.iter().flat_map(item_anchor).collect(),
        SelNode::Or(xs) => union(xs.iter().map(item_anchor).collect()),
    }
}

/// Anchors every alternative shares (same path): keys united.
fn union(alts: Vec<Vec<Anchor>>) -> Vec<Anchor> {
    let Some((first, rest)) = alts.split_first() else {
        return vec![];
    };
    let mut out = Vec::new();
    for (p, id, keys) in first {
        let mut all = keys.clone();
        let mut ok = true;
        for alt in rest {
            match alt.iter().find(|(q, _, _)| q == p) {
                Some((_, _, k)) => all.extend(k.iter().cloned()),
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            all.sort();
            all.dedup();
            out.push((p.clone(), *id, all));
        }
    }
    out
}

fn cond_anchor(r: &CompiledRule, c: &Cond) -> Vec<Anchor> {
    match c {
        Cond::Sel(i) => item_anchor(&r.selections[*i].node),
        Cond::Not(_) => vec![],
        Cond::And(xs) => xs.iter().flat_map(|x| cond_anchor(r, x)).collect(),
        Cond::Or(xs) => union(xs.iter().map(|x| cond_anchor(r, x)).collect()),
        Cond::Of {
            min: None, sels, ..
        } => sels
            .iter()
            .flat_map(|&s| item_anchor(&r.selections[s].node))
            .collect(),
        Cond::Of { sels, .. } => union(
            sels.iter()
                .map(|&s| item_anchor(&r.selections[s].node))
                .collect(),
        ),
    }
}

pub(crate) fn build(rules: &[CompiledRule]) -> Option<Dispatch> {
    let anchors: Vec<Vec<Anchor>> = rules.iter().map(|r| cond_anchor(r, &r.condition)).collect();
    // The path anchoring the most rules (then the most distinct values) wins.
    let mut by_path: HashMap<(String, u32), (usize, std::collections::HashSet<String>)> =
        HashMap::new();
    for a in &anchors {
        let mut seen = std::collections::HashSet::new();
        for (p, id, keys) in a {
            if seen.insert(p.clone()) {
                let e = by_path.entry((p.clone(), *id)).or_default();
                e.0 += 1;
                e.1.extend(keys.iter().cloned());
            }
        }
    }
    let ((path, path_id), (n, _)) = by_path
        .into_iter()
        .max_by_key(|((p, _), (n, keys))| (*n, keys.len(), std::cmp::Reverse(p.clone())))?;
    if n < 2 {
        return None;
    }
    let mut index: HashMap<String, Vec<u32>, foldhash::fast::FixedState> = HashMap::default();
    let mut anchored = vec![false; rules.len()];
    for (pos, a) in anchors.iter().enumerate() {
        // With several anchors on the path (an AND of two), the smallest key set is tightest.
        if let Some((_, _, keys)) = a
            .iter()
            .filter(|(p, _, _)| *p == path)
            .min_by_key(|(_, _, k)| k.len())
        {
            anchored[pos] = true;
            for k in keys {
                index.entry(k.clone()).or_default().push(pos as u32);
            }
        }
    }
    Some(Dispatch {
        path: FieldPath::new(&path),
        path_id,
        index,
        anchored,
    })
}

/// Rule positions selected for one event, as a bit set.
pub(crate) struct Selected {
    bits: Vec<u64>,
}

impl Selected {
    pub(crate) fn contains(&self, pos: usize) -> bool {
        self.bits
            .get(pos / 64)
            .is_some_and(|w| w & (1 << (pos % 64)) != 0)
    }
}

impl Dispatch {
    /// The indexed rules whose key the event's value has.
    pub(crate) fn select(&self, cx: &Cx) -> Selected {
        let mut bits = vec![0u64; self.anchored.len().div_ceil(64)];
        cx.values_of(self.path_id, &self.path, &mut |v| {
            with_text(v, |s| {
                if let Some(rs) = self.index.get(pattern::fold(s).as_ref()) {
                    for &r in rs {
                        bits[(r / 64) as usize] |= 1 << (r % 64);
                    }
                }
            });
            false
        });
        Selected { bits }
    }
}
