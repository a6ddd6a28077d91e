//! A one-line progress report on stderr for long inputs, only when stderr is a terminal.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Progress {
    label: String,
    total: u64,
    read: Arc<AtomicU64>,
    start: Instant,
    last: Instant,
    active: bool,
}

/// Inputs smaller than this finish before a progress line would help.
const MIN_BYTES: u64 = 32 << 20;

impl Progress {
    /// A progress report for `path`; inactive for stdin, small files, or a non-terminal stderr.
    pub fn for_file(path: &str) -> Progress {
        let total = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let active = path != "-" && total >= MIN_BYTES && std::io::stderr().is_terminal();
        Progress {
            label: path.to_string(),
            total,
            read: Arc::new(AtomicU64::new(0)),
            start: Instant::now(),
            last: Instant::now(),
            active,
        }
    }

    /// The counter to hand to the reader, when the report is active.
    pub fn counter(&self) -> Option<Arc<AtomicU64>> {
        self.active.then(|| self.read.clone())
    }

    /// Redraws at most four times a second.
    pub fn tick(&mut self, events: u64) {
        if !self.active || self.last.elapsed() < Duration::from_millis(250) {
            return;
        }
        self.last = Instant::now();
        let read = self.read.load(Ordering::Relaxed);
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        eprint!(
            "\r{}: {:>3}%  {} events  {:.0} events/s  {:.1} MB/s ",
            self.label,
            read * 100 / self.total.max(1),
            events,
            events as f64 / secs,
            read as f64 / 1e6 / secs
        );
        let _ = std::io::stderr().flush();
    }

    pub fn done(&self) {
        if self.active {
            eprint!("\r\x1b[2K");
        }
    }
}
