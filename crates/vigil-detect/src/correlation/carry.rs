//! Carrying correlation state across a rule reload (SIGHUP) or a restart with edited rules.
//!
//! A state refers to rules and correlations by their index in the rule set that made it; a new
//! set may number them differently. [`StateLayout`] names every index (rules by id, else name,
//! else title; correlations by everything that gives their state its meaning: kind, rules,
//! group-by, field, timespan, condition, windowing), so a state is re-indexed onto the new set.
//! A correlation whose definition is unchanged keeps its groups, reorder buffer entries and
//! timers; one that changed, or whose remembered events come from a rule that is gone, starts
//! empty. A brute-force counter therefore survives a reload that only adds a rule.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::{CorrelationSpec, CorrelationState, Ev};
use crate::compile::RuleInfo;
use crate::RuleSet;

/// What the indices of a rule set's correlation state mean.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateLayout {
    pub rules: Vec<String>,
    pub correlations: Vec<String>,
}

/// What [`CorrelationState::carry_over`] kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Carried {
    /// Correlations whose live groups came over.
    pub kept: usize,
    /// Correlations that had live groups and start empty (changed or gone).
    pub reset: usize,
}

fn rule_key(r: &RuleInfo) -> String {
    let name = r.id.as_deref().or(r.name.as_deref()).unwrap_or(&r.title);
    format!("{:?}:{name}", r.kind)
}

fn corr_key(rules: &[RuleInfo], c: &CorrelationSpec) -> String {
    let sources: Vec<(String, bool)> = c
        .sources
        .iter()
        .map(|s| (rule_key(&rules[s.rule]), s.corr.is_some()))
        .collect();
    format!(
        "{}|{:?}|{:?}|{:?}|{:?}|{}|{:?}|{}|{}|{:?}",
        rule_key(&rules[c.rule]),
        c.kind,
        sources,
        c.group_by,
        c.value_field,
        c.timespan_ms,
        c.cond,
        c.percentile,
        c.sliding,
        c.silent,
    )
}

impl RuleSet {
    /// The names of the indices a [`CorrelationState`] of this set uses; save it beside the
    /// state to carry the state over to another set later.
    pub fn state_layout(&self) -> StateLayout {
        StateLayout {
            rules: self.rules.iter().map(rule_key).collect(),
            correlations: self
                .correlations
                .iter()
                .map(|c| corr_key(&self.rules, c))
                .collect(),
        }
    }
}

/// Old index -> new index, by name; a name given twice in either set maps nowhere.
fn index_map(from: &[String], to: &[String]) -> Vec<Option<usize>> {
    let mut new: HashMap<&str, Option<usize>> = HashMap::new();
    for (i, k) in to.iter().enumerate() {
        new.entry(k).and_modify(|v| *v = None).or_insert(Some(i));
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for k in from {
        *seen.entry(k).or_default() += 1;
    }
    from.iter()
        .map(|k| {
            if seen[k.as_str()] > 1 {
                None
            } else {
                new.get(k.as_str()).copied().flatten()
            }
        })
        .collect()
}

impl CorrelationState {
    /// This state (made by a rule set laid out as `from`) re-indexed for `to`.
    pub fn carry_over(self, from: &StateLayout, to: &RuleSet) -> (CorrelationState, Carried) {
        let layout = to.state_layout();
        let rule_map = index_map(&from.rules, &layout.rules);
        let corr_map = index_map(&from.correlations, &layout.correlations);
        let map_rule = |r: usize| rule_map.get(r).copied().flatten();
        let n = to.correlations.len();
        let mut out = CorrelationState {
            groups: vec![HashMap::new(); n],
            swept: vec![i64::MIN; n],
            watermark: self.watermark,
            floor: self.floor,
            seq: self.seq,
            stats: self.stats.clone(),
            ..CorrelationState::default()
        };
        // Re-indexes a remembered event's rule; false when that rule is gone.
        let remap = |ev: &mut Ev| match map_rule(ev.rule as usize) {
            Some(r) => {
                ev.rule = r as u32;
                true
            }
            None => false,
        };
        let mut carried = Carried::default();
        // Old correlation index -> new, for those whose state comes over.
        let mut target = corr_map;
        for (ci, mut groups) in self.groups.into_iter().enumerate() {
            let Some(t) = target.get(ci).copied().flatten() else {
                carried.reset += usize::from(!groups.is_empty());
                continue;
            };
            let mut ok = true;
            for g in groups.values_mut() {
                g.evidence_mut(&mut |ev| ok &= remap(ev));
            }
            if ok {
                carried.kept += usize::from(!groups.is_empty());
                out.groups[t] = groups;
                out.swept[t] = self.swept.get(ci).copied().unwrap_or(i64::MIN);
            } else {
                carried.reset += 1;
                target[ci] = None;
            }
        }
        let new_corr = |ci: usize| target.get(ci).copied().flatten();
        for (k, mut p) in self.pending {
            let (Some(c), Some(r)) = (new_corr(p.corr), map_rule(p.rule)) else {
                continue;
            };
            if p.evidence.iter_mut().all(&remap) {
                p.corr = c;
                p.rule = r;
                out.pending.insert(k, p);
            }
        }
        out.timers = self
            .timers
            .into_iter()
            .filter_map(|(end, ci, key, start)| Some((end, new_corr(ci)?, key, start)))
            .collect::<BTreeSet<_>>();
        (out, carried)
    }
}
