//! `vigil`: Kubernetes and host security monitoring in one binary.
//!
//! Exit codes: 0 success; 1 a finding (invalid policy, lint errors, `--fail-on` reached);
//! 2 usage errors and unreadable input.

mod cmd;
mod detection;
mod gen;
mod input;
mod output;
mod progress;

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "vigil",
    version,
    about = "Security monitoring for Kubernetes and the hosts around it"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate, lint, evaluate and simulate Kubernetes audit policies (kube-apiserver semantics).
    #[command(subcommand)]
    Policy(cmd::policy::PolicyCommand),
    /// Run Sigma rules (the built-in pack and yours) over logs; one JSON line per alert.
    Detect(cmd::detect::DetectArgs),
    /// Validate, list and test Sigma rules.
    #[command(subcommand)]
    Rules(cmd::rules::RulesCommand),
    /// Why a rule did or did not match an event, selection by selection.
    Explain(cmd::rules::ExplainArgs),
    /// Measure Vigil on generated traffic.
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
    /// Generate realistic traffic (for benchmarks and comparisons with other tools).
    #[command(subcommand)]
    Gen(cmd::bench::GenCommand),
    /// Import logs into the event store (data directory), running detection; alerts are stored.
    Ingest(cmd::store::ingest::IngestArgs),
    /// Search the event store (query language: see README.md).
    Search(cmd::store::search::SearchArgs),
    /// Every event and alert about one user, IP, pod, node or host, in time order.
    Timeline(cmd::store::search::TimelineArgs),
    /// Who-accessed-what reports for audits.
    Report(cmd::store::report::ReportArgs),
    /// Check the store's hash chains and signed checkpoints; exit 1 naming what was altered.
    Verify(cmd::store::VerifyArgs),
    /// Events and bytes on disk, per source and day.
    Stats(cmd::store::StatsArgs),
    /// Run the always-on service: audit webhook, file tailing, syslog, detection, alert sinks.
    Serve(cmd::serve::ServeArgs),
    /// Check a `vigil serve` configuration file.
    #[command(subcommand)]
    Config(cmd::serve::ConfigCommand),
    /// The stored alerts, each with a stable id and its status.
    Alerts(cmd::incident::lifecycle::AlertsArgs),
    /// Incident response: open, scope, runbook, phases, report, evidence export.
    #[command(subcommand)]
    Incident(cmd::incident::IncidentCommand),
    /// Is this environment ready for an incident? Policy, blind detections, sources, retention.
    Readiness(cmd::readiness::ReadinessArgs),
    /// Replay a built-in multi-source attack end to end: alerts, incident, report, runbook.
    Demo(cmd::demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Policy(c) => cmd::policy::run(c),
        Command::Detect(a) => cmd::detect::run(a),
        Command::Rules(c) => cmd::rules::run(c),
        Command::Explain(a) => cmd::rules::explain(a),
        Command::Bench(c) => cmd::bench::run(c),
        Command::Gen(c) => cmd::bench::run_gen(c),
        Command::Ingest(a) => cmd::store::ingest::run(a),
        Command::Search(a) => cmd::store::search::search(a),
        Command::Timeline(a) => cmd::store::search::timeline(a),
        Command::Report(a) => cmd::store::report::run(a),
        Command::Verify(a) => cmd::store::verify(a),
        Command::Stats(a) => cmd::store::stats(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Config(c) => cmd::serve::config(c),
        Command::Alerts(a) => cmd::incident::lifecycle::alerts(a),
        Command::Incident(c) => cmd::incident::run(c),
        Command::Readiness(a) => cmd::readiness::run(a),
        Command::Demo(a) => cmd::demo::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vigil: error: {}", describe(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, each cause once: library errors name their cause in their own
/// message already (`path: cannot open: No such file or directory`), and anyhow's `{:#}` would
/// repeat it.
fn describe(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}
