//! The append path: a batch deduplicated (against itself and, through `ids5.bin`, against the
//! stored records), grouped by partition, written as blocks into segments (a new one with a
//! freshly trained dictionary when the current one is full), fsynced, its checkpoints signed
//! and fsynced, and only then indexed; a batch that fails is cut from the disk. Apart from
//! opening and closing the store because this is the one path every acknowledged record
//! takes.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::path::PathBuf;
use std::sync::Arc;

use super::recovery::{append_ids, decoder, load_ids, write_block_map};
use super::{write_json_atomic, Ack, Part, Store};
use crate::chain::Checkpoint;
use crate::ids::{self, IdMap};
use crate::index;
use crate::journal::{self, BlockPos};
use crate::prepare::{self, Record};
use crate::rows_log::RowsLog;
use crate::segment::{
    self, BlockBuilder, Hash, SegmentHeader, StoredRecord, BLOCK_BYTES, BLOCK_RECORDS,
};
use crate::{partition_name, PartitionMeta, StoreError};

impl Store {
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
