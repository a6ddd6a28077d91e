//! The on-disk journal format: segment files made of checksummed, zstd-compressed blocks of
//! records, each record chained to the one before it by SHA-256.
//!
//! ```text
//! segment  = header(64) dict? block*
//! header   = "VIGILSG1" | segment no u32 | first seq u64 | prev hash [32] | xxh3(0..52) u64 | 0u32
//! dict     = "VDC1" | len u32 | xxh3(dict) u64 | zstd dictionary (trained on the partition)
//! block    = "VBK1" | payload len u32 | count u32 (bit 31: uses the dict) | first seq u64
//!            | last hash [32] | xxh3(header[0..52] ++ payload) u64 | raw len u32 | payload (zstd)
//! payload  = sources (varint n, n × bytes) record*
//! record   = zigzag Δreceived | zigzag Δevent time | source index | flags | raw | doc | link[2]
//! ```
//! Integers are little-endian; `bytes` is a varint length then the bytes. `link` is the first two
//! bytes of the record's chain hash, `h = SHA-256(h_prev | seq | received | event time | source
//! | flags | raw | doc)`, so an edit is pinned to its record; the block header keeps the full hash
//! of its last record, and signed checkpoints (see `chain`) cover those.
//!
//! This module holds the constants, the record, the chain hash, the segment header and the
//! dictionary section; `block` writes and reads blocks, `varint` holds the integer encoding
//! their payloads use.

use sha2::{Digest, Sha256};
use xxhash_rust::xxh3::xxh3_64;

mod block;
mod varint;

pub use block::{block_links, decode_block, BlockBuilder, BlockHeader, BlockPayload, Decoder};
pub use varint::{put_varint, Cursor};

pub const SEGMENT_MAGIC: &[u8; 8] = b"VIGILSG1";
pub const BLOCK_MAGIC: &[u8; 4] = b"VBK1";
pub const HEADER_LEN: usize = 64;
pub const BLOCK_HEADER_LEN: usize = 64;
/// Records per block at most: blocks are the unit of random access (decompressing one costs
/// about a tenth of a millisecond at this size); with the segment's dictionary they compress as
/// well as blocks eight times larger without.
pub const BLOCK_RECORDS: usize = 256;
/// Uncompressed payload bytes per block at most (a block is closed when it would pass this).
pub const BLOCK_BYTES: usize = 512 << 10;
pub const DICT_MAGIC: &[u8; 4] = b"VDC1";
pub const DICT_HEADER_LEN: usize = 16;
const COUNT_DICT: u32 = 1 << 31;
/// Largest payload accepted when reading (anything larger is corruption).
pub const MAX_PAYLOAD: usize = 256 << 20;

/// Record flags.
pub const FLAG_OVERLAY: u8 = 1;
pub const FLAG_REDACTED: u8 = 2;
pub const FLAG_MESSAGE_IS_RAW: u8 = 4;
/// `doc` is an overlay on the Kubernetes audit normalizer (version 1) applied to `raw`.
pub const FLAG_K8S_V1: u8 = 8;
/// Bytes of the chain hash kept with each record: enough to name the record where a chain
/// breaks (a chance match, 1 in 65536, names the next one); the full hash of each block's
/// last record is in the block header and in the signed checkpoints.
pub const LINK_LEN: usize = 2;

pub type Hash = [u8; 32];

/// One record as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    pub seq: u64,
    /// Receive time, microseconds since the Unix epoch.
    pub received: i64,
    /// Event time, microseconds since the Unix epoch.
    pub event_time: i64,
    /// Where it came from: a file path, `-`, `webhook`.
    pub source: String,
    pub flags: u8,
    /// The event as received (after secret redaction).
    pub raw: Vec<u8>,
    /// The normalized document (JSON), or the part of it that is not in `raw` (FLAG_OVERLAY).
    pub doc: Vec<u8>,
}

pub fn genesis(partition: &str) -> Hash {
    let mut h = Sha256::new();
    h.update(b"vigil-genesis-v1\0");
    h.update(partition.as_bytes());
    h.finalize().into()
}

fn put_bytes(h: &mut Sha256, b: &[u8]) {
    h.update((b.len() as u64).to_le_bytes());
    h.update(b);
}

/// The chain hash of `r` after `prev`.
pub fn chain_hash(prev: &Hash, r: &StoredRecord) -> Hash {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(r.seq.to_le_bytes());
    h.update(r.received.to_le_bytes());
    h.update(r.event_time.to_le_bytes());
    put_bytes(&mut h, r.source.as_bytes());
    h.update([r.flags]);
    put_bytes(&mut h, &r.raw);
    put_bytes(&mut h, &r.doc);
    h.finalize().into()
}

/// A segment header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub number: u32,
    pub first_seq: u64,
    pub prev_hash: Hash,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&self.number.to_le_bytes());
        b[12..20].copy_from_slice(&self.first_seq.to_le_bytes());
        b[20..52].copy_from_slice(&self.prev_hash);
        let check = xxh3_64(&b[..52]);
        b[52..60].copy_from_slice(&check.to_le_bytes());
        b
    }

    pub fn parse(b: &[u8; HEADER_LEN]) -> Option<SegmentHeader> {
        if &b[0..8] != SEGMENT_MAGIC || xxh3_64(&b[..52]).to_le_bytes() != b[52..60] {
            return None;
        }
        Some(SegmentHeader {
            number: u32::from_le_bytes(b[8..12].try_into().ok()?),
            first_seq: u64::from_le_bytes(b[12..20].try_into().ok()?),
            prev_hash: b[20..52].try_into().ok()?,
        })
    }
}

/// The dictionary section of a segment (after its header), as bytes to write.
pub fn encode_dict(dict: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(DICT_HEADER_LEN + dict.len());
    out.extend_from_slice(DICT_MAGIC);
    out.extend_from_slice(&(dict.len() as u32).to_le_bytes());
    out.extend_from_slice(&xxh3_64(dict).to_le_bytes());
    out.extend_from_slice(dict);
    out
}

/// The dictionary section at the start of `rest` (what follows a segment header): `None` when
/// there is none, `Some(Err)` when it is damaged or cut; else the dictionary and its length on
/// disk.
pub fn parse_dict(rest: &[u8]) -> Option<Result<(&[u8], usize), String>> {
    if rest.get(..4)? != DICT_MAGIC {
        return None;
    }
    let Some(head) = rest.get(..DICT_HEADER_LEN) else {
        return Some(Err("dictionary cut short".into()));
    };
    let len = u32::from_le_bytes(head[4..8].try_into().unwrap_or_default()) as usize;
    let check = u64::from_le_bytes(head[8..16].try_into().unwrap_or_default());
    let Some(dict) = rest.get(DICT_HEADER_LEN..DICT_HEADER_LEN + len) else {
        return Some(Err("dictionary cut short".into()));
    };
    if xxh3_64(dict) != check {
        return Some(Err("dictionary fails its checksum".into()));
    }
    Some(Ok((dict, DICT_HEADER_LEN + len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record whose every field differs with `seq` (the block tests use it too).
    pub(super) fn rec(seq: u64, raw: &str) -> StoredRecord {
        StoredRecord {
            seq,
            received: 1_700_000_000_000_000 + seq as i64,
            event_time: 1_700_000_000_000_000 - (seq as i64) * 7,
            source: if seq & 1 == 0 { "a.log" } else { "b.log" }.into(),
            flags: FLAG_OVERLAY,
            raw: raw.as_bytes().to_vec(),
            doc: br#"{"x":1}"#.to_vec(),
        }
    }

    #[test]
    fn chain_depends_on_everything() {
        let r = rec(1, "x");
        let h = chain_hash(&genesis("p"), &r);
        assert_ne!(h, chain_hash(&genesis("q"), &r));
        let mut r2 = r.clone();
        r2.flags = 0;
        assert_ne!(h, chain_hash(&genesis("p"), &r2));
        let mut r3 = r.clone();
        r3.seq = 2;
        assert_ne!(h, chain_hash(&genesis("p"), &r3));
    }

    #[test]
    fn segment_header_round_trip() {
        let h = SegmentHeader {
            number: 7,
            first_seq: 99,
            prev_hash: [3; 32],
        };
        let mut b = h.encode();
        assert_eq!(SegmentHeader::parse(&b), Some(h));
        b[9] ^= 1;
        assert_eq!(SegmentHeader::parse(&b), None);
    }
}
