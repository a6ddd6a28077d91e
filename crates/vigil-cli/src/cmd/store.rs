//! The event store commands: `vigil ingest`, `search`, `timeline`, `report`, `verify`, `stats`.
//! The store itself is `vigil-store`; this is flags, rendering and exit codes.

pub mod ingest;
pub mod report;
pub mod search;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{json, Value};
use vigil_store::reader::micros_rfc3339;
use vigil_store::{Reader, StoredEvent};

use crate::output::{finish, stdout, write_json_line, write_packed, Format, PackedRow, Table};

#[derive(Args, Clone)]
pub struct DataDirArg {
    /// The data directory (default: $VIGIL_DATA_DIR, else ./vigil-data).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl DataDirArg {
    pub fn path(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(vigil_store::default_data_dir)
    }

    pub fn reader(&self) -> Result<Reader> {
        Ok(Reader::open(&self.path())?)
    }
}

/// `--since` / `--until` into microseconds.
pub fn time_arg(flag: &str, value: &Option<String>) -> Result<Option<i64>> {
    value
        .as_deref()
        .map(|v| {
            vigil_store::timeparse::parse_time(v, chrono::Utc::now().timestamp_micros())
                .map_err(|e| anyhow::anyhow!("{flag} {e}"))
        })
        .transpose()
}

pub use vigil_store::rows::{field, result, text_of, what, who};

/// A table row for an event or an alert: TIME, KIND, DATASET, WHO, WHAT, RESULT.
pub fn event_row(ev: &StoredEvent) -> Vec<String> {
    timeline_row(vigil_store::TimelineRow::of(ev))
}

/// The cells of a timeline entry under `EVENT_HEADER`, handed to `f`.
fn timeline_cells<R>(t: &vigil_store::TimelineRow, f: impl FnOnce([&str; 6]) -> R) -> R {
    let r = &t.row;
    f([
        &micros_rfc3339(t.ts),
        if t.alert { "ALERT" } else { "event" },
        &r.dataset,
        &r.who,
        &r.what,
        &r.result,
    ])
}

/// `timeline_row` packed (for long timelines).
pub fn timeline_packed(t: vigil_store::TimelineRow) -> PackedRow<6> {
    timeline_cells(&t, PackedRow::new)
}

/// `event_row` of a timeline entry (as `Reader::search_rows` gives them).
pub fn timeline_row(t: vigil_store::TimelineRow) -> Vec<String> {
    timeline_cells(&t, |cells| cells.map(str::to_string).to_vec())
}

pub const EVENT_HEADER: [&str; 6] = ["TIME", "KIND", "DATASET", "WHO", "WHAT", "RESULT"];

/// The JSON line of a stored event: the original (byte for byte as stored: JSON events verbatim,
/// text lines as strings), the normalized fields, and where it is.
#[derive(serde::Serialize)]
pub struct EventLine<'a> {
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    pub kind: &'static str,
    pub dataset: &'a str,
    pub event: Original<'a>,
    pub fields: &'a Value,
    pub store: Value,
}

#[derive(serde::Serialize)]
#[serde(untagged)]
pub enum Original<'a> {
    Json(&'a serde_json::value::RawValue),
    Text(String),
}

pub fn event_json(ev: &StoredEvent) -> EventLine<'_> {
    let mut store = json!({
        "partition": ev.partition,
        "record": ev.seq,
        "source": ev.record.source,
        "received": micros_rfc3339(ev.record.received),
    });
    if ev.redacted() {
        store["redacted"] = Value::Bool(true);
    }
    let event = std::str::from_utf8(&ev.record.raw)
        .ok()
        .and_then(|s| serde_json::from_str::<&serde_json::value::RawValue>(s.trim()).ok())
        .map_or_else(
            || Original::Text(String::from_utf8_lossy(&ev.record.raw).into_owned()),
            Original::Json,
        );
    EventLine {
        timestamp: ev.time_rfc3339(),
        kind: if ev.is_alert() { "alert" } else { "event" },
        dataset: &ev.dataset,
        event,
        fields: &ev.doc,
        store,
    }
}

/// `event_json` as the bytes of its line (newline included), for building lines in parallel.
pub fn event_json_line(ev: &StoredEvent) -> Vec<u8> {
    let mut line = Vec::with_capacity(ev.record.raw.len() * 3);
    // Writing into memory: only a serializer error could fail, and there is none for a `Value`.
    let _ = write_json_line(&mut line, &event_json(ev));
    line
}

/// Prints what `event_json_line` or `timeline_packed` made of some events, as `print_events`
/// would.
pub fn print_rendered(rendered: Rendered) -> Result<()> {
    let mut out = stdout();
    match rendered {
        Rendered::Lines(lines) => {
            for l in lines {
                finish(out.write_all(&l))?;
            }
        }
        Rendered::Rows(rows) => {
            finish(write_packed(EVENT_HEADER, &rows, &mut out))?;
        }
    }
    finish(out.flush())
}

/// Events rendered for output: JSON lines, or table rows.
pub enum Rendered {
    Lines(Vec<Vec<u8>>),
    Rows(Vec<PackedRow<6>>),
}

pub fn print_events(events: &[StoredEvent], format: Format) -> Result<()> {
    let mut out = stdout();
    match format {
        Format::Jsonl => {
            for ev in events {
                finish(write_json_line(&mut out, &event_json(ev)))?;
            }
        }
        Format::Table => {
            let mut t = Table::new(EVENT_HEADER);
            for ev in events {
                t.row(event_row(ev));
            }
            finish(t.write(&mut out))?;
        }
    }
    finish(out.flush())
}

// ---- verify ----

#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    /// Verify against this public key (hex, or a file holding it) instead of the one in the
    /// data directory: catches a replaced key too.
    #[arg(long, value_name = "HEX|FILE")]
    pub public_key: Option<String>,
    /// Print the public key (hex) that verifies this store's checkpoints, and exit.
    #[arg(long)]
    pub export_public_key: bool,
}

pub fn verify(args: VerifyArgs) -> Result<ExitCode> {
    let dir = args.dir.path();
    if args.export_public_key {
        let key = vigil_store::chain::load_public_key(&dir)?;
        println!("{}", vigil_store::chain::hex(key.as_bytes()));
        return Ok(ExitCode::SUCCESS);
    }
    if !dir.join("store.json").exists() {
        anyhow::bail!("{}: not a Vigil data directory", dir.display());
    }
    let key =
        match &args.public_key {
            Some(k) => {
                let text = if std::path::Path::new(k).exists() {
                    std::fs::read_to_string(k).with_context(|| format!("reading {k}"))?
                } else {
                    k.clone()
                };
                Some(vigil_store::chain::parse_public_key(&text).ok_or_else(|| {
                    anyhow::anyhow!("--public-key: not an Ed25519 public key in hex")
                })?)
            }
            None => None,
        };
    let report = vigil_store::verify::verify(&dir, key)?;
    for p in &report.problems {
        println!("FAIL {p}");
    }
    if report.problems.is_empty() {
        println!(
            "intact: {} partitions, {} segments, {} records, {} signed checkpoints, {} logged deletions, {} signed frames of timeline rows",
            report.partitions,
            report.segments,
            report.records,
            report.checkpoints,
            report.deletions,
            report.row_frames
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "vigil: {} problem(s): the store differs from what was signed",
            report.problems.len()
        );
        Ok(ExitCode::from(1))
    }
}

// ---- stats ----

#[derive(Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

pub fn stats(args: StatsArgs) -> Result<ExitCode> {
    let reader = args.dir.reader()?;
    let retention = vigil_store::retention::Retention::load(&reader.dir)?;
    let index_bytes = reader.index_bytes();
    let mut out = stdout();
    let (mut events, mut bytes) = (0u64, 0u64);
    let mut rows = Vec::new();
    for p in &reader.parts {
        events += p.count;
        bytes += p.bytes;
        rows.push(json!({
            "dataset": p.dataset,
            "day": p.day,
            "events": p.count,
            "bytes": p.bytes,
            "indexed": p.indexed,
            "retention": retention.for_dataset(&p.dataset).map(|s| s.text.clone()),
        }));
    }
    let total = bytes + index_bytes;
    let per_event = |b: u64| {
        if events > 0 {
            b as f64 / events as f64
        } else {
            0.0
        }
    };
    match args.format {
        Format::Jsonl => {
            for r in &rows {
                finish(write_json_line(&mut out, r))?;
            }
            finish(write_json_line(
                &mut out,
                &json!({
                    "total": {
                        "events": events,
                        "journal_bytes": bytes,
                        "index_bytes": index_bytes,
                        "bytes": total,
                        "bytes_per_event": per_event(total),
                    }
                }),
            ))?;
        }
        Format::Table => {
            let mut t = Table::new(["DATASET", "DAY", "EVENTS", "BYTES", "B/EVENT", "RETENTION"]);
            for r in &rows {
                let n = r["events"].as_u64().unwrap_or(0);
                let b = r["bytes"].as_u64().unwrap_or(0);
                t.row([
                    text_of(&r["dataset"]),
                    text_of(&r["day"]),
                    n.to_string(),
                    b.to_string(),
                    format!("{:.1}", if n > 0 { b as f64 / n as f64 } else { 0.0 }),
                    text_of(&r["retention"]),
                ]);
            }
            t.row([
                "journal".to_string(),
                String::new(),
                events.to_string(),
                bytes.to_string(),
                format!("{:.1}", per_event(bytes)),
                String::new(),
            ]);
            t.row([
                "index".to_string(),
                String::new(),
                String::new(),
                index_bytes.to_string(),
                format!("{:.1}", per_event(index_bytes)),
                String::new(),
            ]);
            t.row([
                "total".to_string(),
                String::new(),
                events.to_string(),
                total.to_string(),
                format!("{:.1}", per_event(total)),
                String::new(),
            ]);
            finish(t.write(&mut out))?;
        }
    }
    finish(out.flush())?;
    Ok(ExitCode::SUCCESS)
}
