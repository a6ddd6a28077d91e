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

use sha2::{Digest, Sha256};
use xxhash_rust::xxh3::xxh3_64;

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

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A reader over a decoded payload.
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }
    pub fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint()?).ok()?;
        let end = self.pos.checked_add(n)?;
        let b = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(b)
    }
    pub fn fixed<const N: usize>(&mut self) -> Option<[u8; N]> {
        let b = self.buf.get(self.pos..self.pos + N)?;
        self.pos += N;
        b.try_into().ok()
    }
    pub fn done(&self) -> bool {
        self.pos == self.buf.len()
    }
}

/// Builds one block's payload; records must be pushed with their chain links.
#[derive(Default)]
pub struct BlockBuilder {
    sources: Vec<String>,
    body: Vec<u8>,
    pub count: usize,
    pub first_seq: u64,
    prev_received: i64,
    prev_time: i64,
}

impl BlockBuilder {
    pub fn new(first_seq: u64) -> Self {
        BlockBuilder {
            first_seq,
            ..Default::default()
        }
    }

    pub fn len_estimate(&self) -> usize {
        self.body.len()
    }

    pub fn push(&mut self, r: &StoredRecord, link: &Hash) {
        debug_assert_eq!(r.seq, self.first_seq + self.count as u64);
        let src = match self.sources.iter().position(|s| *s == r.source) {
            Some(i) => i,
            None => {
                self.sources.push(r.source.clone());
                self.sources.len() - 1
            }
        };
        put_varint(
            &mut self.body,
            zigzag(r.received.wrapping_sub(self.prev_received)),
        );
        put_varint(
            &mut self.body,
            zigzag(r.event_time.wrapping_sub(self.prev_time)),
        );
        self.prev_received = r.received;
        self.prev_time = r.event_time;
        put_varint(&mut self.body, src as u64);
        self.body.push(r.flags);
        put_varint(&mut self.body, r.raw.len() as u64);
        self.body.extend_from_slice(&r.raw);
        put_varint(&mut self.body, r.doc.len() as u64);
        self.body.extend_from_slice(&r.doc);
        self.body.extend_from_slice(&link[..LINK_LEN]);
        self.count += 1;
    }

    /// The block as written to disk: header and compressed payload (`with_dict`: the
    /// compressor holds the segment's dictionary).
    pub fn finish(
        &self,
        last_hash: &Hash,
        compressor: &mut zstd::bulk::Compressor<'static>,
        with_dict: bool,
    ) -> std::io::Result<Vec<u8>> {
        let mut payload = Vec::with_capacity(self.body.len() + 256);
        put_varint(&mut payload, self.sources.len() as u64);
        for s in &self.sources {
            put_varint(&mut payload, s.len() as u64);
            payload.extend_from_slice(s.as_bytes());
        }
        payload.extend_from_slice(&self.body);
        let compressed = compressor.compress(&payload)?;
        let mut out = Vec::with_capacity(BLOCK_HEADER_LEN + compressed.len());
        out.extend_from_slice(BLOCK_MAGIC);
        out.extend_from_slice(&(compressed.len() as u32).to_le_bytes());
        let count = self.count as u32 | if with_dict { COUNT_DICT } else { 0 };
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&self.first_seq.to_le_bytes());
        out.extend_from_slice(last_hash);
        let mut check = out.clone();
        check.extend_from_slice(&compressed);
        out.extend_from_slice(&xxh3_64(&check).to_le_bytes());
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&compressed);
        Ok(out)
    }
}

/// A block header as read from disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    pub payload_len: u32,
    pub count: u32,
    /// Compressed with the segment's dictionary.
    pub dict: bool,
    pub first_seq: u64,
    pub last_hash: Hash,
    pub check: u64,
    pub raw_len: u32,
}

impl BlockHeader {
    pub fn parse(b: &[u8; BLOCK_HEADER_LEN]) -> Option<BlockHeader> {
        if &b[0..4] != BLOCK_MAGIC {
            return None;
        }
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap_or_default());
        let h = BlockHeader {
            payload_len: u32_at(4),
            count: u32_at(8) & !COUNT_DICT,
            dict: u32_at(8) & COUNT_DICT != 0,
            first_seq: u64::from_le_bytes(b[12..20].try_into().ok()?),
            last_hash: b[20..52].try_into().ok()?,
            check: u64::from_le_bytes(b[52..60].try_into().ok()?),
            raw_len: u32_at(60),
        };
        (h.payload_len as usize <= MAX_PAYLOAD && h.raw_len as usize <= MAX_PAYLOAD && h.count > 0)
            .then_some(h)
    }

    /// Whether `payload` is what this header was written with.
    pub fn checks(&self, head: &[u8; BLOCK_HEADER_LEN], payload: &[u8]) -> bool {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        hasher.update(&head[..52]);
        hasher.update(payload);
        hasher.digest() == self.check
    }
}

/// Decompressors: plain, and with the segment's dictionary when it has one.
pub struct Decoder {
    plain: zstd::bulk::Decompressor<'static>,
    dict: Option<zstd::bulk::Decompressor<'static>>,
}

impl Decoder {
    pub fn new(dict: Option<&[u8]>) -> Result<Decoder, String> {
        let e = |e: std::io::Error| e.to_string();
        Ok(Decoder {
            plain: zstd::bulk::Decompressor::new().map_err(e)?,
            dict: dict
                .map(zstd::bulk::Decompressor::with_dictionary)
                .transpose()
                .map_err(e)?,
        })
    }

    pub fn payload(&mut self, h: &BlockHeader, compressed: &[u8]) -> Result<Vec<u8>, String> {
        self.payload_into(h, compressed, Vec::new())
    }

    /// Decompresses into `buf` (reusing its allocation).
    pub fn payload_into(
        &mut self,
        h: &BlockHeader,
        compressed: &[u8],
        mut buf: Vec<u8>,
    ) -> Result<Vec<u8>, String> {
        buf.clear();
        buf.reserve(h.raw_len as usize);
        let d = match (h.dict, self.dict.as_mut()) {
            (true, Some(d)) => d,
            (true, None) => {
                return Err("block needs the segment's dictionary, which is missing".into())
            }
            (false, _) => &mut self.plain,
        };
        let n = d
            .decompress_to_buffer(compressed, &mut buf)
            .map_err(|e| format!("cannot decompress: {e}"))?;
        if n != h.raw_len as usize {
            return Err("decompressed size differs from the block header".into());
        }
        Ok(buf)
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

/// A decompressed block whose records are decoded one at a time (random access reads one
/// record of a block: no need to build the other 127).
pub struct BlockPayload {
    first_seq: u64,
    count: usize,
    payload: Vec<u8>,
    sources: Vec<String>,
    body: usize,
}

impl BlockPayload {
    /// Gives back the payload's allocation.
    pub fn into_buffer(self) -> Vec<u8> {
        self.payload
    }

    pub fn new(h: &BlockHeader, compressed: &[u8], dec: &mut Decoder) -> Result<Self, String> {
        Self::new_in(h, compressed, dec, Vec::new())
    }

    /// As `new`, decompressing into `buf`'s allocation.
    pub fn new_in(
        h: &BlockHeader,
        compressed: &[u8],
        dec: &mut Decoder,
        buf: Vec<u8>,
    ) -> Result<Self, String> {
        let payload = dec.payload_into(h, compressed, buf)?;
        let bad = || "malformed record payload".to_string();
        let mut c = Cursor::new(&payload);
        let n = c.varint().ok_or_else(bad)? as usize;
        if n > h.count as usize + 1 {
            return Err(bad());
        }
        let mut sources = Vec::with_capacity(n);
        for _ in 0..n {
            sources.push(String::from_utf8_lossy(c.bytes().ok_or_else(bad)?).into_owned());
        }
        let body = c.pos;
        Ok(BlockPayload {
            first_seq: h.first_seq,
            count: h.count as usize,
            payload,
            sources,
            body,
        })
    }

    /// The `i`-th record of the block.
    pub fn record(&self, i: usize) -> Result<StoredRecord, String> {
        let bad = || "malformed record payload".to_string();
        if i >= self.count {
            return Err(bad());
        }
        let mut c = Cursor::new(&self.payload);
        c.pos = self.body;
        let (mut received, mut time) = (0i64, 0i64);
        for j in 0..=i {
            received = received.wrapping_add(unzigzag(c.varint().ok_or_else(bad)?));
            time = time.wrapping_add(unzigzag(c.varint().ok_or_else(bad)?));
            let src = c.varint().ok_or_else(bad)? as usize;
            let flags = c.fixed::<1>().ok_or_else(bad)?[0];
            let raw = c.bytes().ok_or_else(bad)?;
            let doc = c.bytes().ok_or_else(bad)?;
            c.fixed::<LINK_LEN>().ok_or_else(bad)?;
            if j == i {
                return Ok(StoredRecord {
                    seq: self.first_seq + i as u64,
                    received,
                    event_time: time,
                    source: self.sources.get(src).cloned().ok_or_else(bad)?,
                    flags,
                    raw: raw.to_vec(),
                    doc: doc.to_vec(),
                });
            }
        }
        Err(bad())
    }
}

/// Decodes a block's (checked) compressed payload into records.
pub fn decode_block(
    h: &BlockHeader,
    compressed: &[u8],
    dec: &mut Decoder,
) -> Result<Vec<StoredRecord>, String> {
    let payload = dec.payload(h, compressed)?;
    let mut c = Cursor::new(&payload);
    let bad = || "malformed record payload".to_string();
    let n = c.varint().ok_or_else(bad)? as usize;
    if n > h.count as usize + 1 {
        return Err(bad());
    }
    let mut sources = Vec::with_capacity(n);
    for _ in 0..n {
        let s = c.bytes().ok_or_else(bad)?;
        sources.push(String::from_utf8_lossy(s).into_owned());
    }
    let mut out = Vec::with_capacity(h.count as usize);
    let (mut received, mut time) = (0i64, 0i64);
    for i in 0..h.count as u64 {
        received = received.wrapping_add(unzigzag(c.varint().ok_or_else(bad)?));
        time = time.wrapping_add(unzigzag(c.varint().ok_or_else(bad)?));
        let src = c.varint().ok_or_else(bad)? as usize;
        let flags = c.fixed::<1>().ok_or_else(bad)?[0];
        let raw = c.bytes().ok_or_else(bad)?.to_vec();
        let doc = c.bytes().ok_or_else(bad)?.to_vec();
        let _link = c.fixed::<LINK_LEN>().ok_or_else(bad)?;
        out.push(StoredRecord {
            seq: h.first_seq + i,
            received,
            event_time: time,
            source: sources.get(src).cloned().ok_or_else(bad)?,
            flags,
            raw,
            doc,
        });
    }
    if !c.done() {
        return Err(bad());
    }
    Ok(out)
}

/// The stored links of a decoded payload, in record order (for `verify`).
pub fn block_links(
    h: &BlockHeader,
    compressed: &[u8],
    dec: &mut Decoder,
) -> Result<Vec<[u8; LINK_LEN]>, String> {
    let payload = dec.payload(h, compressed)?;
    let mut c = Cursor::new(&payload);
    let bad = || "malformed record payload".to_string();
    let n = c.varint().ok_or_else(bad)?;
    for _ in 0..n {
        c.bytes().ok_or_else(bad)?;
    }
    let mut links = Vec::new();
    for _ in 0..h.count {
        for _ in 0..3 {
            c.varint().ok_or_else(bad)?;
        }
        c.fixed::<1>().ok_or_else(bad)?;
        c.bytes().ok_or_else(bad)?;
        c.bytes().ok_or_else(bad)?;
        links.push(c.fixed::<LINK_LEN>().ok_or_else(bad)?);
    }
    Ok(links)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, raw: &str) -> StoredRecord {
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
    fn block_round_trip() {
        let mut b = BlockBuilder::new(10);
        let mut h = genesis("p");
        let recs: Vec<_> = (10..20).map(|s| rec(s, &format!("raw {s}"))).collect();
        for r in &recs {
            h = chain_hash(&h, r);
            b.push(r, &h);
        }
        let mut c = zstd::bulk::Compressor::new(3).unwrap();
        let bytes = b.finish(&h, &mut c, false).unwrap();
        let head: [u8; BLOCK_HEADER_LEN] = bytes[..BLOCK_HEADER_LEN].try_into().unwrap();
        let bh = BlockHeader::parse(&head).unwrap();
        assert_eq!(bh.count, 10);
        assert_eq!(bh.last_hash, h);
        assert!(bh.checks(&head, &bytes[BLOCK_HEADER_LEN..]));
        let back = decode_block(
            &bh,
            &bytes[BLOCK_HEADER_LEN..],
            &mut Decoder::new(None).unwrap(),
        )
        .unwrap();
        assert_eq!(back, recs);
        let lazy = BlockPayload::new(
            &bh,
            &bytes[BLOCK_HEADER_LEN..],
            &mut Decoder::new(None).unwrap(),
        )
        .unwrap();
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(&lazy.record(i).unwrap(), r);
        }
        assert!(lazy.record(recs.len()).is_err());
        let mut flipped = bytes.clone();
        let n = flipped.len();
        flipped[n - 3] ^= 1;
        assert!(!bh.checks(&head, &flipped[BLOCK_HEADER_LEN..]));
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

    #[test]
    fn varints() {
        for v in [0u64, 1, 127, 128, 300, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(Cursor::new(&out).varint(), Some(v));
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }
}
