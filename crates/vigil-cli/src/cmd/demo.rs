//! `vigil demo`: a built-in multi-source attack, end to end.
//!
//! The attack is the committed scenario (`examples/scenario/`, embedded in the binary): SSH
//! brute force against the bastion, then a login from the same address, `kubectl` from the
//! bastion with a stolen CI service-account token, secrets enumerated across namespaces, a
//! privileged pod, exec into pods, and a ClusterRoleBinding to cluster-admin, with routine
//! traffic and decoys around it (auth.log, auditd, Zeek conn, kube-apiserver audit).
//!
//! It is replayed through the same pipeline as `vigil serve` (`vigil_server::replay`: file
//! sources, the writer's group commits into the event store, streaming detection with the
//! built-in pack, alerts stored as records) into a fresh data directory (a temporary one, removed
//! at the end, or `--keep DIR`). Then: the alerts (as `vigil alerts` shows them), each attack
//! step with the alerts that caught it, an incident opened from the high-level alerts, and the
//! incident's report and runbook.
//!
//! Timestamps are the scenario's own, fixed (2026-11-20, 10:00-10:03 UTC), so that the output
//! is the same on every run; use `--since 2026-11-20` style bounds (not `24h`) on a kept
//! directory. Exit 1 when an attack step raised no alert (the demo is also a test).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use vigil_incident::alerts::StoredAlert;
use vigil_store::reader::{micros_rfc3339, Kinds, SearchOptions};
use vigil_store::Reader;

use crate::cmd::incident::{evidence, lifecycle};
use crate::cmd::store::DataDirArg;
use crate::detection::{load_rules, RuleOptions};
use crate::output::Format;

#[derive(Args)]
#[command(
    after_help = "The attack: SSH brute force against a bastion, a login from the same address, kubectl from the bastion with a stolen service-account token, secrets enumerated, a privileged pod, exec into pods, a ClusterRoleBinding to cluster-admin (examples/scenario, built in; fixed dates, 2026-11-20).\nExit status: 0, or 1 when an attack step raised no alert."
)]
pub struct DemoArgs {
    /// Keep the data directory here (it must not exist yet, or be empty) for further
    /// `vigil search`, `timeline`, `alerts` and `incident` commands.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

/// The embedded logs: (file name, format, what it is).
const INPUTS: &[(&str, &str, &str, &str)] = &[
    (
        "auth.log",
        "linux.auth",
        "bastion sshd and sudo (auth.log)",
        include_str!("../../../../examples/scenario/auth.log"),
    ),
    (
        "audit.log",
        "auditd",
        "bastion process executions (auditd)",
        include_str!("../../../../examples/scenario/audit.log"),
    ),
    (
        "conn.log",
        "zeek.conn",
        "network connections (Zeek conn.log)",
        include_str!("../../../../examples/scenario/conn.log"),
    ),
    (
        "k8s-audit.jsonl",
        "k8s.audit",
        "kube-apiserver audit log",
        include_str!("../../../../examples/scenario/k8s-audit.jsonl"),
    ),
];

/// The attack's steps and the rules (titles) that should catch each.
const STEPS: &[(&str, &[&str])] = &[
    (
        "SSH brute force against the bastion",
        &[
            "SSH Brute Force From One Address",
            "SSH Password Spraying From One Address",
        ],
    ),
    (
        "login from the brute-forcing address",
        &["SSH Login Succeeds After a Brute Force From the Same Address"],
    ),
    (
        "kubectl from the bastion with a stolen token",
        &[
            "Service Account Token Used From a Host With an SSH Login",
            "Host Reaches the Kubernetes API Right After an SSH Login",
        ],
    ),
    (
        "secrets enumerated across namespaces",
        &[
            "Secrets Enumerated Across Namespaces",
            "Secrets Listed or Watched",
        ],
    ),
    (
        "privileged pod created",
        &[
            "Privileged Container Created",
            "Pod Sharing the Host PID or IPC Namespace Created",
            "Sensitive Host Path Mounted Into a Pod",
        ],
    ),
    (
        "exec into pods",
        &[
            "Shell or Network Tool Executed in a Pod Container",
            "Commands Executed in Pods of Several Namespaces",
        ],
    ),
    (
        "ClusterRoleBinding to cluster-admin",
        &["Binding to a Cluster-Admin Role Created or Changed"],
    ),
];

/// A data directory made for this run, removed on drop unless kept.
struct Workdir {
    root: PathBuf,
    remove: bool,
}

impl Drop for Workdir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

fn workdir(keep: &Option<PathBuf>) -> Result<Workdir> {
    match keep {
        Some(dir) => {
            if dir.exists()
                && std::fs::read_dir(dir)
                    .with_context(|| format!("cannot read {}", dir.display()))?
                    .next()
                    .is_some()
            {
                bail!(
                    "--keep {}: the directory is not empty (the demo writes a fresh data directory)",
                    dir.display()
                );
            }
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            Ok(Workdir {
                root: dir.canonicalize()?,
                remove: false,
            })
        }
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let root =
                std::env::temp_dir().join(format!("vigil-demo-{}-{nanos:09}", std::process::id()));
            std::fs::create_dir_all(&root)
                .with_context(|| format!("cannot create {}", root.display()))?;
            Ok(Workdir { root, remove: true })
        }
    }
}

/// The `vigil serve` configuration of the replay: one file source per log.
fn config_text(data: &Path, inputs: &Path) -> String {
    let mut s = format!("data_dir: \"{}\"\nsources:\n", data.display());
    for (file, format, _, _) in INPUTS {
        s.push_str(&format!(
            "  - type: file\n    name: {}\n    paths: [\"{}\"]\n    format: {format}\n",
            file.split('.').next().unwrap_or(file),
            inputs.join(file).display()
        ));
    }
    // Every event waits for the others, so that detection sees all four sources in event
    // time (the files are read one after the other); the replay evaluates what is buffered
    // when it drains.
    s.push_str("detection:\n  allowed_lateness: 1h\n");
    s
}

fn loader() -> vigil_server::detect::RulesLoader {
    Arc::new(|| {
        let loaded = load_rules(&RuleOptions {
            paths: Vec::new(),
            builtin: true,
            placeholders: None,
        })
        .map_err(|e| format!("{e:#}"))?;
        Ok(vigil_server::detect::Rules::new(
            loaded.set,
            &loaded.sources,
        ))
    })
}

fn heading(out: &mut impl Write, title: &str) -> std::io::Result<()> {
    writeln!(out, "\n== {title} ==\n")
}

fn stored_alerts(data: &Path) -> Result<Vec<StoredAlert>> {
    let reader = Reader::open(data)?;
    let found = reader.search(
        &vigil_store::query::parse("*").map_err(|e| anyhow::anyhow!("{e}"))?,
        &SearchOptions {
            kinds: Kinds::Alerts,
            ..SearchOptions::default()
        },
    )?;
    let mut alerts: Vec<StoredAlert> = found
        .events
        .iter()
        .filter_map(StoredAlert::from_stored)
        .collect();
    alerts.sort_by(|a, b| (a.time, &a.id).cmp(&(b.time, &b.id)));
    Ok(alerts)
}

pub fn run(args: DemoArgs) -> Result<ExitCode> {
    let work = workdir(&args.keep)?;
    let (data, inputs) = match &args.keep {
        Some(_) => (work.root.clone(), work.root.join("demo-input")),
        None => (work.root.join("data"), work.root.join("input")),
    };
    std::fs::create_dir_all(&inputs)?;
    for (file, _, _, text) in INPUTS {
        std::fs::write(inputs.join(file), text)
            .with_context(|| format!("cannot write {}", inputs.join(file).display()))?;
    }
    let cfg = vigil_server::config::parse(&config_text(&data, &inputs), &work.root, &|_| None)
        .map_err(|errors| {
            anyhow::anyhow!(
                "demo configuration: {}",
                errors
                    .iter()
                    .map(|e| format!("line {}: {}", e.line, e.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })?;

    let mut out = std::io::stdout();
    writeln!(
        out,
        "vigil demo: a built-in attack on a Kubernetes cluster and its bastion host, replayed through\n\
         the `vigil serve` pipeline (file sources -> event store -> streaming detection with the\n\
         built-in rules) into {}",
        data.display()
    )?;
    let replayed = vigil_server::replay::replay_files(cfg, Some(loader()))
        .map_err(|e| anyhow::anyhow!("replay: {e}"))?;
    heading(&mut out, "1. Sources")?;
    let mut t = crate::output::Table::new(["SOURCE", "WHAT", "EVENTS", "STORED", "REJECTED"]);
    for ((file, _, what, _), s) in INPUTS.iter().zip(&replayed.sources) {
        t.row([
            file.to_string(),
            what.to_string(),
            s.received.to_string(),
            s.stored.to_string(),
            s.rejected.to_string(),
        ]);
    }
    t.write(&mut out)?;

    // The alerts, as `vigil alerts` shows them.
    heading(&mut out, "2. Alerts (vigil alerts)")?;
    out.flush()?;
    lifecycle::alerts(lifecycle::AlertsArgs {
        dir: DataDirArg {
            data_dir: Some(data.clone()),
        },
        since: None,
        until: None,
        format: Format::Table,
    })?;

    // Each attack step, and what caught it.
    let alerts = stored_alerts(&data)?;
    heading(&mut out, "3. The attack, step by step")?;
    let mut t = crate::output::Table::new(["STEP", "FIRST ALERT", "CAUGHT BY"]);
    let mut missed = Vec::new();
    for (step, rules) in STEPS {
        let hits: Vec<&StoredAlert> = alerts
            .iter()
            .filter(|a| rules.contains(&a.title.as_str()))
            .collect();
        let mut titles: Vec<&str> = Vec::new();
        for h in &hits {
            if !titles.contains(&h.title.as_str()) {
                titles.push(&h.title);
            }
        }
        if hits.is_empty() {
            missed.push(*step);
        }
        t.row([
            step.to_string(),
            hits.first()
                .map(|a| micros_rfc3339(a.time))
                .unwrap_or_else(|| "MISSED".into()),
            titles.join("; "),
        ]);
    }
    t.write(&mut out)?;

    // The incident, from the high-level alerts.
    let high: Vec<String> = alerts
        .iter()
        .filter(|a| a.level_rank() >= vigil_incident::alerts::level_rank("high"))
        .map(|a| a.id.clone())
        .collect();
    if high.is_empty() {
        bail!("no high-level alert to open an incident from");
    }
    let mut req = vigil_incident::open::OpenRequest::new("vigil demo");
    req.alerts = high.clone();
    let opened = vigil_incident::open::open(&data, &req)?;
    heading(
        &mut out,
        &format!(
            "4. Incident {} (vigil incident open --alert ... for the {} high-level alerts)",
            opened.id,
            high.len()
        ),
    )?;
    if let vigil_incident::Action::Opened {
        title,
        alerts: from,
        related,
        entities,
        timeline,
        ..
    } = &opened.entry.action
    {
        writeln!(out, "{}  {title}", opened.id)?;
        writeln!(
            out,
            "opened from {} alerts; {} related alerts; {} events and alerts in its timeline",
            from.len(),
            related.len(),
            timeline.len()
        )?;
        let mut t = crate::output::Table::new(["ENTITY", "VALUE"]);
        for e in entities {
            t.row([e.kind.as_str().to_string(), e.value.clone()]);
        }
        writeln!(out)?;
        t.write(&mut out)?;
    }

    let dir_arg = || DataDirArg {
        data_dir: Some(data.clone()),
    };
    heading(
        &mut out,
        &format!("5. Report (vigil incident report {})", opened.id),
    )?;
    out.flush()?;
    evidence::report(evidence::ReportArgs {
        dir: dir_arg(),
        id: opened.id.clone(),
        format: evidence::ReportFormat::Md,
        policy: None,
        out: None,
    })?;
    heading(
        &mut out,
        &format!("6. Runbook (vigil incident runbook {})", opened.id),
    )?;
    out.flush()?;
    evidence::runbook(evidence::RunbookArgs {
        dir: dir_arg(),
        id: opened.id.clone(),
        out: None,
    })?;

    writeln!(out)?;
    match &args.keep {
        Some(_) => writeln!(
            out,
            "The data directory is kept: try\n  vigil alerts --data-dir {d}\n  vigil incident show --data-dir {d} {id}\n  vigil incident scope --data-dir {d} {id}\n  vigil timeline --data-dir {d} --ip 10.0.0.5\n  vigil search --data-dir {d} 'resource:secrets AND verb:list'",
            d = data.display(),
            id = opened.id
        )?,
        None => writeln!(
            out,
            "(the data directory was temporary; `vigil demo --keep DIR` keeps it for `vigil search`, `timeline`, `alerts` and `incident`)"
        )?,
    }
    out.flush()?;
    if !missed.is_empty() {
        eprintln!("vigil demo: no alert for: {}", missed.join(", "));
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
