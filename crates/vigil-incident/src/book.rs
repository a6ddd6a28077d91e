//! `DIR/incidents/log.jsonl`: the append-only, hash-chained history of every incident.
//!
//! Writers take an exclusive `flock` on the log for the read-check-append cycle, so two
//! responders recording at once never interleave or fork the chain. A line is written whole with
//! one `write` and fsynced before the command reports success.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::model::{Action, HistoryEntry, Incident, IncidentError};

/// The hash of the line before the first.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub struct Book {
    path: PathBuf,
    entries: Vec<HistoryEntry>,
}

pub fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("incidents").join("log.jsonl")
}

/// SHA-256 of `prev` and the entry's canonical JSON without `hash`.
pub fn entry_hash(e: &HistoryEntry) -> String {
    let mut body = serde_json::to_value(e).expect("history entries serialize");
    if let Some(m) = body.as_object_mut() {
        m.remove("hash");
    }
    let mut h = Sha256::new();
    h.update(e.prev.as_bytes());
    h.update(b"\n");
    h.update(body.to_string().as_bytes());
    hex(&h.finalize())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> IncidentError + '_ {
    move |source| IncidentError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Book {
    /// Reads the history of a data directory (an absent log is an empty book) and checks its
    /// chain: a damaged history is an error naming the line, never silently used.
    pub fn open(data_dir: &Path) -> Result<Book, IncidentError> {
        let path = log_path(data_dir);
        let entries = match File::open(&path) {
            Ok(f) => read_entries(&path, f)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err(&path)(e)),
        };
        Ok(Book { path, entries })
    }

    pub fn entries(&self) -> &[HistoryEntry] {
        &self.entries
    }

    /// Every incident, in the order they were opened.
    pub fn list(&self) -> Result<Vec<Incident>, IncidentError> {
        let mut by_id: BTreeMap<&str, Vec<HistoryEntry>> = BTreeMap::new();
        let mut order = Vec::new();
        for e in &self.entries {
            let v = by_id.entry(&e.incident).or_default();
            if v.is_empty() {
                order.push(e.incident.as_str());
            }
            v.push(e.clone());
        }
        order
            .into_iter()
            .map(|id| Incident::replay(&by_id[id]))
            .collect()
    }

    pub fn get(&self, id: &str) -> Result<Incident, IncidentError> {
        let mine: Vec<HistoryEntry> = self
            .entries
            .iter()
            .filter(|e| e.incident.eq_ignore_ascii_case(id))
            .cloned()
            .collect();
        if mine.is_empty() {
            return Err(IncidentError::NotFound(id.to_string()));
        }
        Incident::replay(&mine)
    }

    /// The id the next `Opened` gets: `INC-0001`, `INC-0002`, ...
    pub fn next_id(&self) -> String {
        let n = self
            .entries
            .iter()
            .filter(|e| matches!(e.action, Action::Opened { .. }))
            .count();
        format!("INC-{:04}", n + 1)
    }

    /// Records `action` on `incident` (a new id for `Opened`) durably. Re-reads the log under
    /// the lock first, so what another process appended meanwhile is chained onto, not lost.
    pub fn append(
        &mut self,
        incident: &str,
        actor: &str,
        action: Action,
    ) -> Result<HistoryEntry, IncidentError> {
        let f = self.lock_and_reload()?;
        self.write_entry(f, incident, actor, action)
    }

    /// Records on an existing incident what `make` decides from its state as it is under the
    /// lock: a check such as "phases only move forward" then holds even when two responders
    /// act at once (each sees the other's change). Nothing is written when `make` refuses.
    pub fn append_checked(
        &mut self,
        incident: &str,
        actor: &str,
        make: impl FnOnce(&Incident) -> Result<Action, IncidentError>,
    ) -> Result<HistoryEntry, IncidentError> {
        let f = self.lock_and_reload()?;
        let inc = self.get(incident)?;
        let action = make(&inc)?;
        self.write_entry(f, &inc.id, actor, action)
    }

    /// Opens the log for appending, takes the exclusive lock (released when the file closes)
    /// and re-reads the history.
    fn lock_and_reload(&mut self) -> Result<File, IncidentError> {
        let dir = self.path.parent().expect("log has a parent");
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let f = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(io_err(&self.path))?;
        // SAFETY: flock on a file descriptor we own; released when `f` closes.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io_err(&self.path)(std::io::Error::last_os_error()));
        }
        self.entries = read_entries(&self.path, f.try_clone().map_err(io_err(&self.path))?)?;
        Ok(f)
    }

    /// Chains and writes one entry; `f` is the locked log.
    fn write_entry(
        &mut self,
        mut f: File,
        incident: &str,
        actor: &str,
        action: Action,
    ) -> Result<HistoryEntry, IncidentError> {
        let incident = if matches!(action, Action::Opened { .. }) && incident.is_empty() {
            self.next_id()
        } else {
            incident.to_string()
        };
        let mut e = HistoryEntry {
            seq: self.entries.len() as u64 + 1,
            incident,
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            actor: actor.to_string(),
            action,
            prev: self
                .entries
                .last()
                .map(|l| l.hash.clone())
                .unwrap_or_else(|| GENESIS.to_string()),
            hash: String::new(),
        };
        e.hash = entry_hash(&e);
        let mut line = serde_json::to_string(&e).expect("history entries serialize");
        line.push('\n');
        f.write_all(line.as_bytes()).map_err(io_err(&self.path))?;
        f.sync_all().map_err(io_err(&self.path))?;
        self.entries.push(e.clone());
        Ok(e)
    }
}

fn read_entries(path: &Path, f: File) -> Result<Vec<HistoryEntry>, IncidentError> {
    let mut out: Vec<HistoryEntry> = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(io_err(path))?;
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{} line {}", path.display(), i + 1);
        let e: HistoryEntry = serde_json::from_str(&line)
            .map_err(|err| IncidentError::Corrupt(format!("{}: {err}", at())))?;
        let prev = out.last().map(|l| l.hash.as_str()).unwrap_or(GENESIS);
        if e.prev != prev || entry_hash(&e) != e.hash || e.seq != out.len() as u64 + 1 {
            return Err(IncidentError::Corrupt(format!(
                "{}: the hash chain breaks here (edited, removed or reordered history)",
                at()
            )));
        }
        out.push(e);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Phase;

    fn opened() -> Action {
        Action::Opened {
            title: "brute force".into(),
            alerts: vec![],
            related: vec![],
            entities: vec![],
            window_secs: 3600,
            since: 0,
            until: 0,
            timeline: vec![],
        }
    }

    #[test]
    fn append_reopen_and_ids() {
        let d = tempfile::tempdir().unwrap();
        let mut b = Book::open(d.path()).unwrap();
        let e = b.append("", "alice", opened()).unwrap();
        assert_eq!(e.incident, "INC-0001");
        b.append("INC-0001", "bob", Action::Note { text: "hi".into() })
            .unwrap();
        let e2 = b.append("", "alice", opened()).unwrap();
        assert_eq!(e2.incident, "INC-0002");
        let b = Book::open(d.path()).unwrap();
        let inc = b.get("inc-0001").unwrap();
        assert_eq!(inc.notes[0].actor, "bob");
        assert_eq!(inc.phase, Phase::Detection);
        assert_eq!(b.list().unwrap().len(), 2);
        assert!(matches!(b.get("INC-0009"), Err(IncidentError::NotFound(_))));
    }

    #[test]
    fn an_edited_line_is_named() {
        let d = tempfile::tempdir().unwrap();
        let mut b = Book::open(d.path()).unwrap();
        b.append("", "alice", opened()).unwrap();
        b.append(
            "INC-0001",
            "bob",
            Action::Note {
                text: "the truth".into(),
            },
        )
        .unwrap();
        let p = log_path(d.path());
        let s = std::fs::read_to_string(&p)
            .unwrap()
            .replace("the truth", "a lie");
        std::fs::write(&p, s).unwrap();
        let err = Book::open(d.path()).err().unwrap().to_string();
        assert!(err.contains("log.jsonl line 2"), "{err}");
    }
}
