//! What leaves detection: alerts (suppressed or routed to sinks) and checkpoints, both through
//! the writer, which stores an alert before it queues it and writes a checkpoint only after
//! every alert raised before it.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use vigil_model::alert::{level_rank, Alert};
use vigil_store::prepare;

use super::{Checkpoint, Detection};
use crate::sinks::QueuedAlert;
use crate::writer::{Submission, WriterMsg};

impl Detection {
    fn suppressed(&mut self, a: &Alert, doc: Option<&Value>) -> bool {
        let Some(s) = self
            .suppress
            .iter()
            .find(|s| s.rule == a.rule.id || s.rule == a.rule.title)
        else {
            return false;
        };
        let mut key = a.rule.id.clone();
        for f in &s.group_by {
            let v = a
                .group
                .get(f)
                .or_else(|| a.matched.get(f))
                .cloned()
                .or_else(|| {
                    let mut found = Vec::new();
                    if let Some(d) = doc {
                        vigil_store::query::lookup(d, f, &mut found);
                    }
                    found.first().map(|v| (*v).clone())
                })
                .unwrap_or(Value::Null);
            key.push('\u{1f}');
            key.push_str(&v.to_string());
        }
        let now = Instant::now();
        match self.suppressed_until.get(&key) {
            Some(until) if *until > now => true,
            _ => {
                self.suppressed_until.insert(key, now + s.window.0);
                if self.suppressed_until.len() > 100_000 {
                    self.suppressed_until.retain(|_, t| *t > now);
                }
                false
            }
        }
    }

    /// Sends the alerts raised so far to the writer (store, then sinks).
    pub(super) fn emit(&mut self) {
        if self.out.is_empty() {
            return;
        }
        let out = std::mem::take(&mut self.out);
        let mut records = Vec::with_capacity(out.len());
        let mut queued = Vec::with_capacity(out.len());
        for (a, doc, arrived, received_us) in out {
            let record = prepare::alert(&a, doc.as_ref(), received_us);
            let id = prepare::alert_id(&a);
            self.shared
                .metrics
                .inc("vigil_alerts_total", &[("rule", &a.rule.id)]);
            let sinks: Vec<usize> = if self.suppressed(&a, doc.as_ref()) {
                self.shared
                    .metrics
                    .inc("vigil_alerts_suppressed_total", &[("rule", &a.rule.id)]);
                Vec::new()
            } else {
                let rank = level_rank(&a.rule.level);
                self.sinks
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| rank >= s.min_level)
                    .map(|(i, _)| i)
                    .collect()
            };
            queued.push(QueuedAlert {
                id,
                json: record.raw().to_string(),
                sinks,
                received_us: arrived.map(|_| received_us),
            });
            records.push(record);
        }
        let _ = self.writer.send(WriterMsg::Submit(Submission {
            source: Arc::from("detection"),
            records,
            offsets: None,
            alerts: Some(queued),
            reply: None,
            received_us: 0,
        }));
    }

    /// The checkpoint as it stands (also written once at startup, so that a crash before the
    /// first periodic checkpoint still replays from here).
    pub fn checkpoint_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.snapshot()).unwrap_or_default()
    }

    fn snapshot(&self) -> Checkpoint {
        Checkpoint {
            positions: self.positions.clone(),
            state: self.state.clone(),
            layout: Some(self.rules.set.state_layout()),
            buffered: self.buffer.values().cloned().collect(),
            watermark_us: self.watermark_us,
            max_time_us: self.max_time_us,
            late: self.late,
        }
    }

    pub(super) fn checkpoint(&mut self) {
        match serde_json::to_vec(&self.snapshot()) {
            Ok(bytes) => {
                let _ = self.writer.send(WriterMsg::Checkpoint(bytes));
            }
            Err(e) => eprintln!("vigil serve: detection checkpoint: {e}"),
        }
    }
}
