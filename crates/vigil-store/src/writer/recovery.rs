//! Opening a partition for writing: recovery to the last signed checkpoint, the derived files
//! (`ids5.bin`, block maps) brought up to date, and reading back what is already stored.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Part;
use crate::ids::{self, IdMap};
use crate::journal::{self, BlockPos};
use crate::prepare;
use crate::rows_log::RowsLog;
use crate::segment::{self, Decoder, StoredRecord};
use crate::{PartitionMeta, StoreError};

pub(super) fn ids_path(p: &Part) -> PathBuf {
    p.dir.join(ids::IDS_FILE)
}

pub(super) fn append_ids(p: &Part, bytes: &[u8]) {
    // A cache of the journal (rebuilt from it when short): no fsync needed.
    let path = ids_path(p);
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(&path) {
        let _ = f.write_all(bytes);
    }
}

/// The dedup keys of a partition: its id file (see `ids`), completed from the journal when it
/// is behind (a crash after the journal write; a store made before the file).
pub(super) fn load_ids(p: &Part) -> Result<IdMap, StoreError> {
    let path = ids_path(p);
    let legacy = p.dir.join(ids::LEGACY_IDS_FILE);
    if legacy.exists() {
        fs::remove_file(&legacy).map_err(|e| StoreError::io(&legacy, e))?;
    }
    let w = ids::ID_BYTES;
    let mut bytes = fs::read(&path).unwrap_or_default();
    let have = (bytes.len() / w) as u64;
    bytes.truncate((have.min(p.next_seq) as usize) * w);
    let mut have = (bytes.len() / w) as u64;
    if have < p.next_seq {
        each_record(p, have, |r| {
            let key = prepare::identity_of(&p.dataset, &r.raw)
                .as_deref()
                .map_or(0, prepare::dedup_key);
            ids::put(&mut bytes, key);
            have += 1;
            Ok(())
        })?;
        fs::write(&path, &bytes).map_err(|e| StoreError::io(&path, e))?;
    } else if (fs::metadata(&path).map(|m| m.len()).unwrap_or(0)) != bytes.len() as u64 {
        fs::write(&path, &bytes).map_err(|e| StoreError::io(&path, e))?;
    }
    let mut map = IdMap::with_capacity(bytes.len() / w);
    for (i, c) in bytes.chunks_exact(w).enumerate() {
        let key = ids::get(c);
        if key != 0 {
            map.insert(key, i as u32);
        }
    }
    Ok(map)
}

/// Brings a partition to its last signed checkpoint: a torn tail (crash mid-write) and whole
/// blocks that were never acknowledged (crash before their checkpoint) are cut.
pub(super) fn recover_partition(
    name: &str,
    dir: &Path,
    meta: &PartitionMeta,
    signed: u64,
) -> Result<Part, StoreError> {
    let scan = journal::scan(dir)?;
    let dicts = scan.dicts.clone();
    if scan.next_seq < signed {
        return Err(StoreError::Corrupt(format!(
            "{name}: the journal holds {} records but a signed checkpoint says {signed}; run `vigil verify`",
            scan.next_seq
        )));
    }
    if let Some((path, at)) = &scan.torn {
        if *at == 0 {
            fs::remove_file(path).map_err(|e| StoreError::io(path, e))?;
        } else {
            cut(path, *at)?;
        }
    }
    let mut blocks = scan.blocks;
    let mut segments = scan.segments;
    if let Some(first_unsigned) = blocks.iter().position(|b| b.header.first_seq >= signed) {
        let b = blocks[first_unsigned].clone();
        if b.header.first_seq != signed {
            return Err(StoreError::Corrupt(format!(
                "{name}: a signed checkpoint ends inside a block; run `vigil verify`"
            )));
        }
        let path = dir.join(journal::segment_name(b.segment));
        cut(&path, b.offset)?;
        for (_, p, _) in segments.iter().filter(|s| s.0 > b.segment) {
            fs::remove_file(p).map_err(|e| StoreError::io(p, e))?;
        }
        segments.retain(|s| s.0 <= b.segment);
        if let Some(s) = segments.last_mut() {
            s.2 = b.offset;
        }
        blocks.truncate(first_unsigned);
    }
    // A torn segment header leaves a segment without blocks.
    let (segment, seg_len, blocks_in_seg) = match segments.last() {
        Some((n, _, len)) if *len > 0 => (
            *n,
            *len,
            blocks.iter().filter(|b| b.segment == *n).count() as u32,
        ),
        Some((_, p, _)) => {
            fs::remove_file(p).map_err(|e| StoreError::io(p, e))?;
            let prev = segments.len().checked_sub(2).map(|i| &segments[i]);
            match prev {
                Some((n, _, len)) => (
                    *n,
                    *len,
                    blocks.iter().filter(|b| b.segment == *n).count() as u32,
                ),
                None => (0, 0, 0),
            }
        }
        None => (0, 0, 0),
    };
    let next_seq = blocks
        .last()
        .map_or(0, |b| b.header.first_seq + u64::from(b.header.count));
    let closed = &segments[..segments.len().saturating_sub(1)];
    let head = blocks
        .last()
        .map_or_else(|| segment::genesis(name), |b| b.header.last_hash);
    let part = Part {
        name: name.to_string(),
        id: meta.id,
        dataset: meta.dataset.clone(),
        dir: dir.to_path_buf(),
        next_seq,
        head,
        segment,
        seg_len,
        blocks_in_seg,
        file: None,
        blocks,
        dict: dicts.values().last().cloned(),
        seg_dict: dicts.get(&segment).cloned(),
        dicts,
        compressor: None,
        ids: None,
        rows: RowsLog::recover(dir, next_seq)?,
        mapped: 0,
    };
    // Block maps for closed segments that have none (or one that stops short).
    for (n, _, len) in closed {
        let first = part.blocks.iter().find(|b| b.segment == *n);
        if let Some(first) = first {
            let whole = crate::blockmap::read(dir, *n, *len, first.header.first_seq)
                .is_some_and(|(_, end)| end == *len);
            if !whole {
                write_block_map(&part, *n, *len);
            }
        }
    }
    Ok(part)
}

/// Writes the block map of closed segment `n` (`len` bytes) of `p`. A map is a reader's
/// shortcut, not data: failing to write one only makes opening slower.
pub(super) fn write_block_map(p: &Part, n: u32, len: u64) {
    let blocks: Vec<&BlockPos> = p.blocks.iter().filter(|b| b.segment == n).collect();
    let _ = crate::blockmap::write(&p.dir, n, len, &blocks);
}

/// The decoder for a segment's blocks.
pub(super) fn decoder(
    dicts: &BTreeMap<u32, Arc<Vec<u8>>>,
    segment: u32,
) -> Result<Decoder, StoreError> {
    Decoder::new(dicts.get(&segment).map(|d| &d[..])).map_err(StoreError::Io)
}

/// Calls `f` on each record of `p` from record `from` on, in order.
pub(super) fn each_record(
    p: &Part,
    from: u64,
    mut f: impl FnMut(StoredRecord) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut decs = Decoders::default();
    for b in p
        .blocks
        .iter()
        .filter(|b| b.header.first_seq + u64::from(b.header.count) > from)
    {
        for r in decs.read(&p.dir, &p.dicts, b)? {
            if r.seq >= from {
                f(r)?;
            }
        }
    }
    Ok(())
}

/// Decoders by segment, made on first use.
#[derive(Default)]
pub(super) struct Decoders(BTreeMap<u32, Decoder>);

impl Decoders {
    pub(super) fn read(
        &mut self,
        dir: &Path,
        dicts: &BTreeMap<u32, Arc<Vec<u8>>>,
        b: &BlockPos,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let dec = match self.0.entry(b.segment) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => e.insert(decoder(dicts, b.segment)?),
        };
        journal::read_block(dir, b, dec)
    }
}

pub(super) fn cut(path: &Path, at: u64) -> Result<(), StoreError> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io(path, e))?;
    if f.metadata().map_err(|e| StoreError::io(path, e))?.len() > at {
        f.set_len(at).map_err(|e| StoreError::io(path, e))?;
        f.sync_all().map_err(|e| StoreError::io(path, e))?;
    }
    Ok(())
}
