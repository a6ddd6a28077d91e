//! `vigil serve --config FILE` and `vigil config check FILE`. The service is `vigil-server`;
//! this is flags, the rule loader (the same as `vigil detect`'s) and error rendering.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use vigil_server::config::{self, Config, ConfigError};
use vigil_server::detect::{Rules, RulesLoader};

use crate::detection::{load_rules, RuleOptions};

#[derive(Args)]
pub struct ServeArgs {
    /// The configuration file (YAML; `vigil config check FILE` validates it).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate a `vigil serve` configuration: each error with its line; exit 1 if any.
    Check {
        /// The configuration file.
        file: PathBuf,
    },
}

fn render(file: &Path, errors: &[ConfigError]) {
    for e in errors {
        if e.line > 0 {
            eprintln!("{}:{}: {}", file.display(), e.line, e.message);
        } else {
            eprintln!("{}: {}", file.display(), e.message);
        }
    }
}

fn rule_options(cfg: &Config) -> RuleOptions {
    RuleOptions {
        paths: cfg.rules.clone(),
        builtin: cfg.builtin_rules,
        placeholders: cfg.placeholders.clone(),
    }
}

fn loader(cfg: &Config) -> RulesLoader {
    let (paths, builtin, placeholders) = (
        cfg.rules.clone(),
        cfg.builtin_rules,
        cfg.placeholders.clone(),
    );
    Arc::new(move || {
        let loaded = load_rules(&RuleOptions {
            paths: paths.clone(),
            builtin,
            placeholders: placeholders.clone(),
        })
        .map_err(|e| format!("{e:#}"))?;
        if loaded.set.rules().is_empty() {
            return Err("no rules to run (rules: is empty and builtin_rules: false)".into());
        }
        Ok(Rules::new(loaded.set, &loaded.sources))
    })
}

pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let cfg = match config::load(&args.config) {
        Ok(c) => c,
        Err(errors) => {
            render(&args.config, &errors);
            bail!("{}: invalid configuration", args.config.display());
        }
    };
    let loader = cfg.detection.enabled.then(|| loader(&cfg));
    vigil_server::run(cfg, loader).map_err(anyhow::Error::msg)?;
    Ok(ExitCode::SUCCESS)
}

pub fn config(cmd: ConfigCommand) -> Result<ExitCode> {
    let ConfigCommand::Check { file } = cmd;
    let cfg = match config::load(&file) {
        Ok(c) => c,
        Err(errors) => {
            render(&file, &errors);
            return Ok(ExitCode::from(1));
        }
    };
    let mut bad = false;
    for e in vigil_server::check_files(&cfg) {
        eprintln!("{}: {e}", file.display());
        bad = true;
    }
    if cfg.detection.enabled {
        match load_rules(&rule_options(&cfg)) {
            Ok(r) if !r.errors.is_empty() => bad = true,
            Ok(_) => {}
            Err(e) => {
                eprintln!("{}: rules: {e:#}", file.display());
                bad = true;
            }
        }
    }
    if bad {
        return Ok(ExitCode::from(1));
    }
    println!(
        "{}: ok ({} sources, {} sinks, data in {})",
        file.display(),
        cfg.sources.len(),
        cfg.sinks.len(),
        cfg.data_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
