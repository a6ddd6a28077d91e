//! `vigil verify`: walks every partition, segment, block and record, recomputes the hash chain
//! and checks it against the signed checkpoints. Names the first segment and record of each
//! partition where the store differs from what was signed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ed25519_dalek::VerifyingKey;

use crate::chain::{self, Checkpoint, Deletion};
use crate::journal::{list_segments, segment_name};
use crate::segment::{self, BlockHeader, Decoder, SegmentHeader, BLOCK_HEADER_LEN, HEADER_LEN};
use crate::{list_partitions, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub partition: String,
    /// The segment file, relative to the data directory.
    pub segment: Option<String>,
    /// The first record concerned (its number in the partition).
    pub record: Option<u64>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.partition)?;
        if let Some(s) = &self.segment {
            write!(f, ": segment {s}")?;
        }
        if let Some(r) = self.record {
            write!(f, ": record {r}")?;
        }
        write!(f, ": {}", self.message)
    }
}

#[derive(Debug, Default)]
pub struct Report {
    pub partitions: usize,
    pub segments: usize,
    pub records: u64,
    pub checkpoints: usize,
    pub deletions: usize,
    /// Frames of timeline rows checked (see `rows`).
    pub row_frames: usize,
    pub problems: Vec<Problem>,
}

struct Walk<'a> {
    name: &'a str,
    rel: String,
    problems: &'a mut Vec<Problem>,
}

impl Walk<'_> {
    fn fail(&mut self, seg: Option<u32>, record: Option<u64>, msg: impl Into<String>) {
        self.problems.push(Problem {
            partition: self.name.to_string(),
            segment: seg.map(|n| format!("{}/{}", self.rel, segment_name(n))),
            record,
            message: msg.into(),
        });
    }
}

/// Verifies the data directory with `key` (default: the public key in the directory; give the
/// one you exported to also catch a replaced key).
pub fn verify(dir: &Path, key: Option<VerifyingKey>) -> Result<Report, StoreError> {
    let mut report = Report::default();
    let key = match key {
        Some(k) => k,
        None => chain::load_public_key(dir)?,
    };
    let (ckpt_lines, torn) = chain::read_log::<Checkpoint>(&dir.join("checkpoints.log"))?;
    let mut ckpts: BTreeMap<String, Vec<Checkpoint>> = BTreeMap::new();
    for l in ckpt_lines {
        match l.entry {
            Ok(c) if c.verify(&key) => {
                report.checkpoints += 1;
                ckpts.entry(c.partition.clone()).or_default().push(c);
            }
            Ok(c) => report.problems.push(Problem {
                partition: c.partition,
                segment: None,
                record: None,
                message: format!(
                    "checkpoints.log line {}: bad signature (edited or forged)",
                    l.line
                ),
            }),
            Err(e) => report.problems.push(Problem {
                partition: "checkpoints.log".into(),
                segment: None,
                record: None,
                message: format!("line {}: unreadable: {e}", l.line),
            }),
        }
    }
    if torn.is_some() {
        report.problems.push(Problem {
            partition: "checkpoints.log".into(),
            segment: None,
            record: None,
            message: "ends with a partial line (an interrupted write; the next ingest cuts it)"
                .into(),
        });
    }
    let (del_lines, _) = chain::read_log::<Deletion>(&dir.join("deletions.log"))?;
    let mut deleted = BTreeSet::new();
    for l in del_lines {
        match l.entry {
            Ok(d) if d.verify(&key) => {
                report.deletions += 1;
                deleted.insert(d.partition);
            }
            _ => report.problems.push(Problem {
                partition: "deletions.log".into(),
                segment: None,
                record: None,
                message: format!("line {}: bad signature or unreadable", l.line),
            }),
        }
    }
    let on_disk = list_partitions(dir)?;
    let names: BTreeSet<String> = on_disk.iter().map(|p| p.0.clone()).collect();
    for (name, list) in &ckpts {
        if !names.contains(name) && !deleted.contains(name) {
            let last = list.last().map_or(0, |c| c.records);
            report.problems.push(Problem {
                partition: name.clone(),
                segment: None,
                record: Some(0),
                message: format!("partition missing: {last} signed records are gone (deleted without a logged retention)"),
            });
        }
    }
    for (name, path, _) in &on_disk {
        report.partitions += 1;
        let rel = path
            .strip_prefix(dir)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| path.display().to_string());
        let list = ckpts.get(name).cloned().unwrap_or_default();
        let mut w = Walk {
            name,
            rel,
            problems: &mut report.problems,
        };
        let (segs, records) = verify_partition(path, name, &list, &mut w)?;
        report.row_frames += verify_rows(path, name, records, &key, &mut w)?;
        report.segments += segs;
        report.records += records;
    }
    Ok(report)
}

/// Checks each whole frame of a partition's timeline rows: checksum, the store's signature,
/// that it decodes, and that it covers only records the journal holds. A frame cut short at
/// the end (a crash while writing it) is left to the writer, which rebuilds it.
fn verify_rows(
    path: &Path,
    name: &str,
    records: u64,
    key: &VerifyingKey,
    w: &mut Walk,
) -> Result<usize, StoreError> {
    let file_path = path.join(crate::rows::ROWS_FILE);
    let io = |e| StoreError::io(&file_path, e);
    let (frames, _) = crate::rows::scan(&file_path, false).map_err(io)?;
    if frames.is_empty() {
        return Ok(0);
    }
    let file = std::fs::File::open(&file_path).map_err(io)?;
    let mut decoder = crate::rows::FrameDecoder::new().map_err(io)?;
    for (i, f) in frames.iter().enumerate() {
        let payload = crate::rows::read_payload(&file, f).map_err(io)?;
        let what = if !f.checks(&payload) {
            "checksum mismatch (edited)"
        } else if !f.signed_by(key, name) {
            "bad signature (edited or forged)"
        } else if !decoder.check(f, &payload) {
            "does not decode"
        } else if f.end() > records {
            "covers records the journal does not hold"
        } else {
            continue;
        };
        w.fail(
            None,
            Some(f.first_seq),
            format!(
                "{} frame {} (records {}..{}): {what}",
                crate::rows::ROWS_FILE,
                i + 1,
                f.first_seq,
                f.end()
            ),
        );
    }
    Ok(frames.len())
}

fn verify_partition(
    path: &Path,
    name: &str,
    ckpts: &[Checkpoint],
    w: &mut Walk,
) -> Result<(usize, u64), StoreError> {
    let by_records: BTreeMap<u64, &Checkpoint> = ckpts.iter().map(|c| (c.records, c)).collect();
    let signed = ckpts.iter().map(|c| c.records).max().unwrap_or(0);
    let segs = list_segments(path)?;
    let mut h = segment::genesis(name);
    let mut seq = 0u64;
    // Records up to here matched a signed checkpoint.
    let mut signed_to = 0u64;
    let mut last_seg = None;
    let before = w.problems.len();
    'segments: for (expected, (n, seg_path)) in (1u32..).zip(segs.iter()) {
        let n = *n;
        last_seg = Some(n);
        if n != expected {
            w.fail(
                Some(expected),
                Some(seq),
                format!(
                    "segment missing (dropped); the next file is {}",
                    segment_name(n)
                ),
            );
            break;
        }
        let bytes = std::fs::read(seg_path).map_err(|e| StoreError::io(seg_path, e))?;
        let Some(header) = bytes
            .get(..HEADER_LEN)
            .and_then(|b| <[u8; HEADER_LEN]>::try_from(b).ok())
            .and_then(|b| SegmentHeader::parse(&b))
        else {
            w.fail(Some(n), Some(seq), "segment header damaged or truncated");
            break;
        };
        if header.number != n {
            w.fail(
                Some(n),
                Some(seq),
                format!(
                    "the file holds segment {}: segments reordered or renamed",
                    header.number
                ),
            );
            break;
        }
        if header.first_seq != seq {
            w.fail(
                Some(n),
                Some(seq),
                format!(
                    "segment starts at record {}, expected {seq}: records or segments dropped or reordered",
                    header.first_seq
                ),
            );
            break;
        }
        if header.prev_hash != h {
            w.fail(
                Some(n),
                Some(seq),
                "does not follow the previous segment (chain broken): segments reordered or replaced",
            );
            break;
        }
        let mut off = HEADER_LEN;
        let dict = match segment::parse_dict(&bytes[HEADER_LEN..]) {
            None => None,
            Some(Ok((d, n))) => {
                off += n;
                Some(d)
            }
            Some(Err(e)) => {
                w.fail(Some(n), Some(seq), format!("{e}: edited or truncated"));
                break;
            }
        };
        let mut dec = match Decoder::new(dict) {
            Ok(d) => d,
            Err(e) => {
                w.fail(
                    Some(n),
                    Some(seq),
                    format!("dictionary unusable ({e}): edited"),
                );
                break;
            }
        };
        let mut block = 0u32;
        while off < bytes.len() {
            let Some(head) = bytes
                .get(off..off + BLOCK_HEADER_LEN)
                .and_then(|b| <[u8; BLOCK_HEADER_LEN]>::try_from(b).ok())
            else {
                w.fail(
                    Some(n),
                    Some(seq),
                    format!("truncated inside block {block} (byte {off})"),
                );
                break 'segments;
            };
            let Some(bh) = BlockHeader::parse(&head) else {
                w.fail(
                    Some(n),
                    Some(seq),
                    format!("block {block} header damaged (byte {off})"),
                );
                break 'segments;
            };
            let end = off + BLOCK_HEADER_LEN + bh.payload_len as usize;
            let Some(payload) = bytes.get(off + BLOCK_HEADER_LEN..end) else {
                w.fail(
                    Some(n),
                    Some(seq),
                    format!("truncated inside block {block} (byte {off})"),
                );
                break 'segments;
            };
            if bh.first_seq != seq {
                w.fail(
                    Some(n),
                    Some(seq),
                    format!(
                        "block {block} holds records from {}: records dropped or reordered",
                        bh.first_seq
                    ),
                );
                break 'segments;
            }
            let checksum_ok = bh.checks(&head, payload);
            let decoded = segment::decode_block(&bh, payload, &mut dec)
                .and_then(|r| segment::block_links(&bh, payload, &mut dec).map(|l| (r, l)));
            let (recs, links) = match decoded {
                Ok(x) => x,
                Err(e) => {
                    w.fail(
                        Some(n),
                        Some(seq),
                        format!("block {block} damaged ({e}): edited or corrupted"),
                    );
                    break 'segments;
                }
            };
            for (r, link) in recs.iter().zip(&links) {
                h = segment::chain_hash(&h, r);
                if h[..segment::LINK_LEN] != link[..] {
                    w.fail(
                        Some(n),
                        Some(r.seq),
                        format!("block {block}: record edited, deleted or reordered (hash chain breaks here)"),
                    );
                    break 'segments;
                }
            }
            if h != bh.last_hash {
                w.fail(
                    Some(n),
                    Some(seq),
                    format!("block {block}: chain head differs from the block header: edited"),
                );
                break 'segments;
            }
            if !checksum_ok {
                w.fail(
                    Some(n),
                    Some(seq),
                    format!("block {block}: checksum mismatch: edited"),
                );
                break 'segments;
            }
            seq += u64::from(bh.count);
            if let Some(c) = by_records.get(&seq) {
                if c.hash != chain::hex(&h) {
                    w.fail(
                        Some(n),
                        Some(signed_to),
                        format!(
                            "records {signed_to}..{} (up to block {block}) do not match their signed checkpoint: edited and re-chained",
                            seq - 1
                        ),
                    );
                    break 'segments;
                }
                signed_to = seq;
            }
            off = end;
            block += 1;
        }
    }
    let _ = last_seg;
    if w.problems.len() == before {
        if seq < signed {
            let last = ckpts.iter().max_by_key(|c| c.records);
            w.fail(
                last.map(|c| c.segment),
                Some(seq),
                format!(
                    "truncated: the journal ends at record {seq} but {signed} records were signed (records or segments deleted)"
                ),
            );
        } else if seq > signed {
            w.fail(
                last_seg,
                Some(signed),
                format!(
                    "{} records after the last signed checkpoint (appended by someone else, or an interrupted ingest: the next ingest cuts them)",
                    seq - signed
                ),
            );
        }
    }
    Ok((segs.len(), seq))
}
