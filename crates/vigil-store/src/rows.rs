//! Timeline rows: what a table shows of a record (who, what, result), kept beside the journal
//! so a timeline of a busy identity reads a few bytes per row instead of decompressing and
//! re-normalizing whole events.
//!
//! `rows.bin` in each partition directory is a run of frames, each covering consecutive
//! records from `first_seq`:
//!
//! ```text
//! frame   = "VRW1" | first seq u64 | count u32 | raw len u32 | payload len u32
//!           | xxh3(header[0..24] ++ payload) u64 | Ed25519 signature [64] | payload (zstd)
//! payload = row*          row = dataset, who, what, result (each a varint length + UTF-8)
//! ```
//!
//! The rows are derived data, like the index: the writer makes them from the records it has
//! just made durable, rebuilds what is missing or damaged from the journal when it opens the
//! store, and a reader falls back to the journal for records no frame covers. The signature
//! (over the partition name, the header and the checksum) lets `vigil verify` prove that no
//! one but the store's key holder wrote a frame.

use std::fs::File;
use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde_json::Value;
use xxhash_rust::xxh3::xxh3_64;

use crate::query::lookup;
use crate::segment::{put_varint, Cursor};

pub const ROWS_FILE: &str = "rows.bin";
pub const FRAME_MAGIC: &[u8; 4] = b"VRW1";
pub const FRAME_HEADER_LEN: usize = 96;
/// Rows buffered before a frame is written (a commit or close writes a shorter one).
pub const FRAME_ROWS: usize = 16384;
/// A frame claiming more than this is damaged, not big.
const MAX_FRAME_BYTES: u32 = 64 << 20;

/// The table columns of a record beside its time and kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    /// The record's dataset; for an alert, the dataset of its evidence.
    pub dataset: String,
    pub who: String,
    pub what: String,
    pub result: String,
}

pub fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

/// The first non-empty value at any of `paths`, as text.
pub fn field(doc: &Value, paths: &[&str]) -> String {
    let mut out = Vec::new();
    for p in paths {
        out.clear();
        lookup(doc, p, &mut out);
        if let Some(v) = out.first() {
            let t = text_of(v);
            if !t.is_empty() {
                return t;
            }
        }
    }
    String::new()
}

/// `verb resource/sub ns/name` for Kubernetes, the action and message elsewhere.
pub fn what(doc: &Value) -> String {
    if doc.get("objectRef").is_some() || doc.get("verb").is_some() {
        let verb = field(doc, &["verb"]);
        let resource = field(doc, &["objectRef.resource"]);
        if resource.is_empty() {
            return format!("{verb} {}", field(doc, &["requestURI"]))
                .trim()
                .to_string();
        }
        let mut s = format!("{verb} {resource}");
        let sub = field(doc, &["objectRef.subresource"]);
        if !sub.is_empty() {
            s = format!("{s}/{sub}");
        }
        let place: Vec<String> = [
            field(doc, &["objectRef.namespace"]),
            field(doc, &["objectRef.name"]),
        ]
        .into_iter()
        .filter(|x| !x.is_empty())
        .collect();
        if !place.is_empty() {
            s = format!("{s} {}", place.join("/"));
        }
        return s.trim().to_string();
    }
    let action = field(doc, &["event.action"]);
    let msg: String = field(doc, &["message"]).chars().take(80).collect();
    format!("{action} {msg}").trim().to_string()
}

/// `user as effective (ip)`, or the address alone.
pub fn who(doc: &Value) -> String {
    let user = field(doc, &["user.name", "user.username"]);
    let eff = field(doc, &["user.effective.name"]);
    let ip = field(doc, &["source.ip"]);
    let mut s = user;
    if !eff.is_empty() {
        s = format!("{s} as {eff}");
    }
    if s.is_empty() {
        return ip;
    }
    if !ip.is_empty() {
        s = format!("{s} ({ip})");
    }
    s
}

/// The response code, else the outcome.
pub fn result(doc: &Value) -> String {
    let code = field(doc, &["http.response.status_code"]);
    if !code.is_empty() {
        return code;
    }
    field(doc, &["event.outcome"])
}

/// The row of a record of `dataset` (an alert when `alert`) with normalized document `doc`.
pub fn row_of(alert: bool, dataset: &str, doc: &Value) -> Row {
    if alert {
        return Row {
            dataset: field(doc, &["vigil.evidence.dataset"]),
            who: who(doc),
            what: format!(
                "[{}] {}",
                field(doc, &["rule.level"]),
                field(doc, &["rule.name"])
            ),
            result: field(doc, &["event.id"]),
        };
    }
    Row {
        dataset: dataset.to_string(),
        who: who(doc),
        what: what(doc),
        result: result(doc),
    }
}

/// Where a frame is and what it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramePos {
    pub first_seq: u64,
    pub count: u32,
    /// Offset of the header in `rows.bin`.
    pub offset: u64,
    pub raw_len: u32,
    pub len: u32,
    pub check: u64,
    pub sig: [u8; 64],
}

impl FramePos {
    pub fn end(&self) -> u64 {
        self.first_seq + u64::from(self.count)
    }
    pub fn payload_offset(&self) -> u64 {
        self.offset + FRAME_HEADER_LEN as u64
    }
    fn parse(head: &[u8; FRAME_HEADER_LEN], offset: u64) -> Option<FramePos> {
        if &head[0..4] != FRAME_MAGIC {
            return None;
        }
        let u32_at = |i: usize| u32::from_le_bytes(head[i..i + 4].try_into().unwrap_or_default());
        let f = FramePos {
            first_seq: u64::from_le_bytes(head[4..12].try_into().ok()?),
            count: u32_at(12),
            raw_len: u32_at(16),
            len: u32_at(20),
            check: u64::from_le_bytes(head[24..32].try_into().ok()?),
            sig: head[32..96].try_into().ok()?,
            offset,
        };
        (f.count > 0 && f.len <= MAX_FRAME_BYTES && f.raw_len <= MAX_FRAME_BYTES).then_some(f)
    }
    /// Whether `payload` is this frame's (the checksum covers the header's first 24 bytes).
    pub fn checks(&self, payload: &[u8]) -> bool {
        payload.len() == self.len as usize && checksum(&self.head24(), payload) == self.check
    }
    fn head24(&self) -> [u8; 24] {
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(FRAME_MAGIC);
        h[4..12].copy_from_slice(&self.first_seq.to_le_bytes());
        h[12..16].copy_from_slice(&self.count.to_le_bytes());
        h[16..20].copy_from_slice(&self.raw_len.to_le_bytes());
        h[20..24].copy_from_slice(&self.len.to_le_bytes());
        h
    }
    /// Whether the store's key signed this frame of `partition`.
    pub fn signed_by(&self, key: &VerifyingKey, partition: &str) -> bool {
        key.verify(
            &message(partition, &self.head24(), self.check),
            &Signature::from_bytes(&self.sig),
        )
        .is_ok()
    }
}

fn checksum(head24: &[u8; 24], payload: &[u8]) -> u64 {
    let mut b = Vec::with_capacity(24 + payload.len());
    b.extend_from_slice(head24);
    b.extend_from_slice(payload);
    xxh3_64(&b)
}

fn message(partition: &str, head24: &[u8; 24], check: u64) -> Vec<u8> {
    let mut m = b"vigil rows frame\n".to_vec();
    m.extend_from_slice(partition.as_bytes());
    m.push(0);
    m.extend_from_slice(head24);
    m.extend_from_slice(&check.to_le_bytes());
    m
}

/// A signed, compressed frame of `rows` (records `first_seq..`) of `partition`.
pub fn encode_frame(
    partition: &str,
    first_seq: u64,
    rows: &[Row],
    level: i32,
    key: &SigningKey,
) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::with_capacity(rows.len() * 64);
    for r in rows {
        for s in [&r.dataset, &r.who, &r.what, &r.result] {
            put_varint(&mut raw, s.len() as u64);
            raw.extend_from_slice(s.as_bytes());
        }
    }
    let payload = zstd::bulk::compress(&raw, level)?;
    let too_big = |n: usize| {
        u32::try_from(n)
            .ok()
            .filter(|n| *n <= MAX_FRAME_BYTES)
            .ok_or_else(|| std::io::Error::other("a rows frame over 64 MiB"))
    };
    let mut f = FramePos {
        first_seq,
        count: too_big(rows.len())?,
        offset: 0,
        raw_len: too_big(raw.len())?,
        len: too_big(payload.len())?,
        check: 0,
        sig: [0; 64],
    };
    let head = f.head24();
    f.check = checksum(&head, &payload);
    f.sig = key.sign(&message(partition, &head, f.check)).to_bytes();
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
    out.extend_from_slice(&head);
    out.extend_from_slice(&f.check.to_le_bytes());
    out.extend_from_slice(&f.sig);
    out.extend_from_slice(&payload);
    Ok(out)
}

/// The rows of a frame's (checked) payload, or `None` when it does not decode to `count` rows.
/// `want` picks rows by their offset in the frame (ascending); `None` keeps all.
pub fn decode_frame(
    f: &FramePos,
    payload: &[u8],
    want: Option<&[usize]>,
) -> Option<Vec<(usize, Row)>> {
    FrameDecoder::new().ok()?.decode(f, payload, want)
}

/// Decodes frames one after the other with one zstd context and one buffer.
pub struct FrameDecoder {
    dctx: zstd::bulk::Decompressor<'static>,
    raw: Vec<u8>,
}

impl FrameDecoder {
    pub fn new() -> std::io::Result<FrameDecoder> {
        Ok(FrameDecoder {
            dctx: zstd::bulk::Decompressor::new()?,
            raw: Vec::new(),
        })
    }

    /// Decompresses a frame's payload into `raw`.
    fn inflate(&mut self, f: &FramePos, payload: &[u8]) -> Option<()> {
        // A row takes at least four bytes (four empty columns): more rows than that is damage.
        if f.count as usize > f.raw_len as usize / 4 {
            return None;
        }
        self.raw.clear();
        self.raw.reserve(f.raw_len as usize);
        let n = self
            .dctx
            .decompress_to_buffer(payload, &mut self.raw)
            .ok()?;
        (n == f.raw_len as usize).then_some(())
    }

    /// Whether a frame's payload decodes to `count` rows of UTF-8 text, as `decode` with every
    /// row wanted would, without making the rows.
    pub fn check(&mut self, f: &FramePos, payload: &[u8]) -> bool {
        let mut ok = || -> Option<()> {
            self.inflate(f, payload)?;
            let mut c = Cursor::new(&self.raw);
            for _ in 0..f.count as usize * 4 {
                std::str::from_utf8(c.bytes()?).ok()?;
            }
            c.done().then_some(())
        };
        ok().is_some()
    }

    /// As `decode_frame`.
    pub fn decode(
        &mut self,
        f: &FramePos,
        payload: &[u8],
        want: Option<&[usize]>,
    ) -> Option<Vec<(usize, Row)>> {
        self.inflate(f, payload)?;
        let mut c = Cursor::new(&self.raw);
        let mut out = Vec::with_capacity(want.map_or(f.count as usize, <[usize]>::len));
        let mut next = want.map(|w| w.iter().peekable());
        for i in 0..f.count as usize {
            let keep = match &mut next {
                None => true,
                Some(it) => {
                    let mut k = false;
                    while it.next_if(|w| **w == i).is_some() {
                        k = true;
                    }
                    k
                }
            };
            if !keep {
                for _ in 0..4 {
                    c.bytes()?;
                }
                continue;
            }
            let mut col = || -> Option<String> { String::from_utf8(c.bytes()?.to_vec()).ok() };
            let row = Row {
                dataset: col()?,
                who: col()?,
                what: col()?,
                result: col()?,
            };
            out.push((i, row));
        }
        c.done().then_some(out)
    }
}

/// The frames of `rows.bin` from its start, headers only, as long as they follow each other
/// (each starting where the last ended, starting at record 0) and fit in the file. With
/// `check`, each payload is read and its checksum checked too. Also returns the length of
/// the file those frames cover (what a writer keeps).
pub fn scan(path: &Path, check: bool) -> std::io::Result<(Vec<FramePos>, u64)> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let size = file.metadata()?.len();
    let mut frames = Vec::new();
    let (mut offset, mut next_seq) = (0u64, 0u64);
    let mut head = [0u8; FRAME_HEADER_LEN];
    let mut payload = Vec::new();
    while offset + FRAME_HEADER_LEN as u64 <= size {
        if !crate::journal::read_exact_at(&file, offset, &mut head)? {
            break;
        }
        let Some(f) = FramePos::parse(&head, offset) else {
            break;
        };
        if f.first_seq != next_seq || f.payload_offset() + u64::from(f.len) > size {
            break;
        }
        if check {
            payload.resize(f.len as usize, 0);
            let whole = crate::journal::read_exact_at(&file, f.payload_offset(), &mut payload)?;
            if !whole || !f.checks(&payload) {
                break;
            }
        }
        offset = f.payload_offset() + u64::from(f.len);
        next_seq = f.end();
        frames.push(f);
    }
    Ok((frames, offset))
}

/// Reads a frame's payload from an open `rows.bin`.
pub fn read_payload(file: &File, f: &FramePos) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; f.len as usize];
    if !crate::journal::read_exact_at(file, f.payload_offset(), &mut buf)? {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(buf)
}

#[cfg(test)]
mod tests;
