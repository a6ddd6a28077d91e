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
mod carry;
mod cond;
mod engine;
mod group;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use carry::{Carried, StateLayout};
pub use cond::Op;
pub(crate) use cond::{expr_names, parse_expr, Cond};

use crate::event::FieldPath;
use group::Group;

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
