//! `vigil policy simulate`: replay recorded audit logs through a policy.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use vigil_policy::simulate::{Counts, Row, Simulation, SimulationReport};
use vigil_policy::Policy;

use crate::output::{finish, for_each_audit_event, stdout, write_json_line, Format, Table};

pub fn run(policy: &Policy, logs: &[String], format: Format, top: usize) -> Result<ExitCode> {
    let mut sim = Simulation::new(policy);
    let stats = for_each_audit_event(logs, |record| {
        sim.add(&record.event, record.raw_len);
        Ok(())
    })?;
    if stats.events == 0 {
        eprintln!("vigil: no audit events in the input");
        return Ok(ExitCode::from(2));
    }
    let report = sim.report();
    let mut out = stdout();
    match format {
        Format::Jsonl => finish(write_json_line(&mut out, &report))?,
        Format::Table => finish(write_report(&mut out, &report, top))?,
    }
    finish(out.flush())?;
    Ok(ExitCode::SUCCESS)
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn reduction(c: &Counts) -> String {
    if c.bytes_in == 0 {
        return "-".into();
    }
    format!(
        "{:.1}%",
        100.0 * (1.0 - c.bytes_kept as f64 / c.bytes_in as f64)
    )
}

fn counts_cells(c: &Counts) -> [String; 5] {
    [
        c.events_in.to_string(),
        c.events_kept.to_string(),
        human_bytes(c.bytes_in),
        human_bytes(c.bytes_kept),
        reduction(c),
    ]
}

const COUNT_HEADERS: [&str; 5] = ["EVENTS IN", "KEPT", "BYTES IN", "BYTES KEPT", "REDUCTION"];

fn section(out: &mut impl Write, title: &str, rows: &[Row], top: usize) -> std::io::Result<()> {
    writeln!(out, "\n{title}")?;
    let mut t = Table::new(std::iter::once("").chain(COUNT_HEADERS));
    for row in rows.iter().take(top) {
        t.row(std::iter::once(row.key.clone()).chain(counts_cells(&row.counts)));
    }
    t.write(out)?;
    if rows.len() > top {
        writeln!(
            out,
            "… {} more (use --top or --format jsonl)",
            rows.len() - top
        )?;
    }
    Ok(())
}

fn write_report(out: &mut impl Write, r: &SimulationReport, top: usize) -> std::io::Result<()> {
    let t = &r.totals;
    writeln!(
        out,
        "events: {} in, {} kept ({:.1}% fewer); bytes: {} in, {} kept ({:.1}% less)",
        t.events_in,
        t.events_kept,
        t.events_reduction_percent,
        human_bytes(t.bytes_in),
        human_bytes(t.bytes_kept),
        t.reduction_percent
    )?;
    if t.under_recorded > 0 {
        writeln!(
            out,
            "note: {} kept events were recorded at a lower level than this policy asks for; their size is a floor",
            t.under_recorded
        )?;
    }
    section(out, "BY LEVEL", &r.by_level, top)?;
    section(out, "BY STAGE", &r.by_stage, top)?;
    section(out, "BY RESOURCE", &r.by_resource, top)?;
    section(out, "BY USER", &r.by_user, top)?;
    writeln!(out, "\nBY RULE")?;
    let mut table = Table::new(["RULE", "LINE", "LEVEL"].into_iter().chain(COUNT_HEADERS));
    for row in &r.by_rule {
        table.row(
            [
                row.rule.map_or("(no match)".into(), |i| i.to_string()),
                row.line.map_or("-".into(), |l| l.to_string()),
                row.level.to_string(),
            ]
            .into_iter()
            .chain(counts_cells(&row.counts)),
        );
    }
    table.write(out)
}
