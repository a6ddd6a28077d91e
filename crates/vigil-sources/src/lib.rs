//! Where events come from. This crate does the reading; parsing stays in the pure crates.
//!
//! - [`open_input`]: a file (plain or gzip, told apart by its magic bytes, not its name) or `-`.
//! - [`AuditRecords`]: splits a Kubernetes audit input into JSON documents (JSON lines or
//!   EventList documents) and decodes them, yielding every good event and every bad record with
//!   its file and line, so one bad record never hides its neighbours.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use flate2::read::MultiGzDecoder;
use std::collections::VecDeque;

use vigil_model::decode::{
    decode_document, split_event_texts, split_single_event, Chunk, DecodeError, LineAssembler,
};
use vigil_model::Event;

/// The largest multi-line JSON document accepted (an EventList saved whole), in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 256 << 20;

/// Read buffer size: at 64 KiB a large log costs a read system call per 80 lines; 256 KiB
/// makes that a fourth, and still sits in L2 with the line being copied out of it.
const READ_BUFFER: usize = 256 << 10;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: cannot open: {source}")]
    Open { path: String, source: io::Error },
    #[error("{path}: read failed near line {line}: {source}")]
    Read {
        path: String,
        line: usize,
        source: io::Error,
    },
}

/// Opens `path` for reading (`-` is standard input), decompressing gzip transparently.
pub fn open_input(path: &str) -> Result<Box<dyn BufRead + Send>, SourceError> {
    open_input_counted(path, None)
}

/// Counts the bytes read from the underlying file (before decompression), for progress.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Like [`open_input`]; `count`, when given, follows the bytes read from the file itself.
pub fn open_input_counted(
    path: &str,
    count: Option<Arc<AtomicU64>>,
) -> Result<Box<dyn BufRead + Send>, SourceError> {
    let open_err = |source| SourceError::Open {
        path: path.to_string(),
        source,
    };
    let raw: Box<dyn Read + Send> = if path == "-" {
        Box::new(io::stdin())
    } else {
        Box::new(File::open(Path::new(path)).map_err(open_err)?)
    };
    let raw: Box<dyn Read + Send> = match count {
        Some(count) => Box::new(Counting { inner: raw, count }),
        None => raw,
    };
    let mut reader = BufReader::with_capacity(READ_BUFFER, raw);
    let magic = reader.fill_buf().map_err(open_err)?;
    if magic.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(BufReader::with_capacity(
            READ_BUFFER,
            MultiGzDecoder::new(reader),
        )))
    } else {
        Ok(Box::new(reader))
    }
}

/// Where a record came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    pub file: Arc<str>,
    pub line: usize,
}

/// One audit event with its origin and the JSON text it was decoded from.
#[derive(Debug)]
pub struct AuditRecord {
    pub origin: Origin,
    pub event: Event,
    /// Size of the record in the input, in bytes (for an EventList item: its share).
    pub raw_len: usize,
}

/// A record that was rejected, kept for inspection.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {error}")]
pub struct Rejected {
    pub file: Arc<str>,
    pub error: DecodeError,
    /// The offending text, cut to a readable length.
    pub text: String,
}

/// Splits an input into JSON documents (see [`LineAssembler`]), line numbers kept.
pub struct Chunks<R> {
    file: Arc<str>,
    reader: R,
    assembler: LineAssembler,
    line: usize,
    ready: VecDeque<Result<Chunk, Rejected>>,
    done: bool,
    /// Where a line that straddles the end of the reader's buffer is put together; kept so
    /// that it does not grow again from empty.
    scratch: Vec<u8>,
}

impl<R: BufRead> Chunks<R> {
    pub fn new(file: &str, reader: R) -> Self {
        Chunks {
            file: Arc::from(file),
            reader,
            assembler: LineAssembler::new(MAX_DOCUMENT_BYTES),
            line: 0,
            ready: VecDeque::new(),
            done: false,
            scratch: Vec::new(),
        }
    }

    pub fn file(&self) -> &Arc<str> {
        &self.file
    }

    /// Makes a [`Rejected`] for this input.
    pub fn rejected(&self, error: DecodeError, text: &str) -> Rejected {
        Rejected {
            file: self.file.clone(),
            error,
            text: excerpt(text),
        }
    }

    /// Reads lines until a chunk is ready or the input ends.
    fn fill(&mut self) -> Result<(), SourceError> {
        while self.ready.is_empty() && !self.done {
            let line = read_line(&mut self.reader, &mut self.scratch).map_err(|source| {
                SourceError::Read {
                    path: self.file.to_string(),
                    line: self.line + 1,
                    source,
                }
            })?;
            let Some(line) = line else {
                self.done = true;
                if let Some(chunk) = self.assembler.finish() {
                    self.ready.push_back(Ok(chunk));
                }
                break;
            };
            self.line += 1;
            let (ready, file) = (&mut self.ready, &self.file);
            // The line's own String goes on: a line that is a whole document becomes the
            // chunk's text as it is.
            self.assembler.push_owned(self.line, line, &mut |c| {
                ready.push_back(c.map_err(|error| Rejected {
                    file: file.clone(),
                    error,
                    text: String::new(),
                }))
            });
        }
        Ok(())
    }
}

impl<R: BufRead> Iterator for Chunks<R> {
    type Item = Result<Result<Chunk, Rejected>, SourceError>;
    fn next(&mut self) -> Option<Self::Item> {
        if let Err(e) = self.fill() {
            self.done = true;
            return Some(Err(e));
        }
        self.ready.pop_front().map(Ok)
    }
}

fn excerpt(text: &str) -> String {
    let mut text = text.trim().to_string();
    if text.len() > 200 {
        let cut = (0..=200)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// Reads a Kubernetes audit input event by event, decoded.
pub struct AuditRecords<R> {
    chunks: Chunks<R>,
    ready: VecDeque<Result<AuditRecord, Rejected>>,
}

impl<R: BufRead> AuditRecords<R> {
    pub fn new(file: &str, reader: R) -> Self {
        AuditRecords {
            chunks: Chunks::new(file, reader),
            ready: VecDeque::new(),
        }
    }
}

impl<R: BufRead> Iterator for AuditRecords<R> {
    type Item = Result<Result<AuditRecord, Rejected>, SourceError>;
    fn next(&mut self) -> Option<Self::Item> {
        while self.ready.is_empty() {
            let chunk = match self.chunks.next()? {
                Err(e) => return Some(Err(e)),
                Ok(Err(rejected)) => return Some(Ok(Err(rejected))),
                Ok(Ok(chunk)) => chunk,
            };
            let results = decode_document(&chunk.text, chunk.line);
            let share = chunk.text.len() / results.len().max(1);
            for r in results {
                self.ready.push_back(match r {
                    Ok(d) => Ok(AuditRecord {
                        origin: Origin {
                            file: self.chunks.file().clone(),
                            line: d.line,
                        },
                        event: d.event,
                        raw_len: share,
                    }),
                    Err(error) => Err(self.chunks.rejected(error, &chunk.text)),
                });
            }
        }
        self.ready.pop_front().map(Ok)
    }
}

/// One audit event's JSON text, undecoded, with its origin (for detection, which parses lazily).
#[derive(Debug)]
pub struct RawRecord {
    pub origin: Origin,
    pub text: String,
}

/// Reads a Kubernetes audit input event by event, as JSON text (EventLists split into items).
pub struct RawAuditRecords<R> {
    chunks: Chunks<R>,
    ready: VecDeque<Result<RawRecord, Rejected>>,
}

impl<R: BufRead> RawAuditRecords<R> {
    pub fn new(file: &str, reader: R) -> Self {
        RawAuditRecords {
            chunks: Chunks::new(file, reader),
            ready: VecDeque::new(),
        }
    }
}

impl<R: BufRead> Iterator for RawAuditRecords<R> {
    type Item = Result<Result<RawRecord, Rejected>, SourceError>;
    fn next(&mut self) -> Option<Self::Item> {
        if let Some(r) = self.ready.pop_front() {
            return Some(Ok(r));
        }
        loop {
            let chunk = match self.chunks.next()? {
                Err(e) => return Some(Err(e)),
                Ok(Err(rejected)) => return Some(Ok(Err(rejected))),
                Ok(Ok(chunk)) => chunk,
            };
            let origin = Origin {
                file: self.chunks.file().clone(),
                line: chunk.line,
            };
            // The common case, one event per line: hand over the line without copying it (and
            // without the list split_event_texts would allocate to say so).
            let single = split_single_event(&chunk.text, chunk.line);
            if single.is_some_and(|t| t.is_ok_and(|t| t.len() == chunk.text.len())) {
                return Some(Ok(Ok(RawRecord {
                    origin,
                    text: chunk.text,
                })));
            }
            let mut texts = split_event_texts(&chunk.text, chunk.line);
            for t in texts.drain(..) {
                self.ready.push_back(match t {
                    Ok(text) => Ok(RawRecord {
                        origin: origin.clone(),
                        text: text.to_string(),
                    }),
                    Err(error) => Err(self.chunks.rejected(error, &chunk.text)),
                });
            }
            if let Some(r) = self.ready.pop_front() {
                return Some(Ok(r));
            }
        }
    }
}

/// Reads one line, without its end (`\n` and any `\r` before it), as a `String` of its own:
/// `None` at the end of the input. Invalid UTF-8 is replaced rather than failing the whole file
/// (as [`read_line_lossy`] does). A line inside the reader's buffer (nearly all of them) is
/// copied once, straight from that buffer into a `String` of its exact size; one that straddles
/// the buffer's end is put together in `scratch` first.
pub fn read_line(reader: &mut impl BufRead, scratch: &mut Vec<u8>) -> io::Result<Option<String>> {
    let buf = loop {
        match reader.fill_buf() {
            Ok(buf) => break buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    };
    if let Some(end) = memchr::memchr(b'\n', buf) {
        let line = line_text(&buf[..end]);
        reader.consume(end + 1);
        return Ok(Some(line));
    }
    scratch.clear();
    if reader.read_until(b'\n', scratch)? == 0 {
        return Ok(None);
    }
    Ok(Some(line_text(scratch)))
}

/// The text of a line's bytes, its end (`\n`, then any `\r`) cut off. Cutting the bytes before
/// the UTF-8 check gives the same text as cutting after it: those ASCII bytes are never part
/// of a replaced sequence.
fn line_text(bytes: &[u8]) -> String {
    let end = bytes
        .iter()
        .rposition(|&b| b != b'\n' && b != b'\r')
        .map_or(0, |i| i + 1);
    let bytes = &bytes[..end];
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Reads one line; invalid UTF-8 is replaced rather than failing the whole file.
/// `scratch` is reused across calls to avoid an allocation per line.
pub fn read_line_lossy(
    reader: &mut impl BufRead,
    scratch: &mut Vec<u8>,
    out: &mut String,
) -> io::Result<usize> {
    scratch.clear();
    let n = reader.read_until(b'\n', scratch)?;
    match std::str::from_utf8(scratch) {
        Ok(s) => out.push_str(s),
        Err(_) => out.push_str(&String::from_utf8_lossy(scratch)),
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const EVENT: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a1","stage":"ResponseComplete","requestURI":"/api/v1/pods","verb":"list","user":{"username":"alice"},"stageTimestamp":"2024-01-01T00:00:00.100000Z"}"#;

    fn collect(path: &str) -> (Vec<AuditRecord>, Vec<Rejected>) {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for r in AuditRecords::new(path, open_input(path).unwrap()) {
            match r.unwrap() {
                Ok(rec) => good.push(rec),
                Err(rej) => bad.push(rej),
            }
        }
        (good, bad)
    }

    #[test]
    fn gzip_is_detected_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log.1");
        let mut gz = flate2::write::GzEncoder::new(
            File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        writeln!(gz, "{EVENT}\nnot json\n{EVENT}").unwrap();
        gz.finish().unwrap();
        let (good, bad) = collect(path.to_str().unwrap());
        assert_eq!(good.len(), 2);
        assert_eq!(good[1].origin.line, 3);
        assert_eq!(bad.len(), 1);
        assert!(bad[0].to_string().contains("line 2"), "{}", bad[0]);
        assert!(bad[0].to_string().contains("audit.log.1"), "{}", bad[0]);
    }

    /// What a line was before `read_line`: read_line_lossy, then its end trimmed.
    fn lines_the_old_way(input: &[u8]) -> Vec<String> {
        let (mut reader, mut scratch, mut out) = (input, Vec::new(), Vec::new());
        loop {
            let mut line = String::new();
            if read_line_lossy(&mut reader, &mut scratch, &mut line).unwrap() == 0 {
                return out;
            }
            out.push(line.trim_end_matches(['\n', '\r']).to_string());
        }
    }

    #[test]
    fn lines_read_at_any_buffer_size_are_the_same() {
        let long = "x".repeat(300);
        let input = [
            long.as_bytes(),
            b"\nshort\r\n\xffbad \xe2\x82\r\nok \xc3\xa9\n\n\r\n\r\r\n",
            b"\xe2\x82\xac split\n",
            long.as_bytes(),
            b"\r\nlast \xf0\x9f",
        ]
        .concat();
        let want = lines_the_old_way(&input);
        assert_eq!(want.len(), 10, "{want:?}");
        assert_eq!(want[2], "\u{fffd}bad \u{fffd}");
        assert_eq!(want[9], "last \u{fffd}");
        // Capacities from 1 byte up cut every line at every place, so both paths (a line inside
        // the buffer, one put together across refills) meet every kind of line.
        for cap in (1..64).chain([200, 301, 1 << 16]) {
            let mut reader = BufReader::with_capacity(cap, &input[..]);
            let mut scratch = Vec::new();
            let mut got = Vec::new();
            while let Some(line) = read_line(&mut reader, &mut scratch).unwrap() {
                got.push(line);
            }
            assert_eq!(got, want, "capacity {cap}");
        }
    }

    fn raw_records(text: &str, cap: usize) -> Vec<Result<(usize, String), String>> {
        let reader = BufReader::with_capacity(cap, text.as_bytes());
        RawAuditRecords::new("f", reader)
            .map(|r| match r.unwrap() {
                Ok(rec) => Ok((rec.origin.line, rec.text)),
                Err(rej) => Err(format!("{rej} [{}]", rej.text)),
            })
            .collect()
    }

    #[test]
    fn raw_records_keep_lines_and_texts() {
        let list = format!("{{\"kind\":\"EventList\",\"items\":[{EVENT},{{\"x\":1}}]}}");
        let text = format!(
            "{EVENT}{pad}\r\n{EVENT}\n  {EVENT}  \n{{\n  \"items\": [\n  {EVENT}\n  ]\n}}\n\
             {list}\nnot json\n{{\"torn\": \n{EVENT}",
            pad = " ".repeat(500),
        );
        let want: Vec<Result<(usize, String), String>> = vec![
            Ok((1, EVENT.into())),
            Ok((2, EVENT.into())),
            Ok((3, EVENT.into())),
            Ok((4, EVENT.into())),
            Ok((9, EVENT.into())),
            Err(format!(
                "f: line 9 (EventList item 1): not an audit event: field auditID is missing [{}]",
                excerpt(&list)
            )),
            Err("f: line 10: not an audit event: expected a JSON object [not json]".into()),
            Err("f: line 11: not an audit event: expected a JSON object [{\"torn\":]".into()),
            Ok((12, EVENT.into())),
        ];
        for cap in [7, 64, 300, 1 << 16] {
            assert_eq!(raw_records(&text, cap), want, "capacity {cap}");
        }
    }

    #[test]
    fn missing_file_is_named() {
        let err = open_input("/nonexistent/audit.log").err().unwrap();
        assert!(err.to_string().starts_with("/nonexistent/audit.log"));
    }
}
