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

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use vigil_detect::{
    CorrelationAlert, CorrelationState, Event, Match, RuleInfo, RuleSet, RuleSource, StateLayout,
};
use vigil_model::alert::{level_rank, Alert, AlertRule, EvidenceRef};
use vigil_model::yaml::{parse_documents, Node};
use vigil_store::prepare;

use crate::config::{Sink, SuppressConfig};
use crate::sinks::QueuedAlert;
use crate::writer::{DetectItem, Shared, Submission, WriterMsg};

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

struct Seen {
    set: HashSet<(usize, String)>,
    order: VecDeque<(usize, String)>,
    cap: usize,
}

impl Seen {
    fn first_time(&mut self, key: (usize, String)) -> bool {
        if self.set.contains(&key) {
            return false;
        }
        if self.order.len() >= self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.order.push_back(key.clone());
        self.set.insert(key);
        true
    }
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
    seen: Seen,
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
            seen: Seen {
                set: HashSet::new(),
                order: VecDeque::new(),
                cap: 1 << 20,
            },
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
                    self.seen.set.clear();
                    self.seen.order.clear();
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

    fn push(&mut self, it: DetectItem) {
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
    fn release(&mut self, all: bool) {
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
                if !self.rules.per_stage[m.rule] && !self.seen.first_time((m.rule, id.clone())) {
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
    fn emit(&mut self) {
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

    fn checkpoint(&mut self) {
        let cp = Checkpoint {
            positions: self.positions.clone(),
            state: self.state.clone(),
            layout: Some(self.rules.set.state_layout()),
            buffered: self.buffer.values().cloned().collect(),
            watermark_us: self.watermark_us,
            max_time_us: self.max_time_us,
            late: self.late,
        };
        match serde_json::to_vec(&cp) {
            Ok(bytes) => {
                let _ = self.writer.send(WriterMsg::Checkpoint(bytes));
            }
            Err(e) => eprintln!("vigil serve: detection checkpoint: {e}"),
        }
    }
}

pub fn alert_rule(info: &RuleInfo) -> AlertRule {
    AlertRule {
        id: info
            .id
            .clone()
            .or_else(|| info.name.clone())
            .unwrap_or_else(|| info.title.clone()),
        title: info.title.clone(),
        level: info.level.clone().unwrap_or_else(|| "medium".into()),
        tags: info.tags.clone(),
    }
}

fn correlation_alert(set: &RuleSet, c: &CorrelationAlert, file: &str) -> Alert {
    let info = &set.rules()[c.rule];
    let time = chrono::DateTime::from_timestamp_millis(c.last_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_default();
    let mut matched = Map::new();
    matched.insert("count".into(), Value::from(c.count));
    if let Some(field) = &c.field {
        matched.insert(field.clone(), Value::Array(c.values.clone()));
    }
    Alert {
        rule: alert_rule(info),
        time,
        group: c.group.iter().cloned().collect(),
        events: c
            .events
            .iter()
            .map(|e| EvidenceRef {
                dataset: set.rules()[e.rule]
                    .datasets
                    .first()
                    .cloned()
                    .unwrap_or_default(),
                file: file.to_string(),
                line: 0,
                id: e.id.clone(),
            })
            .collect(),
        matched,
    }
}

fn event_id(dataset: &str, doc: &Value) -> Option<String> {
    let key = match dataset {
        "k8s.audit" => "auditID",
        d if d.starts_with("zeek.") => "uid",
        _ => return None,
    };
    doc.get(key).and_then(Value::as_str).map(str::to_string)
}

fn event_time(doc: &Value) -> String {
    [
        "stageTimestamp",
        "requestReceivedTimestamp",
        "timestamp",
        "@timestamp",
    ]
    .iter()
    .find_map(|k| doc.get(*k).and_then(Value::as_str))
    .unwrap_or_default()
    .to_string()
}

/// The alert a silent source raises.
pub fn silent_alert(source: &str, silent_for: Duration) -> Alert {
    let mut group = Map::new();
    group.insert("source".into(), Value::from(source));
    let mut matched = Map::new();
    matched.insert("silent_seconds".into(), Value::from(silent_for.as_secs()));
    Alert {
        rule: AlertRule {
            id: "vigil-source-silent".into(),
            title: format!("Log source {source} went silent"),
            level: "high".into(),
            tags: vec!["attack.defense-evasion".into(), "attack.t1562.002".into()],
        },
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        group,
        events: Vec::new(),
        matched,
    }
}

/// Records stored after the checkpoint (or, on a first start, nothing), for replay.
pub fn replay_items(
    dir: &std::path::Path,
    positions: &BTreeMap<u32, u64>,
    first_start: bool,
) -> Result<(Vec<DetectItem>, BTreeMap<u32, u64>), String> {
    let reader = vigil_store::Reader::open(dir).map_err(|e| e.to_string())?;
    let mut items = Vec::new();
    let mut start_positions = positions.clone();
    for part in &reader.parts {
        if part.dataset == prepare::ALERT_DATASET {
            continue;
        }
        if first_start {
            start_positions.insert(part.id, part.count);
            continue;
        }
        let from = positions.get(&part.id).copied().unwrap_or(0);
        if from >= part.count {
            continue;
        }
        reader
            .scan_partition(part, from, &mut |e| {
                let k8s = e.dataset == "k8s.audit";
                items.push(DetectItem {
                    dataset: e.dataset.clone(),
                    source: e.record.source.clone(),
                    raw: k8s.then(|| String::from_utf8_lossy(&e.record.raw).into_owned()),
                    doc: (!k8s).then(|| e.doc.clone()),
                    time_us: e.record.event_time,
                    received_us: e.record.received,
                    pid: part.id,
                    seq: e.seq,
                    arrived: None,
                });
                Ok(true)
            })
            .map_err(|e| e.to_string())?;
    }
    items.sort_by_key(|i| (i.received_us, i.pid, i.seq));
    Ok((items, start_positions))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_detect::Config;

    const RULES: &str = "title: Delete\nid: del\nname: del\nlogsource: {product: kubernetes, service: audit}\ndetection:\n  selection:\n    verb: delete\n  condition: selection\nlevel: low\n---\ntitle: Two deletes\nid: two-deletes\ncorrelation:\n  type: event_count\n  rules: [del]\n  group-by: [user.username]\n  timespan: 10s\n  condition:\n    gte: 2\nlevel: high\n";

    fn item(seq: u64, t_s: i64) -> DetectItem {
        let ts = vigil_store::reader::micros_rfc3339(t_s * 1_000_000);
        DetectItem {
            dataset: "k8s.audit".into(),
            source: "test".into(),
            raw: Some(format!(
                r#"{{"kind":"Event","auditID":"id-{seq}","stage":"ResponseComplete","verb":"delete","user":{{"username":"eve"}},"objectRef":{{"resource":"pods"}},"stageTimestamp":"{ts}","requestReceivedTimestamp":"{ts}"}}"#
            )),
            doc: None,
            time_us: t_s * 1_000_000,
            received_us: 0,
            pid: 1,
            seq,
            arrived: Some(Instant::now()),
        }
    }

    fn detection() -> (Detection, std::sync::mpsc::Receiver<WriterMsg>, Arc<Shared>) {
        detection_with(RULES, None)
    }

    fn detection_with(
        rules: &str,
        restored: Option<Checkpoint>,
    ) -> (Detection, std::sync::mpsc::Receiver<WriterMsg>, Arc<Shared>) {
        let sources = vec![RuleSource::new("t.yml", rules)];
        let (set, errors) = RuleSet::compile(&sources, &Config::default());
        assert!(errors.is_empty(), "{errors:?}");
        let shared = Arc::new(Shared::new(1000, std::env::temp_dir()));
        let (tx, rx) = std::sync::mpsc::channel();
        let d = Detection::new(
            Rules::new(set, &sources),
            restored,
            Duration::from_secs(10),
            Duration::from_secs(60),
            Vec::new(),
            Vec::new(),
            shared.clone(),
            tx,
        );
        (d, rx, shared)
    }

    fn alerts(rx: &std::sync::mpsc::Receiver<WriterMsg>) -> Vec<String> {
        rx.try_iter()
            .filter_map(|m| match m {
                WriterMsg::Submit(s) => Some(s.alerts.unwrap_or_default()),
                _ => None,
            })
            .flatten()
            .map(|a| a.json)
            .collect()
    }

    #[test]
    fn events_are_evaluated_in_event_time_and_late_ones_are_counted() {
        let (mut d, rx, shared) = detection();
        // Out of order within the allowed lateness: reordered, the correlation fires once.
        d.push(item(1, 1000));
        d.push(item(2, 1030));
        d.push(item(3, 1005));
        d.release(false);
        d.emit();
        // 1000 and 1005 are due (10 s of lateness behind 1030; 1030 is not); they correlate.
        let a = alerts(&rx);
        assert_eq!(
            a.iter().filter(|j| j.contains("two-deletes")).count(),
            1,
            "{a:?}"
        );
        assert_eq!(d.buffer.len(), 1);
        // An event older than what was evaluated: late, counted, still evaluated.
        d.push(item(4, 900));
        assert_eq!(d.late, 1);
        assert_eq!(shared.metrics.get("vigil_events_late_total", &[]), 1.0);
        // Checkpoint round trip keeps the buffered event and the position.
        let cp: Checkpoint = serde_json::from_slice(&d.checkpoint_bytes()).unwrap();
        assert_eq!(cp.buffered.len(), 1);
        assert_eq!(cp.positions.get(&1), Some(&5));
        d.release(true);
        assert!(d.buffer.is_empty());
    }

    #[test]
    fn a_restart_with_edited_rules_keeps_the_unchanged_correlations() {
        let (mut d, _rx, _) = detection();
        d.push(item(1, 1000));
        d.release(true);
        let cp: Checkpoint = serde_json::from_slice(&d.checkpoint_bytes()).unwrap();
        assert!(cp.layout.is_some());
        // A rule added in front renumbers every rule and correlation.
        let edited = format!(
            "title: Get\nid: get\nlogsource: {{product: kubernetes, service: audit}}\ndetection: {{sel: {{verb: get}}, condition: sel}}\nlevel: low\n---\n{RULES}"
        );
        let (mut d, rx, _) = detection_with(&edited, Some(cp));
        d.push(item(2, 1003));
        d.release(true);
        d.emit();
        let a = alerts(&rx);
        assert_eq!(
            a.iter().filter(|j| j.contains("two-deletes")).count(),
            1,
            "the delete before the restart still counts: {a:?}"
        );
    }

    #[test]
    fn a_checkpoint_without_a_layout_starts_correlations_empty() {
        let (mut d, _rx, _) = detection();
        d.push(item(1, 1000));
        d.release(true);
        let mut cp: Checkpoint = serde_json::from_slice(&d.checkpoint_bytes()).unwrap();
        cp.layout = None;
        let (mut d, rx, _) = detection_with(RULES, Some(cp));
        d.push(item(2, 1003));
        d.release(true);
        d.emit();
        assert!(alerts(&rx).iter().all(|j| !j.contains("two-deletes")));
    }
}
