//! Evaluating compiled rules on events.

use serde_json::Value;

use crate::compile::{CompiledRule, Cond, Item, RuleSet, SelNode};
use crate::correlation::{CorrelationAlert, CorrelationState};
use crate::event::{visit_leaves, Event};
use crate::value::Matcher;

/// A detection rule that matched an event.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Match {
    /// Index into [`RuleSet::rules`].
    pub rule: usize,
    /// The fields and event values that made the rule's selections true (Sigma field names;
    /// for keyword searches, the path of the event value that matched).
    pub matched: Vec<(String, Value)>,
}

impl Item {
    /// Calls `f` with every event value of this item's field (or, for keywords, every scalar).
    fn values<'v>(&self, doc: &'v Value, f: &mut dyn FnMut(&'v Value) -> bool) -> bool {
        if self.paths.is_empty() {
            let mut p = String::new();
            return visit_leaves(doc, &mut p, &mut |_, v| f(v));
        }
        self.paths.iter().any(|p| p.any(doc, f))
    }

    fn matcher_hits(&self, m: &Matcher, doc: &Value) -> bool {
        match m {
            Matcher::Null => {
                let mut seen = false;
                let null = self.values(doc, &mut |v| {
                    seen = true;
                    v.is_null()
                });
                null || !seen
            }
            m => self.values(doc, &mut |v| m.matches(v, doc)),
        }
    }

    /// The item's truth value before `neq` negation.
    pub(crate) fn eval_positive(&self, doc: &Value) -> bool {
        if let Some(want) = self.exists {
            let exists = self.paths.iter().any(|p| p.exists(doc));
            return exists == want;
        }
        if self.all {
            self.matchers.iter().all(|m| self.matcher_hits(m, doc))
        } else if self.matchers.len() > 1
            && !self.matchers.iter().any(|m| matches!(m, Matcher::Null))
        {
            // One pass over the field's values, trying every matcher.
            self.values(doc, &mut |v| {
                self.matchers.iter().any(|m| m.matches(v, doc))
            })
        } else {
            self.matchers.iter().any(|m| self.matcher_hits(m, doc))
        }
    }

    pub(crate) fn eval(&self, doc: &Value) -> bool {
        self.eval_positive(doc) != self.negate
    }

    /// The first event value that satisfies the item, for alert output.
    pub(crate) fn witness(&self, doc: &Value) -> Option<(String, Value)> {
        if self.negate || self.exists == Some(false) {
            return None;
        }
        if self.paths.is_empty() {
            let mut found = None;
            let mut p = String::new();
            visit_leaves(doc, &mut p, &mut |path, v| {
                if self.matchers.iter().any(|m| m.matches(v, doc)) {
                    found = Some((path.to_string(), v.clone()));
                    true
                } else {
                    false
                }
            });
            return found;
        }
        let mut found = None;
        let any = self.exists == Some(true);
        self.paths.iter().any(|p| {
            p.any(doc, &mut |v| {
                if any || self.matchers.iter().any(|m| m.matches(v, doc)) {
                    found = Some(v.clone());
                    true
                } else {
                    false
                }
            })
        });
        match found {
            Some(v) => Some((self.field.clone(), v)),
            None if self.matchers.iter().any(|m| matches!(m, Matcher::Null)) => {
                Some((self.field.clone(), Value::Null))
            }
            None => None,
        }
    }
}

impl SelNode {
    pub(crate) fn eval(&self, doc: &Value) -> bool {
        match self {
            SelNode::Item(i) => i.eval(doc),
            SelNode::And(xs) => xs.iter().all(|x| x.eval(doc)),
            SelNode::Or(xs) => xs.iter().any(|x| x.eval(doc)),
        }
    }

    fn witnesses(&self, doc: &Value, out: &mut Vec<(String, Value)>) {
        match self {
            SelNode::Item(i) => {
                if let Some(w) = i.witness(doc) {
                    if !out.contains(&w) {
                        out.push(w);
                    }
                }
            }
            SelNode::And(xs) => xs.iter().for_each(|x| x.witnesses(doc, out)),
            SelNode::Or(xs) => {
                if let Some(x) = xs.iter().find(|x| x.eval(doc)) {
                    x.witnesses(doc, out)
                }
            }
        }
    }
}

impl CompiledRule {
    pub(crate) fn eval_cond(&self, c: &Cond, doc: &Value) -> bool {
        match c {
            Cond::Sel(i) => self.selections[*i].node.eval(doc),
            Cond::Not(e) => !self.eval_cond(e, doc),
            Cond::And(xs) => xs.iter().all(|x| self.eval_cond(x, doc)),
            Cond::Or(xs) => xs.iter().any(|x| self.eval_cond(x, doc)),
            Cond::Of { min, sels, .. } => match min {
                None => sels.iter().all(|&s| self.selections[s].node.eval(doc)),
                Some(n) => {
                    let mut hits = 0;
                    for &s in sels {
                        if self.selections[s].node.eval(doc) {
                            hits += 1;
                            if hits >= *n {
                                return true;
                            }
                        }
                    }
                    false
                }
            },
        }
    }

    pub(crate) fn eval(&self, doc: &Value) -> bool {
        self.eval_cond(&self.condition, doc)
    }

    /// Field values of the selections that made a true condition true (negated parts excluded).
    pub(crate) fn matched(&self, doc: &Value) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        self.collect(&self.condition, doc, &mut out);
        out
    }

    fn collect(&self, c: &Cond, doc: &Value, out: &mut Vec<(String, Value)>) {
        match c {
            Cond::Sel(i) => self.selections[*i].node.witnesses(doc, out),
            Cond::Not(_) => {}
            Cond::And(xs) => xs.iter().for_each(|x| self.collect(x, doc, out)),
            Cond::Or(xs) => {
                for x in xs {
                    if self.eval_cond(x, doc) {
                        self.collect(x, doc, out);
                    }
                }
            }
            Cond::Of { sels, .. } => {
                for &s in sels {
                    if self.selections[s].node.eval(doc) {
                        self.selections[s].node.witnesses(doc, out);
                    }
                }
            }
        }
    }
}

impl RuleSet {
    /// Evaluates every rule that reads the event's dataset and appends a [`Match`] for each
    /// rule that matched and reports on its own ([`crate::RuleInfo::alerts`]). Stateless: rules
    /// that only feed correlations are not evaluated here (see [`RuleSet::process`]).
    pub fn evaluate(&self, ev: &Event, out: &mut Vec<Match>) {
        self.run(ev, None, out, &mut Vec::new());
    }

    /// Like [`RuleSet::evaluate`], and also feeds correlations: matches of the rules they
    /// reference update `state`, and correlations whose condition is met append alerts.
    pub fn process(
        &self,
        ev: &Event,
        state: &mut CorrelationState,
        out: &mut Vec<Match>,
        alerts: &mut Vec<CorrelationAlert>,
    ) {
        self.run(ev, Some(state), out, alerts);
    }

    fn run(
        &self,
        ev: &Event,
        mut state: Option<&mut CorrelationState>,
        out: &mut Vec<Match>,
        alerts: &mut Vec<CorrelationAlert>,
    ) {
        let Some(di) = self.dataset_index(ev.dataset()) else {
            return;
        };
        let ds = &self.datasets[di];
        if ds.rules.is_empty() {
            return;
        }
        let scan = match (&ds.prefilter, ev.raw()) {
            (Some(p), Some(raw)) => Some(p.scan(raw)),
            _ => None,
        };
        for cr in &ds.rules {
            let info = &self.rules[cr.rule];
            let wanted = info.alerts || (state.is_some() && !cr.feeds.is_empty());
            if !wanted {
                continue;
            }
            if let Some(s) = &scan {
                if !s.may_match(&cr.required) {
                    continue;
                }
            }
            let Some(doc) = ev.doc() else {
                return;
            };
            if !cr.eval(doc) {
                continue;
            }
            let matched = cr.matched(doc);
            if let Some(st) = state.as_deref_mut() {
                for &c in &cr.feeds {
                    self.correlations[c].update(
                        st,
                        &self.limits,
                        di,
                        ds,
                        ev,
                        doc,
                        cr.rule,
                        &matched,
                        alerts,
                    );
                }
            }
            if info.alerts {
                out.push(Match {
                    rule: cr.rule,
                    matched,
                });
            }
        }
    }
}
