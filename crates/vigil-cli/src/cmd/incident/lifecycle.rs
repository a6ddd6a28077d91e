//! `vigil alerts`, `vigil incident open|list|show|note|phase|close`.
//!
//! Every action is recorded in `DIR/incidents/log.jsonl` with its time and actor (`--actor`,
//! else `$VIGIL_ACTOR`, else `$USER`, else `unknown`). A refused action (an unknown incident or
//! alert id, moving a phase backwards, changing a closed incident) records nothing and exits 2,
//! like every other usage error, with a message naming the id and the current phase.
//! `incident open` prints the new id as its only line on stdout (scripts use it); what it found
//! goes to stderr.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, ValueEnum};
use serde_json::{json, Value};
use vigil_incident::alerts::{self, Status};
use vigil_incident::open::{self as opening, OpenRequest};
use vigil_incident::{Action, Book, Incident, Phase};
use vigil_store::reader::micros_rfc3339;
use vigil_store::{Reader, StoredEvent};

use crate::cmd::store::{event_row, field, result, time_arg, what, who, DataDirArg, EVENT_HEADER};
use crate::output::{finish, stdout, write_json_line, Format, Table};

#[derive(Args)]
pub struct ActorArg {
    /// Who is acting, recorded with the action (default: $VIGIL_ACTOR, else $USER).
    #[arg(long, value_name = "NAME")]
    pub actor: Option<String>,
}

impl ActorArg {
    fn name(&self) -> String {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        self.actor
            .clone()
            .filter(|a| !a.trim().is_empty())
            .or_else(|| env("VIGIL_ACTOR"))
            .or_else(|| env("USER"))
            .unwrap_or_else(|| "unknown".into())
    }
}

// ---- vigil alerts ----

#[derive(Args)]
pub struct AlertsArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    /// Only alerts at or after T (RFC 3339, a day, or back from now: 24h, 7d).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Only alerts before T.
    #[arg(long, value_name = "T")]
    pub until: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

fn status_text(status: Status, incident: &Option<String>) -> String {
    match incident {
        Some(i) => format!("{} {i}", status.as_str()),
        None => status.as_str().to_string(),
    }
}

/// The first few entity values (a host named by its address is also that address: once).
fn entities_text(entities: &[vigil_incident::Entity]) -> String {
    let mut values: Vec<&str> = Vec::new();
    for e in entities {
        if !values.contains(&e.value.as_str()) {
            values.push(&e.value);
        }
    }
    let mut s: Vec<String> = values.iter().take(3).map(|v| v.to_string()).collect();
    if values.len() > 3 {
        s.push(format!("+{}", values.len() - 3));
    }
    s.join(", ")
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub fn alerts(args: AlertsArgs) -> Result<ExitCode> {
    let dir = args.dir.path();
    let reader = args.dir.reader()?;
    let book = Book::open(&dir)?;
    let listed = alerts::list(
        &reader,
        &book,
        time_arg("--since", &args.since)?,
        time_arg("--until", &args.until)?,
    )?;
    let mut out = stdout();
    match args.format {
        Format::Jsonl => {
            for l in &listed {
                finish(write_json_line(&mut out, &l.json()))?;
            }
        }
        Format::Table => {
            let mut t = Table::new(["TIME", "ID", "LEVEL", "RULE", "ENTITIES", "STATUS"]);
            for l in &listed {
                let a = &l.alert;
                t.row([
                    micros_rfc3339(a.time),
                    a.id.clone(),
                    a.level.clone(),
                    a.title.clone(),
                    entities_text(&a.entities()),
                    status_text(l.status, &l.incident),
                ]);
            }
            finish(t.write(&mut out))?;
        }
    }
    finish(out.flush())?;
    Ok(ExitCode::SUCCESS)
}

// ---- vigil incident open ----

#[derive(Args)]
pub struct OpenArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    /// An alert to open the incident from (its id in `vigil alerts`); repeat for several.
    #[arg(long = "alert", value_name = "ID", num_args = 1.., required_unless_present = "title")]
    pub alerts: Vec<String>,
    /// The title (default: the highest-level alert's rule).
    #[arg(long, value_name = "T")]
    pub title: Option<String>,
    /// How far around the alerts to look for related alerts and timeline events.
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub window: String,
    /// At most N timeline entries (those nearest the first alert; the alerts are always kept).
    #[arg(long, value_name = "N", default_value_t = opening::DEFAULT_TIMELINE_CAP)]
    pub max_timeline: usize,
    #[command(flatten)]
    pub actor: ActorArg,
}

pub fn open(args: OpenArgs) -> Result<ExitCode> {
    let dir = args.dir.path();
    let mut req = OpenRequest::new(&args.actor.name());
    req.alerts = args.alerts;
    req.title = args.title;
    req.window_secs = opening::parse_window(&args.window)?;
    req.timeline_cap = args.max_timeline.max(1);
    let opened = opening::open(&dir, &req)?;
    if let Action::Opened {
        title,
        alerts,
        related,
        entities,
        timeline,
        ..
    } = &opened.entry.action
    {
        eprintln!(
            "vigil: {} opened: {title:?}; {}, {} related, {}, {} in the timeline",
            opened.id,
            count(alerts.len(), "alert", "alerts"),
            related.len(),
            count(entities.len(), "entity", "entities"),
            count(timeline.len(), "entry", "entries")
        );
    }
    if opened.capped {
        eprintln!(
            "vigil: the timeline was capped at {} entries (--max-timeline); `vigil timeline` shows everything",
            req.timeline_cap
        );
    }
    println!("{}", opened.id);
    Ok(ExitCode::SUCCESS)
}

// ---- list ----

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

fn summary(inc: &Incident) -> Value {
    json!({
        "id": inc.id,
        "title": inc.title,
        "phase": inc.phase,
        "opened_at": inc.opened_at,
        "opened_by": inc.opened_by,
        "closed_at": inc.closed_at,
        "alerts": inc.alerts,
        "related": inc.related,
        "entities": inc.entities,
        "timeline": inc.timeline.len(),
        "notes": inc.notes.len(),
    })
}

pub fn list(args: ListArgs) -> Result<ExitCode> {
    let incidents = Book::open(&args.dir.path())?.list()?;
    let mut out = stdout();
    match args.format {
        Format::Jsonl => {
            for inc in &incidents {
                finish(write_json_line(&mut out, &summary(inc)))?;
            }
        }
        Format::Table => {
            let mut t = Table::new(["ID", "PHASE", "OPENED", "BY", "ALERTS", "TITLE"]);
            for inc in &incidents {
                t.row([
                    inc.id.clone(),
                    inc.phase.as_str().to_string(),
                    inc.opened_at.clone(),
                    inc.opened_by.clone(),
                    format!("{}+{}", inc.alerts.len(), inc.related.len()),
                    inc.title.clone(),
                ]);
            }
            finish(t.write(&mut out))?;
        }
    }
    finish(out.flush())?;
    Ok(ExitCode::SUCCESS)
}

// ---- show ----

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    Table,
    Json,
}

#[derive(Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    /// The incident (INC-0001).
    pub id: String,
    #[arg(long, value_enum, default_value = "table")]
    pub format: ShowFormat,
}

type Loaded = (
    Vec<(u64, Option<StoredEvent>)>,
    HashMap<String, alerts::StoredAlert>,
);

/// The timeline's records (`None` for one the store no longer serves: retention removed it)
/// and the incident's alerts by id (all are in its window). A title-only incident needs no store.
fn load(dir: &std::path::Path, inc: &Incident) -> Result<Loaded> {
    if inc.timeline.is_empty() && inc.alerts.is_empty() {
        return Ok(Default::default());
    }
    let reader = Reader::open(dir)?;
    let events = inc
        .timeline
        .iter()
        .map(|loc| Ok((*loc, reader.get(*loc)?)))
        .collect::<Result<_>>()?;
    let stored = alerts::stored(&reader, Some(inc.since), Some(inc.until.saturating_add(1)))?;
    Ok((
        events,
        stored.into_iter().map(|a| (a.id.clone(), a)).collect(),
    ))
}

/// `3600` → `1h`, `90` → `90s`.
fn span_text(secs: u64) -> String {
    match secs {
        0 => "0s".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn entry_summary(ev: &StoredEvent) -> String {
    let doc = &ev.doc;
    if ev.is_alert() {
        return format!(
            "[{}] {}",
            field(doc, &["rule.level"]),
            field(doc, &["rule.name"])
        );
    }
    let mut s = [who(doc), what(doc)]
        .into_iter()
        .filter(|x| !x.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    let r = result(doc);
    if !r.is_empty() {
        s = format!("{s} ({r})");
    }
    s
}

fn action_text(a: &Action) -> String {
    match a {
        Action::Opened { title, alerts, .. } => {
            format!(
                "opened {title:?} from {}",
                count(alerts.len(), "alert", "alerts")
            )
        }
        Action::Note { text } => format!("note: {text}"),
        Action::Phase { from, to, note } => match note {
            Some(n) => format!("phase {} -> {}: {n}", from.as_str(), to.as_str()),
            None => format!("phase {} -> {}", from.as_str(), to.as_str()),
        },
        Action::Closed { note } => match note {
            Some(n) => format!("closed: {n}"),
            None => "closed".into(),
        },
    }
}

pub fn show(args: ShowArgs) -> Result<ExitCode> {
    let dir = args.dir.path();
    let inc = Book::open(&dir)?.get(&args.id)?;
    let (events, known) = load(&dir, &inc)?;
    let mut out = stdout();
    if args.format == ShowFormat::Json {
        let mut v = serde_json::to_value(&inc)?;
        v["timeline"] = events
            .iter()
            .map(|(loc, ev)| match ev {
                Some(ev) => json!({
                    "loc": loc,
                    "time": ev.time_rfc3339(),
                    "kind": if ev.is_alert() { "alert" } else { "event" },
                    "dataset": ev.dataset,
                    "summary": entry_summary(ev),
                }),
                None => json!({"loc": loc, "missing": true}),
            })
            .collect();
        finish(write_json_line(&mut out, &v))?;
        finish(out.flush())?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut head = format!(
        "{}  {}\nphase: {} (since {})   opened {} by {}\n",
        inc.id,
        inc.title,
        inc.phase.title(),
        inc.phases.last().map(|p| p.1.as_str()).unwrap_or(""),
        inc.opened_at,
        inc.opened_by
    );
    if !inc.alerts.is_empty() {
        head.push_str(&format!(
            "window: {} to {} ({} around the alerts)\n",
            micros_rfc3339(inc.since),
            micros_rfc3339(inc.until),
            span_text(inc.window_secs)
        ));
    }
    let mut entities = Table::new(["KIND", "VALUE"]);
    for e in &inc.entities {
        entities.row([e.kind.as_str().to_string(), e.value.clone()]);
    }
    let mut alert_rows = Table::new(["TIME", "ID", "LEVEL", "RULE", "ROLE"]);
    let roles = inc.alerts.iter().map(|a| (a, "opened from"));
    for (id, role) in roles.chain(inc.related.iter().map(|a| (a, "related"))) {
        let (time, level, rule) = known.get(id.as_str()).map_or_else(
            || {
                (
                    String::new(),
                    String::new(),
                    "(no longer in the store)".into(),
                )
            },
            |a| (micros_rfc3339(a.time), a.level.clone(), a.title.clone()),
        );
        alert_rows.row([time, id.clone(), level, rule, role.to_string()]);
    }
    let mut timeline = Table::new(EVENT_HEADER);
    for (loc, ev) in &events {
        match ev {
            Some(ev) => timeline.row(event_row(ev)),
            None => timeline.row([format!("(record {loc} is no longer in the store)")]),
        }
    }
    let mut notes = Table::new(["TIME", "ACTOR", "PHASE", "NOTE"]);
    for n in &inc.notes {
        let phase = n.phase.as_str().to_string();
        notes.row([n.time.clone(), n.actor.clone(), phase, n.text.clone()]);
    }
    let mut history = Table::new(["SEQ", "TIME", "ACTOR", "ACTION"]);
    for h in &inc.history {
        let (seq, what) = (h.seq.to_string(), action_text(&h.action));
        history.row([seq, h.time.clone(), h.actor.clone(), what]);
    }
    finish(out.write_all(head.as_bytes()))?;
    let sections = [
        ("ENTITIES".to_string(), entities),
        ("ALERTS".to_string(), alert_rows),
        (format!("TIMELINE ({} entries)", events.len()), timeline),
        ("NOTES".to_string(), notes),
        ("HISTORY".to_string(), history),
    ];
    for (title, t) in &sections {
        finish(writeln!(out, "\n{title}").and_then(|_| t.write(&mut out)))?;
    }
    finish(out.flush())?;
    Ok(ExitCode::SUCCESS)
}

// ---- note, phase, close ----

#[derive(Args)]
pub struct NoteArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    /// The incident (INC-0001).
    pub id: String,
    /// What was found or done (several words are joined with spaces).
    #[arg(required = true, value_name = "TEXT")]
    pub text: Vec<String>,
    #[command(flatten)]
    pub actor: ActorArg,
}

/// Records what `make` decides from the incident's state, checked under the history's lock.
fn record(
    dir: &DataDirArg,
    id: &str,
    actor: &ActorArg,
    make: impl FnOnce(&Incident) -> Result<Action, vigil_incident::IncidentError>,
) -> Result<ExitCode> {
    let mut book = Book::open(&dir.path())?;
    let e = book.append_checked(id, &actor.name(), make)?;
    eprintln!(
        "vigil: {}: {} (by {}, {})",
        e.incident,
        action_text(&e.action),
        e.actor,
        e.time
    );
    Ok(ExitCode::SUCCESS)
}

/// A note's text: trimmed, and not empty (an empty note records nothing anyone can use).
fn note_text(text: &str, flag: &str) -> Result<String> {
    let t = text.trim();
    if t.is_empty() {
        anyhow::bail!("{flag}: empty text");
    }
    Ok(t.to_string())
}

fn note_arg(note: &Option<String>) -> Result<Option<String>> {
    note.as_deref().map(|n| note_text(n, "--note")).transpose()
}

pub fn note(args: NoteArgs) -> Result<ExitCode> {
    let text = note_text(&args.text.join(" "), "TEXT")?;
    record(&args.dir, &args.id, &args.actor, |inc| {
        opening::check_open(inc)?;
        Ok(Action::Note { text })
    })
}

#[derive(Args)]
pub struct PhaseArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    /// The incident (INC-0001).
    pub id: String,
    /// containment, eradication, recovery, lessons_learned or closed (only forward).
    pub phase: String,
    /// What was done in the phase being left.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    #[command(flatten)]
    pub actor: ActorArg,
}

pub fn phase(args: PhaseArgs) -> Result<ExitCode> {
    let to = Phase::parse(&args.phase)?;
    let note = note_arg(&args.note)?;
    record(&args.dir, &args.id, &args.actor, |inc| {
        opening::advance(inc, to, note)
    })
}

#[derive(Args)]
pub struct CloseArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    /// The incident (INC-0001).
    pub id: String,
    /// Why it is closed, what was concluded.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    #[command(flatten)]
    pub actor: ActorArg,
}

pub fn close(args: CloseArgs) -> Result<ExitCode> {
    let note = note_arg(&args.note)?;
    record(&args.dir, &args.id, &args.actor, |inc| {
        opening::advance(inc, Phase::Closed, note)
    })
}
