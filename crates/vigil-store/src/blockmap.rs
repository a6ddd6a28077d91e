//! The block map of a segment (`NNNNNN.blk`): where its blocks are, so a reader opening the
//! store does not read every block header of every segment (one read each: ~80,000 at 10M
//! events, a tenth of a second before any query could start). A map may cover only the start
//! of a segment still being written; the reader reads the headers of the rest.
//!
//! ```text
//! map     = entry* trailer
//! entry   = payload len u32 | count u32 (bit 31: uses the dict) | raw len u32
//! trailer = "VBM1" | entries u32 | first seq u64 | data start u64 | segment length u64
//!           | xxh3(everything before) u64
//! ```
//!
//! A map is derived data, written by the writer when a segment is closed, when the index is
//! committed (and on open for a closed segment without one), never fsynced. A reader uses it
//! only when it checks, starts at the segment's first record and ends within the file; the
//! positions it gives are checked again against each block's own header and checksum when the
//! block is read. The writer's recovery never uses maps: it reads the headers themselves.

use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::xxh3_64;

use crate::journal::BlockPos;
use crate::segment::{BlockHeader, BLOCK_HEADER_LEN};

const MAGIC: &[u8; 4] = b"VBM1";
const ENTRY: usize = 12;
const TRAILER: usize = 40;
const COUNT_DICT: u32 = 1 << 31;

pub fn path(dir: &Path, segment: u32) -> PathBuf {
    dir.join(format!("{segment:06}.blk"))
}

/// Writes the map of segment `segment` whose blocks (all of them, in order) end at `seg_len`.
pub fn write(dir: &Path, segment: u32, seg_len: u64, blocks: &[&BlockPos]) -> std::io::Result<()> {
    let (Some(first), true) = (blocks.first(), blocks.iter().all(|b| b.segment == segment)) else {
        return Ok(());
    };
    let mut out = Vec::with_capacity(blocks.len() * ENTRY + TRAILER);
    for b in blocks {
        let h = &b.header;
        out.extend_from_slice(&h.payload_len.to_le_bytes());
        let count = h.count | if h.dict { COUNT_DICT } else { 0 };
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&h.raw_len.to_le_bytes());
    }
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(blocks.len() as u32).to_le_bytes());
    out.extend_from_slice(&first.header.first_seq.to_le_bytes());
    out.extend_from_slice(&first.offset.to_le_bytes());
    out.extend_from_slice(&seg_len.to_le_bytes());
    out.extend_from_slice(&xxh3_64(&out).to_le_bytes());
    let p = path(dir, segment);
    let tmp = p.with_extension("blk.tmp");
    std::fs::write(&tmp, &out)?;
    std::fs::rename(&tmp, &p)
}

/// The blocks of segment `segment` (a file of `file_len` bytes, its records from `first_seq`) as
/// its map gives them, and where they end; `None` when there is no map or it does not check or
/// fit the file.
pub fn read(
    dir: &Path,
    segment: u32,
    file_len: u64,
    first_seq: u64,
) -> Option<(Vec<BlockPos>, u64)> {
    let bytes = std::fs::read(path(dir, segment)).ok()?;
    let body_len = bytes.len().checked_sub(TRAILER)?;
    let (body, trailer) = bytes.split_at(body_len);
    let u32_at =
        |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap_or_default());
    let u64_at =
        |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
    if &trailer[0..4] != MAGIC
        || u64_at(trailer, 32) != xxh3_64(&bytes[..bytes.len() - 8])
        || u32_at(trailer, 4) as usize * ENTRY != body.len()
        || u64_at(trailer, 8) != first_seq
        || u64_at(trailer, 24) > file_len
    {
        return None;
    }
    let (mut offset, mut seq) = (u64_at(trailer, 16), first_seq);
    let mut out = Vec::with_capacity(body.len() / ENTRY);
    for (i, e) in body.chunks_exact(ENTRY).enumerate() {
        let count = u32_at(e, 4);
        let header = BlockHeader {
            payload_len: u32_at(e, 0),
            count: count & !COUNT_DICT,
            dict: count & COUNT_DICT != 0,
            first_seq: seq,
            last_hash: [0; 32],
            check: 0,
            raw_len: u32_at(e, 8),
        };
        if header.count == 0 || offset >= file_len {
            return None;
        }
        let next = offset.checked_add(BLOCK_HEADER_LEN as u64 + u64::from(header.payload_len))?;
        seq = seq.checked_add(u64::from(header.count))?;
        out.push(BlockPos {
            segment,
            block: i as u32,
            offset,
            header,
        });
        offset = next;
    }
    (offset == u64_at(trailer, 24) && !out.is_empty()).then_some((out, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(segment: u32, i: u32, offset: u64, first_seq: u64, len: u32) -> BlockPos {
        BlockPos {
            segment,
            block: i,
            offset,
            header: BlockHeader {
                payload_len: len,
                count: 128,
                dict: i.is_multiple_of(2),
                first_seq,
                last_hash: [9; 32],
                check: 7,
                raw_len: len * 5,
            },
        }
    }

    #[test]
    fn a_map_gives_back_the_places_and_refuses_a_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let start = 64 + 16 + 1000;
        let b0 = block(3, 0, start, 500, 4000);
        let b1 = block(3, 1, start + 64 + 4000, 628, 3000);
        let end = b1.offset + 64 + 3000;
        write(dir.path(), 3, end, &[&b0, &b1]).unwrap();
        let (got, to) = read(dir.path(), 3, end, 500).unwrap();
        assert_eq!(to, end);
        assert_eq!(
            read(dir.path(), 3, end + 100, 500).unwrap().1,
            end,
            "the file grew"
        );
        assert_eq!(got.len(), 2);
        for (g, w) in got.iter().zip([&b0, &b1]) {
            assert_eq!(
                (g.segment, g.block, g.offset),
                (w.segment, w.block, w.offset)
            );
            let (a, b) = (&g.header, &w.header);
            assert_eq!(
                (a.payload_len, a.count, a.dict, a.first_seq, a.raw_len),
                (b.payload_len, b.count, b.dict, b.first_seq, b.raw_len)
            );
        }
        assert!(
            read(dir.path(), 3, end - 1, 500).is_none(),
            "the file is shorter"
        );
        assert!(
            read(dir.path(), 3, end, 501).is_none(),
            "other first record"
        );
        assert!(read(dir.path(), 4, end, 500).is_none(), "no map");
        let p = path(dir.path(), 3);
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[5] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        assert!(read(dir.path(), 3, end, 500).is_none(), "edited");

        // A map whose start is near the end of the address space: refused, no overflow.
        let far = block(5, 0, u64::MAX - 10, 0, 4000);
        write(dir.path(), 5, u64::MAX, &[&far]).unwrap();
        assert!(read(dir.path(), 5, u64::MAX, 0).is_none());
    }
}
