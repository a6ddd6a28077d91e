//! Reading logs of any supported source for detection: format detection per file, Kubernetes
//! audit as raw JSON (parsed lazily by the engine), line formats through `vigil-normalize`.
//! Several inputs are merged by event time, so correlations see one stream in event order.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::BufRead;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::Value;
use vigil_model::decode::quick_event_time;
use vigil_normalize::{detect_format, parser_for, Dataset, Options, Parser, YearHint};
use vigil_sources::{open_input_counted, read_line, MapReader, MappedFile, RawAuditRecords};

use crate::output::InputStats;
use crate::progress::Progress;

#[derive(Args, Clone, Default)]
pub struct InputOptions {
    /// Input format; detected per file when absent: k8s.audit, linux.auth, auditd, zeek.conn,
    /// aws.vpcflow.
    #[arg(long, value_name = "TYPE")]
    pub source: Option<String>,
    /// Year of syslog lines that carry none (default: inferred from the file's modification time).
    #[arg(long)]
    pub year: Option<i32>,
    /// Read the inputs as generic JSON lines mapped to ECS fields by this YAML file
    /// (`dataset`, `timestamp: {field, format}`, `fields: {ecs.field: source.path}`, `constants`).
    #[arg(long, value_name = "FILE")]
    pub mapping: Option<std::path::PathBuf>,
    /// Read input files with read(2) instead of mapping them into memory. Mapping is faster,
    /// but a file truncated while it is read (logrotate's copytruncate) kills vigil with
    /// SIGBUS: use this flag on logs that may be truncated during the run.
    #[arg(long)]
    pub no_mmap: bool,
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
    /// Event time (ms since the epoch), when known before parsing.
    pub time_ms: Option<i64>,
}

/// An event read from one input. Its text is borrowed from the reader when the event is handed
/// on at once (one input), and owned when it waits its turn (inputs merged by time).
pub struct InputEvent<'r> {
    /// Borrowed for a constant name (every audit event's "k8s.audit"): no allocation per event.
    pub dataset: Cow<'static, str>,
    pub line: usize,
    pub raw: Option<Cow<'r, str>>,
    pub doc: Option<Value>,
    pub time_ms: Option<i64>,
}

impl InputEvent<'_> {
    /// The event with a text of its own, to be held while the reader reads on.
    pub fn into_owned(self) -> InputEvent<'static> {
        InputEvent {
            dataset: self.dataset,
            line: self.line,
            raw: self.raw.map(|r| Cow::Owned(r.into_owned())),
            doc: self.doc,
            time_ms: self.time_ms,
        }
    }

    /// The event as [`read_inputs`] hands it out; `file` is the path of its input.
    pub fn item<'a>(&'a self, file: &'a str) -> Item<'a> {
        Item {
            dataset: &self.dataset,
            file,
            line: self.line,
            raw: self.raw.as_deref(),
            doc: self.doc.as_ref(),
            time_ms: self.time_ms,
        }
    }
}

/// The path each input is known by (an event's [`Item::file`]), by input index.
pub fn input_names(inputs: &[String]) -> Vec<String> {
    if inputs.is_empty() {
        vec!["-".to_string()]
    } else {
        inputs.to_vec()
    }
}

enum Next<'r> {
    Event(InputEvent<'r>),
    Rejected(String),
}

/// The events of one input, in file order; `'m` is the life of its map, if it is mapped.
struct FileEvents<'m> {
    path: String,
    progress: Progress,
    kind: Kind<'m>,
}

enum Kind<'m> {
    Audit(RawAuditRecords<Box<dyn BufRead + Send>>),
    /// Kubernetes audit from a mapped file: events lent from the map, not copied.
    MappedAudit(RawAuditRecords<MapReader<'m>>),
    Lines {
        reader: Box<dyn BufRead + Send + 'm>,
        parser: Box<dyn Parser>,
        dataset: Dataset,
        line_no: usize,
        pending: VecDeque<ParseResult>,
        done: bool,
        /// The bytes of a line that straddles the read buffer, and the parser's output, kept
        /// from line to line so that they are not grown again from empty.
        buffers: (Vec<u8>, Vec<ParseResult>),
    },
}

type ParseResult = Result<vigil_normalize::Parsed, vigil_normalize::ParseError>;

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

fn doc_time_ms(doc: &Value) -> Option<i64> {
    let t = doc.get("@timestamp")?.as_str()?;
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Reads `path` through `map` when it is mapped, else with read(2) (and gzip decoded).
enum Reader<'m> {
    Mapped(MapReader<'m>),
    Read(Box<dyn BufRead + Send>),
}

impl<'m> Reader<'m> {
    fn as_buf_read(&mut self) -> &mut dyn BufRead {
        match self {
            Reader::Mapped(r) => r,
            Reader::Read(r) => r,
        }
    }

    fn boxed(self) -> Box<dyn BufRead + Send + 'm> {
        match self {
            Reader::Mapped(r) => Box::new(r),
            Reader::Read(r) => r,
        }
    }
}

impl<'m> FileEvents<'m> {
    fn open(path: &str, map: Option<&'m MappedFile>, opts: &InputOptions) -> Result<Self> {
        let progress = Progress::for_file(path);
        let mut reader = match map {
            Some(map) => Reader::Mapped(map.reader(progress.counter())),
            None => Reader::Read(open_input_counted(path, progress.counter())?),
        };
        if let Some(mapping) = &opts.mapping {
            let text = std::fs::read_to_string(mapping)
                .with_context(|| format!("cannot read mapping file {}", mapping.display()))?;
            let mapping =
                vigil_normalize::json_mapped::JsonMapping::from_yaml(&text).map_err(|e| {
                    anyhow::anyhow!("{}: {e}", opts.mapping.as_ref().unwrap().display())
                })?;
            let dataset = Dataset::Json(mapping.dataset.clone());
            return Ok(FileEvents {
                path: path.to_string(),
                progress,
                kind: Kind::Lines {
                    reader: reader.boxed(),
                    parser: Box::new(vigil_normalize::json_mapped::JsonMappedParser::new(mapping)),
                    dataset,
                    line_no: 0,
                    pending: VecDeque::new(),
                    done: false,
                    buffers: Default::default(),
                },
            });
        }
        let dataset = dataset_for(path, reader.as_buf_read(), opts)?;
        let kind = if dataset == Dataset::K8sAudit {
            match reader {
                Reader::Mapped(r) => Kind::MappedAudit(RawAuditRecords::new(path, r)),
                Reader::Read(r) => Kind::Audit(RawAuditRecords::new(path, r)),
            }
        } else {
            let parser = parser_for(&dataset, &Options::new(year_hint(path, opts)))
                .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
            Kind::Lines {
                reader: reader.boxed(),
                parser,
                dataset,
                line_no: 0,
                pending: VecDeque::new(),
                done: false,
                buffers: Default::default(),
            }
        };
        Ok(FileEvents {
            path: path.to_string(),
            progress,
            kind,
        })
    }

    /// The next event or rejected record; `None` at the end. `with_time` asks for the event
    /// time up front (needed to merge inputs).
    fn next(&mut self, with_time: bool, events: u64) -> Result<Option<Next<'_>>> {
        self.progress.tick(events);
        let path = &self.path;
        match &mut self.kind {
            Kind::Audit(records) => match records.next_ref() {
                None => Ok(None),
                Some(r) => Ok(Some(
                    match r.with_context(|| format!("reading {path}"))? {
                        Ok(r) => audit_event(r.line, Cow::Borrowed(r.text), with_time),
                        Err(rejected) => Next::Rejected(rejected.to_string()),
                    },
                )),
            },
            Kind::MappedAudit(records) => match records.next_mapped() {
                None => Ok(None),
                Some(r) => Ok(Some(
                    match r.with_context(|| format!("reading {path}"))? {
                        Ok(r) => audit_event(r.line, r.text, with_time),
                        Err(rejected) => Next::Rejected(rejected.to_string()),
                    },
                )),
            },
            Kind::Lines {
                reader,
                parser,
                dataset,
                line_no,
                pending,
                done,
                buffers,
            } => {
                let (scratch, out) = buffers;
                while pending.is_empty() && !*done {
                    let line = read_line(reader, scratch)
                        .with_context(|| format!("reading {path} near line {}", *line_no + 1))?;
                    match line {
                        None => {
                            parser.flush(out);
                            *done = true;
                        }
                        Some(line) => {
                            *line_no += 1;
                            parser.push_line(&line, *line_no, out);
                        }
                    }
                    pending.extend(out.drain(..));
                }
                Ok(pending.pop_front().map(|p| match p {
                    Ok(p) => Next::Event(InputEvent {
                        dataset: p
                            .doc
                            .pointer("/event/dataset")
                            .and_then(Value::as_str)
                            .unwrap_or(dataset.as_str())
                            .to_string()
                            .into(),
                        line: p.line,
                        time_ms: doc_time_ms(&p.doc),
                        raw: None,
                        doc: Some(p.doc),
                    }),
                    Err(e) => Next::Rejected(format!("{path}: {e}")),
                }))
            }
        }
    }
}

/// Reports rejected records on stderr (the first few in full) and counts them.
fn reject(stats: &mut InputStats, message: &str) {
    stats.rejected += 1;
    if stats.rejected <= 20 {
        eprintln!("vigil: rejected: {message}");
    } else if stats.rejected == 21 {
        eprintln!("vigil: more records rejected; the total is printed at the end");
    }
}

/// Feeds every event of `inputs` to `each`. One input is read in file order; several are merged
/// by event time (an event without a time keeps its place after its file's previous event).
pub fn read_inputs(
    inputs: &[String],
    opts: &InputOptions,
    mut each: impl FnMut(Item) -> Result<()>,
) -> Result<InputStats> {
    let names = input_names(inputs);
    read_inputs_owned(inputs, opts, |i, ev| each(ev.item(&names[i])))
}

/// Like [`read_inputs`], handing out each event whole (its document moved, not lent), with the
/// index of its input in [`input_names`].
pub fn read_inputs_owned(
    inputs: &[String],
    opts: &InputOptions,
    mut each: impl FnMut(usize, InputEvent<'_>) -> Result<()>,
) -> Result<InputStats> {
    let inputs = &input_names(inputs)[..];
    // The maps outlive the readers, which lend events from them. A failure to open is
    // reported when its input's turn comes, so that errors keep their order.
    let (mut maps, mut open_errors) = (Vec::new(), Vec::new());
    for p in inputs {
        let (map, err) = match opts.no_mmap {
            true => (None, None),
            false => match MappedFile::open(p) {
                Ok(map) => (map, None),
                Err(e) => (None, Some(e)),
            },
        };
        maps.push(map);
        open_errors.push(err);
    }
    let mut files = inputs
        .iter()
        .zip(&maps)
        .zip(open_errors)
        .map(|((p, map), err)| match err {
            Some(e) => Err(e.into()),
            None => FileEvents::open(p, map.as_ref(), opts),
        })
        .collect::<Result<Vec<_>>>()?;
    let merge = files.len() > 1;
    let mut stats = InputStats::default();
    // The head of each input, keyed by (time, input index) so ties keep input order.
    let mut heads: BinaryHeap<Reverse<(i64, usize)>> = BinaryHeap::new();
    let mut held: Vec<Option<InputEvent<'static>>> = (0..files.len()).map(|_| None).collect();
    let mut last_time = vec![i64::MIN; files.len()];
    let mut refill = |i: usize,
                      files: &mut Vec<FileEvents>,
                      stats: &mut InputStats,
                      heads: &mut BinaryHeap<Reverse<(i64, usize)>>,
                      held: &mut Vec<Option<InputEvent<'static>>>,
                      each: &mut dyn FnMut(usize, InputEvent<'_>) -> Result<()>|
     -> Result<()> {
        loop {
            match files[i].next(merge, stats.events)? {
                None => {
                    files[i].progress.done();
                    return Ok(());
                }
                Some(Next::Rejected(msg)) => reject(stats, &msg),
                Some(Next::Event(ev)) => {
                    stats.events += 1;
                    if !merge {
                        each(i, ev)?;
                        continue;
                    }
                    let t = ev.time_ms.unwrap_or(last_time[i]).max(last_time[i]);
                    last_time[i] = t;
                    heads.push(Reverse((t, i)));
                    held[i] = Some(ev.into_owned());
                    return Ok(());
                }
            }
        }
    };
    for i in 0..files.len() {
        refill(i, &mut files, &mut stats, &mut heads, &mut held, &mut each)?;
    }
    while let Some(Reverse((_, i))) = heads.pop() {
        if let Some(ev) = held[i].take() {
            each(i, ev)?;
        }
        refill(i, &mut files, &mut stats, &mut heads, &mut held, &mut each)?;
    }
    if stats.rejected > 20 {
        eprintln!("vigil: {} records rejected in all", stats.rejected);
    }
    Ok(stats)
}

/// An audit log line as an input event; `with_time`: its time read up front (see
/// `FileEvents::next`).
fn audit_event(line: usize, text: Cow<'_, str>, with_time: bool) -> Next<'_> {
    Next::Event(InputEvent {
        dataset: Cow::Borrowed("k8s.audit"),
        line,
        time_ms: if with_time {
            quick_event_time(&text).map(|t| t.unix_micros() / 1000)
        } else {
            None
        },
        raw: Some(text),
        doc: None,
    })
}
