//! The one writer of a data directory: group-commit appends, recovery on open, the index kept
//! in step with the journal, retention.
//!
//! This module holds the writer's state and its opening, committing and closing; `append` is
//! the append path, `recovery` opens each partition for writing, `upkeep` catches the derived
//! files up with the journal and applies retention.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use tantivy::{Index, IndexWriter, TantivyDocument};

use crate::chain::{self, Checkpoint, Deletion};
use crate::ids::IdMap;
use crate::index::Fields;
use crate::journal::BlockPos;
use crate::rows_log::RowsLog;
use crate::segment::{Hash, StoredRecord};
use crate::{list_partitions, Fault, StoreError};

mod append;
mod recovery;
mod upkeep;
use recovery::{recover_partition, write_block_map};

pub struct StoreOptions {
    pub fault: Option<Fault>,
    pub zstd_level: i32,
    /// A segment is closed when it reaches this size.
    pub segment_bytes: u64,
    /// Index commit after this many documents (and at close).
    pub index_commit_docs: u64,
    pub index_memory: usize,
    /// Timeline rows written per frame of `rows.bin` (a commit or close writes fewer).
    pub frame_rows: usize,
    /// zstd level of those frames: higher than the journal's, as rows are few bytes to
    /// compress and a larger share of the store's small per-event size.
    pub rows_zstd_level: i32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            fault: None,
            zstd_level: 7,
            segment_bytes: 256 << 20,
            index_commit_docs: 2_000_000,
            index_memory: 192 << 20,
            frame_rows: crate::rows::FRAME_ROWS,
            rows_zstd_level: 12,
        }
    }
}

/// What an `append_batch` did. Returned only once everything stored is on disk (fsync).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ack {
    pub stored: u64,
    pub duplicates: u64,
    /// Bytes written to the journal.
    pub bytes: u64,
    /// For each record of the batch: where it is stored (`index::loc`), or `None` when it was
    /// a duplicate.
    pub locs: Vec<Option<u64>>,
}

#[derive(Serialize, Deserialize)]
struct StoreMeta {
    format: u32,
    next_partition_id: u32,
}

struct Part {
    name: String,
    id: u32,
    dataset: String,
    dir: PathBuf,
    next_seq: u64,
    head: Hash,
    segment: u32,
    seg_len: u64,
    blocks_in_seg: u32,
    file: Option<File>,
    blocks: Vec<BlockPos>,
    /// The dictionary for new segments (the last one trained), the current segment's, and
    /// every segment's (for reading back).
    dict: Option<Arc<Vec<u8>>>,
    seg_dict: Option<Arc<Vec<u8>>>,
    dicts: BTreeMap<u32, Arc<Vec<u8>>>,
    compressor: Option<zstd::bulk::Compressor<'static>>,
    /// Dedup keys (see `prepare::dedup_key`) to record numbers; loaded on first write.
    ids: Option<IdMap>,
    rows: RowsLog,
    /// Blocks when the current segment's block map was last written.
    mapped: usize,
}

struct Indexer {
    fields: Fields,
    writer: IndexWriter<TantivyDocument>,
    indexed: BTreeMap<u32, u64>,
    pending: u64,
}

pub struct Store {
    dir: PathBuf,
    _lock: File,
    key: SigningKey,
    opts: StoreOptions,
    meta: StoreMeta,
    parts: HashMap<String, Part>,
    checkpoints: File,
    ckpt_path: PathBuf,
    indexer: Indexer,
    failed: Option<String>,
    block_cache: Option<(u32, u32, Vec<StoredRecord>)>,
}

fn lock(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join("LOCK");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::io(&path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: flock on a file descriptor we own; no memory is shared.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            return Err(StoreError::Locked(format!(
                "{}: another vigil process is writing to this data directory",
                dir.display()
            )));
        }
    }
    Ok(f)
}

fn write_json_atomic(path: &Path, value: &impl Serialize) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Io(e.to_string()))?;
    let mut f = File::create(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
    f.write_all(&text)
        .and_then(|()| f.sync_all())
        .map_err(|e| StoreError::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| StoreError::io(path, e))?;
    if let Some(parent) = path.parent() {
        crate::sync_dir(parent)?;
    }
    Ok(())
}

/// The last checkpoint of each partition, as the log says (signatures are `verify`'s job).
pub(crate) fn last_checkpoints(
    dir: &Path,
) -> Result<(HashMap<String, Checkpoint>, Option<u64>), StoreError> {
    let (lines, torn) = chain::read_log::<Checkpoint>(&dir.join("checkpoints.log"))?;
    let mut out = HashMap::new();
    for l in lines {
        if let Ok(c) = l.entry {
            out.insert(c.partition.clone(), c);
        }
    }
    Ok((out, torn))
}

impl Store {
    /// Opens (creating) the data directory for writing: takes the lock, cuts a torn or
    /// unacknowledged tail, finishes interrupted deletions, and brings the index up to date.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        fs::create_dir_all(crate::journal_dir(dir)).map_err(|e| StoreError::io(dir, e))?;
        let lock = lock(dir)?;
        let key = chain::load_or_create_key(dir)?;
        let meta_path = dir.join("store.json");
        let meta = match fs::read(&meta_path) {
            Ok(b) => serde_json::from_slice::<StoreMeta>(&b)
                .map_err(|e| StoreError::Corrupt(format!("{}: {e}", meta_path.display())))?,
            Err(_) => {
                let m = StoreMeta {
                    format: 1,
                    next_partition_id: 1,
                };
                write_json_atomic(&meta_path, &m)?;
                m
            }
        };
        if meta.format != 1 {
            return Err(StoreError::Corrupt(format!(
                "{}: format {} is not known to this Vigil",
                meta_path.display(),
                meta.format
            )));
        }
        let ckpt_path = dir.join("checkpoints.log");
        let (last, torn) = last_checkpoints(dir)?;
        let checkpoints = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&ckpt_path)
            .map_err(|e| StoreError::io(&ckpt_path, e))?;
        if let Some(at) = torn {
            checkpoints
                .set_len(at)
                .map_err(|e| StoreError::io(&ckpt_path, e))?;
        }
        // Deletions that were logged but not finished.
        let (deleted, _) = chain::read_log::<Deletion>(&dir.join("deletions.log"))?;
        let deleted: Vec<String> = deleted
            .into_iter()
            .filter_map(|l| l.entry.ok())
            .map(|d| d.partition)
            .collect();
        let mut parts = HashMap::new();
        for (name, path, m) in list_partitions(dir)? {
            if deleted.contains(&name) {
                fs::remove_dir_all(&path).map_err(|e| StoreError::io(&path, e))?;
                continue;
            }
            let signed = last.get(&name).map_or(0, |c| c.records);
            let part = recover_partition(&name, &path, &m, signed)?;
            parts.insert(name, part);
        }
        let indexer = open_index(dir, &opts)?;
        let mut store = Store {
            dir: dir.to_path_buf(),
            _lock: lock,
            key,
            opts,
            meta,
            parts,
            checkpoints,
            ckpt_path,
            indexer,
            failed: None,
            block_cache: None,
        };
        store.catch_up_index()?;
        store.catch_up_rows()?;
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The public key that verifies this store's checkpoints.
    pub fn public_key_hex(&self) -> String {
        chain::hex(self.key.verifying_key().as_bytes())
    }

    /// Makes the index durable up to what was appended (the journal is durable already), and
    /// writes the timeline rows buffered so far.
    pub fn commit_index(&mut self) -> Result<(), StoreError> {
        let (level, key) = (self.opts.rows_zstd_level, &self.key);
        for p in self.parts.values_mut() {
            p.rows.flush(&p.name, level, key);
            if p.segment > 0 && p.mapped != p.blocks.len() {
                write_block_map(p, p.segment, p.seg_len);
                p.mapped = p.blocks.len();
            }
        }
        let payload = serde_json::to_string(&self.indexer.indexed)
            .map_err(|e| StoreError::Index(e.to_string()))?;
        let mut prepared = self.indexer.writer.prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
        self.indexer.pending = 0;
        Ok(())
    }

    /// Commits the index and releases the lock.
    pub fn close(mut self) -> Result<(), StoreError> {
        if self.failed.is_none() {
            self.commit_index()?;
        }
        Ok(())
    }
}

fn open_index(dir: &Path, opts: &StoreOptions) -> Result<Indexer, StoreError> {
    let path = dir.join("index");
    fs::create_dir_all(&path).map_err(|e| StoreError::io(&path, e))?;
    let fields = Fields::new();
    let index = if path.join("meta.json").exists() {
        let index = Index::open_in_dir(&path)?;
        Fields::from_schema(index.schema()).map_err(StoreError::Index)?;
        index
    } else {
        Index::create_in_dir(&path, fields.schema.clone())?
    };
    let payload = index.load_metas()?.payload;
    let indexed: BTreeMap<u32, u64> = payload
        .and_then(|p| serde_json::from_str(&p).ok())
        .unwrap_or_default();
    let writer = index.writer_with_num_threads(1, opts.index_memory)?;
    Ok(Indexer {
        fields,
        writer,
        indexed,
        pending: 0,
    })
}
