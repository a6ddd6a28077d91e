//! One group commit: the offsets intent, one `append_batch` and fsync for every queued batch,
//! then each batch answered and what was stored passed on. A batch that cannot be stored is
//! refused whole, so that its sender comes back with it.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use vigil_store::index::unloc;
use vigil_store::{partition_name, StoreError};

use super::state::Intent;
use super::{Committed, DetectItem, Refused, Shared, Submission, Writer};
use crate::sinks::QueuedAlert;

impl Writer {
    /// One group commit. `false` when nothing could be stored.
    pub(super) fn commit(&mut self, group: Vec<Submission>) -> bool {
        if group.is_empty() {
            return true;
        }
        let n_events: usize = group
            .iter()
            .filter(|s| s.alerts.is_none())
            .map(|s| s.records.len())
            .sum();
        if !self.usable {
            self.try_reopen();
        }
        let usable = self.usable;
        let Some(store) = self.store.as_mut().filter(|_| usable) else {
            refuse(
                group,
                &self.shared,
                n_events,
                Refused::Unavailable(
                    "the store is not writable (disk full or failed); retry later".into(),
                ),
            );
            return false;
        };
        // What detection and the intent need, before the records move into the store.
        let mut names = Vec::new();
        let mut items: Vec<Option<DetectItem>> = Vec::new();
        let mut states = BTreeMap::new();
        let mut all = Vec::new();
        for s in &group {
            if let Some(st) = &s.offsets {
                states.insert(s.source.to_string(), st.clone());
            }
            for r in &s.records {
                names.push(partition_name(r.dataset(), r.event_time()));
                items.push(if s.alerts.is_none() && self.detect_tx.is_some() {
                    let mut it = DetectItem::from_record(r, &s.source);
                    it.received_us = s.received_us;
                    Some(it)
                } else {
                    None
                });
            }
        }
        let with_intent = !states.is_empty();
        if with_intent {
            let before = names
                .iter()
                .map(|n| (n.clone(), self.counts.get(n).copied().unwrap_or(0)))
                .collect();
            if let Err(e) = self.offsets.write(&Intent {
                states: states.clone(),
                before,
                aborted: false,
            }) {
                eprintln!("vigil serve: cannot write offsets.log: {e}");
                refuse(
                    group,
                    &self.shared,
                    n_events,
                    Refused::Unavailable(format!("offsets log: {e}")),
                );
                return false;
            }
        }
        let mut sizes = Vec::with_capacity(group.len());
        let mut group = group;
        for s in &mut group {
            sizes.push(s.records.len());
            all.append(&mut s.records);
        }
        let started = Instant::now();
        let result = store.append_batch(all);
        self.shared.metrics.observe(
            "vigil_store_commit_seconds",
            &[],
            started.elapsed().as_secs_f64(),
        );
        self.shared.metrics.inc("vigil_store_commits_total", &[]);
        let ack = match result {
            Ok(a) => a,
            Err(e) => {
                eprintln!("vigil serve: store write failed: {e}");
                self.shared.metrics.inc("vigil_store_errors_total", &[]);
                self.shared.store_ok.store(false, Ordering::Relaxed);
                self.usable = false;
                self.last_reopen = Some(Instant::now());
                if with_intent {
                    let _ = self.offsets.write(&Intent {
                        states: BTreeMap::new(),
                        before: BTreeMap::new(),
                        aborted: true,
                    });
                }
                let why = match e {
                    StoreError::DiskFull { .. } => Refused::DiskFull(e.to_string()),
                    _ => Refused::Unavailable(e.to_string()),
                };
                refuse(group, &self.shared, n_events, why);
                return false;
            }
        };
        self.shared.store_ok.store(true, Ordering::Relaxed);
        if with_intent {
            self.offsets.states.extend(states);
            if let Err(e) = self.offsets.compact() {
                eprintln!("vigil serve: compacting offsets.log: {e}");
            }
        }
        for (i, loc) in ack.locs.iter().enumerate() {
            if let Some(loc) = loc {
                let (pid, seq) = unloc(*loc);
                let c = self.counts.entry(names[i].clone()).or_default();
                *c = (*c).max(seq + 1);
                if let Some(it) = items[i].as_mut() {
                    it.pid = pid;
                    it.seq = seq;
                }
            }
        }
        // Answer each batch, and pass on what was stored.
        let mut to_detect = Vec::new();
        let mut at = 0usize;
        let now = Instant::now();
        for (s, n) in group.into_iter().zip(sizes) {
            let mut c = Committed::default();
            for (loc, item) in ack.locs[at..at + n].iter().zip(&mut items[at..at + n]) {
                if loc.is_some() {
                    c.stored += 1;
                    if let Some(mut it) = item.take() {
                        it.arrived = Some(now);
                        to_detect.push(it);
                    }
                } else {
                    c.duplicates += 1;
                }
            }
            at += n;
            if let Some(alerts) = s.alerts {
                let now_us = vigil_store::prepare::now_micros();
                for a in &alerts {
                    if let Some(t) = a.received_us {
                        self.shared.metrics.observe(
                            "vigil_ingest_to_alert_seconds",
                            &[],
                            (now_us - t).max(0) as f64 / 1e6,
                        );
                    }
                }
                for (k, q) in self.sinks.iter().enumerate() {
                    let mine: Vec<&QueuedAlert> =
                        alerts.iter().filter(|a| a.sinks.contains(&k)).collect();
                    if let Err(e) = q.push(&mine) {
                        eprintln!("vigil serve: sink {}: cannot queue alerts: {e}", q.name);
                    }
                }
            } else {
                let src: &str = &s.source;
                self.shared.metrics.add(
                    "vigil_events_stored_total",
                    &[("source", src)],
                    c.stored as f64,
                );
                self.shared.metrics.add(
                    "vigil_events_deduplicated_total",
                    &[("source", src)],
                    c.duplicates as f64,
                );
                self.shared.pending.fetch_sub(n, Ordering::Relaxed);
            }
            if let Some(r) = s.reply {
                let _ = r.send(Ok(c));
            }
        }
        if !to_detect.is_empty() {
            if let Some(tx) = &self.detect_tx {
                self.shared
                    .lag
                    .fetch_add(to_detect.len(), Ordering::Relaxed);
                if tx.send(crate::detect::DetectMsg::Items(to_detect)).is_err() {
                    self.detect_tx = None;
                }
            }
        }
        self.publish_gauges();
        true
    }
}

fn refuse(group: Vec<Submission>, shared: &Shared, n_events: usize, why: Refused) {
    shared.pending.fetch_sub(n_events, Ordering::Relaxed);
    for s in group {
        if let Some(r) = s.reply {
            let _ = r.send(Err(why.clone()));
        }
    }
}
