//! `vigil policy`: the Kubernetes audit policy toolkit.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::io::Write;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde::Serialize;
use vigil_policy::{load_policy, Attributes, Diagnostic, Policy, Severity};

use crate::output::{finish, for_each_audit_event, stdout, write_json_line, Format, Table};

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// For each audit event, the level, omitStages and omitManagedFields the policy gives it.
    Eval {
        /// The audit policy file (audit.k8s.io/v1 Policy YAML).
        #[arg(long)]
        policy: PathBuf,
        /// Audit logs: JSON lines, EventList documents, gzip; `-` or nothing reads stdin.
        inputs: Vec<String>,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: Format,
        /// Treat fields the apiserver would silently drop as errors.
        #[arg(long)]
        strict: bool,
    },
    /// Exit 0 when kube-apiserver would load the policy, 1 when it would not.
    Validate {
        file: PathBuf,
        /// Treat fields the apiserver would silently drop as errors.
        #[arg(long)]
        strict: bool,
    },
    /// Security and cost findings for a policy; exit 1 on errors.
    Lint {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        #[arg(long)]
        strict: bool,
    },
    /// Replay recorded audit logs through a policy: what would be kept, and how much.
    Simulate {
        #[arg(long)]
        policy: PathBuf,
        /// Audit logs recorded at a higher level than the policy asks for.
        #[arg(required = true)]
        logs: Vec<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Rows per breakdown in the table (the JSON has them all).
        #[arg(long, default_value_t = 15)]
        top: usize,
    },
    /// Print a recommended, commented policy that lints clean.
    Baseline,
}

pub fn run(cmd: PolicyCommand) -> Result<ExitCode> {
    match cmd {
        PolicyCommand::Eval {
            policy,
            inputs,
            format,
            strict,
        } => {
            let Some(policy) = load_file(&policy, strict)? else {
                return Ok(ExitCode::from(2));
            };
            eval(&policy, &inputs, format)
        }
        PolicyCommand::Validate { file, strict } => Ok(match load_file(&file, strict)? {
            Some(p) => {
                eprintln!(
                    "{}: valid: kube-apiserver would load it ({} rules)",
                    file.display(),
                    p.rules.len()
                );
                ExitCode::SUCCESS
            }
            None => ExitCode::from(1),
        }),
        PolicyCommand::Lint {
            file,
            format,
            strict,
        } => {
            let Some(policy) = load_file(&file, strict)? else {
                return Ok(ExitCode::from(1));
            };
            lint(&file, &policy, format)
        }
        PolicyCommand::Simulate {
            policy,
            logs,
            format,
            top,
        } => {
            let Some(policy) = load_file(&policy, false)? else {
                return Ok(ExitCode::from(2));
            };
            super::simulate::run(&policy, &logs, format, top)
        }
        PolicyCommand::Baseline => {
            print!("{}", vigil_policy::baseline::BASELINE);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_diagnostic(path: &Path, d: &Diagnostic, as_error: bool) {
    let sev = match (d.severity, as_error) {
        (Severity::Error, _) | (_, true) => "error",
        (Severity::Warning, _) => "warning",
        (Severity::Info, _) => "info",
    };
    let field = if d.field.is_empty() {
        String::new()
    } else {
        format!("{}: ", d.field)
    };
    eprintln!("{}:{}: {sev}: {field}{}", path.display(), d.line, d.message);
}

/// Loads a policy, printing its diagnostics. `None` when kube-apiserver would refuse it (or,
/// with `strict`, when it has fields the apiserver would silently drop).
fn load_file(path: &Path, strict: bool) -> Result<Option<Policy>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read policy file {}", path.display()))?;
    match load_policy(&text) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                print_diagnostic(path, w, strict);
            }
            if strict && !loaded.warnings.is_empty() {
                eprintln!(
                    "{}: rejected: {} field(s) the apiserver would silently drop (--strict)",
                    path.display(),
                    loaded.warnings.len()
                );
                return Ok(None);
            }
            Ok(Some(loaded.policy))
        }
        Err(err) => {
            for w in &err.warnings {
                print_diagnostic(path, w, strict);
            }
            for e in &err.errors {
                print_diagnostic(path, e, true);
            }
            eprintln!(
                "{}: invalid: kube-apiserver would refuse to start with this policy",
                path.display()
            );
            Ok(None)
        }
    }
}

#[derive(Serialize)]
struct EvalLine<'a> {
    #[serde(rename = "auditID")]
    audit_id: &'a str,
    level: vigil_model::Level,
    #[serde(rename = "omitStages")]
    omit_stages: &'a [vigil_model::Stage],
    #[serde(rename = "omitManagedFields")]
    omit_managed_fields: bool,
    rule: Option<usize>,
}

fn eval(policy: &Policy, inputs: &[String], format: Format) -> Result<ExitCode> {
    let mut out = stdout();
    let mut table = Table::new([
        "AUDIT ID",
        "VERB",
        "RESOURCE/PATH",
        "USER",
        "LEVEL",
        "RULE",
        "OMIT STAGES",
    ]);
    let mut write_err = None;
    let stats = for_each_audit_event(inputs, |record| {
        let ev = &record.event;
        let attrs = Attributes::from_event(ev);
        let d = policy.evaluate(&attrs);
        match format {
            Format::Jsonl => {
                let line = EvalLine {
                    audit_id: &ev.audit_id,
                    level: d.level,
                    omit_stages: &d.omit_stages,
                    omit_managed_fields: d.omit_managed_fields,
                    rule: d.rule,
                };
                if let Err(e) = write_json_line(&mut out, &line) {
                    write_err = Some(e);
                    anyhow::bail!("output closed");
                }
            }
            Format::Table => table.row([
                ev.audit_id.clone(),
                attrs.verb.clone(),
                resource_label(&attrs),
                attrs
                    .user
                    .as_ref()
                    .map(|u| u.name.clone())
                    .unwrap_or_default(),
                d.level.to_string(),
                d.rule.map_or("-".into(), |r| r.to_string()),
                d.omit_stages
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ]),
        }
        Ok(())
    });
    if let Some(e) = write_err {
        finish(Err(e))?;
        return Ok(ExitCode::SUCCESS);
    }
    let stats = stats?;
    if format == Format::Table {
        finish(table.write(&mut out))?;
    }
    finish(out.flush())?;
    if stats.events == 0 && stats.rejected > 0 {
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

/// `group/resource/subresource` for resource requests, the path for the others.
pub fn resource_label(a: &Attributes) -> String {
    if !a.resource_request {
        return a.path.clone();
    }
    let mut s = String::new();
    if !a.api_group.is_empty() {
        s.push_str(&a.api_group);
        s.push('/');
    }
    s.push_str(&a.resource);
    if !a.subresource.is_empty() {
        s.push('/');
        s.push_str(&a.subresource);
    }
    s
}

fn lint(path: &Path, policy: &Policy, format: Format) -> Result<ExitCode> {
    let findings = vigil_policy::lint::lint(policy);
    let mut out = stdout();
    match format {
        Format::Jsonl => {
            for f in &findings {
                finish(write_json_line(&mut out, f))?;
            }
        }
        Format::Table => {
            // One block per finding: the why is a paragraph, which no table column holds well.
            for f in &findings {
                let rule = f.rule.map_or(String::new(), |r| format!(" rule {r}"));
                let sev = format!("{:?}", f.severity).to_lowercase();
                let block = format!(
                    "{}:{}:{rule} {sev} [{}]\n  {}\n  why: {}\n\n",
                    path.display(),
                    f.line,
                    f.code,
                    f.message,
                    f.why
                );
                finish(out.write_all(block.as_bytes()))?;
            }
            let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
            eprintln!(
                "{}: {} error(s), {} warning(s), {} info",
                path.display(),
                count(Severity::Error),
                count(Severity::Warning),
                count(Severity::Info)
            );
        }
    }
    finish(out.flush())?;
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    Ok(if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
