//! `vigil rules validate|list|test` and `vigil explain`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;
use vigil_detect::{builtin, Event, RuleSet};

use crate::detection::{load_rules, rule_files, LoadedRules, RuleOptions};
use crate::output::{finish, stdout, write_json_line, Format, Table};

#[derive(Args, Clone)]
pub struct RuleArgs {
    /// A Sigma rule file or a directory of them; repeatable.
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,
    /// Leave out the built-in rule pack.
    #[arg(long)]
    pub no_default_rules: bool,
    /// Values for `|expand` placeholders (YAML: name -> list), over the built-in defaults.
    #[arg(long, value_name = "FILE")]
    pub placeholders: Option<PathBuf>,
}

impl RuleArgs {
    pub fn load(&self) -> Result<LoadedRules> {
        load_rules(&RuleOptions {
            paths: self.rules.clone(),
            builtin: !self.no_default_rules,
            placeholders: self.placeholders.clone(),
        })
    }
}

#[derive(Subcommand)]
pub enum RulesCommand {
    /// Check rule files: every rule that cannot run is named with file, line and reason; exit 1 if any.
    Validate {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long, value_name = "FILE")]
        placeholders: Option<PathBuf>,
    },
    /// List the rules that would run.
    List {
        #[command(flatten)]
        rules: RuleArgs,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Run every rule against its fixtures (`tests/<rule file stem>/match-*.json` must fire it,
    /// `nomatch-*.json` must not; `*.jsonl` fixtures are event sequences for correlations);
    /// exit 1 on any failure.
    Test {
        #[command(flatten)]
        rules: RuleArgs,
    },
}

#[derive(Args)]
pub struct ExplainArgs {
    /// The rule: its id, name or title.
    #[arg(long)]
    pub rule: String,
    /// A file holding one event as JSON (`-`: standard input).
    pub event: String,
    /// The event's dataset.
    #[arg(long, default_value = "k8s.audit")]
    pub dataset: String,
    #[command(flatten)]
    pub rules: RuleArgs,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

pub fn run(cmd: RulesCommand) -> Result<ExitCode> {
    match cmd {
        RulesCommand::Validate {
            paths,
            placeholders,
        } => {
            let loaded = load_rules(&RuleOptions {
                paths,
                builtin: false,
                placeholders,
            })?;
            let n = loaded.set.rules().len();
            if loaded.errors.is_empty() {
                eprintln!("vigil: {n} rules valid");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("vigil: {n} rules valid, {} rejected", loaded.errors.len());
                Ok(ExitCode::from(1))
            }
        }
        RulesCommand::List { rules, format } => list(&rules.load()?, format),
        RulesCommand::Test { rules } => test(&rules),
    }
}

#[derive(Serialize)]
struct ListRow<'a> {
    id: Option<&'a str>,
    title: &'a str,
    level: Option<&'a str>,
    status: Option<&'a str>,
    kind: vigil_detect::RuleKind,
    datasets: &'a [String],
    tags: &'a [String],
    origin: &'a str,
    line: usize,
}

fn list(loaded: &LoadedRules, format: Format) -> Result<ExitCode> {
    let mut out = stdout();
    let mut table = Table::new(["ID", "LEVEL", "TITLE", "DATASETS", "TAGS"]);
    for r in loaded.set.rules() {
        let row = ListRow {
            id: r.id.as_deref(),
            title: &r.title,
            level: r.level.as_deref(),
            status: r.status.as_deref(),
            kind: r.kind,
            datasets: &r.datasets,
            tags: &r.tags,
            origin: &r.origin,
            line: r.line,
        };
        match format {
            Format::Jsonl => finish(write_json_line(&mut out, &row))?,
            Format::Table => table.row([
                r.id.clone().unwrap_or_default(),
                r.level.clone().unwrap_or_default(),
                r.title.clone(),
                r.datasets.join(","),
                r.tags.join(" "),
            ]),
        }
    }
    if format == Format::Table {
        finish(table.write(&mut out))?;
    }
    finish(out.flush())?;
    Ok(ExitCode::SUCCESS)
}

/// `(rule origin, fixture name, JSON text)` for user rule paths: `<dir>/tests/<stem>/*.json`.
fn user_fixtures(paths: &[PathBuf]) -> Result<Vec<(String, String, String)>> {
    let mut out = Vec::new();
    for root in paths {
        for file in rule_files(root)? {
            let (Some(dir), Some(stem)) = (file.parent(), file.file_stem()) else {
                continue;
            };
            let fixture_dir = dir.join("tests").join(stem);
            let Ok(entries) = std::fs::read_dir(&fixture_dir) else {
                continue;
            };
            let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            names.sort();
            for path in names
                .into_iter()
                .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "jsonl"))
            {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read fixture {}", path.display()))?;
                let name = path
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                out.push((file.display().to_string(), name, text));
            }
        }
    }
    Ok(out)
}

fn test(args: &RuleArgs) -> Result<ExitCode> {
    let loaded = args.load()?;
    let mut fixtures: Vec<(String, String, String)> = Vec::new();
    if !args.no_default_rules {
        fixtures.extend(builtin::fixtures().iter().map(|(rule, name, text)| {
            (
                format!("builtin:{rule}"),
                name.to_string(),
                text.to_string(),
            )
        }));
    }
    fixtures.extend(user_fixtures(&args.rules)?);
    let (mut passed, mut failed) = (0, 0);
    let mut tested = vec![false; loaded.set.rules().len()];
    for (origin, name, text) in &fixtures {
        let Some(idx) = builtin::fixture_target(&loaded.set, origin) else {
            eprintln!("FAIL {origin}: fixture {name}: no loaded rule comes from this file");
            failed += 1;
            continue;
        };
        for (t, r) in tested.iter_mut().zip(loaded.set.rules()) {
            *t |= &r.origin == origin;
        }
        let info = &loaded.set.rules()[idx];
        let fired = match builtin::fixture_fires(&loaded.set, idx, name, text) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("FAIL {origin}: {e}");
                failed += 1;
                continue;
            }
        };
        let expected = name.starts_with("match");
        if fired == expected {
            passed += 1;
        } else {
            failed += 1;
            let what = if expected {
                "should fire but did not"
            } else {
                "fired but should not"
            };
            eprintln!(
                "FAIL {origin}: {name}: {what} (see `vigil explain --rule {} FIXTURE`)",
                info.id.as_deref().unwrap_or(&info.title)
            );
        }
    }
    let untested: Vec<&str> = loaded
        .set
        .rules()
        .iter()
        .zip(&tested)
        .filter(|(_, t)| !**t)
        .map(|(r, _)| r.origin.as_str())
        .collect();
    let mut untested = untested;
    untested.dedup();
    for origin in &untested {
        eprintln!("note: {origin}: no fixtures");
    }
    println!("rules test: {passed} passed, {failed} failed");
    Ok(if failed > 0 || !loaded.errors.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn find_rule(set: &RuleSet, wanted: &str) -> Result<usize> {
    let rules = set.rules();
    let found = rules.iter().position(|r| {
        r.id.as_deref() == Some(wanted) || r.name.as_deref() == Some(wanted) || r.title == wanted
    });
    match found {
        Some(i) => Ok(i),
        None => bail!("no rule with id, name or title {wanted:?} (see `vigil rules list`)"),
    }
}

pub fn explain(args: ExplainArgs) -> Result<ExitCode> {
    let loaded = args.rules.load()?;
    let idx = find_rule(&loaded.set, &args.rule)?;
    let text = if args.event == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the event from stdin")?
    } else {
        std::fs::read_to_string(Path::new(&args.event))
            .with_context(|| format!("cannot read event file {}", args.event))?
    };
    let doc: serde_json::Value = serde_json::from_str(text.trim())
        .with_context(|| format!("{}: expected one JSON event", args.event))?;
    let ev = Event::with_raw(&args.dataset, &doc, text.trim());
    let Some(explanation) = loaded.set.explain(idx, &ev) else {
        bail!(
            "rule {:?} is a correlation; explain works on detection rules",
            args.rule
        );
    };
    let mut out = stdout();
    match args.format {
        Format::Jsonl => finish(write_json_line(&mut out, &explanation))?,
        Format::Table => finish(write!(out, "{explanation}"))?,
    }
    finish(out.flush())?;
    Ok(ExitCode::SUCCESS)
}
