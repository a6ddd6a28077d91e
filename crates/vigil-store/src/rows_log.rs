//! The writer's side of a partition's timeline rows (`rows.bin`, see `rows`): rows of records
//! already durable in the journal are buffered and written a frame at a time. The file is a
//! cache of the journal: it is not fsynced, a write error only stops it until the store is
//! reopened, and on open whatever does not check is cut and rebuilt from the journal.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;

use crate::rows::{self, Row, ROWS_FILE};
use crate::StoreError;

pub(crate) struct RowsLog {
    path: PathBuf,
    /// Records covered by the frames in the file.
    covered: u64,
    pending: Vec<Row>,
    /// A write failed or a record came out of order: no more frames until the store reopens
    /// (which cuts and rebuilds), so the frames never skip a record.
    stopped: bool,
}

impl RowsLog {
    /// A partition's rows file, cut after the last frame that checks and lies within the
    /// `records` the journal holds.
    pub fn recover(dir: &Path, records: u64) -> Result<RowsLog, StoreError> {
        let path = dir.join(ROWS_FILE);
        let (frames, mut keep) = rows::scan(&path, true).map_err(|e| StoreError::io(&path, e))?;
        let mut covered = 0;
        for f in &frames {
            if f.end() > records {
                keep = f.offset;
                break;
            }
            covered = f.end();
        }
        if let Ok(m) = std::fs::metadata(&path) {
            if m.len() > keep {
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(keep))
                    .map_err(|e| StoreError::io(&path, e))?;
            }
        }
        Ok(RowsLog {
            path,
            covered,
            pending: Vec::new(),
            stopped: false,
        })
    }

    /// An empty log for a new partition.
    pub fn new(dir: &Path) -> RowsLog {
        RowsLog {
            path: dir.join(ROWS_FILE),
            covered: 0,
            pending: Vec::new(),
            stopped: false,
        }
    }

    /// The record whose row comes next.
    pub fn next(&self) -> u64 {
        self.covered + self.pending.len() as u64
    }

    pub fn push(&mut self, seq: u64, row: Row) {
        if self.stopped {
            return;
        }
        if seq != self.next() {
            self.stopped = true;
            self.pending.clear();
            return;
        }
        self.pending.push(row);
    }

    /// Rows buffered, not yet in a frame.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Writes the buffered rows as one frame.
    pub fn flush(&mut self, partition: &str, level: i32, key: &SigningKey) {
        if self.pending.is_empty() || self.stopped {
            return;
        }
        let written = rows::encode_frame(partition, self.covered, &self.pending, level, key)
            .and_then(|frame| {
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?
                    .write_all(&frame)
            });
        match written {
            Ok(()) => {
                self.covered += self.pending.len() as u64;
                self.pending.clear();
            }
            Err(_) => {
                self.stopped = true;
                self.pending.clear();
            }
        }
    }
}
