//! Reading logs of any supported source for detection: format detection per file, Kubernetes
//! audit as raw JSON (parsed lazily by the engine), line formats through `vigil-normalize`.

use std::io::BufRead;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::Value;
use vigil_normalize::{detect_format, parser_for, Dataset, Options, YearHint};
use vigil_sources::{open_input_counted, read_line_lossy, RawAuditRecords};

use crate::progress::Progress;

use crate::output::InputStats;

#[derive(Args, Clone, Default)]
pub struct InputOptions {
    /// Input format; detected per file when absent: k8s.audit, linux.auth, auditd, zeek.conn,
    /// aws.vpcflow.
    #[arg(long, value_name = "TYPE")]
    pub source: Option<String>,
    /// Year of syslog lines that carry none (default: inferred from the file's modification time).
    #[arg(long)]
    pub year: Option<i32>,
}

/// One event on its way to detection.
pub struct Item<'a> {
    pub dataset: &'a str,
    pub file: &'a str,
    pub line: usize,
    /// The event's JSON text, for Kubernetes audit (the engine prefilters on it).
    pub raw: Option<&'a str>,
    /// The parsed document, for sources parsed by `vigil-normalize`.
    pub doc: Option<&'a Value>,
}

/// Reports rejected records on stderr (the first few in full) and counts them.
fn reject(stats: &mut InputStats, message: impl std::fmt::Display) {
    stats.rejected += 1;
    if stats.rejected <= 20 {
        eprintln!("vigil: rejected: {message}");
    } else if stats.rejected == 21 {
        eprintln!("vigil: more records rejected; the total is printed at the end");
    }
}

fn dataset_for(path: &str, reader: &mut dyn BufRead, opts: &InputOptions) -> Result<Dataset> {
    if let Some(name) = &opts.source {
        return name
            .parse::<Dataset>()
            .map_err(|e| anyhow::anyhow!("--source {name}: {e}"));
    }
    let head = reader
        .fill_buf()
        .with_context(|| format!("reading {path}"))?;
    let head = String::from_utf8_lossy(&head[..head.len().min(64 << 10)]);
    let lines: Vec<&str> = head.lines().take(40).collect();
    Ok(detect_format(&lines).unwrap_or(Dataset::K8sAudit))
}

fn year_hint(path: &str, opts: &InputOptions) -> YearHint {
    if let Some(y) = opts.year {
        return YearHint::Year(y);
    }
    let mtime = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map(DateTime::<Utc>::from)
        .unwrap_or_else(|_| Utc::now());
    YearHint::Reference(mtime)
}

/// Feeds every event of `inputs` to `each`, file by file, in order.
pub fn read_inputs(
    inputs: &[String],
    opts: &InputOptions,
    mut each: impl FnMut(Item) -> Result<()>,
) -> Result<InputStats> {
    let stdin = ["-".to_string()];
    let inputs = if inputs.is_empty() {
        &stdin[..]
    } else {
        inputs
    };
    let mut stats = InputStats::default();
    for path in inputs {
        let mut progress = Progress::for_file(path);
        let mut reader = open_input_counted(path, progress.counter())?;
        let dataset = dataset_for(path, &mut reader, opts)?;
        if dataset == Dataset::K8sAudit {
            for record in RawAuditRecords::new(path, reader) {
                match record.with_context(|| format!("reading {path}"))? {
                    Ok(r) => {
                        stats.events += 1;
                        progress.tick(stats.events);
                        each(Item {
                            dataset: "k8s.audit",
                            file: path,
                            line: r.origin.line,
                            raw: Some(&r.text),
                            doc: None,
                        })?;
                    }
                    Err(rejected) => reject(&mut stats, rejected),
                }
            }
            progress.done();
            continue;
        }
        let mut parser = parser_for(&dataset, &Options::new(year_hint(path, opts)))
            .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        let (mut line, mut scratch, mut out) = (String::new(), Vec::new(), Vec::new());
        let mut line_no = 0;
        let mut deliver = |out: &mut Vec<_>, stats: &mut InputStats| -> Result<()> {
            for parsed in out.drain(..) {
                match parsed {
                    Ok(p) => {
                        let p: vigil_normalize::Parsed = p;
                        stats.events += 1;
                        let ds = p
                            .doc
                            .pointer("/event/dataset")
                            .and_then(Value::as_str)
                            .unwrap_or(dataset.as_str())
                            .to_string();
                        each(Item {
                            dataset: &ds,
                            file: path,
                            line: p.line,
                            raw: None,
                            doc: Some(&p.doc),
                        })?;
                    }
                    Err(e) => reject(stats, format_args!("{path}: {e}")),
                }
            }
            Ok(())
        };
        loop {
            line.clear();
            let n = read_line_lossy(&mut reader, &mut scratch, &mut line)
                .with_context(|| format!("reading {path} near line {}", line_no + 1))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            progress.tick(stats.events);
            parser.push_line(line.trim_end_matches(['\n', '\r']), line_no, &mut out);
            deliver(&mut out, &mut stats)?;
        }
        parser.flush(&mut out);
        deliver(&mut out, &mut stats)?;
        progress.done();
    }
    if stats.rejected > 20 {
        eprintln!("vigil: {} records rejected in all", stats.rejected);
    }
    Ok(stats)
}
