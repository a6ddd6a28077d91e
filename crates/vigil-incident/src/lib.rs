//! Incidents: from alert to lessons learned.
//!
//! An incident lives in the data directory beside the events it is about:
//!
//! ```text
//! DIR/incidents/log.jsonl     every action on every incident, one JSON line each, hash-chained
//! ```
//!
//! An alert's status (`new`, `incident`, `closed`) is not stored: it is derived from this
//! history every time (`alerts`), so it can never disagree with it.
//!
//! The state of an incident is the fold of its actions (`model::Incident::replay`); nothing is
//! ever rewritten, so the history is the audit trail of the response itself.

pub mod alerts;
pub mod book;
pub mod entities;
pub mod export;
pub mod model;
pub mod open;
pub mod report;
pub mod runbook;
pub mod scope;

pub use book::Book;
pub use model::{Action, Entity, EntityKind, HistoryEntry, Incident, IncidentError, Phase};
