//! Regular files read through a memory map: a line is lent straight from the page cache, without
//! the read system call's copy, a buffer to refill, or a line cut in two by the buffer's end.
//!
//! The price is a risk the read path does not have: a file truncated while it is mapped (by
//! `logrotate`'s `copytruncate`, say) kills the process with SIGBUS when a page past the new end
//! is touched. So only the CLI maps, only files named on its command line, and `--no-mmap` turns
//! it off (as ripgrep does); see [`MappedFile::open`].

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::{SourceError, GZIP_MAGIC, READ_BUFFER};

/// The pages of the map are asked for this many bytes at a time, half a window ahead of the
/// reader (MADV_POPULATE_READ): one system call instead of a page fault per 64 KiB. Measured on
/// the 1M-event log (796 MB, `vigil detect --threads 1`, CPU seconds, median of 5 interleaved):
/// the read path 2.56, MADV_SEQUENTIAL 2.56 (no advice: no better, in a shorter run), MAP_POPULATE
/// of the whole file 2.50, these windows 2.49. Unlike MAP_POPULATE, they do not read a file
/// larger than memory whole before its first line.
const POPULATE_WINDOW: usize = 32 << 20;

/// A file mapped into memory whole, as it was when opened.
pub struct MappedFile {
    map: memmap2::Mmap,
    file: File,
}

impl MappedFile {
    /// Maps the file at `path` when it is a regular file, not empty and not gzip; `Ok(None)`
    /// means "read it instead" ([`open_input`](crate::open_input)): standard input, a pipe or a
    /// device, a gzip file, a missing file, or a map the system refused. An error is one
    /// opening a regular file, the same the read path would give.
    pub fn open(path: &str) -> Result<Option<MappedFile>, SourceError> {
        if path == "-" {
            return Ok(None);
        }
        let open_err = |source| SourceError::Open {
            path: path.to_string(),
            source,
        };
        // Asked before opening: opening and closing a named pipe here would leave its writer
        // without a reader until the read path opens it again (EPIPE, SIGPIPE). An empty file
        // cannot be mapped (and has nothing to gain). A path that cannot even be looked at is
        // left to the read path, which names the error.
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() && meta.len() > 0 => {}
            _ => return Ok(None),
        }
        let file = File::open(path).map_err(open_err)?;
        // The path may have been replaced since: the open file is what counts.
        let meta = file.metadata().map_err(open_err)?;
        if !meta.is_file() || meta.len() == 0 {
            return Ok(None);
        }
        // SAFETY: the map is only ever read, and its bytes are lent out as `&[u8]`/`&str`,
        // which Rust takes to be immutable while borrowed. That holds while nobody rewrites
        // the mapped part of the file during the run. Logs are appended to, and appended bytes
        // lie past the map's end (they are read through the file, see `MapReader::fill_buf`),
        // so the normal life of a log keeps it. The residual risk is a file cut short or
        // rewritten in place while mapped: a truncation raises SIGBUS, which ends the process
        // (no wrong output; the CLI documents it and offers `--no-mmap`); a rewrite in place
        // could change text already checked (UTF-8, brackets) under its reader.
        let map = match unsafe { memmap2::Mmap::map(&file) } {
            Ok(map) => map,
            Err(_) => return Ok(None),
        };
        if map.starts_with(&GZIP_MAGIC) {
            return Ok(None);
        }
        Ok(Some(MappedFile { map, file }))
    }

    /// A reader over the map; `count`, when given, follows the bytes consumed (for progress).
    pub fn reader(&self, count: Option<Arc<AtomicU64>>) -> MapReader<'_> {
        MapReader {
            map: &self.map,
            populated: 0,
            pos: 0,
            file: &self.file,
            tail: None,
            count,
        }
    }
}

/// Reads a [`MappedFile`]: its whole unread rest is the buffer, and whatever was appended to
/// the file after it was mapped is read after it, as the read path would.
pub struct MapReader<'m> {
    map: &'m memmap2::Mmap,
    /// How far the map's pages have been asked for ([`POPULATE_WINDOW`]).
    populated: usize,
    pos: usize,
    file: &'m File,
    /// The file past the map's end, opened when the map is used up.
    tail: Option<BufReader<&'m File>>,
    count: Option<Arc<AtomicU64>>,
}

impl<'m> MapReader<'m> {
    /// The unread rest of the map, borrowed from the map rather than from the reader: a line
    /// cut from it outlives the reader's next call.
    pub(crate) fn rest(&self) -> &'m [u8] {
        let data: &'m [u8] = self.map;
        &data[self.pos.min(data.len())..]
    }

    /// Consumes `n` bytes of [`rest`](Self::rest).
    pub(crate) fn advance(&mut self, n: usize) {
        debug_assert!(n <= self.map.len() - self.pos);
        self.pos += n;
        if self.pos + POPULATE_WINDOW / 2 > self.populated && self.populated < self.map.len() {
            let len = POPULATE_WINDOW.min(self.map.len() - self.populated);
            // Only a hint: a kernel without MADV_POPULATE_READ (before 5.14) faults the pages
            // in one by one instead.
            let _ = self
                .map
                .advise_range(memmap2::Advice::PopulateRead, self.populated, len);
            self.populated += len;
        }
        if let Some(count) = &self.count {
            count.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

impl Read for MapReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = {
            let buf = self.fill_buf()?;
            let n = buf.len().min(out.len());
            out[..n].copy_from_slice(&buf[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for MapReader<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos < self.map.len() {
            return Ok(&self.map[self.pos..]);
        }
        if self.tail.is_none() {
            let mut file = self.file;
            file.seek(SeekFrom::Start(self.map.len() as u64))?;
            self.tail = Some(BufReader::with_capacity(READ_BUFFER, file));
        }
        match &mut self.tail {
            Some(tail) => tail.fill_buf(),
            None => Ok(&[]),
        }
    }

    fn consume(&mut self, n: usize) {
        if self.pos < self.map.len() {
            self.advance(n);
        } else if let Some(tail) = &mut self.tail {
            tail.consume(n);
            if let Some(count) = &self.count {
                count.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(bytes: &[u8]) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.log");
        std::fs::write(&path, bytes).unwrap();
        (dir, path.to_str().unwrap().to_string())
    }

    #[test]
    fn only_regular_plain_files_are_mapped() {
        let (_d, empty) = file_with(b"");
        assert!(MappedFile::open(&empty).unwrap().is_none());
        let (_d, gz) = file_with(&[0x1f, 0x8b, 8, 0]);
        assert!(MappedFile::open(&gz).unwrap().is_none());
        let (_d, plain) = file_with(b"{}\n");
        assert!(MappedFile::open(&plain).unwrap().is_some());
        assert!(MappedFile::open("-").unwrap().is_none());
        let dir = tempfile::tempdir().unwrap();
        assert!(MappedFile::open(dir.path().to_str().unwrap())
            .unwrap()
            .is_none());
        assert!(MappedFile::open("/nonexistent/audit.log")
            .unwrap()
            .is_none());
    }

    /// A named pipe is not even opened (that would block until a writer came, then leave the
    /// writer without a reader): if it were, this test would hang.
    #[cfg(unix)]
    #[test]
    fn a_named_pipe_is_left_to_the_read_path() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            return;
        }
        assert!(MappedFile::open(fifo.to_str().unwrap()).unwrap().is_none());
    }

    #[test]
    fn bytes_appended_after_mapping_are_read_after_the_map() {
        let (_d, path) = file_with(b"one\ntw");
        let mapped = MappedFile::open(&path).unwrap().unwrap();
        let count = Arc::new(AtomicU64::new(0));
        let mut reader = mapped.reader(Some(count.clone()));
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"o\nthree")
            .unwrap();
        let mut all = String::new();
        reader.read_to_string(&mut all).unwrap();
        assert_eq!(all, "one\ntwo\nthree");
        assert_eq!(count.load(Ordering::Relaxed), 13);
    }
}
