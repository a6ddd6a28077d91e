//! `vigil readiness`: is this environment ready for an incident?
//!
//! One report over four things, each finding with what is wrong and how to fix it:
//! - the audit policy (`--policy`): `vigil policy lint`'s findings;
//! - blind detections: built-in Kubernetes rules whose requests the policy drops, or logs at a
//!   level below the fields the rule reads (see `readiness/blind.rs`);
//! - sources (`--config`, the `vigil serve` configuration, and its data directory, or
//!   `--data-dir`): configured sources that delivered nothing or went quiet, and clock skew
//!   between sources (event time against receive time of their newest records);
//! - retention (`DIR/retention`) against PCI DSS 10.5.1: 12 months kept, 3 months online.
//!
//! What cannot be checked from the arguments given is said in `not-checked` findings.
//! Exit code: 1 when any finding is an error, 0 otherwise (2: unreadable arguments).

mod blind;
mod data;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;
use vigil_policy::{load_policy, Policy};
use vigil_store::Reader;

use crate::output::{finish, stdout, Table};

#[derive(Args)]
#[command(
    after_help = "Each finding has an id, a severity (error, warning, info), what is wrong and how to fix it.\nExit status: 0 ready (no error-level finding), 1 not ready (at least one error), 2 unreadable arguments."
)]
pub struct ReadinessArgs {
    /// The audit policy kube-apiserver runs with (--audit-policy-file).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The `vigil serve` configuration: its sources, and its data directory for activity,
    /// clock skew and retention.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A data directory to check (instead of the configuration's).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Output: an aligned table for people, or one JSON document.
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReadinessFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReadinessFormat {
    Table,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sev {
    Info,
    Warning,
    Error,
}

impl Sev {
    fn as_str(self) -> &'static str {
        match self {
            Sev::Info => "info",
            Sev::Warning => "warning",
            Sev::Error => "error",
        }
    }
}

/// One finding of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Stable kebab-case identifier of the check (lint codes for policy findings).
    pub id: String,
    pub severity: Sev,
    pub what: String,
    pub fix: String,
    /// The detection rule id (blind detections).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The policy line concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

impl Finding {
    pub fn new(
        id: &str,
        severity: Sev,
        what: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            id: id.into(),
            severity,
            what: what.into(),
            fix: fix.into(),
            rule: None,
            line: None,
        }
    }
}

#[derive(Serialize)]
struct Section {
    name: &'static str,
    findings: Vec<Finding>,
}

#[derive(Serialize)]
struct Report {
    ready: bool,
    errors: usize,
    warnings: usize,
    infos: usize,
    sections: Vec<Section>,
}

/// How to fix each lint finding.
fn lint_fix(code: &str) -> &'static str {
    use vigil_policy::lint::codes::*;
    match code {
        SENSITIVE_DATA_LOGGED => "log secrets, configmaps, tokenreviews and serviceaccounts/token at Metadata, in a rule above any Request/RequestResponse rule that covers them",
        UNREACHABLE_RULE => "remove the rule, or move it above the broader rule that shadows it",
        NO_CATCH_ALL => "end the policy with `- level: Metadata`",
        CATCH_ALL_NONE => "make the final catch-all `- level: Metadata` (drop the specific noise in rules above it)",
        REQUEST_RECEIVED_NOT_OMITTED => "add `omitStages: [RequestReceived]` at the policy level",
        RESPONSE_COMPLETE_OMITTED => "remove ResponseComplete from omitStages",
        HEALTH_ENDPOINTS_LOGGED => "add `- level: None` with `nonResourceURLs: [/healthz*, /livez*, /readyz*, /metrics]` near the top",
        NOISY_SYSTEM_TRAFFIC => "log routine control-plane reads (leases, endpoints, nodes status) at None or Metadata in a rule above",
        COVERAGE_GAP => "log the named requests at Metadata or above (see `vigil policy baseline`)",
        DISCOVERY_NOT_LOGGED => "log nonResourceURLs /api*, /apis* at Metadata for authenticated callers",
        MANAGED_FIELDS_LOGGED => "add `omitManagedFields: true` at the policy level",
        UNKNOWN_VERB => "use the lower-case request verbs (get, list, watch, create, update, patch, delete, deletecollection)",
        MATCHES_NOTHING => "write resources as lower-case plurals (`pods`, `pods/exec`, `*/status`) and namespaces as names",
        _ => "see `vigil policy lint`",
    }
}

fn field_message(field: &str, message: &str) -> String {
    if field.is_empty() {
        message.to_string()
    } else {
        format!("{field}: {message}")
    }
}

fn policy_findings(path: &Path, out: &mut Vec<Finding>) -> Result<Option<Policy>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read policy file {}", path.display()))?;
    let loaded = match load_policy(&text) {
        Ok(l) => l,
        Err(e) => {
            for d in &e.errors {
                let mut f = Finding::new(
                    "policy-invalid",
                    Sev::Error,
                    format!("{}:{}: {}", path.display(), d.line, field_message(&d.field, &d.message)),
                    "kube-apiserver refuses to start with this policy: fix the line named (`vigil policy validate`)",
                );
                f.line = Some(d.line);
                out.push(f);
            }
            return Ok(None);
        }
    };
    for w in &loaded.warnings {
        let mut f = Finding::new(
            "policy-field-dropped",
            Sev::Warning,
            format!(
                "{}:{}: {}",
                path.display(),
                w.line,
                field_message(&w.field, &w.message)
            ),
            "kube-apiserver silently ignores this: remove it or fix its spelling",
        );
        f.line = Some(w.line);
        out.push(f);
    }
    for l in vigil_policy::lint::lint(&loaded.policy) {
        let sev = match l.severity {
            vigil_policy::Severity::Error => Sev::Error,
            vigil_policy::Severity::Warning => Sev::Warning,
            vigil_policy::Severity::Info => Sev::Info,
        };
        let mut f = Finding::new(l.code, sev, l.message, lint_fix(l.code));
        f.line = (l.line > 0).then_some(l.line);
        out.push(f);
    }
    Ok(Some(loaded.policy))
}

/// The rules `vigil serve` would run: the built-in pack (unless `builtin_rules: false`) and the
/// configuration's `rules:`, with its placeholders.
fn rules_to_check(
    cfg: Option<&vigil_server::config::Config>,
    out: &mut Vec<Finding>,
) -> Result<Vec<blind::RuleNeeds>> {
    let Some(cfg) = cfg else {
        return Ok(blind::builtin_needs());
    };
    let mut placeholders = vigil_detect::builtin::placeholders();
    if let Some(p) = &cfg.placeholders {
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("cannot read placeholders {}", p.display()))?;
        placeholders.extend(
            vigil_detect::builtin::parse_placeholders(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        );
    }
    let mut rules = if cfg.builtin_rules {
        blind::builtin_needs()
    } else {
        Vec::new()
    };
    let mut files = Vec::new();
    for path in &cfg.rules {
        match crate::detection::rule_files(path) {
            Ok(found) => {
                for f in found {
                    let text = std::fs::read_to_string(&f)
                        .with_context(|| format!("cannot read rule file {}", f.display()))?;
                    files.push((f.display().to_string(), text));
                }
            }
            Err(e) => out.push(Finding::new(
                "rules-unreadable",
                Sev::Error,
                format!("{e:#}"),
                "fix `rules:` in the configuration (`vigil config check FILE`)",
            )),
        }
    }
    rules.extend(blind::needs_of_files(&files, &placeholders));
    Ok(rules)
}

pub fn run(args: ReadinessArgs) -> Result<ExitCode> {
    if args.policy.is_none() && args.config.is_none() && args.data_dir.is_none() {
        anyhow::bail!(
            "nothing to check: pass --policy FILE (the audit policy) and --config FILE (the `vigil serve` configuration) or --data-dir DIR"
        );
    }
    let mut sections = Vec::new();

    // The configuration (its problems are reported under sources).
    let mut src_out = Vec::new();
    let cfg = match &args.config {
        Some(path) => match vigil_server::config::load(path) {
            Ok(c) => {
                // What it points at: TLS material, token files.
                for e in vigil_server::check_files(&c) {
                    src_out.push(Finding::new(
                        "config-files",
                        Sev::Error,
                        format!("{}: {e}", path.display()),
                        "`vigil serve` will not start: create or fix the file named (`vigil config check FILE`)",
                    ));
                }
                Some(c)
            }
            Err(errors) => {
                for e in errors {
                    src_out.push(Finding::new(
                        "config-invalid",
                        Sev::Error,
                        format!("{}:{}: {}", path.display(), e.line, e.message),
                        "fix the line named (`vigil config check FILE`)",
                    ));
                }
                None
            }
        },
        None => None,
    };

    // The policy and what it leaves blind: the built-in rules and the configuration's own.
    let mut policy_out = Vec::new();
    let mut blind_out = Vec::new();
    match &args.policy {
        Some(p) => {
            let loaded = policy_findings(p, &mut policy_out)?;
            if loaded.is_none() {
                blind_out.push(Finding::new(
                    "not-checked",
                    Sev::Warning,
                    "the policy is invalid: blind detections were not checked",
                    "fix the policy (the policy-invalid findings above)",
                ));
            }
            if let Some(policy) = loaded {
                let rules = rules_to_check(cfg.as_ref(), &mut blind_out)?;
                blind_out.extend(blind::findings(&policy, &rules));
                if blind_out.is_empty() {
                    blind_out.push(Finding::new(
                        "blind-detection",
                        Sev::Info,
                        "every Kubernetes detection sees the requests and fields it reads",
                        "nothing to do",
                    ));
                }
            }
        }
        None => {
            let f = Finding::new(
                "not-checked",
                Sev::Warning,
                "no --policy: the audit policy and blind detections were not checked",
                "pass the policy kube-apiserver runs with: --policy FILE (its --audit-policy-file)",
            );
            policy_out.push(f);
        }
    }
    sections.push(Section {
        name: "audit policy",
        findings: policy_out,
    });
    sections.push(Section {
        name: "detections",
        findings: blind_out,
    });

    // Sources, clock skew and retention, from the configuration and its data directory.
    let mut ret_out = Vec::new();
    let dir = args
        .data_dir
        .clone()
        .or_else(|| cfg.as_ref().map(|c| c.data_dir.clone()));
    let (why, how) = if args.config.is_some() {
        (
            "the configuration is invalid",
            "fix the configuration (the config-invalid findings above), or pass --data-dir DIR",
        )
    } else {
        (
            "no --config or --data-dir",
            "pass the `vigil serve` configuration: --config FILE (or a data directory: --data-dir DIR)",
        )
    };
    match &dir {
        None => {
            src_out.push(Finding::new(
                "not-checked",
                Sev::Warning,
                format!("{why}: sources, clock skew and retention were not checked"),
                how,
            ));
            ret_out.push(Finding::new(
                "not-checked",
                Sev::Warning,
                format!("{why}: retention (PCI DSS 10.5.1: 12 months kept, 3 months online) was not checked"),
                how,
            ));
        }
        Some(dir) => {
            match Reader::open(dir) {
                Ok(reader) => {
                    let now = chrono::Utc::now().timestamp_micros();
                    data::sources(dir, &reader, cfg.as_ref(), now, &mut src_out);
                    let datasets: BTreeSet<String> =
                        reader.parts.iter().map(|p| p.dataset.clone()).collect();
                    data::retention(dir, &datasets, &mut ret_out);
                }
                Err(_) => {
                    src_out.push(Finding::new(
                    "not-checked",
                    Sev::Warning,
                    format!(
                        "{} is not a Vigil data directory (yet): whether sources deliver, and their clock skew, were not checked",
                        dir.display()
                    ),
                    "start `vigil serve` with this configuration (or point --data-dir at the store in use), then run readiness again",
                ));
                    if dir.join("retention").exists() {
                        data::retention(dir, &BTreeSet::new(), &mut ret_out);
                    } else {
                        ret_out.push(Finding::new(
                        "not-checked",
                        Sev::Info,
                        format!("retention: no {}/retention yet: nothing would be removed", dir.display()),
                        "for PCI DSS 10.5.1 keep at least 12 months: write `default: 400d` there",
                    ));
                    }
                }
            }
        }
    }
    if let Some(c) = &cfg {
        if c.sources.is_empty() {
            // data::sources reports it when the directory exists.
            if !src_out.iter().any(|f| f.id == "no-sources") {
                src_out.push(Finding::new(
                    "no-sources",
                    Sev::Error,
                    "the configuration has no sources: nothing is collected",
                    "add sources (k8s_audit_webhook for kube-apiserver, file or syslog for hosts)",
                ));
            }
        } else if !c.detection.enabled {
            src_out.push(Finding::new(
                "detection-off",
                Sev::Error,
                "detection is disabled in the configuration: nothing raises alerts",
                "remove `detection: {enabled: false}`",
            ));
        }
    }
    sections.push(Section {
        name: "sources",
        findings: src_out,
    });
    sections.push(Section {
        name: "retention",
        findings: ret_out,
    });

    for s in &mut sections {
        s.findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    }
    let count = |sev: Sev| {
        sections
            .iter()
            .flat_map(|s| &s.findings)
            .filter(|f| f.severity == sev)
            .count()
    };
    let report = Report {
        ready: count(Sev::Error) == 0,
        errors: count(Sev::Error),
        warnings: count(Sev::Warning),
        infos: count(Sev::Info),
        sections,
    };
    let mut out = stdout();
    match args.format {
        ReadinessFormat::Json => {
            finish(
                serde_json::to_writer_pretty(&mut out, &report)
                    .map_err(std::io::Error::other)
                    .and_then(|_| writeln!(out)),
            )?;
        }
        ReadinessFormat::Table => {
            // One aligned row per finding (severity, check, what), its fix on the next line.
            for s in &report.sections {
                finish(writeln!(out, "{}", s.name.to_uppercase()))?;
                if s.findings.is_empty() {
                    finish(writeln!(out, "  ok"))?;
                }
                let mut t = Table::new(["  SEVERITY", "ID", "WHAT / FIX"]);
                for f in &s.findings {
                    t.row([
                        format!("  {}", f.severity.as_str()),
                        f.id.clone(),
                        f.what.clone(),
                    ]);
                    t.row([String::new(), String::new(), format!("fix: {}", f.fix)]);
                }
                if !s.findings.is_empty() {
                    finish(t.write(&mut out))?;
                }
                finish(writeln!(out))?;
            }
            finish(writeln!(
                out,
                "{}: {} errors, {} warnings, {} notes",
                if report.ready { "ready" } else { "not ready" },
                report.errors,
                report.warnings,
                report.infos
            ))?;
        }
    }
    finish(out.flush())?;
    Ok(if report.ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
