//! `vigil detect`: run Sigma rules (the built-in pack and the user's) over logs, print alerts.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use vigil_model::alert::{level_rank, Alert};

use crate::detection::{alert_line_table, load_rules_with_lateness, Detector, RuleOptions};
use crate::input::{read_inputs, InputOptions};
use crate::output::{finish, stdout, write_json_line, Format, Table};

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
    let stats = read_inputs(&args.inputs, &args.input, |item| {
        detector.process(item, &mut emit)
    })
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
