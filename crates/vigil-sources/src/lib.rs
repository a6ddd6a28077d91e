//! Where events come from. This crate does the reading; parsing stays in the pure crates.
//!
//! - [`open_input`]: a file (plain or gzip, told apart by its magic bytes, not its name) or `-`.
//! - [`MappedFile`]: a plain regular file mapped into memory, for readers that lend its lines
//!   ([`RawAuditRecords::next_mapped`]) instead of copying them.
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

use vigil_model::decode::{decode_document, Chunk, DecodeError, LineAssembler};
use vigil_model::Event;

/// The largest multi-line JSON document accepted (an EventList saved whole), in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 256 << 20;

/// Read buffer size: 64 KiB is a read system call per ~80 audit lines, and the buffer stays in
/// cache while lines are copied out of it (256 KiB measured ~2% slower on `vigil detect`).
const READ_BUFFER: usize = 64 << 10;

/// The first bytes of a gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

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
    if magic.starts_with(&GZIP_MAGIC) {
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
            let read_error = |source| SourceError::Read {
                path: self.file.to_string(),
                line: self.line + 1,
                source,
            };
            if self.assembler.is_pending()
                && fill_buf(&mut self.reader).map_err(read_error)?.first() == Some(&b'{')
            {
                // A torn document that the next line's first byte ends is returned before that
                // line is read whole, so that it is returned even when reading the rest fails:
                // the fast path (raw.rs) hands a line on as soon as it sees that byte.
                if let Some(chunk) = self.assembler.end_before_object() {
                    self.ready.push_back(Ok(chunk));
                    break;
                }
            }
            let line = read_line(&mut self.reader, &mut self.scratch).map_err(read_error)?;
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

mod lines;
mod mapped;
mod raw;

use lines::fill_buf;
pub use lines::read_line;
pub use mapped::{MapReader, MappedFile};
pub use raw::{RawAuditRecords, RawLine, RawRecord, RawRef};

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

    /// A line cut short that still ends in `}` is rejected alone, under its own number; the
    /// pretty-printed event after it is read.
    #[test]
    fn a_broken_line_ending_in_a_brace_is_rejected_alone() {
        let broken = r#"{"kind":"Event","auditID":"b","user":{"username":"a"}"#;
        let pretty = EVENT.replace(",\"", ",\n  \"");
        let input = format!("{broken}\n{pretty}\n");
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        for r in AuditRecords::new("f", input.as_bytes()) {
            match r.unwrap() {
                Ok(rec) => good.push(rec.origin.line),
                Err(rej) => bad.push(rej),
            }
        }
        assert_eq!(good, [2]);
        assert_eq!(bad.len(), 1);
        assert!(
            matches!(bad[0].error, DecodeError::Json { line: 1, .. }),
            "{}",
            bad[0]
        );
        assert_eq!(bad[0].text, broken);
    }

    #[test]
    fn missing_file_is_named() {
        let err = open_input("/nonexistent/audit.log").err().unwrap();
        assert!(err.to_string().starts_with("/nonexistent/audit.log"));
    }
}
