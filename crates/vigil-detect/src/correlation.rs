//! Correlations over event time: `event_count` and `value_count` (Sigma correlation rules, and
//! the legacy `| count(...) by ... > N` aggregations, which mean the same).
//!
//! Semantics (per correlation, per group — the values of the `group-by` fields):
//! - Time is event time: the event's explicit time ([`crate::Event::at`]) or the dataset's time
//!   field. Events without a time are not counted.
//! - A condition with only lower bounds (`gt`, `gte`) is checked on every counted event over a
//!   sliding window of `timespan` ending at that event; when it holds, an alert is emitted and the
//!   group starts afresh (one alert per burst, not one per event).
//! - A condition with an upper bound (`lt`, `lte`, `eq`, or a range) can only be decided when the
//!   window is over: the window opens at the group's first event, and is judged when an event of
//!   the same correlation arrives after it closed, or on [`crate::RuleSet::flush`].
//!
//! State is bounded: per group at most `threshold + 1` timestamps (lower-bound conditions) or a
//! counter (upper-bound ones); at most [`Limits::max_groups`] groups per correlation (the least
//! recently seen is evicted, and counted); at most [`Limits::max_events_per_alert`] contributing
//! events are remembered per group. The state is `serde`-serializable for checkpoints.
//!
//! Designed to grow: `CorrKind` gains temporal / temporal_ordered / value_sum / value_avg /
//! value_percentile / value_median, each with its own per-group accumulator in `GroupState`.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compile::DatasetRules;
use crate::condition::CmpOp;
use crate::event::{Event, FieldPath};
use crate::value::parse_time_ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorrKind {
    EventCount,
    ValueCount,
}

/// Bounds on correlation state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub max_groups: usize,
    pub max_events_per_alert: usize,
    /// Cap on distinct values remembered per group for value_count.
    pub max_values_per_group: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_groups: 10_000,
            max_events_per_alert: 16,
            max_values_per_group: 10_000,
        }
    }
}

#[derive(Debug)]
pub(crate) struct CorrelationSpec {
    /// The correlation's own rule index (for alerts).
    pub rule: usize,
    pub kind: CorrKind,
    /// Detection rules feeding it.
    pub sources: Vec<usize>,
    pub group_by: Vec<String>,
    /// Per dataset index: per group-by field, its event paths.
    pub group_paths: HashMap<usize, Vec<Vec<FieldPath>>>,
    pub value_field: Option<String>,
    pub value_paths: HashMap<usize, Vec<Vec<FieldPath>>>,
    pub timespan_ms: i64,
    pub bounds: Vec<(CmpOp, f64)>,
}

/// An event that contributed to a correlation alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContributingEvent {
    /// The detection rule it matched.
    pub rule: usize,
    pub time_ms: i64,
    /// The dataset's id field (`auditID`, Zeek `uid` ...), when present.
    pub id: Option<String>,
    pub matched: Vec<(String, Value)>,
}

/// A correlation whose condition was met.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorrelationAlert {
    /// Index into [`crate::RuleSet::rules`] of the correlation (or legacy aggregation rule).
    pub rule: usize,
    /// The group-by fields and their values.
    pub group: Vec<(String, Value)>,
    /// The event count (event_count) or distinct value count (value_count).
    pub count: u64,
    /// The field whose distinct values were counted (value_count).
    pub field: Option<String>,
    pub first_ms: i64,
    pub last_ms: i64,
    /// The first contributing events (at most `max_events_per_alert`).
    pub events: Vec<ContributingEvent>,
    /// The distinct values counted (value_count), at most `max_events_per_alert` of them.
    pub values: Vec<Value>,
}

/// Per-group accumulator.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct GroupState {
    /// (time, count) runs of counted events, oldest first (lower-bound event_count).
    times: VecDeque<(i64, u32)>,
    /// value -> last time seen (value_count).
    values: BTreeMap<String, (i64, Value)>,
    /// Window start and count (upper-bound conditions).
    window_start: i64,
    count: u64,
    first_ms: i64,
    last_ms: i64,
    group: Vec<(String, Value)>,
    events: VecDeque<ContributingEvent>,
}

/// Mutable state of every correlation of one rule set. Serializable, for checkpoints.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CorrelationState {
    /// correlation index -> group key -> state
    groups: BTreeMap<usize, BTreeMap<String, GroupState>>,
    /// Groups dropped because of `max_groups`.
    pub evicted_groups: u64,
    /// Events that matched a correlated rule but had no usable time.
    pub untimed_events: u64,
}

impl CorrelationState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of live groups, over all correlations.
    pub fn groups(&self) -> usize {
        self.groups.values().map(BTreeMap::len).sum()
    }
}

fn upper_bounded(bounds: &[(CmpOp, f64)]) -> bool {
    bounds
        .iter()
        .any(|(op, _)| matches!(op, CmpOp::Lt | CmpOp::Lte | CmpOp::Eq))
}

fn holds(bounds: &[(CmpOp, f64)], n: u64) -> bool {
    bounds.iter().all(|(op, v)| op.apply(n as f64, *v))
}

/// How many items a lower-bound condition needs before it can hold.
fn needed(bounds: &[(CmpOp, f64)]) -> usize {
    bounds
        .iter()
        .map(|(op, v)| match op {
            CmpOp::Gt => v.floor() as i64 + 1,
            CmpOp::Gte => v.ceil() as i64,
            _ => 0,
        })
        .max()
        .unwrap_or(0)
        .max(1) as usize
}

fn first_text(paths: &[FieldPath], doc: &Value) -> Option<Value> {
    let mut found = None;
    for p in paths {
        if p.any(doc, &mut |v| {
            if v.is_null() {
                false
            } else {
                found = Some(v.clone());
                true
            }
        }) {
            break;
        }
    }
    found
}

fn key_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(crate) fn event_time(ev: &Event, ds: &DatasetRules, doc: &Value) -> Option<i64> {
    if let Some(t) = ev.explicit_time_ms() {
        return Some(t);
    }
    ds.time_paths
        .iter()
        .find_map(|p| first_text(std::slice::from_ref(p), doc).and_then(|v| parse_time_ms(&v)))
}

impl CorrelationSpec {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn update(
        &self,
        state: &mut CorrelationState,
        limits: &Limits,
        di: usize,
        ds: &DatasetRules,
        ev: &Event,
        doc: &Value,
        rule: usize,
        matched: &[(String, Value)],
        alerts: &mut Vec<CorrelationAlert>,
    ) {
        let Some(t) = event_time(ev, ds, doc) else {
            state.untimed_events += 1;
            return;
        };
        // Group key.
        let mut group = Vec::with_capacity(self.group_by.len());
        let paths = self.group_paths.get(&di);
        for (i, name) in self.group_by.iter().enumerate() {
            let v = paths
                .and_then(|p| p.get(i))
                .and_then(|p| first_text(p, doc))
                .unwrap_or(Value::Null);
            group.push((name.clone(), v));
        }
        let value = match self.kind {
            CorrKind::ValueCount => {
                let v = self
                    .value_paths
                    .get(&di)
                    .and_then(|p| p.first())
                    .and_then(|p| first_text(p, doc));
                match v {
                    Some(v) => Some(v),
                    // An event without the counted field adds no value.
                    None => return,
                }
            }
            CorrKind::EventCount => None,
        };
        let key = group
            .iter()
            .map(|(_, v)| key_text(v))
            .collect::<Vec<_>>()
            .join("\u{1f}");
        let groups = state.groups.entry(self.rule).or_default();
        if !groups.contains_key(&key) && groups.len() >= limits.max_groups {
            // Evict the least recently seen group.
            if let Some(old) = groups
                .iter()
                .min_by_key(|(_, g)| g.last_ms)
                .map(|(k, _)| k.clone())
            {
                groups.remove(&old);
                state.evicted_groups += 1;
            }
        }
        let g = groups.entry(key.clone()).or_insert_with(|| GroupState {
            window_start: t,
            first_ms: t,
            last_ms: t,
            group: group.clone(),
            ..Default::default()
        });
        let contributing = ContributingEvent {
            rule,
            time_ms: t,
            id: ds
                .id_path
                .as_ref()
                .and_then(|p| first_text(std::slice::from_ref(p), doc))
                .map(|v| key_text(&v)),
            matched: matched.to_vec(),
        };
        if upper_bounded(&self.bounds) {
            if t > g.window_start + self.timespan_ms {
                // The window is over: judge it, then start a new one with this event.
                let done = std::mem::take(g);
                if let Some(a) = self.judge(&done, limits) {
                    alerts.push(a);
                }
                *g = GroupState {
                    window_start: t,
                    first_ms: t,
                    last_ms: t,
                    group,
                    ..Default::default()
                };
            }
            self.add(g, t, value, contributing, limits);
            return;
        }
        // Lower bounds only: sliding window ending at t.
        self.add(g, t, value, contributing, limits);
        let from = t - self.timespan_ms;
        while g.times.front().is_some_and(|(x, _)| *x < from) {
            g.times.pop_front();
        }
        g.values.retain(|_, (x, _)| *x >= from);
        while g.events.front().is_some_and(|e| e.time_ms < from) {
            g.events.pop_front();
        }
        let n = match self.kind {
            CorrKind::EventCount => g.times.iter().map(|(_, c)| *c as u64).sum(),
            CorrKind::ValueCount => g.values.len() as u64,
        };
        // Keep only what the condition can still need.
        let need = needed(&self.bounds);
        let mut total: u64 = g.times.iter().map(|(_, c)| *c as u64).sum();
        while total > need as u64 {
            if let Some((_, c)) = g.times.front_mut() {
                let drop = (total - need as u64).min(*c as u64) as u32;
                *c -= drop;
                total -= drop as u64;
                if *c == 0 {
                    g.times.pop_front();
                }
            } else {
                break;
            }
        }
        if holds(&self.bounds, n) {
            let mut done = std::mem::take(g);
            done.count = n;
            done.first_ms = done
                .events
                .front()
                .map_or(t, |e| e.time_ms)
                .min(done.times.front().map_or(t, |x| x.0));
            if let Some(a) = self.alert(&done, n, limits) {
                alerts.push(a);
            }
            groups.remove(&key);
        }
    }

    fn add(
        &self,
        g: &mut GroupState,
        t: i64,
        value: Option<Value>,
        ev: ContributingEvent,
        limits: &Limits,
    ) {
        g.count += 1;
        g.last_ms = g.last_ms.max(t);
        g.first_ms = g.first_ms.min(t);
        match g.times.back_mut() {
            Some((x, c)) if *x == t => *c += 1,
            _ => g.times.push_back((t, 1)),
        }
        if let Some(v) = value {
            let k = key_text(&v);
            if g.values.contains_key(&k) || g.values.len() < limits.max_values_per_group {
                g.values.insert(k, (t, v));
            }
        }
        if g.events.len() < limits.max_events_per_alert {
            g.events.push_back(ev);
        } else if !upper_bounded(&self.bounds) {
            // Sliding windows keep the most recent events.
            g.events.pop_front();
            g.events.push_back(ev);
        }
    }

    fn judge(&self, g: &GroupState, limits: &Limits) -> Option<CorrelationAlert> {
        let n = match self.kind {
            CorrKind::EventCount => g.count,
            CorrKind::ValueCount => g.values.len() as u64,
        };
        if holds(&self.bounds, n) {
            self.alert(g, n, limits)
        } else {
            None
        }
    }

    fn alert(&self, g: &GroupState, n: u64, limits: &Limits) -> Option<CorrelationAlert> {
        Some(CorrelationAlert {
            rule: self.rule,
            group: g.group.clone(),
            count: n,
            field: self.value_field.clone(),
            first_ms: g.first_ms,
            last_ms: g.last_ms,
            events: g.events.iter().cloned().collect(),
            values: g
                .values
                .values()
                .take(limits.max_events_per_alert)
                .map(|(_, v)| v.clone())
                .collect(),
        })
    }

    /// Judges every open window of an upper-bounded correlation that ended before `now_ms`.
    pub(crate) fn flush(
        &self,
        state: &mut CorrelationState,
        limits: &Limits,
        now_ms: i64,
        alerts: &mut Vec<CorrelationAlert>,
    ) {
        let Some(groups) = state.groups.get_mut(&self.rule) else {
            return;
        };
        if upper_bounded(&self.bounds) {
            let ended: Vec<String> = groups
                .iter()
                .filter(|(_, g)| g.window_start + self.timespan_ms < now_ms)
                .map(|(k, _)| k.clone())
                .collect();
            for k in ended {
                if let Some(g) = groups.remove(&k) {
                    if let Some(a) = self.judge(&g, limits) {
                        alerts.push(a);
                    }
                }
            }
        } else {
            // Drop groups whose window has fully passed.
            groups.retain(|_, g| g.last_ms + self.timespan_ms >= now_ms);
        }
    }
}

impl crate::RuleSet {
    /// Closes every correlation window that ended before `now_ms` (event time): upper-bounded
    /// conditions (`lt`, `lte`, `eq`) are judged, and idle groups are dropped. Call it when the
    /// input ends (with `i64::MAX`) or periodically with the event-time watermark.
    pub fn flush(
        &self,
        state: &mut CorrelationState,
        now_ms: i64,
        alerts: &mut Vec<CorrelationAlert>,
    ) {
        for c in &self.correlations {
            c.flush(state, &self.limits, now_ms, alerts);
        }
    }
}
