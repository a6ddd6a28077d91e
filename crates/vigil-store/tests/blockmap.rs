//! Block maps (`NNNNNN.blk`) spare a reader the block headers of closed segments: with or
//! without them a reader serves the same records, and a map that lies is caught when a block
//! is read, never served.

mod common;

use std::path::{Path, PathBuf};

use vigil_store::blockmap;
use vigil_store::query::parse;
use vigil_store::reader::SearchOptions;
use vigil_store::Reader;

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let part = Reader::open(dir).unwrap().parts[0].dir.clone();
    let mut out: Vec<PathBuf> = std::fs::read_dir(part)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    out.sort();
    out
}

fn all_ids(dir: &Path) -> Vec<String> {
    let reader = Reader::open(dir).unwrap();
    reader
        .search(&parse("*").unwrap(), &SearchOptions::default())
        .unwrap()
        .events
        .iter()
        .map(|e| e.original()["auditID"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn readers_serve_the_same_with_or_without_maps() {
    let dir = tempfile::tempdir().unwrap();
    common::filled(dir.path(), 6, 200, common::small_segments());
    let segs = files(dir.path(), "seg");
    let maps = files(dir.path(), "blk");
    assert!(segs.len() > 5, "{} segments", segs.len());
    assert_eq!(maps.len(), segs.len(), "a map for every segment");
    let with = all_ids(dir.path());
    assert_eq!(with.len(), 1200);
    for m in &maps {
        std::fs::remove_file(m).unwrap();
    }
    assert_eq!(all_ids(dir.path()), with);
    // The writer makes them again when it opens the store.
    vigil_store::Store::open(dir.path(), common::small_segments())
        .unwrap()
        .close()
        .unwrap();
    assert_eq!(files(dir.path(), "blk").len(), segs.len());
    assert_eq!(all_ids(dir.path()), with);

    // Blocks appended after the last segment's map was written are read from their headers.
    let mut s = vigil_store::Store::open(dir.path(), common::small_segments()).unwrap();
    s.append_batch(common::batch(5000, 3)).unwrap();
    let now = all_ids(dir.path());
    assert_eq!(now.len(), 1203);
    assert!(now.contains(&"id-00005002".to_string()));
    drop(s);
}

#[test]
fn a_map_that_lies_is_caught_when_read() {
    let dir = tempfile::tempdir().unwrap();
    // Small batches: small blocks, several to a segment.
    common::filled(dir.path(), 40, 30, common::small_segments());
    let reader = Reader::open(dir.path()).unwrap();
    let part = &reader.parts[0];
    let seg = part.blocks[0].segment;
    let mut blocks: Vec<_> = part
        .blocks
        .iter()
        .filter(|b| b.segment == seg)
        .cloned()
        .collect();
    assert!(
        blocks.len() >= 2,
        "{} blocks in segment {seg}",
        blocks.len()
    );
    let seg_len = {
        let last = blocks.last().unwrap();
        last.offset + 64 + u64::from(last.header.payload_len)
    };
    // Sizes moved from one block to the next: the same total, every check of the map passes.
    blocks[0].header.payload_len += 10;
    blocks[1].offset += 10;
    blocks[1].header.payload_len -= 10;
    let refs: Vec<_> = blocks.iter().collect();
    blockmap::write(&part.dir, seg, seg_len, &refs).unwrap();
    drop(reader);
    let reader = Reader::open(dir.path()).unwrap();
    let err = reader
        .search(&parse("*").unwrap(), &SearchOptions::default())
        .map(|f| f.events.len())
        .unwrap_err();
    assert!(err.to_string().contains("block at byte"), "{err}");
}
