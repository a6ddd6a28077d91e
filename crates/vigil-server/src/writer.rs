//! The one thread that owns the store. Every source hands it batches; it group-commits them (one
//! `append_batch`, one fsync, for whatever is queued), answers each batch only once it is
//! durable, then hands the stored events to detection and the stored alerts to the sinks.
//!
//! File sources checkpoint their read offsets *with* the data: before a commit that carries
//! offsets, an intent line (the new offsets and the record count of every partition the commit
//! touches) is appended to `server/offsets.log` and synced. After a crash the last intent is
//! resolved against the store: if any of its partitions grew past the recorded count, the
//! commit happened (a batch is all or nothing) and its offsets hold; otherwise the previous
//! ones do. So a restart, even after `kill -9`, resumes exactly: nothing lost, nothing twice.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::oneshot;
use vigil_store::index::unloc;
use vigil_store::prepare::Record;
use vigil_store::{partition_name, Store, StoreError, StoreOptions};

use crate::metrics::Metrics;
use crate::sinks::{QueuedAlert, SinkQueue};

/// An event on its way to detection, as stored (redacted). Serializable: events waiting in the
/// reorder buffer are part of the detection checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DetectItem {
    pub dataset: String,
    pub source: String,
    /// The event's JSON (Kubernetes audit: the engine parses it lazily).
    pub raw: Option<String>,
    /// The normalized document (line formats).
    pub doc: Option<Value>,
    /// Event time and receive time, µs since the epoch.
    pub time_us: i64,
    pub received_us: i64,
    pub pid: u32,
    pub seq: u64,
    /// When the service got it (for the ingest-to-alert latency); not checkpointed.
    #[serde(skip)]
    pub arrived: Option<Instant>,
}

impl DetectItem {
    /// What detection needs from a record about to be stored.
    pub fn from_record(r: &Record, source: &str) -> DetectItem {
        let k8s = r.dataset() == "k8s.audit";
        DetectItem {
            dataset: r.dataset().to_string(),
            source: source.to_string(),
            raw: k8s.then(|| r.raw().to_string()),
            doc: (!k8s).then(|| r.doc().clone()),
            time_us: r.event_time(),
            received_us: vigil_store::prepare::now_micros(),
            pid: 0,
            seq: 0,
            arrived: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Committed {
    pub stored: u64,
    pub duplicates: u64,
}

/// Why a batch was not taken; the sender should come back later (429/503).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    DiskFull(String),
    Unavailable(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::DiskFull(m) | Refused::Unavailable(m) => f.write_str(m),
        }
    }
}

pub type ReplyTx = oneshot::Sender<Result<Committed, Refused>>;

pub struct Submission {
    /// Source name (metrics).
    pub source: Arc<str>,
    pub records: Vec<Record>,
    /// A file source's new read state, committed with the records.
    pub offsets: Option<Value>,
    /// Set for alert batches: what to queue for the sinks once stored.
    pub alerts: Option<Vec<QueuedAlert>>,
    pub reply: Option<ReplyTx>,
    /// When the source received these events (µs since the epoch).
    pub received_us: i64,
}

pub enum WriterMsg {
    Submit(Submission),
    /// Detection's checkpoint: written once everything queued before it is stored.
    Checkpoint(Vec<u8>),
    /// Detection finished draining: write what is left and stop.
    DetectionDone,
}

/// Shared between the writer and the sources.
pub struct Shared {
    pub metrics: Metrics,
    /// Events handed to the writer and not yet answered.
    pub pending: AtomicUsize,
    /// Events stored and not yet through detection.
    pub lag: AtomicUsize,
    pub limit: usize,
    pub store_ok: AtomicBool,
    pub shutting_down: AtomicBool,
    pub state_dir: PathBuf,
    /// Source name -> when it last delivered an event (for `silent_after`).
    pub last_seen: std::sync::Mutex<HashMap<String, Instant>>,
}

impl Shared {
    pub fn new(limit: usize, state_dir: PathBuf) -> Shared {
        Shared {
            metrics: Metrics::default(),
            pending: AtomicUsize::new(0),
            lag: AtomicUsize::new(0),
            limit,
            store_ok: AtomicBool::new(true),
            shutting_down: AtomicBool::new(false),
            state_dir,
            last_seen: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Notes that `source` delivered events now.
    pub fn seen(&self, source: &str) {
        if let Ok(mut m) = self.last_seen.lock() {
            m.insert(source.to_string(), Instant::now());
        }
    }

    /// Whether `n` more events may be queued now.
    pub fn admit(&self, n: usize) -> bool {
        self.pending.load(Ordering::Relaxed) + self.lag.load(Ordering::Relaxed) + n
            <= self.limit.max(n)
    }
}

#[derive(Serialize, Deserialize)]
struct Intent {
    /// Source name -> its read state.
    states: BTreeMap<String, Value>,
    /// Partition -> records before the commit; empty when already known to be committed.
    #[serde(default)]
    before: BTreeMap<String, u64>,
    #[serde(default)]
    aborted: bool,
}

/// The file sources' committed read states (`server/offsets.log`).
pub struct Offsets {
    path: PathBuf,
    file: File,
    pub states: BTreeMap<String, Value>,
}

impl Offsets {
    /// Reads the log, resolves its last intent against the store's partition counts, and
    /// rewrites it compacted.
    pub fn open(state_dir: &Path, counts: &HashMap<String, u64>) -> std::io::Result<Offsets> {
        let path = state_dir.join("offsets.log");
        let mut states = BTreeMap::new();
        if let Ok(f) = File::open(&path) {
            let lines: Vec<Intent> = BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| serde_json::from_str(&l).ok())
                .collect();
            let n = lines.len();
            let aborted: Vec<bool> = lines.iter().map(|l| l.aborted).collect();
            for (i, intent) in lines.into_iter().enumerate() {
                // An intent followed by an abort line was not committed.
                if intent.aborted || aborted.get(i + 1).copied().unwrap_or(false) {
                    continue;
                }
                let committed = i + 1 < n
                    || intent.before.is_empty()
                    || intent
                        .before
                        .iter()
                        .any(|(p, before)| counts.get(p).copied().unwrap_or(0) > *before);
                if committed {
                    states.extend(intent.states);
                }
            }
        }
        let tmp = path.with_extension("tmp");
        {
            let mut f = File::create(&tmp)?;
            let line = serde_json::to_string(&Intent {
                states: states.clone(),
                before: BTreeMap::new(),
                aborted: false,
            })?;
            writeln!(f, "{line}")?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        File::open(state_dir)?.sync_all()?;
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok(Offsets { path, file, states })
    }

    fn write(&mut self, intent: &Intent) -> std::io::Result<()> {
        let line = serde_json::to_string(intent)? + "\n";
        self.file.write_all(line.as_bytes())?;
        self.file.sync_data()
    }

    /// Starts the log afresh when it grew large (everything in it is committed).
    fn compact(&mut self) -> std::io::Result<()> {
        if self.file.metadata()?.len() < (4 << 20) {
            return Ok(());
        }
        let tmp = self.path.with_extension("tmp");
        {
            let mut f = File::create(&tmp)?;
            let line = serde_json::to_string(&Intent {
                states: self.states.clone(),
                before: BTreeMap::new(),
                aborted: false,
            })?;
            writeln!(f, "{line}")?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        Ok(())
    }
}

/// Records per partition, from a reader of the (just opened) store.
pub fn partition_counts(dir: &Path) -> Result<HashMap<String, u64>, StoreError> {
    let reader = vigil_store::Reader::open(dir)?;
    Ok(reader
        .parts
        .iter()
        .map(|p| (p.name.clone(), p.count))
        .collect())
}

pub struct Writer {
    pub store: Option<Store>,
    pub dir: PathBuf,
    pub store_opts: fn() -> StoreOptions,
    pub counts: HashMap<String, u64>,
    pub offsets: Offsets,
    pub shared: Arc<Shared>,
    pub detect_tx: Option<Sender<crate::detect::DetectMsg>>,
    pub sinks: Vec<Arc<SinkQueue>>,
    pub commit_max: usize,
    last_reopen: Option<Instant>,
    /// The store takes writes (false after a write error, until reopened). `Shared::store_ok`
    /// (readiness) turns true again only once a write succeeded.
    usable: bool,
}

impl Writer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        dir: PathBuf,
        store_opts: fn() -> StoreOptions,
        counts: HashMap<String, u64>,
        offsets: Offsets,
        shared: Arc<Shared>,
        detect_tx: Option<Sender<crate::detect::DetectMsg>>,
        sinks: Vec<Arc<SinkQueue>>,
        commit_max: usize,
    ) -> Writer {
        Writer {
            store: Some(store),
            dir,
            store_opts,
            counts,
            offsets,
            shared,
            detect_tx,
            sinks,
            commit_max,
            last_reopen: None,
            usable: true,
        }
    }

    /// Runs until detection says it is done (or, without detection, every sender is gone).
    pub fn run(mut self, rx: Receiver<WriterMsg>) {
        let mut done = false;
        while !done {
            let first = match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(m) => m,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    self.try_reopen();
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut group = Vec::new();
            let mut checkpoints = Vec::new();
            let mut events = 0usize;
            let mut next = Some(first);
            while let Some(m) = next.take() {
                match m {
                    WriterMsg::Submit(s) => {
                        events += s.records.len();
                        group.push(s);
                    }
                    WriterMsg::Checkpoint(c) => checkpoints.push(c),
                    WriterMsg::DetectionDone => done = true,
                }
                if events < self.commit_max && !done {
                    next = rx.try_recv().ok();
                }
            }
            let ok = self.commit(group);
            if ok {
                if let Some(c) = checkpoints.pop() {
                    if let Err(e) = write_atomic(&self.shared.state_dir.join("detect.json"), &c) {
                        eprintln!("vigil serve: cannot write the detection checkpoint: {e}");
                    }
                }
            }
        }
        // Everything that is still queued.
        let rest: Vec<Submission> = rx
            .try_iter()
            .filter_map(|m| match m {
                WriterMsg::Submit(s) => Some(s),
                _ => None,
            })
            .collect();
        if !rest.is_empty() {
            self.commit(rest);
        }
        if let Some(store) = self.store.take() {
            if let Err(e) = store.close() {
                eprintln!("vigil serve: closing the store: {e}");
            }
        }
    }

    fn try_reopen(&mut self) {
        if self.store.is_some() && self.usable {
            return;
        }
        if self
            .last_reopen
            .is_some_and(|t| t.elapsed() < Duration::from_secs(5))
        {
            return;
        }
        self.last_reopen = Some(Instant::now());
        drop(self.store.take());
        match Store::open(&self.dir, (self.store_opts)()) {
            Ok(s) => {
                eprintln!("vigil serve: store reopened; taking events again");
                self.store = Some(s);
                if let Ok(c) = partition_counts(&self.dir) {
                    self.counts = c;
                }
                self.usable = true;
            }
            Err(e) => eprintln!("vigil serve: store still unavailable: {e}"),
        }
    }

    /// One group commit. `false` when nothing could be stored.
    fn commit(&mut self, group: Vec<Submission>) -> bool {
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

    fn publish_gauges(&self) {
        let m = &self.shared.metrics;
        m.set(
            "vigil_queue_events",
            &[],
            self.shared.pending.load(Ordering::Relaxed) as f64,
        );
        m.set(
            "vigil_journal_lag_events",
            &[],
            self.shared.lag.load(Ordering::Relaxed) as f64,
        );
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

/// Replaces a file atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(lines: &[&str], counts: &[(&str, u64)]) -> Value {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("offsets.log"), lines.join("\n") + "\n").unwrap();
        let counts = counts.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let o = Offsets::open(dir.path(), &counts).unwrap();
        // Compacted to one committed line, which resolves the same way again.
        let again = Offsets::open(dir.path(), &HashMap::new()).unwrap();
        assert_eq!(again.states, o.states);
        o.states.get("f").cloned().unwrap_or(Value::Null)
    }

    const BASE: &str = r#"{"states":{"f":1},"before":{}}"#;
    const NEXT: &str =
        r#"{"states":{"f":2},"before":{"k8s.audit/2026-01-01":10,"linux.auth/2026-01-01":4}}"#;

    #[test]
    fn the_last_intent_holds_only_if_a_partition_grew() {
        assert_eq!(
            resolve(
                &[BASE, NEXT],
                &[("k8s.audit/2026-01-01", 10), ("linux.auth/2026-01-01", 4)]
            ),
            1
        );
        assert_eq!(
            resolve(
                &[BASE, NEXT],
                &[("k8s.audit/2026-01-01", 10), ("linux.auth/2026-01-01", 5)]
            ),
            2
        );
        // A new partition created by the commit.
        assert_eq!(
            resolve(
                &[BASE, NEXT],
                &[
                    ("k8s.audit/2026-01-01", 10),
                    ("linux.auth/2026-01-01", 4),
                    ("other", 3)
                ]
            ),
            1
        );
        // An intent followed by an abort line was not committed.
        let abort = r#"{"states":{},"before":{},"aborted":true}"#;
        assert_eq!(
            resolve(&[BASE, NEXT, abort], &[("linux.auth/2026-01-01", 9)]),
            1
        );
        // Earlier intents (followed by others) were committed.
        let third = r#"{"states":{"f":3},"before":{"linux.auth/2026-01-01":20}}"#;
        assert_eq!(
            resolve(&[BASE, NEXT, third], &[("linux.auth/2026-01-01", 20)]),
            2
        );
        // A torn last line is ignored.
        assert_eq!(resolve(&[BASE, r#"{"states":{"f":9},"bef"#], &[]), 1);
    }
}
