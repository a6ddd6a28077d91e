//! `vigil bench` and `vigil gen`: measure Vigil on generated traffic (see BENCHMARKS.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Subcommand;
use vigil_policy::{load_policy, Attributes};

use crate::gen::audit_lines;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Policy evaluation: decode each audit event, derive its attributes, evaluate the policy.
    Policy {
        /// The policy to evaluate (default: the baseline policy).
        #[arg(long)]
        policy: Option<PathBuf>,
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Detection: the stateless rules over in-memory audit events (no I/O, no correlations, no
    /// alert output: `vigil detect` on a file measures those too).
    Detect(BenchDetectArgs),
}

#[derive(clap::Args)]
pub struct BenchDetectArgs {
    #[command(flatten)]
    rules: crate::cmd::rules::RuleArgs,
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Worker threads (each takes a share of the events; 1 = one core).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

#[derive(Subcommand)]
pub enum GenCommand {
    /// Realistic Kubernetes audit traffic as JSON lines on stdout.
    Audit {
        #[arg(long, default_value_t = 100_000)]
        events: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

pub fn run_gen(cmd: GenCommand) -> Result<ExitCode> {
    match cmd {
        GenCommand::Audit { events, seed } => {
            use std::io::Write;
            let mut out = crate::output::stdout();
            let mut g = crate::gen::Generator::new(seed);
            let mut buf = String::new();
            for _ in 0..events {
                buf.clear();
                g.next_event(&mut buf);
                if let Err(e) = out.write_all(buf.as_bytes()) {
                    crate::output::finish(Err(e))?;
                    return Ok(ExitCode::SUCCESS);
                }
            }
            crate::output::finish(out.flush())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn bench_detect(args: BenchDetectArgs) -> Result<ExitCode> {
    let loaded = args.rules.load()?;
    let input = audit_lines(args.seed, args.events);
    let lines: Vec<&str> = input.lines().collect();
    let threads = args.threads.max(1);
    let per = lines.len().div_ceil(threads);
    let start = Instant::now();
    let (matches, cpu): (usize, Option<u64>) = std::thread::scope(|s| {
        let handles: Vec<_> = lines
            .chunks(per.max(1))
            .map(|chunk| {
                let set = &loaded.set;
                s.spawn(move || {
                    let c0 = thread_cpu_ns();
                    let mut out = Vec::new();
                    let mut n = 0;
                    for line in chunk {
                        out.clear();
                        set.evaluate(&vigil_detect::Event::from_raw("k8s.audit", line), &mut out);
                        n += out.len();
                    }
                    (n, c0.zip(thread_cpu_ns()).map(|(a, b)| b.saturating_sub(a)))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or((0, None)))
            .fold((0, Some(0)), |(n, c), (m, d)| {
                (n + m, c.zip(d).map(|(c, d)| c + d))
            })
    });
    let secs = start.elapsed().as_secs_f64();
    let mb = input.len() as f64 / 1e6;
    // On a shared machine wall time says little: the CPU time of the threads tells the cost.
    let per_cpu = match cpu {
        Some(ns) if ns > 0 => {
            let cpu = ns as f64 / 1e9;
            format!(
                "; {cpu:.3} s of CPU: {:.0} events/s, {:.1} MB/s per CPU-second",
                args.events as f64 / cpu,
                mb / cpu
            )
        }
        _ => String::new(),
    };
    println!(
        "detect: {} rules, {} events, {mb:.1} MB in {secs:.3} s on {threads} thread(s): {:.0} events/s, {:.1} MB/s{per_cpu} ({matches} matches)",
        loaded.set.rules().len(),
        args.events,
        args.events as f64 / secs,
        mb / secs
    );
    Ok(ExitCode::SUCCESS)
}

/// Nanoseconds the calling thread has spent on a CPU (Linux; `None` elsewhere).
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

pub fn run(cmd: BenchCommand) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Detect(args) => bench_detect(args),
        BenchCommand::Policy {
            policy,
            events,
            seed,
        } => {
            let text = match &policy {
                Some(p) => std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read {}", p.display()))?,
                None => vigil_policy::baseline::BASELINE.to_string(),
            };
            let policy = load_policy(&text)
                .map_err(|e| anyhow::anyhow!("policy does not load: {e}"))?
                .policy;
            let input = audit_lines(seed, events);
            let start = Instant::now();
            let mut kept = 0usize;
            for line in input.lines() {
                let ev: vigil_model::Event =
                    serde_json::from_str(line).context("generated event does not decode")?;
                let d = policy.evaluate(&Attributes::from_event(&ev));
                kept += usize::from(d.level != vigil_model::Level::None);
            }
            let secs = start.elapsed().as_secs_f64();
            println!(
                "policy eval: {events} events, {:.1} MB in {secs:.3} s: {:.0} events/s, {:.1} MB/s (one core; {kept} kept)",
                input.len() as f64 / 1e6,
                events as f64 / secs,
                input.len() as f64 / 1e6 / secs
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
