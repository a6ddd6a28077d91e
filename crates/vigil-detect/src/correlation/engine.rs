//! The correlation engine: a match enters the reorder buffer ([`CorrelationSpec::update`]);
//! released items and the ends of anchored windows are processed in event-time order; alerts
//! feed the correlations that reference them.

use serde_json::Value;

use super::group::{Fed, Group, Hit, Item};
use super::{
    combine, first_value, group_key, key_text, CorrKind, CorrelationAlert, CorrelationSpec,
    CorrelationState, Ev, Limits, Pending,
};
use crate::compile::DatasetRules;
use crate::event::Event;
use crate::value::parse_time_ms;

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
