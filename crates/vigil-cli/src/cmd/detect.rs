//! `vigil detect`: run Sigma rules (the built-in pack and the user's) over logs, print alerts.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use vigil_model::alert::{level_rank, Alert};

use crate::detection::{
    alert_line_table, evaluate, load_rules_with_lateness, Detector, Evaluated, LoadedRules,
    RuleOptions,
};
use crate::input::{input_names, read_inputs, read_inputs_owned, InputOptions, Owned};
use crate::output::{finish, stdout, write_json_line, Format, InputStats, Table};

#[derive(Args)]
pub struct DetectArgs {
    /// A Sigma rule file or a directory of them (searched recursively); repeatable.
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,
    /// Leave out the built-in rule pack.
    #[arg(long)]
    pub no_default_rules: bool,
    /// Values for `|expand` placeholders (YAML: name -> list), over the built-in defaults.
    #[arg(long, value_name = "FILE")]
    pub placeholders: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: Format,
    /// Exit 1 when an alert reaches this level (informational, low, medium, high, critical).
    #[arg(long, value_name = "LEVEL")]
    pub fail_on: Option<String>,
    /// Threads evaluating rules (default: the machine's cores). Alerts come out in the same
    /// order and with the same content for any number; 1 runs everything on one thread.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub input: InputOptions,
    /// Logs to read (`-` or nothing: standard input).
    pub inputs: Vec<String>,
}

/// The reader of our output went away (`vigil detect ... | head`): not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

pub fn run(args: DetectArgs) -> Result<ExitCode> {
    let fail_rank = match &args.fail_on {
        Some(level) => match level_rank(level) {
            0 => {
                bail!("--fail-on {level:?}: expected informational, low, medium, high or critical")
            }
            r => Some(r),
        },
        None => None,
    };
    // Correlations accept events up to 5 minutes out of order (Zeek writes a connection when
    // it ends, syslog relays reorder): the input is complete, so waiting costs nothing.
    let rules = load_rules_with_lateness(
        &RuleOptions {
            paths: args.rules.clone(),
            builtin: !args.no_default_rules,
            placeholders: args.placeholders.clone(),
        },
        5 * 60 * 1000,
    )?;
    if rules.set.rules().is_empty() {
        bail!("no rules to run: give --rules PATH or drop --no-default-rules");
    }
    let mut detector = Detector::new(&rules);
    let mut out = stdout();
    let mut table = Table::new(["TIME", "LEVEL", "RULE", "WHO", "WHAT", "WHERE"]);
    let mut worst = 0u8;
    let mut count = 0u64;
    let mut emit = |alert: Alert, doc: Option<&serde_json::Value>| -> Result<()> {
        count += 1;
        worst = worst.max(level_rank(&alert.rule.level));
        match args.format {
            Format::Jsonl => write_json_line(&mut out, &alert)?,
            Format::Table => table.row(alert_line_table(&alert, doc)),
        }
        Ok(())
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let stats = if threads == 1 {
        read_inputs(&args.inputs, &args.input, |item| {
            detector.process(item, &mut emit)
        })
    } else {
        let keep_doc = args.format == Format::Table;
        parallel(&args, &rules, threads, keep_doc, &mut detector, &mut emit)
    }
    .and_then(|stats| detector.finish(&mut emit).map(|()| stats));
    let stats = match stats {
        Err(e) if is_broken_pipe(&e) => return Ok(ExitCode::SUCCESS),
        other => other?,
    };
    if args.format == Format::Table {
        finish(table.write(&mut out))?;
    }
    finish(out.flush())?;
    eprintln!(
        "vigil: {} events read, {} rejected, {} alerts from {} rules",
        stats.events,
        stats.rejected,
        count,
        rules.set.rules().len()
    );
    if stats.events == 0 && stats.rejected > 0 {
        return Ok(ExitCode::from(2));
    }
    Ok(match fail_rank {
        Some(r) if worst >= r => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}

/// Events per batch handed to a worker: large enough that channel traffic is noise, small
/// enough that a batch's events (about 800 bytes each) stay in cache.
const BATCH: usize = 256;

/// A batch of events in input order; `seq` orders batches.
struct Batch {
    seq: u64,
    events: Vec<(usize, Owned)>,
}

/// A batch evaluated: each event (its raw text dropped) with what the rules found.
struct Done {
    seq: u64,
    events: Vec<(usize, Owned, Evaluated)>,
}

/// Detection on several threads: one reads the inputs (in the order [`read_inputs`] delivers
/// them) into batches, `threads` workers run every stateless rule on them ([`evaluate`]:
/// decode, prefilter, match), and this thread puts the batches back in order and feeds
/// correlations and emits alerts ([`Detector::apply`]) exactly as the one-thread run would.
/// Every channel is bounded, so memory stays bounded whatever the input size.
fn parallel(
    args: &DetectArgs,
    rules: &LoadedRules,
    threads: usize,
    keep_doc: bool,
    detector: &mut Detector,
    emit: &mut impl FnMut(Alert, Option<&serde_json::Value>) -> Result<()>,
) -> Result<InputStats> {
    use std::sync::mpsc::sync_channel;
    use std::sync::{Arc, Mutex};

    let names = input_names(&args.inputs);
    let (work_tx, work_rx) = sync_channel::<Batch>(threads * 2);
    // Shared by the workers, and dropped with the last of them: a reader blocked on a full
    // channel then sees it closed instead of waiting forever.
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (done_tx, done_rx) = sync_channel::<Done>(threads * 2);
    std::thread::scope(|s| {
        let reader = s.spawn(move || {
            let mut seq = 0;
            let mut events = Vec::with_capacity(BATCH);
            let mut send = |events: Vec<(usize, Owned)>| -> Result<()> {
                let batch = Batch { seq, events };
                seq += 1;
                work_tx
                    .send(batch)
                    .map_err(|_| anyhow::anyhow!("detection stopped"))
            };
            let stats = read_inputs_owned(&args.inputs, &args.input, |i, ev| {
                events.push((i, ev));
                if events.len() == BATCH {
                    send(std::mem::replace(&mut events, Vec::with_capacity(BATCH)))?;
                }
                Ok(())
            })?;
            if !events.is_empty() {
                send(events)?;
            }
            Ok::<_, anyhow::Error>(stats)
        });
        let mut workers = Vec::new();
        for _ in 0..threads {
            let (work_rx, done_tx, names, set) =
                (work_rx.clone(), done_tx.clone(), &names, &rules.set);
            workers.push(s.spawn(move || loop {
                let next = work_rx.lock().map(|rx| rx.recv());
                let Ok(Ok(batch)) = next else {
                    return;
                };
                let events = batch
                    .events
                    .into_iter()
                    .map(|(i, mut ev)| {
                        let done = evaluate(set, &ev.item(&names[i]), keep_doc);
                        ev.raw = None;
                        (i, ev, done)
                    })
                    .collect();
                let done = Done {
                    seq: batch.seq,
                    events,
                };
                if done_tx.send(done).is_err() {
                    return;
                }
            }));
        }
        drop((work_rx, done_tx));
        // Batches come back in any order: hold the early ones until their turn.
        let mut held = std::collections::BTreeMap::new();
        let mut next = 0;
        let mut result = Ok(());
        'recv: for done in done_rx.iter() {
            held.insert(done.seq, done.events);
            while let Some(events) = held.remove(&next) {
                next += 1;
                for (i, ev, done) in events {
                    if let Err(e) = detector.apply(&ev.item(&names[i]), done, emit) {
                        result = Err(e);
                        break 'recv;
                    }
                }
            }
        }
        // On an error, closing the channel stops the workers, and with them the reader.
        drop(done_rx);
        for w in workers {
            if w.join().is_err() {
                anyhow::bail!("a detection thread panicked");
            }
        }
        let stats = match reader.join() {
            Ok(stats) => stats,
            Err(_) => anyhow::bail!("the input thread panicked"),
        };
        result?;
        stats
    })
}
