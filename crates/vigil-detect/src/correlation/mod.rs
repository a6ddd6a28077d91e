//! Sigma correlations (specification v2.1) over event time: `event_count`, `value_count`,
//! `temporal`, `temporal_ordered`, `value_sum`, `value_avg`, `value_min`, `value_max`,
//! `value_percentile`, `value_median`; group-by with aliases, correlations over correlations,
//! and the legacy `| count(...) by ... > N` aggregations (and `sum`/`avg`/`min`/`max`), which
//! mean the same.
//!
//! # Semantics
//!
//! - **Time** is event time: the event's explicit time ([`crate::Event::at`]) or the dataset's
//!   time field. Events without a time are counted ([`CorrelationStats::untimed_events`]), not
//!   correlated.
//! - **Order.** Matches enter a reorder buffer and are released in event-time order (ties in
//!   arrival order) once the watermark (the latest event time seen) is
//!   [`Limits::allowed_lateness_ms`] past them. An event later than that is counted in
//!   [`CorrelationStats::late_events`] and not correlated. With no allowed lateness (the
//!   default) matches are released at once.
//! - **Windows are closed intervals**: two events are in one window when their times differ by
//!   at most `timespan` — an event exactly `timespan` after the first is in.
//! - **Sliding windows** for conditions that can only become true as events add up (only `gt` /
//!   `gte` bounds on `event_count`, `value_count`, `value_sum`; temporal types with the default
//!   condition, a count, or an expression without `not`): checked on every released event over
//!   the window ending at it; the alert comes as soon as the condition holds. Threshold types
//!   then stay quiet for that group for one `timespan` (events in it are counted in
//!   [`CorrelationStats::suppressed_events`]) — at most one alert per group per timespan;
//!   temporal types start afresh.
//! - **Anchored windows** for everything else (upper bounds, `eq`, `neq`, ranges, averages,
//!   percentiles, medians, min/max, expressions with `not`): a window opens at a group's first
//!   event, covers `[first, first + timespan]`, and is judged once the release horizon passes
//!   its end (or on [`crate::RuleSet::flush`]); the next event opens the next window.
//! - **Groups** are the values of the `group-by` fields (or aliases) in each event; an event
//!   lacking one of them is counted ([`CorrelationStats::ungrouped_events`]), not correlated —
//!   as `stats ... by` backends drop events with a null group.
//! - **Chains.** A correlation's alert feeds the correlations that reference it, at the time it
//!   was decided (the triggering event's time, or the end of the judged window), with the
//!   group-by values of the alert as its fields.
//!
//! State is bounded: per group, only what the condition can still need (timestamps, distinct
//!   values up to [`Limits::max_values_per_group`], numbers up to
//!   [`Limits::max_items_per_group`]); at most [`Limits::max_groups`] groups per correlation
//!   (expired groups are swept; beyond the cap the least recently seen eighth is evicted and
//!   counted); at most [`Limits::max_pending`] buffered matches. The whole state is `serde`
//!   serializable, for checkpoints.

pub(crate) mod build;
mod cond;
mod group;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use cond::Op;
pub(crate) use cond::{expr_names, parse_expr, Cond};

use crate::compile::DatasetRules;
use crate::event::{Event, FieldPath};
use crate::value::parse_time_ms;
use group::{Fed, Group, Hit, Item};

/// The correlation types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorrKind {
    EventCount,
    ValueCount,
    ValueSum,
    ValueAvg,
    ValueMin,
    ValueMax,
    ValuePercentile,
    ValueMedian,
    Temporal,
    TemporalOrdered,
}

impl CorrKind {
    pub fn parse(s: &str) -> Option<CorrKind> {
        Some(match s {
            "event_count" => CorrKind::EventCount,
            "value_count" => CorrKind::ValueCount,
            "value_sum" => CorrKind::ValueSum,
            "value_avg" => CorrKind::ValueAvg,
            "value_min" => CorrKind::ValueMin,
            "value_max" => CorrKind::ValueMax,
            "value_percentile" => CorrKind::ValuePercentile,
            "value_median" => CorrKind::ValueMedian,
            "temporal" => CorrKind::Temporal,
            "temporal_ordered" => CorrKind::TemporalOrdered,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CorrKind::EventCount => "event_count",
            CorrKind::ValueCount => "value_count",
            CorrKind::ValueSum => "value_sum",
            CorrKind::ValueAvg => "value_avg",
            CorrKind::ValueMin => "value_min",
            CorrKind::ValueMax => "value_max",
            CorrKind::ValuePercentile => "value_percentile",
            CorrKind::ValueMedian => "value_median",
            CorrKind::Temporal => "temporal",
            CorrKind::TemporalOrdered => "temporal_ordered",
        }
    }

    /// Whether the type reads a `field` of each event.
    pub fn needs_field(self) -> bool {
        !matches!(
            self,
            CorrKind::EventCount | CorrKind::Temporal | CorrKind::TemporalOrdered
        )
    }

    /// Whether the type computes a number from a numeric field.
    pub fn numeric(self) -> bool {
        self.needs_field() && self != CorrKind::ValueCount
    }

    pub fn temporal(self) -> bool {
        matches!(self, CorrKind::Temporal | CorrKind::TemporalOrdered)
    }
}

/// Bounds on correlation state, and how late an event may be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Live groups per correlation; beyond it the least recently seen are evicted (counted).
    pub max_groups: usize,
    pub max_events_per_alert: usize,
    /// Distinct values remembered per group (value_count).
    pub max_values_per_group: usize,
    /// Timestamps or numbers remembered per group (value_sum, value_percentile, ...).
    pub max_items_per_group: usize,
    /// How far behind the latest event time an event may arrive and still be correlated in
    /// its place. Correlation alerts wait this long (in event time).
    pub allowed_lateness_ms: i64,
    /// Matches held in the reorder buffer; beyond it the oldest are released early (counted).
    pub max_pending: usize,
    /// Keep each contributing event's matched fields in correlation state, for
    /// [`ContributingEvent::matched`]. Off (the default), alerts name their events by
    /// reference, time and id only, and a group takes far less memory.
    pub keep_matched: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_groups: 100_000,
            max_events_per_alert: 16,
            max_values_per_group: 10_000,
            max_items_per_group: 10_000,
            allowed_lateness_ms: 0,
            max_pending: 1_000_000,
            keep_matched: false,
        }
    }
}

/// A field read by a correlation (a `group-by` entry or the condition's `field`), for one of
/// its sources.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    /// The field name in the source's events (after alias resolution); for a correlation
    /// source, the name of a group-by field of its alerts.
    pub name: String,
    /// `|netN`: reduce an address to its IPv4 /N network (IPv6: /(N+32)).
    pub net: Option<u8>,
    /// Event paths per dataset index (detection sources).
    pub paths: HashMap<usize, Vec<FieldPath>>,
}

/// A rule a correlation references.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// Rule index (into [`crate::RuleSet::rules`]).
    pub rule: usize,
    /// When the source is a correlation: its index in the rule set's correlations.
    pub corr: Option<usize>,
    /// Per group-by entry.
    pub group: Vec<Field>,
    /// The condition's field(s).
    pub value: Vec<Field>,
}

#[derive(Debug)]
pub(crate) struct CorrelationSpec {
    /// The correlation's own rule index (for alerts).
    pub rule: usize,
    /// Its index among the rule set's correlations.
    pub index: usize,
    pub kind: CorrKind,
    pub sources: Vec<Source>,
    /// Group-by entries as written (field or alias names): the keys of an alert's `group`.
    pub group_by: Vec<String>,
    /// The condition's field(s) as written, joined by `,`.
    pub value_field: Option<String>,
    pub timespan_ms: i64,
    pub cond: Cond,
    /// value_percentile's percentile (value_median: 50).
    pub percentile: f64,
    /// Whether windows slide (see the module documentation); else they are anchored.
    pub sliding: bool,
    /// Correlations that reference this one.
    pub feeds: Vec<usize>,
    /// Whether its alerts only feed other correlations (referenced without `generate: true`).
    pub silent: bool,
}

/// An event that contributed to a correlation alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContributingEvent {
    /// The detection rule it matched.
    pub rule: usize,
    pub time_ms: i64,
    /// The dataset's id field (`auditID`, Zeek `uid` ...), when present.
    pub id: Option<String>,
    /// The caller's reference to the event ([`crate::Event::with_ref`]).
    #[serde(default)]
    pub origin: Option<u64>,
    pub matched: Vec<(String, Value)>,
}

/// A contributing event as correlation state keeps it (compact; see [`ContributingEvent`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Ev {
    rule: u32,
    t: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    origin: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<Box<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    matched: Option<Box<[(String, Value)]>>,
}

impl Ev {
    pub(crate) fn time(&self) -> i64 {
        self.t
    }

    fn public(&self) -> ContributingEvent {
        ContributingEvent {
            rule: self.rule as usize,
            time_ms: self.t,
            id: self.id.as_deref().map(str::to_string),
            origin: self.origin,
            matched: self
                .matched
                .as_deref()
                .map(<[_]>::to_vec)
                .unwrap_or_default(),
        }
    }

    fn from_public(e: &ContributingEvent) -> Ev {
        Ev {
            rule: e.rule as u32,
            t: e.time_ms,
            origin: e.origin,
            id: e.id.as_deref().map(Box::from),
            matched: (!e.matched.is_empty()).then(|| e.matched.clone().into_boxed_slice()),
        }
    }
}

/// A correlation whose condition was met.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorrelationAlert {
    /// Index into [`crate::RuleSet::rules`] of the correlation (or legacy aggregation rule).
    pub rule: usize,
    /// The group-by fields (or alias names) and their values.
    pub group: Vec<(String, Value)>,
    /// event_count: events; value_count: distinct values; temporal types: distinct rules seen;
    /// numeric types: the numbers aggregated.
    pub count: u64,
    /// The field whose values were counted or aggregated.
    pub field: Option<String>,
    /// Numeric types: the sum, average, minimum, maximum, percentile or median.
    #[serde(default)]
    pub value: Option<f64>,
    pub first_ms: i64,
    pub last_ms: i64,
    /// Contributing events, oldest first (at most `max_events_per_alert`; for a correlation
    /// over correlations, the events of the inner alerts).
    pub events: Vec<ContributingEvent>,
    /// value_count: the distinct values counted, at most `max_events_per_alert` of them.
    pub values: Vec<Value>,
}

/// Counters of what correlations did not (fully) use. None of these events is dropped
/// silently: each lands in one of these counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CorrelationStats {
    /// Matches of a correlated rule without a usable time.
    pub untimed_events: u64,
    /// Matches lacking a group-by field.
    pub ungrouped_events: u64,
    /// Matches lacking the condition's field (or, for numeric types, with a non-numeric one).
    pub missing_values: u64,
    /// Matches later than the allowed lateness: not correlated.
    pub late_events: u64,
    /// Matches absorbed by a group that alerted less than a timespan before.
    pub suppressed_events: u64,
    /// Groups evicted at the `max_groups` cap.
    pub evicted_groups: u64,
    /// Values, numbers or timestamps not kept at the per-group caps.
    pub dropped_values: u64,
    /// Matches released early because the reorder buffer was full.
    pub forced_releases: u64,
}

/// A match waiting in the reorder buffer.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    corr: usize,
    rule: usize,
    group: Vec<Value>,
    value: Option<Value>,
    evidence: Vec<Ev>,
}

/// Mutable state of every correlation of one rule set. Serializable, for checkpoints; a state
/// only makes sense with the rule set that produced it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CorrelationState {
    /// Per correlation: group key -> group.
    groups: Vec<HashMap<Box<str>, Box<Group>>>,
    #[serde(with = "pairs")]
    pending: BTreeMap<(i64, u64), Pending>,
    /// Anchored windows to judge: (end, correlation, group key, window start).
    timers: BTreeSet<(i64, usize, Box<str>, i64)>,
    /// The latest event time seen.
    watermark: i64,
    /// Events before this time are too late (raised by early releases).
    floor: i64,
    seq: u64,
    /// Per correlation: the release time of its last sweep of expired groups.
    swept: Vec<i64>,
    pub stats: CorrelationStats,
}

impl Default for CorrelationState {
    fn default() -> Self {
        CorrelationState {
            groups: vec![],
            pending: BTreeMap::new(),
            timers: BTreeSet::new(),
            watermark: i64::MIN,
            floor: i64::MIN,
            seq: 0,
            swept: vec![],
            stats: CorrelationStats::default(),
        }
    }
}

mod pairs {
    use super::Pending;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(
        m: &BTreeMap<(i64, u64), Pending>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        m.iter().collect::<Vec<_>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<(i64, u64), Pending>, D::Error> {
        Ok(Vec::<((i64, u64), Pending)>::deserialize(d)?
            .into_iter()
            .collect())
    }
}

impl CorrelationState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of live groups, over all correlations.
    pub fn groups(&self) -> usize {
        self.groups.iter().map(HashMap::len).sum()
    }

    /// Matches waiting in the reorder buffer.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The latest event time seen (ms since the epoch), if any.
    pub fn watermark(&self) -> Option<i64> {
        (self.watermark != i64::MIN).then_some(self.watermark)
    }

    fn horizon(&self, limits: &Limits) -> i64 {
        self.watermark
            .saturating_sub(limits.allowed_lateness_ms.max(0))
            .max(self.floor)
    }

    fn groups_of(&mut self, ci: usize) -> &mut HashMap<Box<str>, Box<Group>> {
        if self.groups.len() <= ci {
            self.groups.resize_with(ci + 1, HashMap::new);
            self.swept.resize(ci + 1, i64::MIN);
        }
        &mut self.groups[ci]
    }
}

pub(crate) fn first_value(paths: &[FieldPath], doc: &Value) -> Option<Value> {
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

pub(crate) fn key_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "\u{0}".into(),
        other => other.to_string(),
    }
}

fn group_key(values: &[Value]) -> String {
    let mut k = String::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            k.push('\u{1f}');
        }
        match v {
            Value::String(s) => k.push_str(s),
            other => k.push_str(&key_text(other)),
        }
    }
    k
}

/// `|netN`: the network of an IP address, as `a.b.0.0/N` (IPv6: /(N+32)).
pub(crate) fn network(v: &Value, bits: u8) -> Option<Value> {
    let text = v.as_str()?;
    let ip: std::net::IpAddr = text.trim().parse().ok()?;
    Some(Value::String(match ip {
        std::net::IpAddr::V4(a) => {
            let bits = bits.min(32);
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            format!("{}/{bits}", std::net::Ipv4Addr::from(u32::from(a) & mask))
        }
        std::net::IpAddr::V6(a) => {
            let bits = (bits as u32 + 32).min(128);
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            format!("{}/{bits}", std::net::Ipv6Addr::from(u128::from(a) & mask))
        }
    }))
}

impl Field {
    fn read_doc(&self, di: usize, doc: &Value) -> Option<Value> {
        let v = first_value(self.paths.get(&di)?, doc)?;
        self.transform(v)
    }

    fn read_group(&self, group: &[(String, Value)]) -> Option<Value> {
        let v = group
            .iter()
            .find(|(n, _)| *n == self.name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_null())?;
        self.transform(v)
    }

    fn transform(&self, v: Value) -> Option<Value> {
        match self.net {
            None => Some(v),
            Some(bits) => network(&v, bits),
        }
    }
}

fn combine(mut vals: Vec<Value>) -> Value {
    if vals.len() == 1 {
        vals.pop().expect("one")
    } else {
        Value::Array(vals)
    }
}

pub(crate) fn event_time(ev: &Event, ds: &DatasetRules, doc: &Value) -> Option<i64> {
    if let Some(t) = ev.explicit_time_ms() {
        return Some(t);
    }
    ds.time_paths
        .iter()
        .find_map(|p| first_value(std::slice::from_ref(p), doc).and_then(|v| parse_time_ms(&v)))
}

impl CorrelationSpec {
    /// A detection rule this correlation references matched `ev`: its group and value are
    /// read, and the match enters the reorder buffer (released by
    /// [`crate::RuleSet::process`]).
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
        _alerts: &mut Vec<CorrelationAlert>,
    ) {
        let Some(t) = event_time(ev, ds, doc) else {
            state.stats.untimed_events += 1;
            return;
        };
        let Some(src) = self.sources.iter().find(|s| s.rule == rule) else {
            return;
        };
        let mut group = Vec::with_capacity(src.group.len());
        for f in &src.group {
            match f.read_doc(di, doc) {
                Some(v) => group.push(v),
                None => {
                    state.stats.ungrouped_events += 1;
                    return;
                }
            }
        }
        let value = if self.kind.needs_field() {
            let mut vals = Vec::with_capacity(src.value.len());
            for f in &src.value {
                match f.read_doc(di, doc) {
                    Some(v) => vals.push(v),
                    None => {
                        state.stats.missing_values += 1;
                        return;
                    }
                }
            }
            Some(combine(vals))
        } else {
            None
        };
        let contributing = Ev {
            rule: rule as u32,
            t,
            id: ds
                .id_path
                .as_ref()
                .and_then(|p| first_value(std::slice::from_ref(p), doc))
                .map(|v| key_text(&v).into_boxed_str()),
            origin: ev.origin(),
            matched: limits
                .keep_matched
                .then(|| matched.to_vec().into_boxed_slice()),
        };
        let p = Pending {
            corr: self.index,
            rule,
            group,
            value,
            evidence: vec![contributing],
        };
        if t < state.horizon(limits) {
            state.stats.late_events += 1;
            return;
        }
        state.watermark = state.watermark.max(t);
        state.seq += 1;
        let seq = state.seq;
        state.pending.insert((t, seq), p);
    }

    fn alert(&self, group: &Group, hit: Hit) -> CorrelationAlert {
        CorrelationAlert {
            rule: self.rule,
            group: self
                .group_by
                .iter()
                .cloned()
                .zip(group.values.iter().cloned())
                .collect(),
            count: hit.count,
            field: self.value_field.clone(),
            value: hit.value,
            first_ms: hit.first_ms,
            last_ms: hit.last_ms,
            events: hit.events.iter().map(Ev::public).collect(),
            values: hit.values,
        }
    }
}

impl crate::RuleSet {
    /// After an event: releases buffered matches up to the horizon (the watermark less the
    /// allowed lateness), interleaved in event-time order with the ends of anchored windows.
    pub(crate) fn advance_correlations(
        &self,
        ev: &Event,
        state: &mut CorrelationState,
        alerts: &mut Vec<CorrelationAlert>,
    ) {
        if self.correlations.is_empty() {
            return;
        }
        // Every event's explicit time moves event time on, matched or not: windows close even
        // when their own rules fall silent.
        if let Some(t) = ev.explicit_time_ms() {
            state.watermark = state.watermark.max(t);
        }
        let mut forced = false;
        while state.pending.len() > self.limits.max_pending {
            // Release the oldest early; anything older becomes too late.
            let Some((&(t, _), _)) = state.pending.first_key_value() else {
                break;
            };
            state.floor = state.floor.max(t);
            state.stats.forced_releases += 1;
            forced = true;
            self.drain(state, t, alerts);
        }
        let h = state.horizon(&self.limits);
        if forced
            || state
                .pending
                .first_key_value()
                .is_some_and(|(k, _)| k.0 <= h)
            || state.timers.first().is_some_and(|x| x.0 < h)
        {
            self.drain(state, h, alerts);
        }
    }

    fn drain(&self, st: &mut CorrelationState, h: i64, alerts: &mut Vec<CorrelationAlert>) {
        loop {
            let item_t = st
                .pending
                .first_key_value()
                .map(|(k, _)| k.0)
                .filter(|t| *t <= h);
            let timer_t = st.timers.first().map(|x| x.0).filter(|e| *e < h);
            match (item_t, timer_t) {
                (None, None) => break,
                (Some(t), Some(e)) if e < t => self.fire(st, alerts),
                (None, Some(_)) => self.fire(st, alerts),
                (Some(_), _) => {
                    let ((t, _), p) = st.pending.pop_first().expect("an item");
                    let item = Item {
                        t,
                        rule: p.rule,
                        value: p.value,
                        evidence: p.evidence,
                    };
                    self.feed(st, p.corr, p.group, item, alerts);
                }
            }
        }
    }

    /// Judges the anchored window whose end comes first.
    fn fire(&self, st: &mut CorrelationState, alerts: &mut Vec<CorrelationAlert>) {
        let Some((end, ci, key, start)) = st.timers.pop_first() else {
            return;
        };
        let spec = &self.correlations[ci];
        let groups = st.groups_of(ci);
        let Some(g) = groups.get(&key) else {
            return;
        };
        if g.window_start() != Some(start) {
            return; // a stale timer: the group was evicted and began again
        }
        let g = groups.remove(&key).expect("present");
        if let Some(hit) = g.judge(spec, &self.limits) {
            let a = spec.alert(&g, hit);
            self.emit(st, ci, a, end, alerts);
        }
    }

    /// Feeds one released item (a match, or an inner correlation's alert) to correlation `ci`.
    fn feed(
        &self,
        st: &mut CorrelationState,
        ci: usize,
        values: Vec<Value>,
        item: Item,
        alerts: &mut Vec<CorrelationAlert>,
    ) {
        let spec = &self.correlations[ci];
        let t = item.t;
        let ts = spec.timespan_ms;
        let key = group_key(&values);
        let limits = &self.limits;
        if st
            .swept
            .get(ci)
            .is_none_or(|s| t.saturating_sub(*s) > ts.max(1000))
        {
            self.sweep(st, ci, t);
        }
        if !st.groups_of(ci).contains_key(key.as_str()) && st.groups[ci].len() >= limits.max_groups
        {
            self.sweep(st, ci, t);
            let groups = &mut st.groups[ci];
            if groups.len() >= limits.max_groups {
                let mut ages: Vec<(i64, Box<str>)> =
                    groups.iter().map(|(k, g)| (g.last_t, k.clone())).collect();
                ages.sort();
                let n = (groups.len() / 8).max(1);
                for (_, k) in ages.into_iter().take(n) {
                    groups.remove(&k);
                }
                st.stats.evicted_groups += n as u64;
            }
        }
        let CorrelationState {
            groups,
            timers,
            stats,
            ..
        } = st;
        let key: Box<str> = key.into_boxed_str();
        let g = groups[ci]
            .entry(key.clone())
            .or_insert_with(|| Box::new(Group::new(spec, values)));
        if let Some(until) = g.silenced_until {
            if t <= until {
                stats.suppressed_events += 1;
                g.last_t = g.last_t.max(t);
                return;
            }
            g.silenced_until = None;
        }
        match g.feed(spec, limits, stats, item) {
            Fed::Nothing => {}
            Fed::Opened(start) => {
                timers.insert((start.saturating_add(ts), ci, key, start));
            }
            Fed::Alert(hit) => {
                let a = spec.alert(g, hit);
                g.reset(spec);
                if !spec.kind.temporal() {
                    g.silenced_until = Some(t.saturating_add(ts));
                }
                self.emit(st, ci, a, t, alerts);
            }
        }
    }

    /// Reports an alert (unless the correlation only feeds others) and feeds it to the
    /// correlations that reference this one.
    fn emit(
        &self,
        st: &mut CorrelationState,
        ci: usize,
        a: CorrelationAlert,
        t: i64,
        alerts: &mut Vec<CorrelationAlert>,
    ) {
        let spec = &self.correlations[ci];
        for &outer in &spec.feeds {
            let o = &self.correlations[outer];
            let Some(src) = o.sources.iter().find(|s| s.corr == Some(ci)) else {
                continue;
            };
            let group: Option<Vec<Value>> =
                src.group.iter().map(|f| f.read_group(&a.group)).collect();
            let Some(group) = group else {
                st.stats.ungrouped_events += 1;
                continue;
            };
            let value = if o.kind.needs_field() {
                let vals: Option<Vec<Value>> =
                    src.value.iter().map(|f| f.read_group(&a.group)).collect();
                match vals {
                    Some(v) => Some(combine(v)),
                    None => {
                        st.stats.missing_values += 1;
                        continue;
                    }
                }
            } else {
                None
            };
            let item = Item {
                t,
                rule: spec.rule,
                value,
                evidence: a.events.iter().map(Ev::from_public).collect(),
            };
            self.feed(st, outer, group, item, alerts);
        }
        if !spec.silent {
            alerts.push(a);
        }
    }

    /// Drops the groups of correlation `ci` that nothing at or after `now` can still use.
    fn sweep(&self, st: &mut CorrelationState, ci: usize, now: i64) {
        let ts = self.correlations[ci].timespan_ms;
        st.groups_of(ci).retain(|_, g| !g.expired(now, ts));
        st.swept[ci] = now;
    }

    /// The correlation type of rule `rule`, when it is a correlation or a legacy aggregation.
    pub fn correlation_kind(&self, rule: usize) -> Option<CorrKind> {
        self.correlations
            .iter()
            .find(|c| c.rule == rule)
            .map(|c| c.kind)
    }

    /// Ends the stream up to `now_ms` (event time): matches buffered up to `now_ms` less the
    /// allowed lateness are released, anchored windows that ended before it are judged, and
    /// idle groups are dropped. Call it when the input ends (with `i64::MAX`: every window is
    /// judged, and later events count as late) or periodically with the event-time watermark
    /// of a live stream.
    pub fn flush(
        &self,
        state: &mut CorrelationState,
        now_ms: i64,
        alerts: &mut Vec<CorrelationAlert>,
    ) {
        state.watermark = state.watermark.max(now_ms);
        let h = state.horizon(&self.limits);
        self.drain(state, h, alerts);
        for (ci, c) in self.correlations.iter().enumerate() {
            let due = state
                .swept
                .get(ci)
                .is_none_or(|s| h.saturating_sub(*s) > c.timespan_ms.max(1000));
            if due {
                self.sweep(state, ci, h);
            }
        }
    }
}
