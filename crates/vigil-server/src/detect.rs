//! Streaming detection in event time. Stored events arrive from the writer; they wait in a
//! reorder buffer until the stream has moved `allowed_lateness` past them (or they waited that
//! long), and are evaluated in event-time order, so correlations see time as the events say.
//! An event older than what was already evaluated is late: counted, and evaluated at once.
//!
//! The correlation state, the reorder buffer and the journal position (per partition, the next
//! record to see) are checkpointed through the writer, which writes the checkpoint only once
//! every alert raised before it is stored. After a restart, records stored after the checkpoint
//! are read back from the store and evaluated again; alert ids are stable, so the store and the
//! sink queues collapse what was already raised.
//!
//! The alert building mirrors `vigil detect` (crates/vigil-cli/src/detection.rs), which this
//! crate cannot depend on: same contract, same per-request dedup of stage-agnostic rules.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use vigil_detect::{
    AlertDedup, CorrelationAlert, CorrelationState, Match, RuleSet, RuleSource, StateLayout,
};
use vigil_model::alert::Alert;
use vigil_model::yaml::{parse_documents, Node};
use vigil_store::prepare;

use crate::config::{Sink, SuppressConfig};
use crate::writer::{DetectItem, Shared, WriterMsg};

mod alerts;
mod evaluate;
mod journal;
mod output;
#[cfg(test)]
mod tests;

pub use alerts::{alert_rule, silent_alert};
pub use journal::replay_items;

use alerts::correlation_alert;

/// A compiled rule set and, per rule, whether it tests `stage` (then it alerts per stage, else
/// once per request).
pub struct Rules {
    pub set: RuleSet,
    pub per_stage: Vec<bool>,
}

pub type RulesLoader = Arc<dyn Fn() -> Result<Rules, String> + Send + Sync>;

impl Rules {
    pub fn new(set: RuleSet, sources: &[RuleSource]) -> Rules {
        let texts: HashMap<&str, &str> = sources
            .iter()
            .map(|s| (s.origin.as_str(), s.text.as_str()))
            .collect();
        let per_stage = set
            .rules()
            .iter()
            .map(|info| {
                let Some(text) = texts.get(info.origin.as_str()) else {
                    return false;
                };
                let Ok(docs) = parse_documents(text) else {
                    return false;
                };
                docs.iter()
                    .rfind(|d| d.line <= info.line)
                    .and_then(|d| d.root.get("detection"))
                    .is_some_and(mentions_stage)
            })
            .collect();
        Rules { set, per_stage }
    }

    fn signature(&self) -> Vec<String> {
        self.set
            .rules()
            .iter()
            .map(|r| format!("{}|{:?}|{}", r.origin, r.id, r.line))
            .collect()
    }
}

fn mentions_stage(node: &Node) -> bool {
    match (node.as_map(), node.as_seq()) {
        (Some(entries), _) => entries.iter().any(|(k, v)| {
            k.as_scalar()
                .is_some_and(|s| s.text == "stage" || s.text.starts_with("stage|"))
                || mentions_stage(v)
        }),
        (_, Some(items)) => items.iter().any(mentions_stage),
        _ => false,
    }
}

pub enum DetectMsg {
    Items(Vec<DetectItem>),
    Reload(Rules),
    /// An alert raised by the service itself (a silent source).
    Internal(Alert),
    Drain,
}

#[derive(Serialize, Deserialize, Default)]
pub struct Checkpoint {
    /// Partition id -> next record to see.
    pub positions: BTreeMap<u32, u64>,
    pub state: CorrelationState,
    /// What the state's indices mean (absent in checkpoints of older versions).
    #[serde(default)]
    pub layout: Option<StateLayout>,
    pub buffered: Vec<DetectItem>,
    pub watermark_us: i64,
    pub max_time_us: i64,
    pub late: u64,
}

pub struct Detection {
    rules: Rules,
    state: CorrelationState,
    buffer: BTreeMap<(i64, u64), DetectItem>,
    next_no: u64,
    watermark_us: i64,
    max_time_us: i64,
    late: u64,
    positions: BTreeMap<u32, u64>,
    lateness: Duration,
    checkpoint_every: Duration,
    seen: AlertDedup,
    sinks: Vec<Sink>,
    suppress: Vec<SuppressConfig>,
    suppressed_until: HashMap<String, Instant>,
    shared: Arc<Shared>,
    writer: Sender<WriterMsg>,
    matches: Vec<Match>,
    corr: Vec<CorrelationAlert>,
    out: Vec<(Alert, Option<Value>, Option<Instant>, i64)>,
}

impl Detection {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        rules: Rules,
        restored: Option<Checkpoint>,
        lateness: Duration,
        checkpoint_every: Duration,
        sinks: Vec<Sink>,
        suppress: Vec<SuppressConfig>,
        shared: Arc<Shared>,
        writer: Sender<WriterMsg>,
    ) -> Detection {
        let fresh = restored.is_none();
        let mut cp = restored.unwrap_or_default();
        if fresh {
            cp.watermark_us = i64::MIN;
            cp.max_time_us = i64::MIN;
        }
        // The rules may have been edited while the service was down: the state is re-indexed
        // onto the rules loaded now (a state read with other rules' indices would feed the
        // wrong correlations).
        let state = match &cp.layout {
            Some(layout) => {
                let (state, carried) = cp.state.carry_over(layout, &rules.set);
                if carried.reset > 0 {
                    eprintln!(
                        "vigil serve: {} correlation(s) changed since the checkpoint start empty; {} keep their state",
                        carried.reset, carried.kept
                    );
                }
                state
            }
            None if cp.state.groups() > 0 || cp.state.pending() > 0 => {
                eprintln!("vigil serve: the checkpoint does not say which rules its correlation state belongs to (older version): correlations start empty");
                CorrelationState::new()
            }
            None => cp.state,
        };
        let mut d = Detection {
            rules,
            state,
            buffer: BTreeMap::new(),
            next_no: 0,
            watermark_us: cp.watermark_us,
            max_time_us: cp.max_time_us,
            late: cp.late,
            positions: cp.positions,
            lateness,
            checkpoint_every,
            seen: AlertDedup::new(1 << 20),
            sinks,
            suppress,
            suppressed_until: HashMap::new(),
            shared,
            writer,
            matches: Vec::new(),
            corr: Vec::new(),
            out: Vec::new(),
        };
        for it in cp.buffered {
            d.buffer.insert((it.time_us, d.next_no), it);
            d.next_no += 1;
        }
        d.shared
            .metrics
            .set("vigil_rules_loaded", &[], d.rules.set.rules().len() as f64);
        d.shared.metrics.touch("vigil_events_late_total", &[]);
        d
    }

    /// Where the journal is read from (the replay's start).
    pub fn set_positions(&mut self, p: BTreeMap<u32, u64>) {
        self.positions = p;
    }

    /// Events read back from the store after a restart (no lag accounting).
    pub fn replay(&mut self, items: Vec<DetectItem>) {
        for it in items {
            self.note_position(&it);
            self.buffer.insert((it.time_us, self.next_no), it);
            self.next_no += 1;
        }
    }

    fn note_position(&mut self, it: &DetectItem) {
        let p = self.positions.entry(it.pid).or_default();
        *p = (*p).max(it.seq + 1);
    }

    pub fn run(mut self, rx: Receiver<DetectMsg>) {
        let mut last_ckpt = Instant::now();
        let mut dirty = true;
        loop {
            let msg = rx.recv_timeout(Duration::from_millis(100));
            match msg {
                Ok(DetectMsg::Items(items)) => {
                    dirty = true;
                    for it in items {
                        self.push(it);
                    }
                }
                Ok(DetectMsg::Reload(rules)) => {
                    self.release(true);
                    if rules.signature() != self.rules.signature() {
                        let layout = self.rules.set.state_layout();
                        let (state, carried) =
                            std::mem::take(&mut self.state).carry_over(&layout, &rules.set);
                        self.state = state;
                        eprintln!(
                            "vigil serve: rules reloaded ({} rules); correlation state kept for {} correlation(s), reset for {} that changed",
                            rules.set.rules().len(),
                            carried.kept,
                            carried.reset
                        );
                    } else {
                        eprintln!("vigil serve: rules reloaded (unchanged)");
                    }
                    self.shared.metrics.set(
                        "vigil_rules_loaded",
                        &[],
                        rules.set.rules().len() as f64,
                    );
                    self.rules = rules;
                    // Rule positions changed: what they alerted on means nothing now.
                    self.seen.clear();
                }
                Ok(DetectMsg::Internal(a)) => {
                    self.out.push((a, None, None, prepare::now_micros()));
                }
                Ok(DetectMsg::Drain) | Err(RecvTimeoutError::Disconnected) => {
                    self.release(true);
                    self.emit();
                    self.checkpoint();
                    let _ = self.writer.send(WriterMsg::DetectionDone);
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            self.release(false);
            // Upper-bounded correlations are judged once their window closed in event time.
            if self.watermark_us > i64::MIN {
                self.corr.clear();
                self.rules
                    .set
                    .flush(&mut self.state, self.watermark_us / 1000, &mut self.corr);
                let corr = std::mem::take(&mut self.corr);
                for c in &corr {
                    let a = correlation_alert(&self.rules.set, c, "correlation");
                    self.out.push((a, None, None, prepare::now_micros()));
                }
            }
            self.emit();
            if dirty && last_ckpt.elapsed() >= self.checkpoint_every {
                self.checkpoint();
                last_ckpt = Instant::now();
                dirty = false;
            }
            self.shared
                .metrics
                .set("vigil_correlation_groups", &[], self.state.groups() as f64);
            self.shared.metrics.set(
                "vigil_journal_lag_events",
                &[],
                self.shared.lag.load(Ordering::Relaxed) as f64,
            );
        }
    }
}
