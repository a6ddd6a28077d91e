//! The file source: follows the files matching its globs, across rotation by rename and by
//! copytruncate, and picks up new ones.
//!
//! A file is known by its fingerprint — a hash of its first `fp_len` bytes, where `fp_len` is
//! what the file had when first seen, growing up to `fingerprint_bytes` (1024 by default, so
//! that files sharing a header line, like Zeek's, still differ) — together with its device and
//! inode:
//! - same inode, same fingerprint, not shorter than what was read: the same file (perhaps
//!   renamed: rotation by rename);
//! - same inode, other content or shorter: truncated (copytruncate) and perhaps rewritten: read
//!   again from the start;
//! - same fingerprint on another inode, while the old inode no longer shows it: the same
//!   content moved (the copy of a copytruncate, a move across file systems): continue where it
//!   was. While both show it (a copy not yet followed by the truncation) the copy waits, up to
//!   `COPY_HOLD`, before it is taken for a file of its own.
//!
//! Read offsets (always at a line boundary, with the parser flushed) are committed with the
//! records they produced (see `writer`), so a restart resumes exactly. A rotated file that no
//! longer matches the globs is read to its end: through the descriptor kept open, or, after a
//! restart, found again by inode in the directory it was in.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::oneshot;
use vigil_normalize::{detect_format, parser_for, Dataset, Options, YearHint};
use vigil_store::prepare::{self, Record};
use xxhash_rust::xxh3::xxh3_64;

use crate::config::FileSource;
use crate::writer::{Shared, Submission, WriterMsg};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FileState {
    pub path: String,
    pub dev: u64,
    pub ino: u64,
    pub fingerprint: u64,
    /// Bytes the fingerprint covers.
    #[serde(default)]
    pub fp_len: u64,
    pub offset: u64,
    pub dataset: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct SourceState {
    pub files: Vec<FileState>,
}

struct Tracked {
    st: FileState,
    handle: Option<File>,
    /// Polls since it was last seen under a matching name (rotated away or deleted).
    unseen: u32,
}

/// At most this many files are remembered (the least recently read are forgotten).
const MAX_KNOWN: usize = 4096;
/// Bytes read from one file in one poll.
const CHUNK: u64 = 4 << 20;

pub struct Tailer {
    pub name: Arc<str>,
    pub cfg: FileSource,
    pub shared: Arc<Shared>,
    pub writer: Sender<WriterMsg>,
    files: Vec<Tracked>,
    first_scan: bool,
    rejected_shown: u64,
    /// Possible copies of live files, and since when.
    held: std::collections::HashMap<(u64, u64), Instant>,
}

/// What the scan learns about a path.
struct Found {
    path: String,
    dev: u64,
    ino: u64,
    len: u64,
    /// The first `fingerprint_bytes` bytes (fewer when the file is shorter).
    head: Vec<u8>,
}

impl Found {
    /// The hash of the first `n` bytes, if the file has them.
    fn hash(&self, n: u64) -> Option<u64> {
        (n > 0 && self.head.len() as u64 >= n).then(|| xxh3_64(&self.head[..n as usize]))
    }

    fn matches(&self, t: &FileState) -> bool {
        self.hash(t.fp_len) == Some(t.fingerprint)
    }
}

/// A copy that shows the same content as a live file waits this long before it is taken for a
/// file of its own (the truncation of a copytruncate normally follows at once).
const COPY_HOLD: Duration = Duration::from_secs(10);

fn identify(path: &str, fp_bytes: usize) -> Option<Found> {
    let mut f = File::open(path).ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() || meta.len() == 0 {
        return None;
    }
    let mut head = vec![0u8; fp_bytes];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return None,
        }
    }
    head.truncate(n);
    // Compressed rotations (audit.log.1.gz) repeat what was read in plain text.
    if head.starts_with(&[0x1f, 0x8b]) {
        return None;
    }
    Some(Found {
        path: path.to_string(),
        dev: meta.dev(),
        ino: meta.ino(),
        len: meta.len(),
        head,
    })
}

impl Tailer {
    pub fn new(
        name: Arc<str>,
        cfg: FileSource,
        shared: Arc<Shared>,
        writer: Sender<WriterMsg>,
        saved: Option<&Value>,
    ) -> Tailer {
        let state: Option<SourceState> = saved.and_then(|v| serde_json::from_value(v.clone()).ok());
        let first_scan = state.is_none();
        let files = state
            .unwrap_or_default()
            .files
            .into_iter()
            .map(|st| Tracked {
                st,
                handle: None,
                unseen: 0,
            })
            .collect();
        Tailer {
            name,
            cfg,
            shared,
            writer,
            files,
            first_scan,
            rejected_shown: 0,
            held: Default::default(),
        }
    }

    fn state(&self) -> Value {
        serde_json::to_value(SourceState {
            files: self.files.iter().map(|t| t.st.clone()).collect(),
        })
        .unwrap_or(Value::Null)
    }

    /// Matches the files on disk with the known ones.
    fn scan(&mut self) {
        let mut paths = Vec::new();
        for pattern in &self.cfg.paths {
            if let Ok(g) = glob::glob(pattern) {
                paths.extend(g.flatten().map(|p| p.to_string_lossy().into_owned()));
            }
        }
        paths.sort();
        paths.dedup();
        let found: Vec<Found> = paths
            .iter()
            .filter_map(|p| identify(p, self.cfg.fingerprint_bytes))
            .collect();
        let fp_max = self.cfg.fingerprint_bytes as u64;
        let mut matched = vec![false; self.files.len()];
        let mut assigned = vec![false; found.len()];
        let start_at_end = self.first_scan && self.cfg.start_at_end;
        // 1. The same file: same inode, same content, not shorter than what was read.
        for (k, f) in found.iter().enumerate() {
            if let Some(i) = (0..self.files.len()).find(|i| {
                let t = &self.files[*i].st;
                !matched[*i]
                    && t.dev == f.dev
                    && t.ino == f.ino
                    && f.matches(t)
                    && f.len >= t.offset
            }) {
                let t = &mut self.files[i];
                matched[i] = true;
                assigned[k] = true;
                t.unseen = 0;
                t.st.path = f.path.clone();
                // The fingerprint grows with the file, up to fingerprint_bytes.
                if t.st.fp_len < fp_max && f.head.len() as u64 > t.st.fp_len {
                    t.st.fp_len = f.head.len() as u64;
                    t.st.fingerprint = xxh3_64(&f.head);
                }
            }
        }
        // 2. The same content on another inode, the old inode no longer showing it.
        for (k, f) in found.iter().enumerate() {
            if assigned[k] {
                continue;
            }
            if let Some(i) = (0..self.files.len()).find(|i| {
                let t = &self.files[*i].st;
                !matched[*i]
                    && f.matches(t)
                    && !found
                        .iter()
                        .any(|o| o.dev == t.dev && o.ino == t.ino && o.matches(t))
            }) {
                let t = &mut self.files[i];
                matched[i] = true;
                assigned[k] = true;
                t.unseen = 0;
                t.st.path = f.path.clone();
                t.st.dev = f.dev;
                t.st.ino = f.ino;
                t.handle = None;
                if f.len < t.st.offset {
                    t.st.offset = 0;
                }
            }
        }
        // 3. Same inode, other content or shorter: truncated (and rewritten): from the start.
        for (k, f) in found.iter().enumerate() {
            if assigned[k] {
                continue;
            }
            if let Some(i) = (0..self.files.len()).find(|i| {
                !matched[*i] && self.files[*i].st.dev == f.dev && self.files[*i].st.ino == f.ino
            }) {
                let t = &mut self.files[i];
                matched[i] = true;
                assigned[k] = true;
                t.unseen = 0;
                t.st.path = f.path.clone();
                t.st.fp_len = f.head.len() as u64;
                t.st.fingerprint = xxh3_64(&f.head);
                t.st.offset = 0;
                t.st.dataset = None;
                t.handle = None;
            }
        }
        // 4. New files; a copy of a live file waits (see COPY_HOLD).
        let now = Instant::now();
        self.held
            .retain(|key, _| found.iter().any(|f| (f.dev, f.ino) == *key));
        for (k, f) in found.iter().enumerate() {
            if assigned[k] {
                continue;
            }
            let copy_of_live = self.files.iter().enumerate().any(|(i, t)| {
                matched[i] && (t.st.dev, t.st.ino) != (f.dev, f.ino) && f.matches(&t.st)
            });
            if copy_of_live {
                let since = *self.held.entry((f.dev, f.ino)).or_insert(now);
                if now.duration_since(since) < COPY_HOLD {
                    continue;
                }
            }
            self.held.remove(&(f.dev, f.ino));
            let offset = if start_at_end {
                last_line_end(&f.path, f.len)
            } else {
                0
            };
            self.files.push(Tracked {
                st: FileState {
                    path: f.path.clone(),
                    dev: f.dev,
                    ino: f.ino,
                    fingerprint: xxh3_64(&f.head),
                    fp_len: f.head.len() as u64,
                    offset,
                    dataset: None,
                },
                handle: None,
                unseen: 0,
            });
            matched.push(true);
        }
        for (i, t) in self.files.iter_mut().enumerate() {
            if !matched[i] {
                t.unseen += 1;
            }
        }
        // 5. A known file that no glob matches any more (renamed by rotation to a name outside
        //    the globs, perhaps while the service was down): found by inode beside its old
        //    path, and read to its end.
        for (i, t) in self.files.iter_mut().enumerate() {
            if matched[i] || t.handle.is_some() || t.unseen > 3 {
                continue;
            }
            let Some(parent) = Path::new(&t.st.path).parent() else {
                continue;
            };
            let Ok(entries) = std::fs::read_dir(parent) else {
                continue;
            };
            for e in entries.flatten() {
                let Ok(m) = e.metadata() else { continue };
                if m.dev() != t.st.dev || m.ino() != t.st.ino {
                    continue;
                }
                let p = e.path().to_string_lossy().into_owned();
                if m.len() >= t.st.offset
                    && identify(&p, self.cfg.fingerprint_bytes).is_some_and(|f| f.matches(&t.st))
                {
                    if let Ok(f) = File::open(&p) {
                        t.st.path = p;
                        t.handle = Some(f);
                    }
                }
                break;
            }
        }
        self.first_scan = false;
        if self.files.len() > MAX_KNOWN {
            let drop = self.files.len() - MAX_KNOWN;
            let mut idx: Vec<usize> = (0..self.files.len()).collect();
            idx.sort_by_key(|i| std::cmp::Reverse(self.files[*i].unseen));
            let gone: HashSet<usize> = idx.into_iter().take(drop).collect();
            let mut i = 0;
            self.files.retain(|_| {
                i += 1;
                !gone.contains(&(i - 1))
            });
        }
    }

    /// Reads what is new in one file: complete lines from its offset.
    fn read(&mut self, i: usize, records: &mut Vec<Record>, new: &mut Vec<(usize, FileState)>) {
        let t = &mut self.files[i];
        if t.handle.is_none() {
            // Only a path that still is this inode (a rotated-away file keeps its handle).
            if t.unseen > 0 {
                return;
            }
            match File::open(&t.st.path) {
                Ok(f) => match f.metadata() {
                    Ok(m) if m.dev() == t.st.dev && m.ino() == t.st.ino => t.handle = Some(f),
                    _ => return,
                },
                Err(_) => return,
            }
        }
        let Some(f) = t.handle.as_mut() else { return };
        let len = match f.metadata() {
            Ok(m) => m.len(),
            Err(_) => return,
        };
        if len < t.st.offset {
            // Truncated under an open handle: the next scan starts it over.
            return;
        }
        if len == t.st.offset {
            if t.unseen > 2 {
                t.handle = None;
            }
            return;
        }
        let want = (len - t.st.offset).min(CHUNK);
        let mut buf = vec![0u8; want as usize];
        if f.seek(SeekFrom::Start(t.st.offset)).is_err() || f.read_exact(&mut buf).is_err() {
            t.handle = None;
            return;
        }
        let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
            return;
        };
        let buf = &buf[..=end];
        let text = String::from_utf8_lossy(buf);
        let lines: Vec<&str> = text.split('\n').collect();
        let lines = &lines[..lines.len() - 1];
        let dataset = match (&t.st.dataset, &self.cfg.format) {
            (Some(d), _) => d.clone(),
            (None, Some(f)) => f.clone(),
            (None, None) => {
                let sample: Vec<&str> = lines.iter().copied().take(40).collect();
                detect_format(&sample)
                    .unwrap_or(Dataset::K8sAudit)
                    .as_str()
                    .to_string()
            }
        };
        let received = prepare::now_micros();
        let path = t.st.path.clone();
        let src: &str = &self.name;
        let m = &self.shared.metrics;
        m.add(
            "vigil_bytes_received_total",
            &[("source", src)],
            buf.len() as f64,
        );
        let mut rejected = Vec::new();
        if dataset == "k8s.audit" {
            for l in lines.iter().filter(|l| !l.trim().is_empty()) {
                m.inc("vigil_events_received_total", &[("source", src)]);
                match prepare::k8s_event(l.trim_end_matches('\r'), &path, received) {
                    Ok(r) => records.push(r),
                    Err(e) => rejected.push(e),
                }
            }
        } else {
            let ds: Dataset = dataset.parse().unwrap_or(Dataset::LinuxAuth);
            let mtime = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .map(chrono::DateTime::<chrono::Utc>::from)
                .unwrap_or_else(|_| chrono::Utc::now());
            if let Ok(mut parser) = parser_for(&ds, &Options::new(YearHint::Reference(mtime))) {
                let mut out = Vec::new();
                for (n, l) in lines.iter().enumerate() {
                    parser.push_line(l.trim_end_matches('\r'), n + 1, &mut out);
                }
                parser.flush(&mut out);
                for p in out {
                    m.inc("vigil_events_received_total", &[("source", src)]);
                    match p {
                        Ok(p) => {
                            let d = p
                                .doc
                                .pointer("/event/dataset")
                                .and_then(Value::as_str)
                                .unwrap_or(ds.as_str())
                                .to_string();
                            records.push(prepare::parsed_event(&d, p.doc, &path, received));
                        }
                        Err(e) => rejected.push(e.to_string()),
                    }
                }
            }
        }
        if !rejected.is_empty() {
            m.add(
                "vigil_events_rejected_total",
                &[("source", src), ("reason", "malformed")],
                rejected.len() as f64,
            );
            for e in rejected.iter().take(5) {
                if self.rejected_shown < 20 {
                    self.rejected_shown += 1;
                    eprintln!("vigil serve: {src}: rejected a record of {path}: {e}");
                }
            }
        }
        let mut st = t.st.clone();
        st.offset += buf.len() as u64;
        st.dataset = Some(dataset);
        new.push((i, st));
    }

    /// One poll: scan, read, commit. Returns whether anything was read.
    pub fn poll(&mut self) -> bool {
        self.scan();
        let mut records = Vec::new();
        let mut new = Vec::new();
        for i in 0..self.files.len() {
            self.read(i, &mut records, &mut new);
        }
        if new.is_empty() {
            return false;
        }
        let n = records.len();
        while !self.shared.admit(n) && !self.shared.shutting_down.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
        // The state as it will be once these records are stored.
        let mut next = self.files.iter().map(|t| t.st.clone()).collect::<Vec<_>>();
        for (i, st) in &new {
            next[*i] = st.clone();
        }
        let offsets = serde_json::to_value(SourceState { files: next }).unwrap_or(Value::Null);
        self.shared.pending.fetch_add(n, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if self
            .writer
            .send(WriterMsg::Submit(Submission {
                source: self.name.clone(),
                records,
                offsets: Some(offsets),
                alerts: None,
                reply: Some(tx),
                received_us: prepare::now_micros(),
            }))
            .is_err()
        {
            self.shared.pending.fetch_sub(n, Ordering::Relaxed);
            return false;
        }
        match rx.blocking_recv() {
            Ok(Ok(_)) => {
                for (i, st) in new {
                    self.files[i].st = st;
                }
                if n > 0 {
                    self.shared.seen(&self.name);
                }
                true
            }
            // Not stored: the same bytes are read again next time.
            _ => {
                for (i, _) in new {
                    self.files[i].handle = None;
                }
                std::thread::sleep(Duration::from_millis(500));
                false
            }
        }
    }

    pub fn run(mut self, stop: Arc<std::sync::atomic::AtomicBool>) {
        let _ = self.state();
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let busy = self.poll();
            if !busy {
                let wait = self.cfg.poll_interval.saturating_sub(started.elapsed());
                let until = Instant::now() + wait;
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20).min(wait));
                }
            }
        }
    }
}

/// The end of the last complete line of a file of `len` bytes (start_at: end).
fn last_line_end(path: &str, len: u64) -> u64 {
    let Ok(mut f) = File::open(path) else {
        return 0;
    };
    let from = len.saturating_sub(64 << 10);
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_err() || f.read_to_end(&mut buf).is_err() {
        return 0;
    }
    let buf = &buf[..(len - from).min(buf.len() as u64) as usize];
    buf.iter()
        .rposition(|b| *b == b'\n')
        .map_or(from, |i| from + i as u64 + 1)
}
