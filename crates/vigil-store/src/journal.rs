//! One partition's journal on disk: scanning segment files into a block map (cutting a torn
//! tail when writing), reading records back, and appending blocks.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::segment::{
    self, BlockHeader, Decoder, Hash, SegmentHeader, StoredRecord, BLOCK_HEADER_LEN,
    DICT_HEADER_LEN, HEADER_LEN,
};
use crate::{Fault, StoreError};

/// Where one block is.
#[derive(Clone, Debug)]
pub struct BlockPos {
    pub segment: u32,
    pub block: u32,
    pub offset: u64,
    pub header: BlockHeader,
}

/// A partition as found on disk.
#[derive(Debug, Default)]
pub struct Scan {
    pub blocks: Vec<BlockPos>,
    /// Segment files by number, with their length up to the last whole block.
    pub segments: Vec<(u32, PathBuf, u64)>,
    /// A torn tail: (segment file, offset where the whole blocks end).
    pub torn: Option<(PathBuf, u64)>,
    pub next_seq: u64,
    pub head: Option<Hash>,
    /// The dictionary of each segment that has one.
    pub dicts: BTreeMap<u32, Arc<Vec<u8>>>,
}

/// Reads the dictionary section of a segment file (after its header), if it has one:
/// `Ok(None)` none, `Err(offset)` damaged or cut (the offset where it starts).
fn read_dict(f: &mut File, len: u64) -> std::io::Result<Result<Option<Vec<u8>>, u64>> {
    let mut head = [0u8; DICT_HEADER_LEN];
    if len < (HEADER_LEN + 4) as u64 || !read_exact_at(f, HEADER_LEN as u64, &mut head[..4])? {
        return Ok(Ok(None));
    }
    if &head[..4] != segment::DICT_MAGIC {
        return Ok(Ok(None));
    }
    if !read_exact_at(f, HEADER_LEN as u64, &mut head)? {
        return Ok(Err(HEADER_LEN as u64));
    }
    let n = u32::from_le_bytes(head[4..8].try_into().unwrap_or_default()) as usize;
    if n > segment::MAX_PAYLOAD {
        return Ok(Err(HEADER_LEN as u64));
    }
    let mut buf = vec![0u8; DICT_HEADER_LEN + n];
    if !read_exact_at(f, HEADER_LEN as u64, &mut buf)? {
        return Ok(Err(HEADER_LEN as u64));
    }
    Ok(match segment::parse_dict(&buf) {
        Some(Ok((d, _))) => Ok(Some(d.to_vec())),
        _ => Err(HEADER_LEN as u64),
    })
}

/// The dictionary of a segment file, if it has a sound one.
pub fn segment_dict(path: &Path) -> Option<Vec<u8>> {
    let mut f = File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    read_dict(&mut f, len).ok()?.ok()?
}

pub fn segment_name(n: u32) -> String {
    format!("{n:06}.seg")
}

pub fn list_segments(dir: &Path) -> Result<Vec<(u32, PathBuf)>, StoreError> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(StoreError::io(dir, e)),
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(n) = name
            .strip_suffix(".seg")
            .and_then(|n| n.parse::<u32>().ok())
        {
            out.push((n, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Reads `buf.len()` bytes at `offset` (one `pread` on Unix: scanning a partition reads
/// every block header, and a seek per header doubled the system calls); `false` when the file
/// ends first.
pub(crate) fn read_exact_at(f: &File, offset: u64, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut done = 0;
    while done < buf.len() {
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(f, &mut buf[done..], offset + done as u64)?;
        #[cfg(not(unix))]
        let n = {
            let mut f = f;
            std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(offset + done as u64))?;
            std::io::Read::read(&mut f, &mut buf[done..])?
        };
        if n == 0 {
            return Ok(false);
        }
        done += n;
    }
    Ok(true)
}

/// Scans a partition's segments, reading block headers (and checking the last block's
/// checksum: only the tail can be torn by a crash). Anything after the last whole block of the
/// last segment is the torn tail. A damaged block elsewhere is corruption: `vigil verify`.
pub fn scan(dir: &Path) -> Result<Scan, StoreError> {
    scan_with(dir, false)
}

/// As `scan`, for readers: a segment's blocks come from its block map (`blockmap`) as far as it
/// has a sound one, the headers after it are read. `head` is then not known.
pub fn scan_for_reading(dir: &Path) -> Result<Scan, StoreError> {
    scan_with(dir, true)
}

fn scan_with(dir: &Path, maps: bool) -> Result<Scan, StoreError> {
    let segs = list_segments(dir)?;
    let mut scan = Scan::default();
    let last_index = segs.len().saturating_sub(1);
    for (i, (n, path)) in segs.iter().enumerate() {
        let is_last = i == last_index;
        let mut f = File::open(path).map_err(|e| StoreError::io(path, e))?;
        let len = f.metadata().map_err(|e| StoreError::io(path, e))?.len();
        let mut head = [0u8; HEADER_LEN];
        let ok = read_exact_at(&f, 0, &mut head).map_err(|e| StoreError::io(path, e))?;
        let header = ok.then(|| SegmentHeader::parse(&head)).flatten();
        let Some(header) = header else {
            if is_last {
                scan.torn = Some((path.clone(), 0));
                break;
            }
            return Err(StoreError::Corrupt(format!(
                "{}: bad segment header; run `vigil verify`",
                path.display()
            )));
        };
        if header.number != *n || header.first_seq != scan.next_seq {
            return Err(StoreError::Corrupt(format!(
                "{}: segment out of order; run `vigil verify`",
                path.display()
            )));
        }
        let mut offset = HEADER_LEN as u64;
        match read_dict(&mut f, len).map_err(|e| StoreError::io(path, e))? {
            Ok(Some(d)) => {
                offset += (DICT_HEADER_LEN + d.len()) as u64;
                scan.dicts.insert(*n, Arc::new(d));
            }
            Ok(None) => {}
            Err(at) if is_last => {
                scan.torn = Some((path.clone(), at));
                scan.segments.push((*n, path.clone(), at));
                break;
            }
            Err(_) => {
                return Err(StoreError::Corrupt(format!(
                    "{}: damaged dictionary; run `vigil verify`",
                    path.display()
                )))
            }
        }
        let mut block = 0u32;
        if maps {
            let mapped = crate::blockmap::read(dir, *n, len, scan.next_seq)
                .filter(|(b, _)| b.first().is_some_and(|b| b.offset == offset));
            if let Some((blocks, end)) = mapped {
                if let Some(last) = blocks.last() {
                    scan.next_seq = last.header.first_seq + u64::from(last.header.count);
                }
                scan.head = None;
                block = blocks.len() as u32;
                scan.blocks.extend(blocks);
                offset = end;
            }
        }
        let mut good_end = offset;
        loop {
            if offset == len {
                break;
            }
            let mut bh = [0u8; BLOCK_HEADER_LEN];
            let whole = offset + BLOCK_HEADER_LEN as u64 <= len
                && read_exact_at(&f, offset, &mut bh).map_err(|e| StoreError::io(path, e))?;
            let parsed = whole.then(|| BlockHeader::parse(&bh)).flatten();
            let end = parsed
                .as_ref()
                .map(|h| offset + BLOCK_HEADER_LEN as u64 + u64::from(h.payload_len));
            let fits = end.is_some_and(|e| e <= len);
            let mut valid = parsed.is_some() && fits;
            if let (true, Some(h)) = (valid, &parsed) {
                valid = h.first_seq == scan.next_seq;
                let end = end.unwrap_or(len);
                if valid && is_last && end == len {
                    // The last block: check its payload too.
                    let mut payload = vec![0u8; h.payload_len as usize];
                    read_exact_at(&f, offset + BLOCK_HEADER_LEN as u64, &mut payload)
                        .map_err(|e| StoreError::io(path, e))?;
                    valid = h.checks(&bh, &payload);
                }
            }
            if !valid {
                if is_last {
                    scan.torn = Some((path.clone(), offset));
                    break;
                }
                return Err(StoreError::Corrupt(format!(
                    "{}: damaged block at byte {offset}; run `vigil verify`",
                    path.display()
                )));
            }
            let Some(h) = parsed else { break };
            scan.next_seq = h.first_seq + u64::from(h.count);
            scan.head = Some(h.last_hash);
            scan.blocks.push(BlockPos {
                segment: *n,
                block,
                offset,
                header: h,
            });
            block += 1;
            offset = end.unwrap_or(len);
            good_end = offset;
        }
        scan.segments.push((*n, path.clone(), good_end));
    }
    Ok(scan)
}

/// Reads one block and checks it: the header as expected, the payload as checksummed.
fn read_checked(dir: &Path, b: &BlockPos) -> Result<(PathBuf, Vec<u8>), StoreError> {
    let path = dir.join(segment_name(b.segment));
    let f = File::open(&path).map_err(|e| StoreError::io(&path, e))?;
    let mut buf = vec![0u8; BLOCK_HEADER_LEN + b.header.payload_len as usize];
    if !read_exact_at(&f, b.offset, &mut buf).map_err(|e| StoreError::io(&path, e))? {
        return Err(StoreError::Corrupt(format!(
            "{}: block at byte {} is cut short",
            path.display(),
            b.offset
        )));
    }
    let head: [u8; BLOCK_HEADER_LEN] = buf[..BLOCK_HEADER_LEN].try_into().unwrap_or([0; 64]);
    // The block where it was expected (a block map gives only its place and sizes), whole.
    let sound = BlockHeader::parse(&head).is_some_and(|h| {
        (h.payload_len, h.count, h.dict, h.first_seq, h.raw_len)
            == (
                b.header.payload_len,
                b.header.count,
                b.header.dict,
                b.header.first_seq,
                b.header.raw_len,
            )
            && h.checks(&head, &buf[BLOCK_HEADER_LEN..])
    });
    if !sound {
        return Err(StoreError::Corrupt(format!(
            "{}: block at byte {} fails its checksum; run `vigil verify`",
            path.display(),
            b.offset
        )));
    }
    Ok((path, buf))
}

/// Reads and decodes one block (`dec` holds its segment's dictionary).
pub fn read_block(
    dir: &Path,
    b: &BlockPos,
    dec: &mut Decoder,
) -> Result<Vec<StoredRecord>, StoreError> {
    let (path, buf) = read_checked(dir, b)?;
    segment::decode_block(&b.header, &buf[BLOCK_HEADER_LEN..], dec)
        .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))
}

/// Reads one block for random access to its records.
pub fn read_block_payload(
    dir: &Path,
    b: &BlockPos,
    dec: &mut Decoder,
    reuse: Vec<u8>,
) -> Result<segment::BlockPayload, StoreError> {
    let (path, buf) = read_checked(dir, b)?;
    segment::BlockPayload::new_in(&b.header, &buf[BLOCK_HEADER_LEN..], dec, reuse)
        .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))
}

/// Writes `bytes` at the end of `file`, through the fault injector when there is one.
pub fn write_all(
    file: &mut File,
    path: &Path,
    bytes: &[u8],
    fault: &Option<Fault>,
) -> Result<(), StoreError> {
    if let Some(f) = fault {
        if let Some((n, err)) = f(path, bytes.len()) {
            let _ = file.write_all(&bytes[..n.min(bytes.len())]);
            return Err(StoreError::io(path, err));
        }
    }
    file.write_all(bytes).map_err(|e| StoreError::io(path, e))
}

/// Opens (creating) a segment file for appending; returns its length.
pub fn create_segment(
    dir: &Path,
    header: &SegmentHeader,
    dict: Option<&[u8]>,
    fault: &Option<Fault>,
) -> Result<(File, PathBuf, u64), StoreError> {
    let path = dir.join(segment_name(header.number));
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::io(&path, e))?;
    let mut bytes = header.encode().to_vec();
    if let Some(d) = dict {
        bytes.extend_from_slice(&segment::encode_dict(d));
    }
    write_all(&mut f, &path, &bytes, fault)?;
    Ok((f, path, bytes.len() as u64))
}

pub fn open_append(path: &Path, len: u64) -> Result<File, StoreError> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io(path, e))?;
    f.set_len(len).map_err(|e| StoreError::io(path, e))?;
    let mut f = f;
    f.seek(SeekFrom::Start(len))
        .map_err(|e| StoreError::io(path, e))?;
    Ok(f)
}
