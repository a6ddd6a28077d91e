//! Evaluating compiled rules on events.

use serde_json::Value;

use crate::compile::{CompiledRule, Cond, Item, RuleSet, SelNode};
use crate::correlation::{CorrelationAlert, CorrelationState};
use crate::event::{visit_leaves, Event};
use crate::prefilter::Reading;
use crate::value::Matcher;

/// A detection rule that matched an event.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Match {
    /// Index into [`RuleSet::rules`].
    pub rule: usize,
    /// The fields and event values that made the rule's selections true (Sigma field names;
    /// for keyword searches, the path of the event value that matched). Empty for a rule that
    /// only feeds correlations ([`crate::RuleInfo::alerts`] false) unless correlations keep
    /// their events' fields ([`crate::Limits::keep_matched`]).
    pub matched: Vec<(String, Value)>,
}

/// How many values a field path reached in the current event (cached per event).
#[derive(Clone, Copy)]
enum Slot<'v> {
    Unknown,
    Zero,
    One(&'v Value),
    Many,
}

const CACHE_SLOTS: usize = 256;

/// One event under evaluation: its document and the values of the dataset's interned field
/// paths, resolved at most once per event, or those values captured while parsing (see
/// [`crate::prefilter::Reading`]). (The cache is a vector sized to the dataset's paths: a
/// fixed array of every possible slot cost more to clear and move than to allocate.)
pub(crate) struct Cx<'v> {
    /// With captured values, an empty document: rules given captured values read nothing
    /// else (no keywords, no field references).
    pub doc: &'v Value,
    captured: Option<&'v crate::prefilter::Captured>,
    slots: std::cell::RefCell<Vec<Slot<'v>>>,
    /// Whether the root object has a key containing a dot (ECS-style flat keys).
    root_dotted: std::cell::OnceCell<bool>,
}

static NO_DOC: Value = Value::Null;

impl<'v> Cx<'v> {
    /// `paths`: how many interned paths the dataset has (the cache grows past it if needed).
    pub(crate) fn new(doc: &'v Value, paths: usize) -> Self {
        Cx {
            doc,
            captured: None,
            slots: std::cell::RefCell::new(vec![Slot::Unknown; paths.min(CACHE_SLOTS)]),
            root_dotted: std::cell::OnceCell::new(),
        }
    }

    /// Over values captured by slot (no cache: they are at hand).
    pub(crate) fn captured(captured: &'v crate::prefilter::Captured) -> Self {
        Cx {
            doc: &NO_DOC,
            captured: Some(captured),
            slots: std::cell::RefCell::new(Vec::new()),
            root_dotted: std::cell::OnceCell::new(),
        }
    }

    fn dotted(&self) -> bool {
        *self.root_dotted.get_or_init(|| {
            self.doc
                .as_object()
                .is_none_or(|m| m.keys().any(|k| k.bytes().any(|b| b == b'.')))
        })
    }

    fn slot(&self, id: u32, p: &crate::event::FieldPath) -> Slot<'v> {
        let id = id as usize;
        if id >= CACHE_SLOTS {
            return Slot::Many;
        }
        let cached = self.slots.borrow().get(id).copied();
        match cached {
            Some(Slot::Unknown) => {}
            Some(s) => return s,
            None => self.slots.borrow_mut().resize(id + 1, Slot::Unknown),
        }
        let mut first = None;
        let mut n = 0;
        p.any_hinted(self.doc, self.dotted(), &mut |v| {
            n += 1;
            if n == 1 {
                first = Some(v);
            }
            n >= 2
        });
        let s = match (n, first) {
            (0, _) => Slot::Zero,
            (1, Some(v)) => Slot::One(v),
            _ => Slot::Many,
        };
        self.slots.borrow_mut()[id] = s;
        s
    }

    /// Calls `f` with every value of an interned path (cached, or captured).
    pub(crate) fn values_of(
        &self,
        id: u32,
        p: &crate::event::FieldPath,
        f: &mut dyn FnMut(&'v Value) -> bool,
    ) -> bool {
        if let Some(c) = self.captured {
            return c.values(id).any(f);
        }
        match self.slot(id, p) {
            Slot::Zero => false,
            Slot::One(v) => f(v),
            Slot::Many | Slot::Unknown => p.any_hinted(self.doc, self.dotted(), f),
        }
    }
}

impl Item {
    /// Calls `f` with every event value of this item's field (or, for keywords, every scalar).
    fn values<'v>(&self, cx: &Cx<'v>, f: &mut dyn FnMut(&'v Value) -> bool) -> bool {
        if self.paths.is_empty() {
            let mut p = String::new();
            return visit_leaves(cx.doc, &mut p, &mut |_, v| f(v));
        }
        for (i, p) in self.paths.iter().enumerate() {
            let id = self.path_ids.get(i).copied().unwrap_or(u32::MAX);
            if cx.values_of(id, p, f) {
                return true;
            }
        }
        false
    }

    fn matcher_hits(&self, m: &Matcher, cx: &Cx) -> bool {
        match m {
            Matcher::Null => {
                let mut seen = false;
                let null = self.values(cx, &mut |v| {
                    seen = true;
                    v.is_null()
                });
                null || !seen
            }
            m => self.values(cx, &mut |v| m.matches(v, cx.doc)),
        }
    }

    /// The item's truth value before `neq` negation.
    pub(crate) fn eval_positive(&self, cx: &Cx) -> bool {
        if let Some(want) = self.exists {
            let exists = self.values(cx, &mut |_| true);
            return exists == want;
        }
        if self.all {
            self.matchers.iter().all(|m| self.matcher_hits(m, cx))
        } else if self.matchers.len() > 1
            && !self.matchers.iter().any(|m| matches!(m, Matcher::Null))
        {
            // One pass over the field's values, trying every matcher.
            self.values(cx, &mut |v| {
                self.matchers.iter().any(|m| m.matches(v, cx.doc))
            })
        } else {
            self.matchers.iter().any(|m| self.matcher_hits(m, cx))
        }
    }

    pub(crate) fn eval(&self, cx: &Cx) -> bool {
        self.eval_positive(cx) != self.negate
    }

    /// The first event value that satisfies the item, for alert output.
    pub(crate) fn witness(&self, cx: &Cx) -> Option<(String, Value)> {
        let doc = cx.doc;
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
        // The values the evaluation resolved (cached per event), in the same order.
        self.values(cx, &mut |v| {
            if any || self.matchers.iter().any(|m| m.matches(v, doc)) {
                found = Some(v.clone());
                true
            } else {
                false
            }
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
    pub(crate) fn eval(&self, cx: &Cx) -> bool {
        match self {
            SelNode::Item(i) => i.eval(cx),
            SelNode::And(xs) => xs.iter().all(|x| x.eval(cx)),
            SelNode::Or(xs) => xs.iter().any(|x| x.eval(cx)),
        }
    }

    fn witnesses(&self, cx: &Cx, out: &mut Vec<(String, Value)>) {
        match self {
            SelNode::Item(i) => {
                if let Some(w) = i.witness(cx) {
                    if !out.contains(&w) {
                        out.push(w);
                    }
                }
            }
            SelNode::And(xs) => xs.iter().for_each(|x| x.witnesses(cx, out)),
            SelNode::Or(xs) => {
                if let Some(x) = xs.iter().find(|x| x.eval(cx)) {
                    x.witnesses(cx, out)
                }
            }
        }
    }
}

impl CompiledRule {
    pub(crate) fn eval_cond(&self, c: &Cond, cx: &Cx) -> bool {
        match c {
            Cond::Sel(i) => self.selections[*i].node.eval(cx),
            Cond::Not(e) => !self.eval_cond(e, cx),
            Cond::And(xs) => xs.iter().all(|x| self.eval_cond(x, cx)),
            Cond::Or(xs) => xs.iter().any(|x| self.eval_cond(x, cx)),
            Cond::Of { min, sels, .. } => match min {
                None => sels.iter().all(|&s| self.selections[s].node.eval(cx)),
                Some(n) => {
                    let mut hits = 0;
                    for &s in sels {
                        if self.selections[s].node.eval(cx) {
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

    pub(crate) fn eval(&self, cx: &Cx) -> bool {
        self.eval_cond(&self.condition, cx)
    }

    /// Field values of the selections that made a true condition true (negated parts excluded).
    pub(crate) fn matched(&self, cx: &Cx) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        self.collect(&self.condition, cx, &mut out);
        out
    }

    fn collect(&self, c: &Cond, cx: &Cx, out: &mut Vec<(String, Value)>) {
        match c {
            Cond::Sel(i) => self.selections[*i].node.witnesses(cx, out),
            Cond::Not(_) => {}
            Cond::And(xs) => xs.iter().for_each(|x| self.collect(x, cx, out)),
            Cond::Or(xs) => {
                for x in xs {
                    if self.eval_cond(x, cx) {
                        self.collect(x, cx, out);
                    }
                }
            }
            Cond::Of { sels, .. } => {
                for &s in sels {
                    if self.selections[s].node.eval(cx) {
                        self.selections[s].node.witnesses(cx, out);
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
        self.run(ev, false, out);
    }

    /// Like [`RuleSet::evaluate`], and also feeds correlations: matches of the rules they
    /// reference update `state`, and correlations whose condition is met append alerts.
    ///
    /// The same as [`RuleSet::matches`] (with correlations) followed by
    /// [`RuleSet::correlate`], keeping the matches of the rules that alert on their own.
    pub fn process(
        &self,
        ev: &Event,
        state: &mut CorrelationState,
        out: &mut Vec<Match>,
        alerts: &mut Vec<CorrelationAlert>,
    ) {
        let start = out.len();
        self.run(ev, !self.correlations.is_empty(), out);
        self.correlate(ev, &out[start..], state, alerts);
        let mut i = 0;
        // Matches of rules that only feed correlations are not reported.
        out.retain(|m| {
            i += 1;
            i <= start || self.rules[m.rule].alerts
        });
    }

    /// The stateless half of [`RuleSet::process`], safe to run on many events in parallel:
    /// appends a [`Match`] for every rule that matched, in evaluation order, including (with
    /// `correlations`) the rules that only feed correlations ([`crate::RuleInfo::alerts`] false).
    /// Feed the result, in event order, to [`RuleSet::correlate`].
    pub fn matches(&self, ev: &Event, correlations: bool, out: &mut Vec<Match>) {
        self.run(ev, correlations && !self.correlations.is_empty(), out);
    }

    /// [`RuleSet::matches`], also handing over the document parsed from the event's text for
    /// the rules, when some rule matched: it holds the fields of [`RuleSet::keep_fields`] and,
    /// when some match feeds a correlation, what correlations read (as
    /// [`RuleSet::correlation_doc`] does), with their values as in the whole document, so it
    /// can be handed to [`RuleSet::correlate`] in place of the whole document. It holds the
    /// fields the rules read only when their values could not be captured while parsing.
    /// `None`: nothing matched, the event came parsed, the whole document was parsed (`ev`
    /// holds it), or the values were captured and nothing else is kept.
    pub fn matches_doc(
        &self,
        ev: &Event,
        correlations: bool,
        out: &mut Vec<Match>,
    ) -> Option<Value> {
        self.run(ev, correlations && !self.correlations.is_empty(), out)
    }

    /// Makes the documents [`RuleSet::matches_doc`] gives keep these field paths of every
    /// dataset's events too (e.g. `auditID`).
    pub fn keep_fields(&mut self, paths: &[&str]) {
        let paths: Vec<crate::event::FieldPath> = paths
            .iter()
            .map(|p| crate::event::FieldPath::new(p))
            .collect();
        for ds in &mut self.datasets {
            if let Some(pf) = ds.prefilter.as_mut() {
                pf.keep(&paths);
            }
        }
    }

    /// The event's text parsed down to what correlations read from its dataset (event time,
    /// id, group-by and value fields, with their values as in the whole document): enough for
    /// [`RuleSet::correlate`] in place of the whole document. `None` when the event has no
    /// text, no correlation reads its dataset, or the text cannot be parsed down (then parse
    /// it whole).
    pub fn correlation_doc(&self, ev: &Event) -> Option<Value> {
        let ds = &self.datasets[self.dataset_index(ev.dataset())?];
        ds.prefilter.as_ref()?.correlation_doc(ev.raw()?)
    }

    /// Whether matches of detection rule `rule` feed a correlation (then
    /// [`RuleSet::correlate`] reads the event's document).
    pub fn feeds_correlation(&self, rule: usize) -> bool {
        self.datasets.iter().any(|ds| {
            ds.rules
                .binary_search_by_key(&rule, |cr| cr.rule)
                .is_ok_and(|pos| !ds.rules[pos].feeds.is_empty())
        })
    }

    /// The stateful half of [`RuleSet::process`]: `matches` (from [`RuleSet::matches`] on the
    /// same event) update the correlations they feed, then buffered matches are released up to
    /// the event's time. Events must come in the order [`RuleSet::process`] would see them.
    /// `ev` needs its document only when some match feeds a correlation.
    pub fn correlate(
        &self,
        ev: &Event,
        matches: &[Match],
        state: &mut CorrelationState,
        alerts: &mut Vec<CorrelationAlert>,
    ) {
        if self.correlations.is_empty() {
            return;
        }
        if let Some(di) = self.dataset_index(ev.dataset()) {
            let ds = &self.datasets[di];
            for m in matches {
                // Rules are compiled in rule order: a binary search finds the match's rule.
                let Ok(pos) = ds.rules.binary_search_by_key(&m.rule, |cr| cr.rule) else {
                    continue;
                };
                let cr = &ds.rules[pos];
                if cr.feeds.is_empty() {
                    continue;
                }
                // Correlations read fields of their own: from the whole document.
                let Some(doc) = ev.doc() else {
                    continue;
                };
                for &c in &cr.feeds {
                    self.correlations[c].update(
                        state,
                        &self.limits,
                        di,
                        ds,
                        ev,
                        doc,
                        cr.rule,
                        &m.matched,
                        alerts,
                    );
                }
            }
        }
        self.advance_correlations(ev, state, alerts);
    }

    /// Appends the matches; gives the pruned document when some rule matched on it (see
    /// [`RuleSet::matches_doc`]).
    fn run(&self, ev: &Event, correlations: bool, out: &mut Vec<Match>) -> Option<Value> {
        let di = self.dataset_index(ev.dataset())?;
        let ds = &self.datasets[di];
        if ds.rules.is_empty() {
            return None;
        }
        let start = out.len();
        let mut scan = match (&ds.prefilter, ev.raw()) {
            (Some(p), Some(raw)) => Some(p.scan(raw)),
            _ => None,
        };
        // The rule loop borrows the scan's document; it is handed over after.
        {
            let mut cx: Option<Cx> = None;
            // The whole document, for rules that read more than their fields.
            let mut whole: Option<Cx> = None;
            let mut selected = None;
            // Only the rules the prefilter can let through are visited (in order).
            let (mut offered, mut every);
            let positions: &mut dyn Iterator<Item = usize> = match &scan {
                Some(s) => {
                    offered = s.candidates();
                    &mut offered
                }
                None => {
                    every = 0..ds.rules.len();
                    &mut every
                }
            };
            for pos in positions {
                let cr = &ds.rules[pos];
                let info = &self.rules[cr.rule];
                let wanted = info.alerts || (correlations && !cr.feeds.is_empty());
                if !wanted {
                    continue;
                }
                if let Some(s) = &scan {
                    if !s.may_match_at(pos, &cr.required) {
                        continue;
                    }
                }
                if cx.is_none() {
                    // Parsed down to the fields the rules read (see `prefilter::Scan::read`).
                    let read = match &scan {
                        Some(s) => s.read(ev),
                        None => ev.doc().map(Reading::Doc),
                    };
                    cx = Some(match read {
                        Some(Reading::Doc(doc)) => Cx::new(doc, ds.paths),
                        Some(Reading::Captured(c)) => Cx::captured(c),
                        None => return None,
                    });
                }
                let mut cx = cx.as_ref()?;
                if scan.as_ref().is_some_and(|s| s.needs_whole(pos)) {
                    if whole.is_none() {
                        match ev.doc() {
                            Some(doc) => whole = Some(Cx::new(doc, ds.paths)),
                            None => return None,
                        }
                    }
                    if let Some(w) = whole.as_ref() {
                        cx = w;
                    }
                }
                if let Some(d) = &ds.dispatch {
                    if d.anchored[pos]
                        && !selected.get_or_insert_with(|| d.select(cx)).contains(pos)
                    {
                        continue;
                    }
                }
                if !cr.eval(cx) {
                    continue;
                }
                // A rule that only feeds correlations shows its fields nowhere unless
                // correlations keep them: finding them would be wasted.
                let matched = if info.alerts || self.limits.keep_matched {
                    cr.matched(cx)
                } else {
                    Vec::new()
                };
                out.push(Match {
                    rule: cr.rule,
                    matched,
                });
            }
        }
        if out.len() == start {
            return None;
        }
        scan.as_mut().and_then(|s| s.take_pruned())
    }
}
