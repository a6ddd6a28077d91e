//! The stored alerts (`vigil alerts`) and their status.
//!
//! Alerts are records of the `vigil.alert` dataset in the event store; their id is
//! `vigil_store::prepare::alert_id` (the same detection on the same evidence always gets the same
//! id, so ids are stable across re-ingests and runs).
//!
//! Status is derived from the incident book, never stored beside it, so that it can never
//! disagree with the history:
//!
//! - `new`: in no incident;
//! - `incident`: in an incident that is not closed (as one of the alerts it was opened from, or
//!   as a related alert pulled in); `incident` names it;
//! - `closed`: every incident it is in is closed; `incident` names the last one opened.
//!
//! An alert in several open incidents names the one opened last.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use vigil_store::query::Query;
use vigil_store::reader::{Kinds, SearchOptions};
use vigil_store::{Reader, StoredEvent};

use crate::book::Book;
use crate::entities::{entities_of_alert, Entity};
use crate::model::{IncidentError, Phase};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    New,
    Incident,
    Closed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Incident => "incident",
            Status::Closed => "closed",
        }
    }
}

/// A stored alert as read back.
#[derive(Debug, Clone)]
pub struct StoredAlert {
    pub id: String,
    /// Event time (micros since the epoch).
    pub time: i64,
    pub level: String,
    pub title: String,
    /// The alert JSON as stored (`vigil detect`'s alert plus `id`).
    pub raw: Value,
    /// The alert's document (entity fields copied from the triggering event).
    pub doc: Value,
    /// Where it is in the store (`Reader::get`).
    pub loc: u64,
}

impl StoredAlert {
    /// `None` when the record is not an alert.
    pub fn from_stored(ev: &StoredEvent) -> Option<StoredAlert> {
        if !ev.is_alert() {
            return None;
        }
        let raw = ev.original();
        let id = raw.get("id")?.as_str()?.to_string();
        let rule = raw.get("rule");
        let text = |k: &str| {
            rule.and_then(|r| r.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        Some(StoredAlert {
            id,
            time: ev.record.event_time,
            level: text("level"),
            title: text("title"),
            raw,
            doc: ev.doc.clone(),
            loc: ev.loc,
        })
    }

    pub fn entities(&self) -> Vec<Entity> {
        entities_of_alert(&self.doc, &self.raw)
    }

    /// Sigma levels in order; unknown levels rank lowest.
    pub fn level_rank(&self) -> u8 {
        level_rank(&self.level)
    }
}

pub fn level_rank(level: &str) -> u8 {
    match level.to_ascii_lowercase().as_str() {
        "critical" => 5,
        "high" => 4,
        "medium" => 3,
        "low" => 2,
        "informational" => 1,
        _ => 0,
    }
}

/// The alert with this id. An unknown id is an error naming it.
pub fn load(reader: &Reader, id: &str) -> Result<StoredAlert, IncidentError> {
    let id = id.trim();
    // `locate_id` gives hash candidates; the record decides.
    for loc in reader.locate_id(id) {
        if let Some(ev) = reader.get(loc)? {
            if let Some(a) = StoredAlert::from_stored(&ev) {
                if a.id == id {
                    return Ok(a);
                }
            }
        }
    }
    Err(IncidentError::Usage(format!(
        "no alert with id {id:?} in {} (see `vigil alerts`)",
        reader.dir.display()
    )))
}

/// Every stored alert with event time in `since..until` (micros; `until` exclusive), oldest
/// first.
pub fn stored(
    reader: &Reader,
    since: Option<i64>,
    until: Option<i64>,
) -> Result<Vec<StoredAlert>, IncidentError> {
    let found = reader.search(
        &Query::All,
        &SearchOptions {
            since,
            until,
            limit: 0,
            newest_first: false,
            kinds: Kinds::Alerts,
        },
    )?;
    Ok(found
        .events
        .iter()
        .filter_map(StoredAlert::from_stored)
        .collect())
}

/// Status and incident of every alert that is in an incident (absent: `new`).
pub fn statuses(book: &Book) -> Result<HashMap<String, (Status, String)>, IncidentError> {
    let mut out: HashMap<String, (Status, String)> = HashMap::new();
    // Incidents in the order they were opened: a later one overrides, except that a closed
    // incident never hides an open one.
    for inc in book.list()? {
        let status = if inc.phase == Phase::Closed {
            Status::Closed
        } else {
            Status::Incident
        };
        for a in inc.alerts.iter().chain(&inc.related) {
            let keep_open =
                status == Status::Closed && out.get(a).is_some_and(|(s, _)| *s == Status::Incident);
            if !keep_open {
                out.insert(a.clone(), (status, inc.id.clone()));
            }
        }
    }
    Ok(out)
}

/// An alert as `vigil alerts` prints it: the alert JSON (with `id`), `status`, and `incident`
/// unless new.
#[derive(Debug, Clone)]
pub struct Listed {
    pub alert: StoredAlert,
    pub status: Status,
    pub incident: Option<String>,
}

impl Listed {
    pub fn json(&self) -> Value {
        let mut v = self.alert.raw.clone();
        if let Value::Object(m) = &mut v {
            m.insert("status".into(), Value::from(self.status.as_str()));
            if let Some(i) = &self.incident {
                m.insert("incident".into(), Value::from(i.clone()));
            }
        }
        v
    }
}

/// The stored alerts in `since..until`, oldest first, with their status.
pub fn list(
    reader: &Reader,
    book: &Book,
    since: Option<i64>,
    until: Option<i64>,
) -> Result<Vec<Listed>, IncidentError> {
    let st = statuses(book)?;
    Ok(stored(reader, since, until)?
        .into_iter()
        .map(|alert| {
            let (status, incident) = match st.get(&alert.id) {
                Some((s, i)) => (*s, Some(i.clone())),
                None => (Status::New, None),
            };
            Listed {
                alert,
                status,
                incident,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Action;

    fn opened(alerts: &[&str], related: &[&str]) -> Action {
        Action::Opened {
            title: "t".into(),
            alerts: alerts.iter().map(|s| s.to_string()).collect(),
            related: related.iter().map(|s| s.to_string()).collect(),
            entities: vec![],
            window_secs: 3600,
            since: 0,
            until: 0,
            timeline: vec![],
        }
    }

    #[test]
    fn status_follows_the_book() {
        let d = tempfile::tempdir().unwrap();
        let mut b = Book::open(d.path()).unwrap();
        b.append("", "a", opened(&["x"], &["y"])).unwrap();
        b.append("", "a", opened(&["y", "z"], &[])).unwrap();
        b.append("INC-0002", "a", Action::Closed { note: None })
            .unwrap();
        let st = statuses(&b).unwrap();
        assert_eq!(st["x"], (Status::Incident, "INC-0001".to_string()));
        // y is in the open INC-0001 and the closed INC-0002: still being handled.
        assert_eq!(st["y"], (Status::Incident, "INC-0001".to_string()));
        assert_eq!(st["z"], (Status::Closed, "INC-0002".to_string()));
        assert!(!st.contains_key("w"));
    }

    #[test]
    fn levels_rank() {
        assert!(level_rank("critical") > level_rank("high"));
        assert!(level_rank("High") > level_rank("medium"));
        assert_eq!(level_rank("whatever"), 0);
    }
}
