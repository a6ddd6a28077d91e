//! The id file of a partition (`ids5.bin`): one 5-byte key per record, the stage code and the
//! top 32 bits of a hash of the event's id (see `prepare::dedup_key`). It answers "is this
//! event stored already" (dedup) and "where is auditID X" (`Reader::locate_id`) without reading
//! the journal. A key only names candidates: both uses check the record itself, so two ids that
//! share a key cost a record read, never a wrong answer. Like the index it is derived data:
//! appended after the journal is durable and completed from it when short.
//!
//! Stores made before it have `ids.bin` (8 bytes a record, the same keys with more hash bits):
//! readers still use it, and the writer replaces it when it opens the partition.

use std::collections::HashMap;
use std::path::Path;

pub const IDS_FILE: &str = "ids5.bin";
pub const LEGACY_IDS_FILE: &str = "ids.bin";
pub const ID_BYTES: usize = 5;

/// The bits of a 64-bit key that the file keeps: the stage byte and the hash's top 32 bits.
pub const KEY_MASK: u64 = 0xffff_ffff_0000_00ff;

pub fn put(out: &mut Vec<u8>, key: u64) {
    out.push(key as u8);
    out.extend_from_slice(&((key >> 32) as u32).to_le_bytes());
}

/// The key of a `width`-byte entry (5, or 8 in a legacy file), masked to `KEY_MASK`.
pub fn get(entry: &[u8]) -> u64 {
    match entry.len() {
        ID_BYTES => {
            let hi = u32::from_le_bytes(entry[1..5].try_into().unwrap_or_default());
            (u64::from(hi) << 32) | u64::from(entry[0])
        }
        _ => u64::from_le_bytes(entry.try_into().unwrap_or_default()) & KEY_MASK,
    }
}

/// A partition's id entries and their width, as a reader finds them (`None`: no file).
pub fn read(dir: &Path) -> Option<(Vec<u8>, usize)> {
    if let Ok(b) = std::fs::read(dir.join(IDS_FILE)) {
        return Some((b, ID_BYTES));
    }
    std::fs::read(dir.join(LEGACY_IDS_FILE))
        .ok()
        .map(|b| (b, 8))
}

/// Dedup keys to the records that carry them.
#[derive(Default)]
pub(crate) struct IdMap {
    first: HashMap<u64, u32>,
    /// Records whose key an earlier record has already (different ids, one key: rare).
    more: HashMap<u64, Vec<u32>>,
}

impl IdMap {
    pub fn with_capacity(n: usize) -> IdMap {
        IdMap {
            first: HashMap::with_capacity(n),
            more: HashMap::new(),
        }
    }

    pub fn insert(&mut self, key: u64, seq: u32) {
        match self.first.entry(key) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(seq);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.more.entry(key).or_default().push(seq)
            }
        }
    }

    /// The records with `key`, oldest first.
    pub fn get(&self, key: u64) -> Vec<u32> {
        let mut out: Vec<u32> = self.first.get(&key).copied().into_iter().collect();
        if let Some(more) = self.more.get(&key) {
            out.extend_from_slice(more);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_keep_the_masked_key_in_either_width() {
        let key = 0x1234_5678_9abc_de03u64;
        let mut b = Vec::new();
        put(&mut b, key);
        assert_eq!(b.len(), ID_BYTES);
        assert_eq!(get(&b), key & KEY_MASK);
        assert_eq!(get(&key.to_le_bytes()), key & KEY_MASK);
    }

    #[test]
    fn a_shared_key_keeps_every_record() {
        let mut m = IdMap::with_capacity(4);
        m.insert(7, 1);
        m.insert(7, 5);
        m.insert(9, 2);
        assert_eq!(
            (m.get(7), m.get(9), m.get(8)),
            (vec![1, 5], vec![2], vec![])
        );
    }
}
