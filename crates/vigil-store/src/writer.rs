//! The one writer of a data directory: group-commit appends, recovery on open, the index kept
//! in step with the journal, retention.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use tantivy::{Index, IndexWriter, TantivyDocument};

use crate::chain::{self, Checkpoint, Deletion};
use crate::ids::{self, IdMap};
use crate::index::{self, Fields};
use crate::journal::{self, BlockPos};
use crate::prepare::{self, Record};
use crate::rows_log::RowsLog;
use crate::segment::{
    self, BlockBuilder, Hash, SegmentHeader, StoredRecord, BLOCK_BYTES, BLOCK_RECORDS,
};
use crate::{list_partitions, partition_name, Fault, PartitionMeta, StoreError};

mod recovery;
mod upkeep;
use recovery::{append_ids, decoder, load_ids, recover_partition, write_block_map};

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

    fn part_for(&mut self, name: &str, dataset: &str) -> Result<&mut Part, StoreError> {
        if !self.parts.contains_key(name) {
            let dir = crate::journal_dir(&self.dir).join(name);
            fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
            let (ds, day) = name.split_once('/').unwrap_or((name, ""));
            let meta = PartitionMeta {
                id: self.meta.next_partition_id,
                dataset: dataset.to_string(),
                day: day.to_string(),
            };
            self.meta.next_partition_id += 1;
            write_json_atomic(&self.dir.join("store.json"), &self.meta)?;
            write_json_atomic(&dir.join("partition.json"), &meta)?;
            crate::sync_dir(&crate::journal_dir(&self.dir).join(ds))?;
            crate::sync_dir(&crate::journal_dir(&self.dir))?;
            let rows = RowsLog::new(&dir);
            self.parts.insert(
                name.to_string(),
                Part {
                    name: name.to_string(),
                    id: meta.id,
                    dataset: dataset.to_string(),
                    dir,
                    next_seq: 0,
                    head: segment::genesis(name),
                    segment: 0,
                    seg_len: 0,
                    blocks_in_seg: 0,
                    file: None,
                    blocks: Vec::new(),
                    dict: None,
                    seg_dict: None,
                    dicts: BTreeMap::new(),
                    compressor: None,
                    ids: Some(IdMap::default()),
                    rows,
                    mapped: 0,
                },
            );
        }
        let p = self
            .parts
            .get_mut(name)
            .ok_or_else(|| StoreError::Io(name.into()))?;
        if p.ids.is_none() {
            p.ids = Some(load_ids(p)?);
        }
        Ok(p)
    }

    /// Reads a stored record of a partition (for checking dedup hits).
    fn stored(&mut self, name: &str, seq: u64) -> Result<Option<StoredRecord>, StoreError> {
        let p = &self.parts[name];
        let Some(b) = p
            .blocks
            .iter()
            .rfind(|b| b.header.first_seq <= seq)
            .cloned()
        else {
            return Ok(None);
        };
        let key = (p.id, b.block + (b.segment << 20));
        if !matches!(&self.block_cache, Some((id, k, _)) if *id == key.0 && *k == key.1) {
            let mut dec = decoder(&p.dicts, b.segment)?;
            let recs = journal::read_block(&p.dir, &b, &mut dec)?;
            self.block_cache = Some((key.0, key.1, recs));
        }
        Ok(self
            .block_cache
            .as_ref()
            .and_then(|(_, _, recs)| recs.iter().find(|r| r.seq == seq).cloned()))
    }

    /// Appends a batch and returns once it is durable: journal blocks written and fsynced,
    /// then their signed checkpoints written and fsynced. Duplicates (same identity as a stored
    /// record or an earlier one in the batch) are not stored. On a write error nothing of the
    /// batch is acknowledged, what was written of it is cut, and the store refuses further
    /// writes (reopen to continue).
    pub fn append_batch(&mut self, records: Vec<Record>) -> Result<Ack, StoreError> {
        if let Some(f) = &self.failed {
            return Err(StoreError::Failed(f.clone()));
        }
        let mut ack = Ack {
            locs: vec![None; records.len()],
            ..Ack::default()
        };
        // Group by partition, in order; drop duplicates.
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut batch_ids: HashMap<(String, u64), Vec<usize>> = HashMap::new();
        for (i, r) in records.iter().enumerate() {
            let name = partition_name(&r.dataset, r.event_time);
            if let Some(identity) = &r.identity {
                let key = prepare::dedup_key(identity);
                let seen_in_batch = batch_ids.get(&(name.clone(), key)).is_some_and(|earlier| {
                    earlier
                        .iter()
                        .any(|j| records[*j].identity.as_deref() == Some(identity))
                });
                let candidates = {
                    let p = self.part_for(&name, &r.dataset)?;
                    p.ids.as_ref().map(|m| m.get(key)).unwrap_or_default()
                };
                let mut seen_stored = false;
                for seq in candidates {
                    seen_stored |= self
                        .stored(&name, u64::from(seq))?
                        .and_then(|s| prepare::identity_of(&r.dataset, &s.raw))
                        .is_some_and(|s| s == *identity);
                }
                if seen_in_batch || seen_stored {
                    ack.duplicates += 1;
                    continue;
                }
                batch_ids.entry((name.clone(), key)).or_default().push(i);
            } else {
                self.part_for(&name, &r.dataset)?;
            }
            groups.entry(name).or_default().push(i);
        }
        let saved: HashMap<String, (u64, Hash, u32, u64, u32, usize)> = groups
            .keys()
            .map(|n| {
                let p = &self.parts[n];
                (
                    n.clone(),
                    (
                        p.next_seq,
                        p.head,
                        p.segment,
                        p.seg_len,
                        p.blocks_in_seg,
                        p.blocks.len(),
                    ),
                )
            })
            .collect();
        let ckpt_len = self
            .checkpoints
            .metadata()
            .map_err(|e| StoreError::io(&self.ckpt_path, e))?
            .len();
        let mut created: Vec<PathBuf> = Vec::new();
        let result = self.write_groups(&records, &groups, &mut ack, &mut created);
        if let Err(e) = result {
            // Cut whatever of this batch reached the disk; nothing of it was acknowledged.
            for (name, (seq, head, seg, len, nblocks, blocks)) in saved {
                if let Some(p) = self.parts.get_mut(&name) {
                    p.file = None;
                    let path = p.dir.join(journal::segment_name(seg));
                    if seg > 0 {
                        if let Ok(f) = OpenOptions::new().write(true).open(&path) {
                            let _ = f.set_len(len);
                            let _ = f.sync_all();
                        }
                    }
                    p.next_seq = seq;
                    p.head = head;
                    p.segment = seg;
                    p.seg_len = len;
                    p.blocks_in_seg = nblocks;
                    p.blocks.truncate(blocks);
                }
            }
            for path in created {
                let _ = fs::remove_file(path);
            }
            let _ = self.checkpoints.set_len(ckpt_len);
            let _ = self.checkpoints.sync_all();
            self.failed = Some(e.to_string());
            return Err(e);
        }
        // Durable: remember ids, index.
        for (name, idxs) in &groups {
            let p = self
                .parts
                .get_mut(name)
                .ok_or_else(|| StoreError::Io(name.clone()))?;
            let mut ids_bytes = Vec::with_capacity(idxs.len() * ids::ID_BYTES);
            for &i in idxs {
                let key = records[i].identity.as_deref().map_or(0, prepare::dedup_key);
                ids::put(&mut ids_bytes, key);
                if let (Some(loc), Some(ids)) = (ack.locs[i], p.ids.as_mut()) {
                    if key != 0 {
                        ids.insert(key, index::unloc(loc).1 as u32);
                    }
                }
            }
            append_ids(p, &ids_bytes);
            let alert = p.dataset == prepare::ALERT_DATASET;
            for &i in idxs {
                let r = &records[i];
                let Some(loc) = ack.locs[i] else { continue };
                p.rows.push(
                    index::unloc(loc).1,
                    crate::rows::row_of(alert, &r.dataset, &r.doc),
                );
                if p.rows.pending() >= self.opts.frame_rows {
                    p.rows.flush(&p.name, self.opts.rows_zstd_level, &self.key);
                }
                self.indexer
                    .writer
                    .add_document(
                        self.indexer
                            .fields
                            .document(&r.doc, loc, p.id, r.event_time),
                    )?;
            }
            self.indexer.indexed.insert(p.id, p.next_seq);
            self.indexer.pending += idxs.len() as u64;
        }
        if self.indexer.pending >= self.opts.index_commit_docs {
            self.commit_index()?;
        }
        Ok(ack)
    }

    fn write_groups(
        &mut self,
        records: &[Record],
        groups: &BTreeMap<String, Vec<usize>>,
        ack: &mut Ack,
        created: &mut Vec<PathBuf>,
    ) -> Result<(), StoreError> {
        let mut pending_ckpts = Vec::new();
        let fault = self.opts.fault.clone();
        let level = self.opts.zstd_level;
        let seg_limit = self.opts.segment_bytes;
        for (name, idxs) in groups {
            let p = self
                .parts
                .get_mut(name)
                .ok_or_else(|| StoreError::Io(name.clone()))?;
            let mut i = 0;
            while i < idxs.len() {
                // A new segment when there is none or it is full (with a dictionary trained on
                // what comes next), else go on appending to the current one.
                if p.segment == 0 || (p.blocks_in_seg > 0 && p.seg_len >= seg_limit) {
                    if let Some(f) = p.file.take() {
                        f.sync_data().map_err(|e| StoreError::io(&p.dir, e))?;
                    }
                    if p.segment > 0 {
                        write_block_map(p, p.segment, p.seg_len);
                    }
                    if let Some(d) = train_dict(records, &idxs[i..]) {
                        p.dict = Some(Arc::new(d));
                    }
                    let header = SegmentHeader {
                        number: p.segment + 1,
                        first_seq: p.next_seq,
                        prev_hash: p.head,
                    };
                    let dict = p.dict.clone();
                    let (f, path, len) = journal::create_segment(
                        &p.dir,
                        &header,
                        dict.as_deref().map(|d| &d[..]),
                        &fault,
                    )?;
                    created.push(path);
                    crate::sync_dir(&p.dir)?;
                    p.file = Some(f);
                    p.segment += 1;
                    p.seg_len = len;
                    p.blocks_in_seg = 0;
                    if let Some(d) = &dict {
                        p.dicts.insert(p.segment, d.clone());
                    }
                    p.seg_dict = dict;
                    p.compressor = None;
                } else if p.file.is_none() {
                    let path = p.dir.join(journal::segment_name(p.segment));
                    p.file = Some(journal::open_append(&path, p.seg_len)?);
                }
                if p.compressor.is_none() {
                    let c = match &p.seg_dict {
                        Some(d) => zstd::bulk::Compressor::with_dictionary(level, d),
                        None => zstd::bulk::Compressor::new(level),
                    };
                    p.compressor = Some(c.map_err(|e| StoreError::Io(e.to_string()))?);
                }
                let mut b = BlockBuilder::new(p.next_seq);
                let mut head = p.head;
                while i < idxs.len() && b.count < BLOCK_RECORDS && b.len_estimate() < BLOCK_BYTES {
                    let r = &records[idxs[i]];
                    let sr = StoredRecord {
                        seq: p.next_seq + b.count as u64,
                        received: r.received,
                        event_time: r.event_time,
                        source: r.source.clone(),
                        flags: r.flags,
                        raw: r.raw.as_bytes().to_vec(),
                        doc: r.stored_doc.clone(),
                    };
                    head = segment::chain_hash(&head, &sr);
                    b.push(&sr, &head);
                    ack.locs[idxs[i]] = Some(index::loc(p.id, sr.seq));
                    i += 1;
                }
                let with_dict = p.seg_dict.is_some();
                let compressor = p
                    .compressor
                    .as_mut()
                    .ok_or_else(|| StoreError::Io("no compressor".into()))?;
                let bytes = b
                    .finish(&head, compressor, with_dict)
                    .map_err(|e| StoreError::Io(e.to_string()))?;
                let path = p.dir.join(journal::segment_name(p.segment));
                let file = p
                    .file
                    .as_mut()
                    .ok_or_else(|| StoreError::Io("no segment".into()))?;
                journal::write_all(file, &path, &bytes, &fault)?;
                let header_bytes: [u8; segment::BLOCK_HEADER_LEN] = bytes
                    [..segment::BLOCK_HEADER_LEN]
                    .try_into()
                    .map_err(|_| StoreError::Io("block header".into()))?;
                let header = segment::BlockHeader::parse(&header_bytes)
                    .ok_or_else(|| StoreError::Io("block header".into()))?;
                p.blocks.push(BlockPos {
                    segment: p.segment,
                    block: p.blocks_in_seg,
                    offset: p.seg_len,
                    header,
                });
                p.seg_len += bytes.len() as u64;
                ack.bytes += bytes.len() as u64;
                ack.stored += b.count as u64;
                p.next_seq += b.count as u64;
                p.head = head;
                p.blocks_in_seg += 1;
            }
            if let Some(f) = &p.file {
                f.sync_data().map_err(|e| StoreError::io(&p.dir, e))?;
            }
            // One signed checkpoint per partition and batch: its last block.
            pending_ckpts.push(Checkpoint::new(
                &self.key,
                &p.name,
                p.segment,
                p.blocks_in_seg.saturating_sub(1),
                p.next_seq,
                &p.head,
            ));
        }
        let mut text = String::new();
        for c in &pending_ckpts {
            text.push_str(&serde_json::to_string(c).map_err(|e| StoreError::Io(e.to_string()))?);
            text.push('\n');
        }
        let path = self.ckpt_path.clone();
        journal::write_all(&mut self.checkpoints, &path, text.as_bytes(), &fault)?;
        self.checkpoints
            .sync_data()
            .map_err(|e| StoreError::io(&path, e))?;
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

/// A zstd dictionary trained on the records about to be written, when there are enough of them.
fn train_dict(records: &[Record], idxs: &[usize]) -> Option<Vec<u8>> {
    if idxs.len() < 256 {
        return None;
    }
    let samples: Vec<Vec<u8>> = idxs
        .iter()
        .take(4096)
        .map(|&i| {
            let mut s = records[i].raw.as_bytes().to_vec();
            s.extend_from_slice(&records[i].stored_doc);
            s
        })
        .collect();
    zstd::dict::from_samples(&samples, 100 << 10).ok()
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
