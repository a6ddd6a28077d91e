//! Evaluation in event time: what waits in the reorder buffer, when it is due, and what one
//! event raises. Kept apart from the loop in `detect.rs` so the ordering rules read as one.

use std::sync::atomic::Ordering;

use serde_json::Map;
use vigil_detect::Event;
use vigil_model::alert::{Alert, EvidenceRef};

use super::alerts::{alert_rule, correlation_alert, event_id, event_time};
use super::Detection;
use crate::writer::DetectItem;

impl Detection {
    pub(super) fn push(&mut self, it: DetectItem) {
        self.note_position(&it);
        if it.time_us < self.watermark_us {
            self.late += 1;
            self.shared.metrics.inc("vigil_events_late_total", &[]);
            self.evaluate(it);
            return;
        }
        self.max_time_us = self.max_time_us.max(it.time_us);
        self.buffer.insert((it.time_us, self.next_no), it);
        self.next_no += 1;
    }

    /// Evaluates buffered events that are due (all of them with `all`).
    pub(super) fn release(&mut self, all: bool) {
        let lateness_us = self.lateness.as_micros() as i64;
        loop {
            let due = match self.buffer.first_key_value() {
                None => false,
                Some(_) if all => true,
                Some(((t, _), it)) => {
                    *t <= self.max_time_us.saturating_sub(lateness_us)
                        || it.arrived.is_none_or(|a| a.elapsed() >= self.lateness)
                }
            };
            if !due {
                break;
            }
            let Some((_, it)) = self.buffer.pop_first() else {
                break;
            };
            self.watermark_us = self.watermark_us.max(it.time_us);
            self.evaluate(it);
        }
    }

    fn evaluate(&mut self, it: DetectItem) {
        if it.arrived.is_some() {
            let _ = self
                .shared
                .lag
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                    Some(v.saturating_sub(1))
                });
        }
        let ev = match (&it.raw, &it.doc) {
            (Some(raw), _) => Event::from_raw(&it.dataset, raw),
            (None, Some(doc)) => Event::new(&it.dataset, doc),
            _ => return,
        };
        let ev = ev.at(it.time_us.div_euclid(1000));
        self.matches.clear();
        self.corr.clear();
        self.rules
            .set
            .process(&ev, &mut self.state, &mut self.matches, &mut self.corr);
        if self.matches.is_empty() && self.corr.is_empty() {
            return;
        }
        let doc = ev.doc().cloned();
        let id = doc.as_ref().and_then(|d| event_id(&it.dataset, d));
        let time = doc
            .as_ref()
            .map(event_time)
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| vigil_store::reader::micros_rfc3339(it.time_us));
        let matches = std::mem::take(&mut self.matches);
        for m in &matches {
            if let Some(id) = &id {
                if !self.rules.per_stage[m.rule] && !self.seen.first_time(m.rule, id) {
                    continue;
                }
            }
            let a = Alert {
                rule: alert_rule(&self.rules.set.rules()[m.rule]),
                time: time.clone(),
                group: Map::new(),
                events: vec![EvidenceRef {
                    dataset: it.dataset.clone(),
                    file: it.source.clone(),
                    line: 0,
                    id: id.clone(),
                }],
                matched: m.matched.iter().cloned().collect(),
            };
            self.out.push((a, doc.clone(), it.arrived, it.received_us));
        }
        self.matches = matches;
        let corr = std::mem::take(&mut self.corr);
        for c in &corr {
            let a = correlation_alert(&self.rules.set, c, &it.source);
            self.out.push((a, None, it.arrived, it.received_us));
        }
        self.corr = corr;
    }
}
