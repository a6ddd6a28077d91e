//! Per-group state of a correlation and the per-type algorithms. Items arrive in event-time
//! order (the reorder buffer guarantees it), so a sliding window is "everything at or after
//! `t - timespan`" and only its front ever expires.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{key_text, CorrKind, CorrelationSpec, CorrelationStats, Ev, Limits};

/// One released item: a match, or an inner correlation's alert.
pub(crate) struct Item {
    pub t: i64,
    /// The rule it comes from (a detection rule, or the inner correlation).
    pub rule: usize,
    pub value: Option<Value>,
    pub evidence: Vec<Ev>,
}

/// What a condition met in a window amounts to.
pub(crate) struct Hit {
    pub count: u64,
    pub value: Option<f64>,
    pub first_ms: i64,
    pub last_ms: i64,
    pub events: Vec<Ev>,
    pub values: Vec<Value>,
}

pub(crate) enum Fed {
    Nothing,
    /// An anchored window opened at this time (judge it at its end).
    Opened(i64),
    Alert(Hit),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Group {
    /// The group-by values.
    pub values: Box<[Value]>,
    pub last_t: i64,
    /// After an alert of a threshold type: events up to this time are absorbed.
    pub silenced_until: Option<i64>,
    acc: Acc,
}

impl Group {
    /// Every remembered event of the group (to re-index their rules after a reload).
    pub(crate) fn evidence_mut(&mut self, f: &mut dyn FnMut(&mut super::Ev)) {
        match &mut self.acc {
            Acc::Count { evidence, .. } | Acc::Sum { evidence, .. } => {
                evidence.iter_mut().for_each(f)
            }
            Acc::Distinct { vals, .. } => vals
                .iter_mut()
                .flat_map(|s| s.evidence.iter_mut())
                .for_each(f),
            Acc::Temporal { slots } => slots
                .iter_mut()
                .flatten()
                .flat_map(|s| s.evidence.iter_mut())
                .for_each(f),
            Acc::Ordered { stages } => stages
                .iter_mut()
                .flatten()
                .flat_map(|c| c.evidence.iter_mut())
                .for_each(f),
            Acc::Window(w) => {
                if let Some(w) = w {
                    w.evidence.iter_mut().for_each(f)
                }
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Seen {
    t: i64,
    value: Value,
    evidence: Vec<Ev>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Chain {
    start: i64,
    evidence: Vec<Ev>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Window {
    start: i64,
    last: i64,
    count: u64,
    distinct: Vec<Value>,
    nums: Vec<f64>,
    n: u64,
    sum: f64,
    min: Option<f64>,
    max: Option<f64>,
    /// Bit i: the rule at position i was seen.
    seen: u64,
    evidence: Vec<Ev>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Acc {
    /// Sliding event_count: (time, events at that time), oldest first.
    Count {
        times: VecDeque<(i64, u32)>,
        total: u64,
        evidence: VecDeque<Ev>,
    },
    /// Sliding value_count: each distinct value with its latest occurrence.
    Distinct { vals: Vec<Seen>, oldest: i64 },
    /// Sliding value_sum: (time, number), oldest first.
    Sum {
        items: VecDeque<(i64, f64)>,
        sum: f64,
        evidence: VecDeque<Ev>,
    },
    /// Sliding temporal: per referenced rule, its latest match.
    Temporal { slots: Vec<Option<Seen>> },
    /// Sliding temporal_ordered: per position, the chain of matches of rules 0..=position in
    /// order whose first match is the latest.
    Ordered { stages: Vec<Option<Chain>> },
    /// Anchored window (None between windows).
    Window(Option<Box<Window>>),
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|x| x.is_finite()),
        Value::Bool(_) | Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Linear interpolation between closest ranks (SQL `PERCENTILE_CONT`).
pub(crate) fn percentile(nums: &mut [f64], p: f64) -> Option<f64> {
    if nums.is_empty() {
        return None;
    }
    nums.sort_by(f64::total_cmp);
    let rank = (p / 100.0).clamp(0.0, 1.0) * (nums.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    Some(nums[lo] + (nums[hi] - nums[lo]) * (rank - lo as f64))
}

fn sorted(mut evs: Vec<Ev>, keep: usize) -> Vec<Ev> {
    evs.sort_by_key(Ev::time);
    if evs.len() > keep {
        evs.drain(..evs.len() - keep);
    }
    evs
}

/// Grows one slot at a time: groups mostly hold one or two items, and the default growth
/// (to four) would multiply their memory.
fn push_exact<T>(q: &mut VecDeque<T>, x: T) {
    if q.len() == q.capacity() {
        q.reserve_exact(1);
    }
    q.push_back(x);
}

fn push_vec_exact<T>(v: &mut Vec<T>, x: T) {
    if v.len() == v.capacity() {
        v.reserve_exact(1);
    }
    v.push(x);
}

fn push_bounded(q: &mut VecDeque<Ev>, evs: Vec<Ev>, keep: usize) {
    for e in evs {
        if q.len() >= keep {
            q.pop_front();
        }
        if keep > 0 {
            push_exact(q, e);
        }
    }
}

/// Whether two values count as the same (as text: `42` and `"42"` are one value).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x == y,
        _ => a == b || key_text(a) == key_text(b),
    }
}

fn sorted_values<'a>(vals: impl Iterator<Item = &'a Value>, keep: usize) -> Vec<Value> {
    let mut v: Vec<(String, &Value)> = vals.map(|v| (key_text(v), v)).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v.into_iter().take(keep).map(|(_, v)| v.clone()).collect()
}

impl Group {
    pub fn new(spec: &CorrelationSpec, values: Vec<Value>) -> Group {
        Group {
            values: values.into_boxed_slice(),
            last_t: i64::MIN,
            silenced_until: None,
            acc: Acc::new(spec),
        }
    }

    pub fn reset(&mut self, spec: &CorrelationSpec) {
        self.acc = Acc::new(spec);
    }

    pub fn window_start(&self) -> Option<i64> {
        match &self.acc {
            Acc::Window(Some(w)) => Some(w.start),
            _ => None,
        }
    }

    /// Whether nothing at or after `now` can use this group any more.
    pub fn expired(&self, now: i64, timespan: i64) -> bool {
        self.window_start().is_none()
            && self.last_t.saturating_add(timespan) < now
            && self.silenced_until.is_none_or(|u| u < now)
    }

    pub fn feed(
        &mut self,
        spec: &CorrelationSpec,
        limits: &Limits,
        stats: &mut CorrelationStats,
        item: Item,
    ) -> Fed {
        let t = item.t;
        self.last_t = self.last_t.max(t);
        let from = t.saturating_sub(spec.timespan_ms);
        let keep = limits.max_events_per_alert;
        let positions = || {
            spec.sources
                .iter()
                .enumerate()
                .filter(|(_, s)| s.rule == item.rule)
                .map(|(i, _)| i)
                .collect::<Vec<_>>()
        };
        match &mut self.acc {
            Acc::Count {
                times,
                total,
                evidence,
            } => {
                match times.back_mut() {
                    Some((x, n)) if *x == t => *n += 1,
                    _ => push_exact(times, (t, 1)),
                }
                *total += 1;
                push_bounded(evidence, item.evidence, keep);
                while times.front().is_some_and(|(x, _)| *x < from) {
                    let (_, n) = times.pop_front().expect("front");
                    *total -= n as u64;
                }
                while times.len() > limits.max_items_per_group {
                    let (_, n) = times.pop_front().expect("front");
                    *total -= n as u64;
                    stats.dropped_values += n as u64;
                }
                while evidence.front().is_some_and(|e| e.time() < from) {
                    evidence.pop_front();
                }
                if !spec.cond.holds(*total as f64) {
                    return Fed::Nothing;
                }
                let events: Vec<_> = evidence.drain(..).collect();
                Fed::Alert(Hit {
                    count: *total,
                    value: None,
                    first_ms: times.front().map_or(t, |x| x.0),
                    last_ms: t,
                    events,
                    values: vec![],
                })
            }
            Acc::Distinct { vals, oldest } => {
                let Some(v) = item.value else {
                    return Fed::Nothing;
                };
                if let Some(s) = vals.iter_mut().find(|s| same(&s.value, &v)) {
                    s.t = t;
                    s.evidence = item.evidence;
                } else if vals.len() < limits.max_values_per_group {
                    *oldest = (*oldest).min(t);
                    push_vec_exact(
                        vals,
                        Seen {
                            t,
                            value: v,
                            evidence: item.evidence,
                        },
                    );
                } else {
                    stats.dropped_values += 1;
                }
                if *oldest < from {
                    vals.retain(|s| s.t >= from);
                    *oldest = vals.iter().map(|s| s.t).min().unwrap_or(t);
                }
                let n = vals.len() as u64;
                if !spec.cond.holds(n as f64) {
                    return Fed::Nothing;
                }
                let first_ms = vals.iter().map(|s| s.t).min().unwrap_or(t);
                let values = sorted_values(vals.iter().map(|s| &s.value), keep);
                let events = sorted(
                    vals.iter()
                        .flat_map(|s| s.evidence.iter().cloned())
                        .collect(),
                    keep,
                );
                Fed::Alert(Hit {
                    count: n,
                    value: None,
                    first_ms,
                    last_ms: t,
                    events,
                    values,
                })
            }
            Acc::Sum {
                items,
                sum,
                evidence,
            } => {
                let Some(x) = item.value.as_ref().and_then(as_number) else {
                    stats.missing_values += 1;
                    return Fed::Nothing;
                };
                push_exact(items, (t, x));
                *sum += x;
                push_bounded(evidence, item.evidence, keep);
                while items.front().is_some_and(|(y, _)| *y < from)
                    || items.len() > limits.max_items_per_group
                {
                    let (y, x) = items.pop_front().expect("front");
                    *sum -= x;
                    if y >= from {
                        stats.dropped_values += 1;
                    }
                }
                if items.is_empty() {
                    *sum = 0.0;
                }
                while evidence.front().is_some_and(|e| e.time() < from) {
                    evidence.pop_front();
                }
                if !spec.cond.holds(*sum) {
                    return Fed::Nothing;
                }
                Fed::Alert(Hit {
                    count: items.len() as u64,
                    value: Some(*sum),
                    first_ms: items.front().map_or(t, |x| x.0),
                    last_ms: t,
                    events: evidence.drain(..).collect(),
                    values: vec![],
                })
            }
            Acc::Temporal { slots } => {
                for p in positions() {
                    slots[p] = Some(Seen {
                        t,
                        value: Value::Null,
                        evidence: item.evidence.clone(),
                    });
                }
                for s in slots.iter_mut() {
                    if s.as_ref().is_some_and(|s| s.t < from) {
                        *s = None;
                    }
                }
                let seen: Vec<bool> = slots.iter().map(Option::is_some).collect();
                if !spec.cond.holds_for(&seen) {
                    return Fed::Nothing;
                }
                let present: Vec<&Seen> = slots.iter().flatten().collect();
                Fed::Alert(Hit {
                    count: present.len() as u64,
                    value: None,
                    first_ms: present.iter().map(|s| s.t).min().unwrap_or(t),
                    last_ms: t,
                    events: sorted(
                        present
                            .iter()
                            .flat_map(|s| s.evidence.iter().cloned())
                            .collect(),
                        keep,
                    ),
                    values: vec![],
                })
            }
            Acc::Ordered { stages } => {
                // Later positions first, so one match never fills two consecutive steps.
                for p in positions().into_iter().rev() {
                    let chain = if p == 0 {
                        Some(Chain {
                            start: t,
                            evidence: item.evidence.clone(),
                        })
                    } else {
                        stages[p - 1].as_ref().filter(|c| c.start >= from).map(|c| {
                            let mut evidence = c.evidence.clone();
                            evidence.extend(item.evidence.iter().cloned());
                            Chain {
                                start: c.start,
                                evidence,
                            }
                        })
                    };
                    if let Some(c) = chain {
                        if stages[p].as_ref().is_none_or(|old| old.start <= c.start) {
                            stages[p] = Some(c);
                        }
                    }
                }
                for s in stages.iter_mut() {
                    if s.as_ref().is_some_and(|c| c.start < from) {
                        *s = None;
                    }
                }
                let Some(done) = stages.last().and_then(Option::as_ref) else {
                    return Fed::Nothing;
                };
                Fed::Alert(Hit {
                    count: stages.len() as u64,
                    value: None,
                    first_ms: done.start,
                    last_ms: t,
                    events: sorted(done.evidence.clone(), keep),
                    values: vec![],
                })
            }
            Acc::Window(w) => {
                let opened = w.is_none();
                let w = w.get_or_insert_with(|| {
                    Box::new(Window {
                        start: t,
                        ..Default::default()
                    })
                });
                w.last = t;
                w.count += 1;
                for p in positions() {
                    w.seen |= 1 << p;
                }
                for e in item.evidence {
                    if w.evidence.len() < keep {
                        push_vec_exact(&mut w.evidence, e);
                    }
                }
                match spec.kind {
                    CorrKind::ValueCount => {
                        if let Some(v) = item.value {
                            if w.distinct.iter().any(|x| same(x, &v)) {
                            } else if w.distinct.len() < limits.max_values_per_group {
                                push_vec_exact(&mut w.distinct, v);
                            } else {
                                stats.dropped_values += 1;
                            }
                        }
                    }
                    k if k.numeric() => match item.value.as_ref().and_then(as_number) {
                        Some(x) => {
                            w.n += 1;
                            w.sum += x;
                            w.min = Some(w.min.map_or(x, |m| m.min(x)));
                            w.max = Some(w.max.map_or(x, |m| m.max(x)));
                            if matches!(k, CorrKind::ValuePercentile | CorrKind::ValueMedian) {
                                if w.nums.len() < limits.max_items_per_group {
                                    w.nums.push(x);
                                } else {
                                    stats.dropped_values += 1;
                                }
                            }
                        }
                        None => stats.missing_values += 1,
                    },
                    _ => {}
                }
                if opened {
                    Fed::Opened(t)
                } else {
                    Fed::Nothing
                }
            }
        }
    }

    /// An anchored window is over: whether its condition held.
    pub fn judge(&self, spec: &CorrelationSpec, limits: &Limits) -> Option<Hit> {
        let Acc::Window(Some(w)) = &self.acc else {
            return None;
        };
        let (count, value, ok) = match spec.kind {
            CorrKind::EventCount => (w.count, None, spec.cond.holds(w.count as f64)),
            CorrKind::ValueCount => {
                let n = w.distinct.len() as u64;
                (n, None, spec.cond.holds(n as f64))
            }
            CorrKind::Temporal | CorrKind::TemporalOrdered => {
                let seen: Vec<bool> = (0..spec.sources.len())
                    .map(|i| w.seen & (1 << i) != 0)
                    .collect();
                let n = seen.iter().filter(|s| **s).count() as u64;
                (n, None, spec.cond.holds_for(&seen))
            }
            kind => {
                let v = match kind {
                    _ if w.n == 0 => None,
                    CorrKind::ValueSum => Some(w.sum),
                    CorrKind::ValueAvg => Some(w.sum / w.n as f64),
                    CorrKind::ValueMin => w.min,
                    CorrKind::ValueMax => w.max,
                    _ => percentile(&mut w.nums.clone(), spec.percentile),
                };
                (w.n, v, v.is_some_and(|v| spec.cond.holds(v)))
            }
        };
        ok.then(|| Hit {
            count,
            value,
            first_ms: w.start,
            last_ms: w.last,
            events: w.evidence.clone(),
            values: sorted_values(w.distinct.iter(), limits.max_events_per_alert),
        })
    }
}

impl Acc {
    fn new(spec: &CorrelationSpec) -> Acc {
        if !spec.sliding {
            return Acc::Window(None);
        }
        match spec.kind {
            CorrKind::EventCount => Acc::Count {
                times: VecDeque::new(),
                total: 0,
                evidence: VecDeque::new(),
            },
            CorrKind::ValueCount => Acc::Distinct {
                vals: Vec::new(),
                oldest: i64::MAX,
            },
            CorrKind::ValueSum => Acc::Sum {
                items: VecDeque::new(),
                sum: 0.0,
                evidence: VecDeque::new(),
            },
            CorrKind::Temporal => Acc::Temporal {
                slots: vec![None; spec.sources.len()],
            },
            CorrKind::TemporalOrdered => Acc::Ordered {
                stages: vec![None; spec.sources.len()],
            },
            _ => Acc::Window(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_interpolate() {
        assert_eq!(percentile(&mut [], 50.0), None);
        assert_eq!(percentile(&mut [3.0], 90.0), Some(3.0));
        assert_eq!(percentile(&mut [4.0, 1.0, 3.0, 2.0], 50.0), Some(2.5));
        assert_eq!(percentile(&mut [1.0, 2.0, 3.0, 4.0, 5.0], 50.0), Some(3.0));
        assert_eq!(percentile(&mut [10.0, 20.0], 90.0), Some(19.0));
        assert_eq!(percentile(&mut [10.0, 20.0], 0.0), Some(10.0));
        assert_eq!(percentile(&mut [10.0, 20.0], 100.0), Some(20.0));
    }
}
