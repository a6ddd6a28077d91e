//! Blocks, the unit of random access: building one (records delta-encoded with their chain
//! links, compressed, headed and checksummed) and reading one back (the header, the
//! decompressors, whole or one record at a time, and only the links for `verify`). Apart from
//! the segment-level parts (header, dictionary section, chain hash), which are met once per
//! segment, while every record written or read goes through a block.

use xxhash_rust::xxh3::xxh3_64;

use super::varint::{unzigzag, zigzag};
use super::{
    put_varint, Cursor, Hash, StoredRecord, BLOCK_HEADER_LEN, BLOCK_MAGIC, COUNT_DICT, LINK_LEN,
    MAX_PAYLOAD,
};

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

#[cfg(test)]
mod tests {
    use super::super::tests::rec;
    use super::super::{chain_hash, genesis};
    use super::*;

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
}
