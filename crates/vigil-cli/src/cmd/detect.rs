//! `vigil detect`: run Sigma rules (the built-in pack and the user's) over logs, print alerts.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use vigil_model::alert::{level_rank, Alert};

use crate::detection::{
    alert_line_table, evaluate, load_rules_with_lateness, AlertSink, Detector, Evaluated,
    JsonLines, LoadedRules, RuleOptions, SingleAlert,
};
use crate::input::{input_names, read_inputs, read_inputs_owned, InputEvent, InputOptions, Item};
use crate::output::{finish, stdout, Format, InputStats, Table};

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
    let keep_doc = args.format == Format::Table;
    let mut detector = Detector::new(&rules);
    if !keep_doc {
        detector = detector.without_docs();
    }
    let mut sink = match args.format {
        Format::Jsonl => Sink::Json(JsonLines::new(stdout())),
        Format::Table => Sink::Table {
            out: stdout(),
            table: Table::new(["TIME", "LEVEL", "RULE", "WHO", "WHAT", "WHERE"]),
            count: 0,
            worst: 0,
        },
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let stats = if threads == 1 {
        read_inputs(&args.inputs, &args.input, |item| {
            detector.process_to(item, &mut sink)
        })
    } else {
        parallel(&args, &rules, threads, keep_doc, &mut detector, &mut sink)
    }
    .and_then(|stats| detector.finish(&mut sink).map(|()| stats));
    let stats = match stats {
        Err(e) if is_broken_pipe(&e) => return Ok(ExitCode::SUCCESS),
        other => other?,
    };
    let (count, worst) = match sink {
        Sink::Json(mut j) => {
            finish(j.out.flush())?;
            (j.count, j.worst)
        }
        Sink::Table {
            mut out,
            table,
            count,
            worst,
        } => {
            finish(table.write(&mut out))?;
            finish(out.flush())?;
            (count, worst)
        }
    };
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

/// Where alerts go: JSON lines written straight from the detector, or rows of a table printed
/// at the end.
enum Sink<W: Write> {
    Json(JsonLines<W>),
    Table {
        out: W,
        table: Table,
        count: u64,
        worst: u8,
    },
}

impl<W: Write> AlertSink for Sink<W> {
    fn alert(&mut self, alert: Alert, doc: Option<&serde_json::Value>) -> Result<()> {
        match self {
            Sink::Json(j) => j.alert(alert, doc),
            Sink::Table {
                table,
                count,
                worst,
                ..
            } => {
                *count += 1;
                *worst = (*worst).max(level_rank(&alert.rule.level));
                table.row(alert_line_table(&alert, doc));
                Ok(())
            }
        }
    }

    fn single(&mut self, alert: SingleAlert<'_>, doc: Option<&serde_json::Value>) -> Result<()> {
        match self {
            Sink::Json(j) => j.single(alert, doc),
            table => table.alert(alert.into_alert(), doc),
        }
    }
}

/// Events per batch handed to a worker: large enough that channel traffic is noise, small
/// enough that a batch's text (about 800 bytes an event) stays in cache.
const BATCH: usize = 512;

/// One event of a batch. Its raw text is a range of the batch's text: the reader copies each
/// event there (from the text the input reader lends, one buffer for the whole input), so that
/// no per-event allocation crosses threads, which the allocator pays for in locks and returned
/// pages.
struct Slot {
    input: usize,
    /// Index into the batch's datasets.
    dataset: usize,
    line: usize,
    raw: Option<std::ops::Range<usize>>,
    doc: Option<serde_json::Value>,
    time_ms: Option<i64>,
}

/// A batch of events in input order; `seq` orders batches.
#[derive(Default)]
struct Batch {
    seq: u64,
    text: String,
    datasets: Vec<String>,
    events: Vec<Slot>,
}

impl Batch {
    fn push(&mut self, input: usize, ev: InputEvent<'_>) {
        let dataset = match self.datasets.iter().rposition(|d| *d == ev.dataset) {
            Some(d) => d,
            None => {
                self.datasets.push(ev.dataset.into_owned());
                self.datasets.len() - 1
            }
        };
        let raw = ev.raw.map(|r| {
            let start = self.text.len();
            self.text.push_str(&r);
            start..self.text.len()
        });
        self.events.push(Slot {
            input,
            dataset,
            line: ev.line,
            raw,
            doc: ev.doc,
            time_ms: ev.time_ms,
        });
    }

    fn item<'a>(&'a self, slot: &'a Slot, names: &'a [String]) -> Item<'a> {
        Item {
            dataset: &self.datasets[slot.dataset],
            file: &names[slot.input],
            line: slot.line,
            raw: slot.raw.clone().map(|r| &self.text[r]),
            doc: slot.doc.as_ref(),
            time_ms: slot.time_ms,
        }
    }
}

/// A batch evaluated (its text gone back to the reader): each event with what the rules found.
struct Done {
    batch: Batch,
    found: Vec<Evaluated>,
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
    emit: &mut impl AlertSink,
) -> Result<InputStats> {
    use std::sync::mpsc::sync_channel;
    use std::sync::{Arc, Mutex};

    let names = input_names(&args.inputs);
    let (work_tx, work_rx) = sync_channel::<Batch>(threads * 2);
    // Shared by the workers, and dropped with the last of them: a reader blocked on a full
    // channel then sees it closed instead of waiting forever.
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (done_tx, done_rx) = sync_channel::<Done>(threads * 2);
    // Text buffers going back to the reader for reuse.
    let (spare_tx, spare_rx) = sync_channel::<String>(threads * 4);
    std::thread::scope(|s| {
        let reader = s.spawn(move || {
            let mut seq = 0;
            let mut batch = Batch::default();
            let mut send = |batch: &mut Batch| -> Result<()> {
                let mut next = Batch {
                    seq: seq + 1,
                    text: spare_rx.try_recv().unwrap_or_default(),
                    ..Batch::default()
                };
                next.text.clear();
                next.events.reserve(BATCH);
                let full = std::mem::replace(batch, next);
                seq += 1;
                work_tx
                    .send(full)
                    .map_err(|_| anyhow::anyhow!("detection stopped"))
            };
            let stats = read_inputs_owned(&args.inputs, &args.input, |i, ev| {
                batch.push(i, ev);
                if batch.events.len() == BATCH {
                    send(&mut batch)?;
                }
                Ok(())
            })?;
            if !batch.events.is_empty() {
                send(&mut batch)?;
            }
            Ok::<_, anyhow::Error>(stats)
        });
        let mut workers = Vec::new();
        for _ in 0..threads {
            let (work_rx, done_tx, spare_tx) = (work_rx.clone(), done_tx.clone(), spare_tx.clone());
            let (names, set) = (&names, &rules.set);
            workers.push(s.spawn(move || loop {
                let next = work_rx.lock().map(|rx| rx.recv());
                let Ok(Ok(mut batch)) = next else {
                    return;
                };
                let found = batch
                    .events
                    .iter()
                    .map(|slot| evaluate(set, &batch.item(slot, names), keep_doc))
                    .collect();
                for slot in &mut batch.events {
                    slot.raw = None;
                }
                // A full spare channel just lets this buffer go.
                let _ = spare_tx.try_send(std::mem::take(&mut batch.text));
                if done_tx.send(Done { batch, found }).is_err() {
                    return;
                }
            }));
        }
        drop((work_rx, done_tx, spare_tx));
        // Batches come back in any order: hold the early ones until their turn.
        let mut held = std::collections::BTreeMap::new();
        let mut next = 0;
        let mut result = Ok(());
        'recv: for done in done_rx.iter() {
            held.insert(done.batch.seq, done);
            while let Some(Done { batch, found }) = held.remove(&next) {
                next += 1;
                for (slot, mut found) in batch.events.iter().zip(found) {
                    if let Err(e) = detector.apply(&batch.item(slot, &names), &mut found, emit) {
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
