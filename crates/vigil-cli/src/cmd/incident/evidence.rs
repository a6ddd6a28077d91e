//! `vigil incident scope|runbook|report|export|verify`: what the entities touched, the response
//! steps, the report, and the evidence archive with its chain-of-custody check.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};
use vigil_incident::model::EntityKind;
use vigil_incident::scope::{acts, Ev};
use vigil_incident::{Book, Incident};
use vigil_store::reader::{Kinds, SearchOptions};
use vigil_store::Reader;

use crate::cmd::store::DataDirArg;

/// An incident with its events, read from the data directory.
struct Loaded {
    dir: PathBuf,
    incident: Incident,
    /// The timeline (events and alerts), plus alerts of the incident not in it.
    timeline: Vec<Ev>,
}

fn load(dir: &DataDirArg, id: &str) -> Result<(Loaded, Reader)> {
    let path = dir.path();
    let incident = Book::open(&path)?.get(id)?;
    let reader = Reader::open(&path)?;
    let mut timeline = Vec::new();
    let mut missing = 0usize;
    for loc in &incident.timeline {
        match reader.get(*loc)? {
            Some(e) => timeline.push(Ev::from_stored(&e)),
            None => missing += 1,
        }
    }
    if missing > 0 {
        eprintln!(
            "vigil: warning: {missing} timeline record(s) of {} are not in the store any more \
             (retention?)",
            incident.id
        );
    }
    let have: BTreeSet<String> = timeline
        .iter()
        .filter(|e| e.alert)
        .filter_map(|e| e.raw.get("id").and_then(|v| v.as_str()).map(String::from))
        .collect();
    for aid in incident.alerts.iter().chain(&incident.related) {
        if have.contains(aid) {
            continue;
        }
        for loc in reader.locate_id(aid) {
            if let Some(e) = reader.get(loc)? {
                if e.is_alert() && e.original().get("id").and_then(|v| v.as_str()) == Some(aid) {
                    timeline.push(Ev::from_stored(&e));
                }
            }
        }
    }
    timeline.sort_by_key(|e| (e.time, e.loc));
    timeline.dedup_by_key(|e| e.loc);
    Ok((
        Loaded {
            dir: path,
            incident,
            timeline,
        },
        reader,
    ))
}

/// The timeline plus every event from the addresses the incident's identities used in its
/// window (to find other identities behind the same address).
fn with_addresses(l: &Loaded, reader: &Reader) -> Result<Vec<Ev>> {
    let inc = &l.incident;
    let mut addrs = BTreeSet::new();
    for ent in &inc.entities {
        match ent.kind {
            EntityKind::Ip => {
                addrs.insert(ent.value.clone());
            }
            EntityKind::User | EntityKind::ServiceAccount => {
                for e in l.timeline.iter().filter(|e| acts(ent, e)) {
                    if let Some(ip) = e.str("source.ip") {
                        addrs.insert(ip.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    let mut all = l.timeline.clone();
    let opts = SearchOptions {
        since: (inc.until > inc.since).then_some(inc.since),
        until: (inc.until > inc.since).then_some(inc.until),
        kinds: Kinds::Events,
        ..Default::default()
    };
    for a in addrs
        .iter()
        .filter(|a| a.parse::<std::net::IpAddr>().is_ok())
    {
        let q = vigil_store::query::parse(&format!("source.ip:{a}"))?;
        for e in reader.search(&q, &opts)?.events {
            all.push(Ev::from_stored(&e));
        }
    }
    all.sort_by_key(|e| (e.time, e.loc));
    all.dedup_by_key(|e| e.loc);
    Ok(all)
}

fn scope_of(l: &Loaded, reader: &Reader) -> Result<vigil_incident::scope::Scope> {
    let all = with_addresses(l, reader)?;
    Ok(vigil_incident::scope::scope(&l.incident, &all))
}

fn runbook_of(l: &Loaded, scope: &vigil_incident::scope::Scope) -> String {
    vigil_incident::runbook::runbook(&l.incident, scope, &l.dir.display().to_string())
}

/// Writes `bytes` to `out` (atomically: a temporary file renamed), or stdout without `out`.
fn emit(out: Option<&Path>, bytes: &[u8]) -> Result<()> {
    match out {
        None => {
            use std::io::Write;
            std::io::stdout().write_all(bytes)?;
            Ok(())
        }
        Some(p) => {
            let tmp = p.with_extension("tmp-vigil");
            std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, p).with_context(|| format!("writing {}", p.display()))?;
            Ok(())
        }
    }
}

// ---- scope ----

#[derive(Clone, Copy, ValueEnum)]
pub enum ScopeFormat {
    Text,
    Json,
}

#[derive(Args)]
pub struct ScopeArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    /// The incident (INC-0001).
    pub id: String,
    #[arg(long, value_enum, default_value = "text")]
    pub format: ScopeFormat,
}

pub fn scope(args: ScopeArgs) -> Result<ExitCode> {
    let (l, reader) = load(&args.dir, &args.id)?;
    let s = scope_of(&l, &reader)?;
    let text = match args.format {
        ScopeFormat::Text => s.to_text(),
        ScopeFormat::Json => serde_json::to_string_pretty(&s)? + "\n",
    };
    emit(None, text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

// ---- runbook ----

#[derive(Args)]
pub struct RunbookArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    /// The incident (INC-0001).
    pub id: String,
    /// Write the runbook (Markdown) to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn runbook(args: RunbookArgs) -> Result<ExitCode> {
    let (l, reader) = load(&args.dir, &args.id)?;
    let s = scope_of(&l, &reader)?;
    emit(args.out.as_deref(), runbook_of(&l, &s).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

// ---- report ----

#[derive(Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    Md,
    Html,
}

#[derive(Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    /// The incident (INC-0001).
    pub id: String,
    #[arg(long, value_enum, default_value = "md")]
    pub format: ReportFormat,
    /// The cluster's audit policy: the report names the policy rule that hid request bodies.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Write the report to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn report(args: ReportArgs) -> Result<ExitCode> {
    let policy = match &args.policy {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            let loaded =
                vigil_policy::load_policy(&text).map_err(|e| anyhow!("{}: {e}", p.display()))?;
            Some(loaded.policy)
        }
        None => None,
    };
    let (l, reader) = load(&args.dir, &args.id)?;
    let s = scope_of(&l, &reader)?;
    let blocks = vigil_incident::report::build(&vigil_incident::report::ReportInput {
        incident: &l.incident,
        events: &l.timeline,
        scope: &s,
        policy: policy.as_ref(),
    });
    let text = match args.format {
        ReportFormat::Md => vigil_incident::report::markdown(&blocks),
        ReportFormat::Html => vigil_incident::report::html(&blocks),
    };
    emit(args.out.as_deref(), text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

// ---- export ----

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    /// The incident (INC-0001).
    pub id: String,
    /// The archive to write (.tar.gz).
    #[arg(long, value_name = "FILE.tar.gz")]
    pub out: PathBuf,
}

pub fn export(args: ExportArgs) -> Result<ExitCode> {
    let (l, reader) = load(&args.dir, &args.id)?;
    let s = scope_of(&l, &reader)?;
    let rb = runbook_of(&l, &s);
    let report = vigil_incident::report::markdown(&vigil_incident::report::build(
        &vigil_incident::report::ReportInput {
            incident: &l.incident,
            events: &l.timeline,
            scope: &s,
            policy: None,
        },
    ));
    if !l.dir.join(vigil_store::chain::SECRET_FILE).exists() {
        bail!(
            "{}: no signing key in the data directory: the export cannot be signed",
            l.dir.display()
        );
    }
    let key = vigil_store::chain::load_or_create_key(&l.dir)?;
    let partitions: BTreeSet<String> = l.timeline.iter().map(|e| e.partition.clone()).collect();
    let checkpoints = vigil_incident::export::latest_checkpoints(&l.dir, &partitions)?;
    let now = chrono::Utc::now();
    let files = vigil_incident::export::files(&vigil_incident::export::ExportInput {
        incident: &l.incident,
        events: &l.timeline,
        runbook: &rb,
        report: Some(&report),
        checkpoints,
        key: &key,
        created: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })?;
    let bytes = vigil_incident::export::archive(&files, now.timestamp().max(0) as u64)?;
    emit(Some(&args.out), &bytes)?;
    let alerts = l.timeline.iter().filter(|e| e.alert).count();
    eprintln!(
        "vigil: {}: {} events, {} alerts, {} files, signed by key {} into {}",
        l.incident.id,
        l.timeline.len() - alerts,
        alerts,
        files.len(),
        vigil_store::chain::hex(key.verifying_key().as_bytes()),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

// ---- verify ----

#[derive(Args)]
pub struct VerifyArgs {
    /// The evidence archive (from `vigil incident export`).
    pub file: PathBuf,
    /// The store's public key (hex, or a file holding it), obtained out of band (`vigil verify
    /// --export-public-key` on the store). Without it the key enclosed in the archive is used,
    /// which proves integrity but not origin.
    #[arg(long, value_name = "HEX|FILE")]
    pub public_key: Option<String>,
}

pub fn verify(args: VerifyArgs) -> Result<ExitCode> {
    let key = match &args.public_key {
        Some(k) => {
            let text = if Path::new(k).exists() {
                std::fs::read_to_string(k).with_context(|| format!("reading {k}"))?
            } else {
                k.clone()
            };
            Some(
                vigil_store::chain::parse_public_key(&text)
                    .ok_or_else(|| anyhow!("--public-key: not an Ed25519 public key in hex"))?,
            )
        }
        None => None,
    };
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let v = vigil_incident::export::verify(&bytes, key.as_ref());
    for p in &v.problems {
        println!("FAIL {p}");
    }
    if !v.problems.is_empty() {
        eprintln!(
            "vigil: {}: {} problem(s): the evidence differs from what was exported",
            args.file.display(),
            v.problems.len()
        );
        return Ok(ExitCode::from(1));
    }
    println!(
        "intact: incident {}, {} files, {} events covered by {} signed checkpoint(s); key {}",
        v.incident, v.files, v.events, v.checkpoints, v.key
    );
    if v.key_from_archive {
        eprintln!(
            "vigil: note: checked with the key enclosed in the archive; pass --public-key with \
             the store's key obtained out of band to prove where it came from"
        );
    }
    Ok(ExitCode::SUCCESS)
}
