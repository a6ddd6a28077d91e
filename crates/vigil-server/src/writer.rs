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

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::oneshot;
use vigil_store::prepare::Record;
use vigil_store::{Store, StoreOptions};

use crate::metrics::Metrics;
use crate::sinks::{QueuedAlert, SinkQueue};

mod commit;
mod state;

pub use state::{partition_counts, write_atomic, Offsets};

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
