//! Vigil's embedded event store: a data directory holding an append-only, hash-chained journal
//! of every event as received (plus its normalized document), signed checkpoints, a tantivy
//! search index, and the alerts of the detection engine.
//!
//! ```text
//! DIR/store.json                 format version, next partition id
//! DIR/LOCK                       held (flock) by the one writer
//! DIR/keys/signing.{key,pub}     Ed25519 key (made on first use)
//! DIR/checkpoints.log            signed chain heads, one JSON line per block written
//! DIR/deletions.log              signed record of partitions removed by retention
//! DIR/retention                  `DATASET: 400d` lines (`default: ...`)
//! DIR/journal/DATASET/DAY/       a partition: partition.json, 000001.seg..., 000001.blk..., ids5.bin, rows.bin
//! DIR/index/                     tantivy
//! ```
//! See `segment` for the record format and ARCHITECTURE.md for the rules it keeps.

pub mod blockmap;
pub mod chain;
mod fetch;
pub mod ids;
pub mod index;
pub mod journal;
pub mod prepare;
pub mod query;
pub mod reader;
pub mod redact;
pub mod retention;
pub mod rows;
mod rows_log;
pub mod segment;
pub mod timeline;
pub mod timeparse;
pub mod verify;
mod writer;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use prepare::Record;
pub use reader::{Reader, StoredEvent};
pub use timeline::TimelineRow;
pub use writer::{Ack, Store, StoreOptions};

/// Injects write failures in tests: given the file and the number of bytes about to be
/// written, return `Some((n, error))` to write only `n` of them and fail with `error`.
pub type Fault = Arc<dyn Fn(&Path, usize) -> Option<(usize, io::Error)> + Send + Sync>;

/// A disk that fills up after `budget` bytes (the write that crosses it is cut short and fails
/// with ENOSPC), for tests of the disk-full path.
pub fn disk_full_after(budget: usize) -> Fault {
    let used = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    Arc::new(move |_path, len| {
        let before = used.fetch_add(len, std::sync::atomic::Ordering::SeqCst);
        (before + len > budget).then(|| {
            (
                budget.saturating_sub(before),
                io::Error::from_raw_os_error(28),
            )
        })
    })
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("disk full writing {path}: ingest stopped; everything acknowledged before is stored and intact")]
    DiskFull { path: String },
    #[error("{0}")]
    Io(String),
    #[error("data directory damaged: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Locked(String),
    #[error("the store stopped after an earlier write error: {0}")]
    Failed(String),
    #[error("index: {0}")]
    Index(String),
}

impl StoreError {
    pub fn io(path: &Path, e: io::Error) -> StoreError {
        if e.kind() == io::ErrorKind::StorageFull || e.raw_os_error() == Some(28) {
            return StoreError::DiskFull {
                path: path.display().to_string(),
            };
        }
        StoreError::Io(format!("{}: {e}", path.display()))
    }
}

impl From<tantivy::TantivyError> for StoreError {
    fn from(e: tantivy::TantivyError) -> Self {
        StoreError::Index(e.to_string())
    }
}

/// Makes the directory entries of `dir` durable (new or renamed files in it).
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

pub(crate) fn journal_dir(dir: &Path) -> PathBuf {
    dir.join("journal")
}

/// Partition names: `DATASET/YYYY-MM-DD` (UTC day of the event time).
pub fn partition_name(dataset: &str, event_time: i64) -> String {
    let day = chrono::DateTime::from_timestamp_micros(event_time)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "1970-01-01".into());
    let ds: String = dataset
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let ds = if ds.is_empty() || ds.starts_with('.') {
        format!("_{ds}")
    } else {
        ds
    };
    format!("{ds}/{day}")
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
pub struct PartitionMeta {
    pub id: u32,
    pub dataset: String,
    pub day: String,
}

/// Every partition directory under `DIR/journal` with its metadata, sorted by name.
pub fn list_partitions(dir: &Path) -> Result<Vec<(String, PathBuf, PartitionMeta)>, StoreError> {
    let root = journal_dir(dir);
    let mut out = Vec::new();
    let Ok(datasets) = std::fs::read_dir(&root) else {
        return Ok(out);
    };
    for ds in datasets.flatten() {
        let Ok(days) = std::fs::read_dir(ds.path()) else {
            continue;
        };
        for day in days.flatten() {
            let path = day.path();
            let meta_path = path.join("partition.json");
            let name = format!(
                "{}/{}",
                ds.file_name().to_string_lossy(),
                day.file_name().to_string_lossy()
            );
            let meta = std::fs::read(&meta_path)
                .ok()
                .and_then(|b| serde_json::from_slice::<PartitionMeta>(&b).ok());
            // A directory with no partition.json and no segment: a partition whose creation
            // was interrupted (crash between mkdir and partition.json); nothing in it was ever
            // acknowledged, so it is not damage. The writer completes it when it next writes.
            let has_segments = || {
                std::fs::read_dir(&path).is_ok_and(|d| {
                    d.flatten()
                        .any(|e| e.file_name().to_string_lossy().ends_with(".seg"))
                })
            };
            match meta {
                Some(m) => out.push((name, path, m)),
                None if path.is_dir() && !meta_path.exists() && !has_segments() => {}
                None if path.is_dir() => {
                    return Err(StoreError::Corrupt(format!(
                        "{}: missing or unreadable partition.json",
                        path.display()
                    )))
                }
                None => {}
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The data directory to use: the flag, else `$VIGIL_DATA_DIR`, else `./vigil-data`.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("VIGIL_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("vigil-data"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_partition_creation_is_not_damage() {
        let dir = std::env::temp_dir().join(format!("vigil-store-part-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        drop(Store::open(&dir, StoreOptions::default()).unwrap());
        // A crash between the partition's mkdir and its partition.json.
        std::fs::create_dir_all(journal_dir(&dir).join("linux.auth/2026-01-01")).unwrap();
        assert!(list_partitions(&dir).unwrap().is_empty());
        let mut store = Store::open(&dir, StoreOptions::default()).unwrap();
        let doc = serde_json::json!({"@timestamp": "2026-01-01T00:00:00Z", "message": "m"});
        let ack = store
            .append_batch(vec![prepare::parsed_event("linux.auth", doc, "f", 0)])
            .unwrap();
        assert_eq!(ack.stored, 1);
        drop(store);
        assert_eq!(list_partitions(&dir).unwrap().len(), 1);
        // A partition with segments but no partition.json still is damage.
        let seg_dir = journal_dir(&dir).join("linux.auth/2026-01-02");
        std::fs::create_dir_all(&seg_dir).unwrap();
        std::fs::write(seg_dir.join("000001.seg"), b"x").unwrap();
        assert!(list_partitions(&dir).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
