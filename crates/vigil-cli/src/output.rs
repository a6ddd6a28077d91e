//! Output helpers shared by commands: aligned tables for people, JSON lines for machines, and
//! the audit-input loop that reports rejected records without stopping.

use std::io::{self, BufWriter, Write};

use anyhow::{Context, Result};
use serde::Serialize;
use vigil_sources::{open_input, AuditRecord, AuditRecords};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Jsonl,
    Table,
}

/// Buffered stdout. A closed pipe (`vigil ... | head`) ends output quietly.
pub fn stdout() -> BufWriter<io::StdoutLock<'static>> {
    BufWriter::with_capacity(1 << 16, io::stdout().lock())
}

pub fn write_json_line(out: &mut impl Write, value: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

/// A plain, aligned text table.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Table {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }
    pub fn write(&self, out: &mut impl Write) -> io::Result<()> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let mut line = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let cells = row.iter().map(|c| (c.as_str(), width(c)));
            write_aligned(out, &mut line, &widths, cells)?;
        }
        Ok(())
    }
}

/// One line of a table: each cell (given with its display width) but the last padded to its
/// column's width and two spaces; the line's trailing blanks dropped. `line` is a buffer.
fn write_aligned<'a>(
    out: &mut dyn Write,
    line: &mut String,
    widths: &[usize],
    cells: impl ExactSizeIterator<Item = (&'a str, usize)>,
) -> io::Result<()> {
    line.clear();
    let n = cells.len();
    for (i, (cell, w)) in cells.enumerate() {
        line.push_str(cell);
        if i + 1 < n {
            let pad = widths.get(i).map_or(0, |c| c.saturating_sub(w));
            line.extend(std::iter::repeat_n(' ', pad + 2));
        }
    }
    out.write_all(line.trim_end().as_bytes())?;
    out.write_all(b"\n")
}

/// The display width of a cell (characters; ASCII by far the most common).
fn width(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

/// A table row kept as one string and where its cells end: a table of hundreds of thousands
/// of rows, made on several threads, costs one allocation a row.
pub struct PackedRow<const N: usize> {
    text: String,
    ends: [usize; N],
    widths: [usize; N],
}

impl<const N: usize> PackedRow<N> {
    pub fn new(cells: [&str; N]) -> Self {
        let mut text = String::with_capacity(cells.iter().map(|c| c.len()).sum());
        let (mut ends, mut widths) = ([0; N], [0; N]);
        for (i, c) in cells.iter().enumerate() {
            text.push_str(c);
            ends[i] = text.len();
            widths[i] = width(c);
        }
        PackedRow { text, ends, widths }
    }

    fn cell(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }
}

/// Writes `rows` under `header` exactly as a `Table` of the same cells would.
pub fn write_packed<const N: usize>(
    header: [&str; N],
    rows: &[PackedRow<N>],
    out: &mut impl Write,
) -> io::Result<()> {
    let mut widths: [usize; N] = header.map(width);
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r.widths) {
            *w = (*w).max(c);
        }
    }
    let mut line = String::new();
    let head = header.iter().map(|h| (*h, width(h)));
    write_aligned(out, &mut line, &widths, head)?;
    for r in rows {
        let cells = (0..N).map(|i| (r.cell(i), r.widths[i]));
        write_aligned(out, &mut line, &widths, cells)?;
    }
    Ok(())
}

/// Counts of what an input loop saw.
#[derive(Default, Debug)]
pub struct InputStats {
    pub events: u64,
    pub rejected: u64,
}

/// Feeds every audit event of `inputs` (files or `-`; none means stdin) to `each`, in order.
/// Rejected records are reported on stderr with file and line and counted; an input that
/// cannot be opened or read is an error naming it.
pub fn for_each_audit_event(
    inputs: &[String],
    mut each: impl FnMut(AuditRecord) -> Result<()>,
) -> Result<InputStats> {
    let stdin = ["-".to_string()];
    let inputs = if inputs.is_empty() {
        &stdin[..]
    } else {
        inputs
    };
    let mut stats = InputStats::default();
    for path in inputs {
        let reader = open_input(path)?;
        for item in AuditRecords::new(path, reader) {
            match item.with_context(|| format!("reading {path}"))? {
                Ok(record) => {
                    stats.events += 1;
                    each(record)?;
                }
                Err(rejected) => {
                    stats.rejected += 1;
                    if stats.rejected <= 20 {
                        eprintln!("vigil: rejected: {rejected}");
                    }
                }
            }
        }
    }
    if stats.rejected > 20 {
        eprintln!(
            "vigil: {} records rejected in all (first 20 shown)",
            stats.rejected
        );
    }
    Ok(stats)
}

/// Ignores a broken pipe: the reader went away, which is not our error.
pub fn finish(result: io::Result<()>) -> Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing output"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_rows_print_as_a_table_does() {
        let rows = [
            [
                "2026-11-20T09:00:00Z",
                "event",
                "k8s.audit",
                "bob",
                "get pods ns/p1",
                "200",
            ],
            ["t", "ALERT", "", "ünïcode", "[high] Exec", ""],
            ["t2", "event", "linux.auth", "", "ssh_login x  ", " "],
        ];
        let header = ["TIME", "KIND", "DATASET", "WHO", "WHAT", "RESULT"];
        let mut t = Table::new(header);
        for r in rows {
            t.row(r);
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        t.write(&mut a).unwrap();
        let packed: Vec<PackedRow<6>> = rows.iter().map(|r| PackedRow::new(*r)).collect();
        write_packed(header, &packed, &mut b).unwrap();
        assert_eq!(String::from_utf8(b).unwrap(), String::from_utf8(a).unwrap());
    }
}
