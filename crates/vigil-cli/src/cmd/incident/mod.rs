//! `vigil alerts` and `vigil incident ...`: the response lifecycle over the event store.
//!
//! lifecycle.rs: alerts, open, list, show, note, phase, close, scope.
//! evidence.rs: runbook, report, export, verify.

pub mod evidence;
pub mod lifecycle;

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum IncidentCommand {
    /// Open an incident from alerts (or a title): entities, related alerts, timeline. Prints its id.
    Open(lifecycle::OpenArgs),
    /// The incidents, newest last.
    List(lifecycle::ListArgs),
    /// One incident: phase, entities, alerts, timeline, notes, history.
    Show(lifecycle::ShowArgs),
    /// Record a note (what was found or done) in the incident's history.
    Note(lifecycle::NoteArgs),
    /// Move the incident forward to a phase (containment, eradication, recovery, lessons_learned).
    Phase(lifecycle::PhaseArgs),
    /// Close the incident.
    Close(lifecycle::CloseArgs),
    /// What each entity of the incident touched (secrets, objects, exec sessions, RBAC, hosts).
    Scope(evidence::ScopeArgs),
    /// The containment, eradication and recovery steps for this incident's entities.
    Runbook(evidence::RunbookArgs),
    /// The incident report (Markdown or HTML).
    Report(evidence::ReportArgs),
    /// Export the evidence (events, alerts, timeline, notes, runbook, manifest, checkpoint).
    Export(evidence::ExportArgs),
    /// Check an evidence export (chain of custody); exit 1 naming what does not match.
    Verify(evidence::VerifyArgs),
}

pub fn run(c: IncidentCommand) -> Result<ExitCode> {
    match c {
        IncidentCommand::Open(a) => lifecycle::open(a),
        IncidentCommand::List(a) => lifecycle::list(a),
        IncidentCommand::Show(a) => lifecycle::show(a),
        IncidentCommand::Note(a) => lifecycle::note(a),
        IncidentCommand::Phase(a) => lifecycle::phase(a),
        IncidentCommand::Close(a) => lifecycle::close(a),
        IncidentCommand::Scope(a) => evidence::scope(a),
        IncidentCommand::Runbook(a) => evidence::runbook(a),
        IncidentCommand::Report(a) => evidence::report(a),
        IncidentCommand::Export(a) => evidence::export(a),
        IncidentCommand::Verify(a) => evidence::verify(a),
    }
}
