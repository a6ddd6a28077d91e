//! `verify` catches each kind of tampering and names the segment and record.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use vigil_store::journal::segment_dict;
use vigil_store::segment::{self, BlockBuilder, BlockHeader, Decoder, BLOCK_HEADER_LEN};
use vigil_store::verify::{verify, Problem};
use vigil_store::Reader;

const PART: &str = "journal/k8s.audit/2026-11-20";

fn store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    // 12 batches of 60: many blocks, several segments.
    filled(dir.path(), 12, 60, small_segments());
    let r = verify(dir.path(), None).unwrap();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert!(r.segments >= 4, "{} segments", r.segments);
    dir
}

fn seg(dir: &Path, n: u32) -> PathBuf {
    dir.join(PART).join(format!("{n:06}.seg"))
}

fn first_problem(dir: &Path) -> Problem {
    let r = verify(dir, None).unwrap();
    assert!(!r.problems.is_empty(), "tampering not detected");
    r.problems[0].clone()
}

/// A decoder and a compressor for a segment (with its dictionary, if it has one).
fn codec(path: &Path) -> (Decoder, zstd::bulk::Compressor<'static>, bool) {
    let dict = segment_dict(path);
    let comp = match &dict {
        Some(d) => zstd::bulk::Compressor::with_dictionary(3, d).unwrap(),
        None => zstd::bulk::Compressor::new(3).unwrap(),
    };
    (Decoder::new(dict.as_deref()).unwrap(), comp, dict.is_some())
}

fn seg_name(n: u32) -> String {
    format!("{PART}/{n:06}.seg")
}

/// The first record number of segment `n`.
fn first_seq(dir: &Path, n: u32) -> u64 {
    let r = Reader::open(dir).unwrap();
    r.parts[0]
        .blocks
        .iter()
        .find(|b| b.segment == n)
        .unwrap()
        .header
        .first_seq
}

#[test]
fn a_flipped_byte_names_its_segment_and_block() {
    let dir = store();
    let start = first_seq(dir.path(), 2);
    let path = seg(dir.path(), 2);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 40; // inside the last block's payload
    bytes[at] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();
    let p = first_problem(dir.path());
    assert_eq!(p.segment.as_deref(), Some(seg_name(2).as_str()), "{p}");
    assert!(p.record.unwrap() >= start, "{p}");
    assert!(
        p.message.contains("edited") || p.message.contains("damaged"),
        "{p}"
    );
}

#[test]
fn an_edited_record_is_named_exactly() {
    let dir = store();
    // Rewrite a block of segment 2 with one record changed, checksums recomputed (as someone
    // with the file but without the key would): the chain names the record.
    let path = seg(dir.path(), 2);
    let mut bytes = std::fs::read(&path).unwrap();
    let r = Reader::open(dir.path()).unwrap();
    let off = r.parts[0]
        .blocks
        .iter()
        .find(|b| b.segment == 2)
        .unwrap()
        .offset as usize;
    drop(r);
    let head: [u8; BLOCK_HEADER_LEN] = bytes[off..off + BLOCK_HEADER_LEN].try_into().unwrap();
    let bh = BlockHeader::parse(&head).unwrap();
    let end = off + BLOCK_HEADER_LEN + bh.payload_len as usize;
    let (mut dec, mut comp, with_dict) = codec(&path);
    let mut recs =
        segment::decode_block(&bh, &bytes[off + BLOCK_HEADER_LEN..end], &mut dec).unwrap();
    let links = segment::block_links(&bh, &bytes[off + BLOCK_HEADER_LEN..end], &mut dec).unwrap();
    let victim = 5;
    let text = String::from_utf8(recs[victim].raw.clone()).unwrap();
    recs[victim].raw = text
        .replace("\"get\"", "\"GET\"")
        .replace("\"list\"", "\"LIST\"")
        .replace("\"watch\"", "\"WATCH\"")
        .replace("\"create\"", "\"CREATE\"")
        .replace("\"delete\"", "\"DELETE\"")
        .into_bytes();
    // Keep the stored links (an editor cannot fix them without redoing the whole chain).
    let mut b = BlockBuilder::new(bh.first_seq);
    for (r, l) in recs.iter().zip(&links) {
        let mut link = [0u8; 32];
        link[..segment::LINK_LEN].copy_from_slice(l);
        b.push(r, &link);
    }
    let block = b.finish(&bh.last_hash, &mut comp, with_dict).unwrap();
    bytes.splice(off..end, block);
    std::fs::write(&path, bytes).unwrap();
    let p = first_problem(dir.path());
    assert_eq!(p.segment.as_deref(), Some(seg_name(2).as_str()), "{p}");
    assert_eq!(p.record, Some(bh.first_seq + victim as u64), "{p}");
}

#[test]
fn a_rechained_edit_fails_the_signed_checkpoint() {
    let dir = store();
    // Edit the partition's very last block and redo its chain and checksum: everything is
    // consistent except the signature.
    let r = Reader::open(dir.path()).unwrap();
    let last = r.parts[0].blocks.last().unwrap().clone();
    drop(r);
    let path = seg(dir.path(), last.segment);
    let mut bytes = std::fs::read(&path).unwrap();
    let off = last.offset as usize;
    let end = off + BLOCK_HEADER_LEN + last.header.payload_len as usize;
    let (mut dec, mut comp, with_dict) = codec(&path);
    let mut recs =
        segment::decode_block(&last.header, &bytes[off + BLOCK_HEADER_LEN..end], &mut dec).unwrap();
    let mut prev = {
        // The full headers (a reader's block map leaves the hashes out).
        let part = Reader::open(dir.path()).unwrap().parts[0].dir.clone();
        let blocks = vigil_store::journal::scan(&part).unwrap().blocks;
        blocks[blocks.len() - 2].header.last_hash
    };
    recs[0].raw = b"{\"verb\":\"nothing to see\"}".to_vec();
    let mut b = BlockBuilder::new(last.header.first_seq);
    for r in &recs {
        prev = segment::chain_hash(&prev, r);
        b.push(r, &prev);
    }
    let block = b.finish(&prev, &mut comp, with_dict).unwrap();
    bytes.splice(off..end, block);
    std::fs::write(&path, bytes).unwrap();
    let p = first_problem(dir.path());
    assert_eq!(
        p.segment.as_deref(),
        Some(seg_name(last.segment).as_str()),
        "{p}"
    );
    assert_eq!(p.record, Some(last.header.first_seq), "{p}");
    assert!(p.message.contains("signed checkpoint"), "{p}");
}

#[test]
fn a_dropped_segment_is_named() {
    let dir = store();
    let start = first_seq(dir.path(), 3);
    std::fs::remove_file(seg(dir.path(), 3)).unwrap();
    let p = first_problem(dir.path());
    assert_eq!(p.segment.as_deref(), Some(seg_name(3).as_str()), "{p}");
    assert_eq!(p.record, Some(start), "{p}");
    assert!(p.message.contains("missing"), "{p}");
}

#[test]
fn dropping_the_last_segment_is_truncation() {
    let dir = store();
    let r = Reader::open(dir.path()).unwrap();
    let last = r.parts[0].blocks.last().unwrap().segment;
    let start = r.parts[0]
        .blocks
        .iter()
        .find(|b| b.segment == last)
        .unwrap()
        .header
        .first_seq;
    drop(r);
    std::fs::remove_file(seg(dir.path(), last)).unwrap();
    let p = first_problem(dir.path());
    assert_eq!(p.record, Some(start), "{p}");
    assert!(p.message.contains("truncated"), "{p}");
}

#[test]
fn a_truncated_file_is_named() {
    let dir = store();
    // Cut segment 2 in the middle of a block.
    let path = seg(dir.path(), 2);
    let len = std::fs::metadata(&path).unwrap().len();
    let start = first_seq(dir.path(), 2);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let p = first_problem(dir.path());
    assert_eq!(p.segment.as_deref(), Some(seg_name(2).as_str()), "{p}");
    assert!(p.record.unwrap() >= start, "{p}");
    assert!(p.message.contains("truncated"), "{p}");
    // Cut the last segment at a block boundary: the checkpoints still know.
    let dir = store();
    let r = Reader::open(dir.path()).unwrap();
    let last = r.parts[0].blocks.last().unwrap().clone();
    drop(r);
    std::fs::OpenOptions::new()
        .write(true)
        .open(seg(dir.path(), last.segment))
        .unwrap()
        .set_len(last.offset)
        .unwrap();
    let p = first_problem(dir.path());
    assert_eq!(p.record, Some(last.header.first_seq), "{p}");
    assert!(p.message.contains("truncated"), "{p}");
}

#[test]
fn reordered_segments_are_named() {
    let dir = store();
    let (a, b) = (seg(dir.path(), 2), seg(dir.path(), 3));
    let tmp = a.with_extension("tmp");
    std::fs::rename(&a, &tmp).unwrap();
    std::fs::rename(&b, &a).unwrap();
    std::fs::rename(&tmp, &b).unwrap();
    let p = first_problem(dir.path());
    assert_eq!(p.segment.as_deref(), Some(seg_name(2).as_str()), "{p}");
    assert!(p.message.contains("reordered"), "{p}");
}

#[test]
fn reordered_blocks_are_named() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 4, 60, vigil_store::StoreOptions::default());
    // Swap the first two blocks of segment 1 (both whole, valid blocks).
    let path = seg(dir.path(), 1);
    let bytes = std::fs::read(&path).unwrap();
    let r = Reader::open(dir.path()).unwrap();
    let blocks: Vec<_> = r.parts[0]
        .blocks
        .iter()
        .filter(|b| b.segment == 1)
        .cloned()
        .collect();
    drop(r);
    assert!(blocks.len() >= 2);
    let (b0, b1) = (&blocks[0], &blocks[1]);
    let e0 = b0.offset as usize + BLOCK_HEADER_LEN + b0.header.payload_len as usize;
    let e1 = b1.offset as usize + BLOCK_HEADER_LEN + b1.header.payload_len as usize;
    let mut out = bytes[..b0.offset as usize].to_vec();
    out.extend_from_slice(&bytes[b1.offset as usize..e1]);
    out.extend_from_slice(&bytes[b0.offset as usize..e0]);
    out.extend_from_slice(&bytes[e1..]);
    std::fs::write(&path, out).unwrap();
    let p = first_problem(dir.path());
    assert_eq!(p.segment.as_deref(), Some(seg_name(1).as_str()), "{p}");
    assert_eq!(p.record, Some(0), "{p}");
    assert!(p.message.contains("reordered"), "{p}");
}

#[test]
fn forged_checkpoints_and_foreign_keys_fail() {
    let dir = store();
    let path = dir.path().join("checkpoints.log");
    let text = std::fs::read_to_string(&path).unwrap();
    let forged = text.replacen("\"records\":60", "\"records\":61", 1);
    assert_ne!(forged, text);
    std::fs::write(&path, forged).unwrap();
    let p = first_problem(dir.path());
    assert!(p.message.contains("bad signature"), "{p}");
    std::fs::write(&path, text).unwrap();
    let other = ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key();
    let r = verify(dir.path(), Some(other)).unwrap();
    assert!(r
        .problems
        .iter()
        .any(|p| p.message.contains("bad signature")));
}

#[test]
fn a_deleted_partition_is_named() {
    let dir = store();
    std::fs::remove_dir_all(dir.path().join(PART)).unwrap();
    let p = first_problem(dir.path());
    assert_eq!(p.partition, "k8s.audit/2026-11-20");
    assert!(p.message.contains("partition missing"), "{p}");
}

#[test]
fn an_edited_dictionary_is_named() {
    let dir = tempfile::tempdir().unwrap();
    filled(
        dir.path(),
        2,
        400,
        vigil_store::StoreOptions {
            segment_bytes: 16 << 10,
            ..vigil_store::StoreOptions::default()
        },
    );
    assert!(verify(dir.path(), None).unwrap().problems.is_empty());
    let path = seg(dir.path(), 1);
    assert!(
        segment_dict(&path).is_some(),
        "a batch of 400 trains a dictionary"
    );
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[segment::HEADER_LEN + segment::DICT_HEADER_LEN + 100] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();
    let p = first_problem(dir.path());
    assert_eq!(p.segment.as_deref(), Some(seg_name(1).as_str()), "{p}");
    assert_eq!(p.record, Some(0), "{p}");
    assert!(p.message.contains("dictionary"), "{p}");
}
