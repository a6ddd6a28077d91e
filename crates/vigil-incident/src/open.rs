//! Opening an incident (`vigil incident open`).
//!
//! From the alerts it is opened from:
//!
//! 1. the alerts are loaded by id (an unknown id is an error naming it; nothing is recorded);
//! 2. their entities: each alert's own (`entities::entities_of_alert`: the fields copied from the
//!    triggering event, and a correlation's group) plus those of its evidence events that the
//!    store can find by id (Kubernetes auditIDs), since a correlation alert names little itself;
//! 3. the window: from the first alert − `window` to the last alert + `window`;
//! 4. related alerts: every other stored alert in the window that shares an entity. One hop
//!    only: the entities of related alerts are not followed, so an incident does not grow to
//!    the whole cluster through shared infrastructure;
//! 5. the timeline: every event and alert about any of the entities in the window, in time
//!    order, as store locations. It is capped (`OpenRequest::timeline_cap`): up to half the cap
//!    before the first alert and the rest from it on are kept, the alerts always, and a note in
//!    the history says so.
//!
//! With a title and no alerts the incident opens empty (declared by a person, e.g. from a
//! report by phone); it still gets an id and a history.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use vigil_store::reader::{Kinds, SearchOptions};
use vigil_store::Reader;

use crate::alerts::{self, StoredAlert};
use crate::book::Book;
use crate::entities::{entities_of, query_any, Entity};
use crate::model::{Action, HistoryEntry, Incident, IncidentError, Phase};

/// Default window around the alerts: an hour either side.
pub const DEFAULT_WINDOW_SECS: u64 = 3600;
/// Default timeline cap.
pub const DEFAULT_TIMELINE_CAP: usize = 10_000;
/// Evidence events looked up per alert (a correlation over thousands of events names its
/// entities in the first few).
const EVIDENCE_PER_ALERT: usize = 32;

#[derive(Debug, Clone)]
pub struct OpenRequest {
    pub alerts: Vec<String>,
    pub title: Option<String>,
    pub window_secs: u64,
    pub actor: String,
    pub timeline_cap: usize,
}

impl OpenRequest {
    pub fn new(actor: &str) -> OpenRequest {
        OpenRequest {
            alerts: Vec::new(),
            title: None,
            window_secs: DEFAULT_WINDOW_SECS,
            actor: actor.to_string(),
            timeline_cap: DEFAULT_TIMELINE_CAP,
        }
    }
}

/// What `open` did.
#[derive(Debug, Clone)]
pub struct Opened {
    pub id: String,
    pub entry: HistoryEntry,
    /// The timeline reached the cap: more events are about the entities than were kept.
    pub capped: bool,
}

/// `--window`: a duration such as `30m`, `1h`, `2h`, `1d`.
pub fn parse_window(s: &str) -> Result<u64, IncidentError> {
    vigil_store::timeparse::parse_span(s)
        .map(|sp| (sp.micros / 1_000_000) as u64)
        .ok_or_else(|| {
            IncidentError::Usage(format!(
                "--window {s:?}: expected a duration such as 30m, 1h, 2h or 1d"
            ))
        })
}

/// A title from the alerts: the highest-level one's rule title (the earliest among equals),
/// with how many more there are.
pub fn derive_title(alerts: &[StoredAlert]) -> String {
    let Some(top) = alerts
        .iter()
        .min_by_key(|a| (std::cmp::Reverse(a.level_rank()), a.time))
    else {
        return "Untitled incident".into();
    };
    let title = if top.title.is_empty() {
        format!("Alert {}", top.id)
    } else {
        top.title.clone()
    };
    match alerts.len() {
        1 => title,
        2 => format!("{title} (and 1 more alert)"),
        n => format!("{title} (and {} more alerts)", n - 1),
    }
}

/// The entities of an alert and of its evidence events that the store finds by id.
fn alert_entities(reader: &Reader, a: &StoredAlert) -> Result<Vec<Entity>, IncidentError> {
    let mut out: BTreeSet<Entity> = a.entities().into_iter().collect();
    let ids = a
        .raw
        .get("events")
        .and_then(|e| e.as_array())
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("id").and_then(|i| i.as_str()))
        .take(EVIDENCE_PER_ALERT);
    for id in ids {
        for loc in reader.locate_id(id) {
            let Some(ev) = reader.get(loc)? else { continue };
            // A hash candidate is the evidence only when its id says so.
            let eid = ev.doc.pointer("/event/id").and_then(|v| v.as_str());
            if !ev.is_alert() && eid == Some(id) {
                out.extend(entities_of(&ev.doc));
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// Opens an incident in `data_dir` and records it in the book.
pub fn open(data_dir: &Path, req: &OpenRequest) -> Result<Opened, IncidentError> {
    let mut wanted: Vec<String> = Vec::new();
    for id in &req.alerts {
        let id = id.trim().to_string();
        if id.is_empty() {
            return Err(IncidentError::Usage(
                "--alert: an empty alert id (see `vigil alerts` for the ids)".into(),
            ));
        }
        if !wanted.contains(&id) {
            wanted.push(id);
        }
    }
    let title = req
        .title
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    if wanted.is_empty() {
        let Some(title) = title else {
            return Err(IncidentError::Usage(
                "give the alerts to open the incident from (--alert ID) or a --title".into(),
            ));
        };
        let now = vigil_store::prepare::now_micros();
        let action = Action::Opened {
            title: title.to_string(),
            alerts: vec![],
            related: vec![],
            entities: vec![],
            window_secs: req.window_secs,
            since: now,
            until: now,
            timeline: vec![],
        };
        let entry = Book::open(data_dir)?.append("", &req.actor, action)?;
        return Ok(Opened {
            id: entry.incident.clone(),
            entry,
            capped: false,
        });
    }

    let reader = Reader::open(data_dir)?;
    let seeds = wanted
        .iter()
        .map(|id| alerts::load(&reader, id))
        .collect::<Result<Vec<_>, _>>()?;
    let mut entities: BTreeSet<Entity> = BTreeSet::new();
    for a in &seeds {
        entities.extend(alert_entities(&reader, a)?);
    }
    let entities: Vec<Entity> = entities.into_iter().collect();

    let window = i64::try_from(req.window_secs)
        .unwrap_or(i64::MAX / 1_000_000)
        .saturating_mul(1_000_000);
    let first = seeds.iter().map(|a| a.time).min().unwrap_or_default();
    let last = seeds.iter().map(|a| a.time).max().unwrap_or_default();
    let since = first.saturating_sub(window);
    let until = last.saturating_add(window);
    // The store's `until` is exclusive; the incident's window includes its end.
    let range = (Some(since), Some(until.saturating_add(1)));

    let seed_ids: HashSet<&str> = seeds.iter().map(|a| a.id.as_str()).collect();
    let mut related: Vec<StoredAlert> = Vec::new();
    if !entities.is_empty() {
        let mine: HashSet<&Entity> = entities.iter().collect();
        for a in alerts::stored(&reader, range.0, range.1)? {
            if !seed_ids.contains(a.id.as_str()) && a.entities().iter().any(|e| mine.contains(e)) {
                related.push(a);
            }
        }
    }

    // The timeline: the alerts themselves, then everything about the entities.
    let mut points: BTreeSet<(i64, u64)> = seeds
        .iter()
        .chain(&related)
        .map(|a| (a.time, a.loc))
        .collect();
    let mut capped = false;
    if let Some(q) = query_any(&entities) {
        // Centred on the first alert: up to half the cap before it (nearest first), the rest
        // from it on, so a capped timeline keeps what led to the alert and what followed.
        let cap = req.timeline_cap.max(2);
        let search = |since, until, limit, newest_first| {
            reader.search(
                &q,
                &SearchOptions {
                    since: Some(since),
                    until: Some(until),
                    limit,
                    newest_first,
                    kinds: Kinds::Both,
                },
            )
        };
        let before = search(since, first, cap / 2, true)?;
        let after = search(
            first,
            until.saturating_add(1),
            cap - before.events.len(),
            false,
        )?;
        capped = before.truncated || after.truncated;
        for e in before.events.iter().chain(&after.events) {
            points.insert((e.record.event_time, e.loc));
        }
    }
    let timeline: Vec<u64> = points.into_iter().map(|(_, loc)| loc).collect();

    let title = match title {
        Some(t) => t.to_string(),
        None => derive_title(&seeds),
    };
    let action = Action::Opened {
        title,
        alerts: seeds.iter().map(|a| a.id.clone()).collect(),
        related: related.iter().map(|a| a.id.clone()).collect(),
        entities,
        window_secs: req.window_secs,
        since,
        until,
        timeline,
    };
    let mut book = Book::open(data_dir)?;
    let entry = book.append("", &req.actor, action)?;
    if capped {
        // Recorded, so that the report and whoever reads the history know the timeline is
        // partial, not only whoever saw the warning.
        book.append(
            &entry.incident,
            &req.actor,
            Action::Note {
                text: format!(
                    "timeline capped at the {} events nearest the first alert; more are about \
                     these entities (see `vigil timeline`)",
                    req.timeline_cap
                ),
            },
        )?;
    }
    Ok(Opened {
        id: entry.incident.clone(),
        entry,
        capped,
    })
}

/// The action that moves `inc` to phase `to`, or why it cannot: phases only move forward, and
/// a closed incident does not change. `to == Closed` is a close.
pub fn advance(inc: &Incident, to: Phase, note: Option<String>) -> Result<Action, IncidentError> {
    if inc.phase == Phase::Closed {
        return Err(IncidentError::Usage(format!(
            "{} is closed (since {}); a closed incident does not change (open a new one)",
            inc.id,
            inc.closed_at.as_deref().unwrap_or("?")
        )));
    }
    if to <= inc.phase {
        let ahead: Vec<&str> = Phase::ALL
            .iter()
            .filter(|p| **p > inc.phase)
            .map(|p| p.as_str())
            .collect();
        return Err(IncidentError::Usage(format!(
            "{} is in {}; phases only move forward (to {}), not to {}",
            inc.id,
            inc.phase.as_str(),
            ahead.join(", "),
            to.as_str()
        )));
    }
    Ok(if to == Phase::Closed {
        Action::Closed { note }
    } else {
        Action::Phase {
            from: inc.phase,
            to,
            note,
        }
    })
}

/// Refuses to record on a closed incident.
pub fn check_open(inc: &Incident) -> Result<(), IncidentError> {
    if inc.phase == Phase::Closed {
        return Err(IncidentError::Usage(format!(
            "{} is closed (since {}); its history is final",
            inc.id,
            inc.closed_at.as_deref().unwrap_or("?")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alert(id: &str, level: &str, title: &str, time: i64) -> StoredAlert {
        StoredAlert {
            id: id.into(),
            time,
            level: level.into(),
            title: title.into(),
            raw: json!({}),
            doc: json!({}),
            loc: 0,
        }
    }

    #[test]
    fn titles_come_from_the_highest_level_alert() {
        let a = [
            alert("1", "medium", "Secrets Listed", 1),
            alert("2", "high", "Privileged Container Created", 3),
            alert("3", "high", "Binding to Cluster-Admin", 2),
        ];
        assert_eq!(
            derive_title(&a),
            "Binding to Cluster-Admin (and 2 more alerts)"
        );
        assert_eq!(derive_title(&a[..1]), "Secrets Listed");
    }

    #[test]
    fn windows() {
        assert_eq!(parse_window("2h").unwrap(), 7200);
        assert_eq!(parse_window("30m").unwrap(), 1800);
        let err = parse_window("two hours").unwrap_err().to_string();
        assert!(err.contains("--window") && err.contains("1h"), "{err}");
    }

    #[test]
    fn nothing_to_open_from_is_an_error_and_a_title_alone_opens_empty() {
        let d = tempfile::tempdir().unwrap();
        let err = open(d.path(), &OpenRequest::new("alice")).unwrap_err();
        assert!(err.to_string().contains("--title"), "{err}");
        let mut req = OpenRequest::new("alice");
        req.title = Some("phone call from the SOC".into());
        let o = open(d.path(), &req).unwrap();
        assert_eq!(o.id, "INC-0001");
        let inc = Book::open(d.path()).unwrap().get("INC-0001").unwrap();
        assert_eq!(inc.title, "phone call from the SOC");
        assert_eq!(inc.opened_by, "alice");
        assert!(inc.alerts.is_empty() && inc.timeline.is_empty());
    }

    #[test]
    fn phases_move_forward_only() {
        let d = tempfile::tempdir().unwrap();
        let mut req = OpenRequest::new("alice");
        req.title = Some("t".into());
        open(d.path(), &req).unwrap();
        let mut book = Book::open(d.path()).unwrap();
        let inc = book.get("INC-0001").unwrap();
        assert!(matches!(
            advance(&inc, Phase::Containment, None).unwrap(),
            Action::Phase {
                from: Phase::Detection,
                to: Phase::Containment,
                ..
            }
        ));
        let a = advance(&inc, Phase::Eradication, Some("pod deleted".into())).unwrap();
        book.append("INC-0001", "bob", a).unwrap();
        let inc = book.get("INC-0001").unwrap();
        let err = advance(&inc, Phase::Containment, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("INC-0001 is in eradication")
                && err.contains("to recovery, lessons_learned, closed"),
            "{err}"
        );
        assert!(advance(&inc, Phase::Eradication, None).is_err());
        let close = advance(&inc, Phase::Closed, None).unwrap();
        assert!(matches!(close, Action::Closed { note: None }));
        book.append("INC-0001", "bob", close).unwrap();
        let inc = book.get("INC-0001").unwrap();
        let err = advance(&inc, Phase::Recovery, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("INC-0001 is closed"), "{err}");
        assert!(check_open(&inc).is_err());
    }

    #[test]
    fn a_stale_view_cannot_move_a_phase_backwards() {
        let d = tempfile::tempdir().unwrap();
        let mut req = OpenRequest::new("alice");
        req.title = Some("t".into());
        open(d.path(), &req).unwrap();
        // Two responders read the incident in detection; one moves it to eradication first.
        let mut slow = Book::open(d.path()).unwrap();
        let mut fast = Book::open(d.path()).unwrap();
        fast.append_checked("INC-0001", "bob", |i| advance(i, Phase::Eradication, None))
            .unwrap();
        let err = slow
            .append_checked("INC-0001", "carol", |i| {
                advance(i, Phase::Containment, None)
            })
            .unwrap_err()
            .to_string();
        assert!(err.contains("INC-0001 is in eradication"), "{err}");
        assert_eq!(Book::open(d.path()).unwrap().entries().len(), 2);
    }
}
