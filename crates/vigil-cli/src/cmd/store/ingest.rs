//! `vigil ingest`: batch import into the store, with detection; alerts are stored too.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;

use anyhow::{bail, Result};
use clap::Args;
use serde_json::Value;
use vigil_model::alert::Alert;
use vigil_store::prepare::{self, now_micros, Record};
use vigil_store::retention::Retention;
use vigil_store::{Store, StoreError, StoreOptions};

use super::DataDirArg;
use crate::detection::{load_rules, Detector, RuleOptions};
use crate::input::{read_inputs, InputOptions, Item};

#[derive(Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    #[command(flatten)]
    pub input: InputOptions,
    /// A Sigma rule file or a directory of them (searched recursively); repeatable.
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,
    /// Leave out the built-in rule pack.
    #[arg(long)]
    pub no_default_rules: bool,
    /// Values for `|expand` placeholders (YAML: name -> list), over the built-in defaults.
    #[arg(long, value_name = "FILE")]
    pub placeholders: Option<PathBuf>,
    /// Do not run detection.
    #[arg(long)]
    pub no_detect: bool,
    /// Set retention, kept in the data directory: `400d` for every dataset, or
    /// `DATASET=30d`; repeatable. Partitions older than this are removed (and logged) after
    /// the import.
    #[arg(long, value_name = "[DATASET=]SPAN")]
    pub retention: Vec<String>,
    /// Events per group commit (one fsync each). Up to four batches are in memory at once,
    /// each event with its normalized document (~17 KB as a JSON tree for an audit event):
    /// 4,096 keeps ingest near 340 MB where 16,384 took 1.2 GB, for ~5% more CPU.
    #[arg(long, default_value_t = 4096, hide = true)]
    pub batch: usize,
    /// Logs to read (`-` or nothing: standard input).
    pub inputs: Vec<String>,
}

#[derive(Default)]
struct Totals {
    stored: u64,
    duplicates: u64,
    bytes: u64,
    alerts: u64,
    alerts_stored: u64,
    unstorable: u64,
}

/// What the store thread hands back: the store, its counts, and why it stopped early.
type Finished = (Store, Totals, Result<(), StoreError>);

/// The store side of the pipeline: a thread that owns the store and appends each batch
/// (events, then the alerts found in them), while the reading side prepares the next one.
struct Writer {
    tx: Option<mpsc::SyncSender<(Vec<Record>, Vec<Record>)>>,
    handle: Option<thread::JoinHandle<Finished>>,
}

impl Writer {
    fn start(mut store: Store) -> Writer {
        let (tx, rx) = mpsc::sync_channel::<(Vec<Record>, Vec<Record>)>(2);
        let handle = thread::spawn(move || {
            let mut t = Totals::default();
            for (events, alerts) in rx {
                if !events.is_empty() {
                    match store.append_batch(events) {
                        Ok(ack) => {
                            t.stored += ack.stored;
                            t.duplicates += ack.duplicates;
                            t.bytes += ack.bytes;
                        }
                        Err(e) => return (store, t, Err(e)),
                    }
                }
                if !alerts.is_empty() {
                    match store.append_batch(alerts) {
                        Ok(ack) => {
                            t.alerts_stored += ack.stored;
                            t.bytes += ack.bytes;
                        }
                        Err(e) => return (store, t, Err(e)),
                    }
                }
            }
            (store, t, Ok(()))
        });
        Writer {
            tx: Some(tx),
            handle: Some(handle),
        }
    }

    /// Hands a batch over; `false` when the store side has stopped (its error comes at `finish`).
    fn send(&self, events: Vec<Record>, alerts: Vec<Record>) -> bool {
        self.tx
            .as_ref()
            .is_some_and(|tx| tx.send((events, alerts)).is_ok())
    }

    fn finish(mut self) -> Finished {
        drop(self.tx.take());
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            _ => panic!("the store thread panicked"),
        }
    }
}

pub fn run(args: IngestArgs) -> Result<ExitCode> {
    let dir = args.dir.path();
    let mut retention = Retention::load(&dir).unwrap_or_default();
    for r in &args.retention {
        retention.set(r).map_err(anyhow::Error::msg)?;
    }
    let rules = if args.no_detect {
        None
    } else {
        let r = load_rules(&RuleOptions {
            paths: args.rules.clone(),
            builtin: !args.no_default_rules,
            placeholders: args.placeholders.clone(),
        })?;
        if r.set.rules().is_empty() {
            bail!(
                "no rules to run: give --rules PATH, drop --no-default-rules, or use --no-detect"
            );
        }
        Some(r)
    };
    let mut opts = StoreOptions::default();
    // Testing hook: a disk that is full after this many bytes (see tests/cli_store.rs).
    if let Some(n) = std::env::var("VIGIL_TEST_DISK_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        opts.fault = Some(vigil_store::disk_full_after(n));
    }
    let store = Store::open(&dir, opts)?;
    if !args.retention.is_empty() {
        retention.save(&dir)?;
    }
    let mut detector = rules.as_ref().map(Detector::new);
    let writer = Writer::start(store);
    let size = args.batch.max(1);
    let (mut events, mut alerts) = (Vec::with_capacity(size), Vec::new());
    let (mut n_alerts, mut unstorable) = (0u64, 0u64);
    let mut received = now_micros();
    let stopped = "the store stopped";
    let result = read_inputs(&args.inputs, &args.input, |item: Item| {
        let record = match (item.raw, item.doc) {
            (Some(raw), _) => match prepare::k8s_event(raw, item.file, received) {
                Ok(r) => r,
                Err(e) => {
                    unstorable += 1;
                    if unstorable <= 20 {
                        eprintln!("vigil: rejected: {}:{}: {e}", item.file, item.line);
                    }
                    return Ok(());
                }
            },
            (None, Some(doc)) => {
                prepare::parsed_event(item.dataset, doc.clone(), item.file, received)
            }
            (None, None) => return Ok(()),
        };
        if let Some(det) = detector.as_mut() {
            let raw = if item.raw.is_some() {
                Some(record.raw())
            } else {
                None
            };
            // Detection sees the event as stored: redacted.
            let redacted = Item {
                raw,
                doc: Some(record.doc()),
                ..item
            };
            det.process(redacted, &mut |a: Alert, doc: Option<&Value>| {
                n_alerts += 1;
                alerts.push(prepare::alert(&a, doc, received));
                Ok(())
            })?;
        }
        events.push(record);
        if events.len() >= size {
            let full = std::mem::replace(&mut events, Vec::with_capacity(size));
            if !writer.send(full, std::mem::take(&mut alerts)) {
                bail!(stopped);
            }
            received = now_micros();
        }
        Ok(())
    });
    let result = result.and_then(|stats| {
        if !writer.send(events, alerts) {
            bail!(stopped);
        }
        Ok(stats)
    });
    let (mut store, mut totals, stored) = writer.finish();
    totals.alerts = n_alerts;
    totals.unstorable = unstorable;
    let summary = |t: &Totals| {
        format!(
            "{} events stored, {} duplicates skipped, {} alerts ({} stored), {} bytes written",
            t.stored, t.duplicates, t.alerts, t.alerts_stored, t.bytes
        )
    };
    // A store error is the cause when both sides stopped.
    let result = match (stored, result) {
        (Err(e), _) => Err(anyhow::Error::new(e)),
        (Ok(()), r) => r,
    };
    let stats = match result {
        Ok(s) => s,
        Err(e) => {
            // What was acknowledged is durable; say how far we got.
            eprintln!("vigil: ingest stopped: {}", summary(&totals));
            let _ = store.close();
            return Err(e);
        }
    };
    let deletions = store.apply_retention(&retention, now_micros())?;
    for d in &deletions {
        eprintln!(
            "vigil: retention: removed {} ({} records, {})",
            d.partition, d.records, d.reason
        );
    }
    store.close()?;
    eprintln!(
        "vigil: {} events read, {} rejected; {} into {}",
        stats.events,
        stats.rejected + totals.unstorable,
        summary(&totals),
        dir.display()
    );
    if stats.events == 0 && stats.rejected > 0 {
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}
