//! `vigil ingest`: batch import into the store, with detection; alerts are stored too.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use serde_json::Value;
use vigil_model::alert::Alert;
use vigil_store::prepare::{self, now_micros, Record};
use vigil_store::retention::Retention;
use vigil_store::{Ack, Store, StoreError, StoreOptions};

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
    /// Events per group commit (one fsync each).
    #[arg(long, default_value_t = 16384, hide = true)]
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

struct Batcher<'a> {
    store: &'a mut Store,
    events: Vec<Record>,
    alerts: Vec<Record>,
    size: usize,
    totals: Totals,
}

impl Batcher<'_> {
    fn add(&mut self, ack: Ack, alerts: bool) {
        if alerts {
            self.totals.alerts_stored += ack.stored;
        } else {
            self.totals.stored += ack.stored;
            self.totals.duplicates += ack.duplicates;
        }
        self.totals.bytes += ack.bytes;
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        if !self.events.is_empty() {
            let batch = std::mem::take(&mut self.events);
            let ack = self.store.append_batch(batch)?;
            self.add(ack, false);
        }
        if !self.alerts.is_empty() {
            let batch = std::mem::take(&mut self.alerts);
            let ack = self.store.append_batch(batch)?;
            self.add(ack, true);
        }
        Ok(())
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
    let mut store = Store::open(&dir, StoreOptions::default())?;
    if !args.retention.is_empty() {
        retention.save(&dir)?;
    }
    let mut detector = rules.as_ref().map(Detector::new);
    let mut b = Batcher {
        store: &mut store,
        events: Vec::with_capacity(args.batch.max(1)),
        alerts: Vec::new(),
        size: args.batch.max(1),
        totals: Totals::default(),
    };
    let mut received = now_micros();
    let result = read_inputs(&args.inputs, &args.input, |item: Item| {
        let record = match (item.raw, item.doc) {
            (Some(raw), _) => match prepare::k8s_event(raw, item.file, received) {
                Ok(r) => r,
                Err(e) => {
                    b.totals.unstorable += 1;
                    if b.totals.unstorable <= 20 {
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
            let redacted = Item {
                raw,
                doc: Some(record.doc()),
                ..item
            };
            let alerts = &mut b.alerts;
            let totals = &mut b.totals;
            det.process(redacted, &mut |a: Alert, doc: Option<&Value>| {
                totals.alerts += 1;
                alerts.push(prepare::alert(&a, doc, received));
                Ok(())
            })?;
        }
        b.events.push(record);
        if b.events.len() >= b.size {
            b.flush()?;
            received = now_micros();
        }
        Ok(())
    })
    .and_then(|stats| {
        b.flush()?;
        Ok(stats)
    });
    let totals = std::mem::take(&mut b.totals);
    let summary = |t: &Totals| {
        format!(
            "{} events stored, {} duplicates skipped, {} alerts ({} stored), {} bytes written",
            t.stored, t.duplicates, t.alerts, t.alerts_stored, t.bytes
        )
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
