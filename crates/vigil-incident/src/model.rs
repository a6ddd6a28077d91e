//! The incident model: phases, entities, the actions recorded in the history, and the state
//! they fold into. Shared by every part of the crate (open, scope, runbook, report, export).

use serde::{Deserialize, Serialize};

/// The response lifecycle (NIST SP 800-61 / SANS PICERL). An incident opens in `Detection` and
/// only moves forward; `Preparation` exists for readiness findings and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Preparation,
    Detection,
    Containment,
    Eradication,
    Recovery,
    LessonsLearned,
    Closed,
}

impl Phase {
    pub const ALL: [Phase; 7] = [
        Phase::Preparation,
        Phase::Detection,
        Phase::Containment,
        Phase::Eradication,
        Phase::Recovery,
        Phase::LessonsLearned,
        Phase::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Preparation => "preparation",
            Phase::Detection => "detection",
            Phase::Containment => "containment",
            Phase::Eradication => "eradication",
            Phase::Recovery => "recovery",
            Phase::LessonsLearned => "lessons_learned",
            Phase::Closed => "closed",
        }
    }

    /// For people: "detection and analysis", "lessons learned".
    pub fn title(self) -> &'static str {
        match self {
            Phase::Preparation => "Preparation",
            Phase::Detection => "Detection and analysis",
            Phase::Containment => "Containment",
            Phase::Eradication => "Eradication",
            Phase::Recovery => "Recovery",
            Phase::LessonsLearned => "Lessons learned",
            Phase::Closed => "Closed",
        }
    }

    /// Accepts the snake_case name, with `-` or spaces for `_`, and `analysis`/`lessons` short forms.
    pub fn parse(s: &str) -> Result<Phase, IncidentError> {
        let k = s.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        let p = match k.as_str() {
            "preparation" => Phase::Preparation,
            "detection" | "analysis" | "detection_and_analysis" => Phase::Detection,
            "containment" | "contain" => Phase::Containment,
            "eradication" | "eradicate" => Phase::Eradication,
            "recovery" | "recover" => Phase::Recovery,
            "lessons_learned" | "lessons" => Phase::LessonsLearned,
            "closed" | "close" => Phase::Closed,
            _ => {
                return Err(IncidentError::Usage(format!(
                    "unknown phase {s:?}: expected one of detection, containment, eradication, \
                     recovery, lessons_learned, closed"
                )))
            }
        };
        Ok(p)
    }
}

/// What an incident is about. Values are canonical so that the same entity seen in two sources
/// is one entity: users as the apiserver or the host names them; service accounts as
/// `system:serviceaccount:NS:NAME`; pods as `NS/NAME`; addresses as printed by `std::net::IpAddr`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    User,
    ServiceAccount,
    Ip,
    Pod,
    Node,
    Host,
}

impl EntityKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            EntityKind::User => "user",
            EntityKind::ServiceAccount => "service_account",
            EntityKind::Ip => "ip",
            EntityKind::Pod => "pod",
            EntityKind::Node => "node",
            EntityKind::Host => "host",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Entity {
    pub kind: EntityKind,
    pub value: String,
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.as_str(), self.value)
    }
}

/// One action on an incident, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// The incident was opened from `alerts` (may be empty with a title only). `related` are the
    /// alerts pulled in because they share an entity within `window_secs`; `timeline` the store
    /// locations (`Reader::get`) of every event and alert about the entities between `since` and
    /// `until` (micros since the epoch), in time order.
    Opened {
        title: String,
        alerts: Vec<String>,
        related: Vec<String>,
        entities: Vec<Entity>,
        window_secs: u64,
        since: i64,
        until: i64,
        timeline: Vec<u64>,
    },
    Note {
        text: String,
    },
    Phase {
        from: Phase,
        to: Phase,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    Closed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
}

/// A line of `incidents/log.jsonl`. `hash` = SHA-256 (hex) of `prev` and the canonical JSON of
/// the other fields, so an edited, removed or reordered line breaks the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub seq: u64,
    pub incident: String,
    /// RFC 3339, UTC.
    pub time: String,
    pub actor: String,
    #[serde(flatten)]
    pub action: Action,
    pub prev: String,
    pub hash: String,
}

/// A note or phase change, as shown in reports: what was done, by whom, in which phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub time: String,
    pub actor: String,
    pub phase: Phase,
    pub text: String,
}

/// The state of one incident: the fold of its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub title: String,
    pub phase: Phase,
    pub opened_at: String,
    pub opened_by: String,
    pub alerts: Vec<String>,
    pub related: Vec<String>,
    pub entities: Vec<Entity>,
    pub window_secs: u64,
    pub since: i64,
    pub until: i64,
    pub timeline: Vec<u64>,
    /// When each phase was entered (RFC 3339), in order.
    pub phases: Vec<(Phase, String)>,
    pub notes: Vec<Note>,
    pub closed_at: Option<String>,
    pub history: Vec<HistoryEntry>,
}

impl Incident {
    /// Folds the history of one incident (its entries, in order; the first must be `Opened`).
    pub fn replay(entries: &[HistoryEntry]) -> Result<Incident, IncidentError> {
        let first = entries
            .first()
            .ok_or_else(|| IncidentError::Corrupt("an incident with no history".into()))?;
        let Action::Opened {
            title,
            alerts,
            related,
            entities,
            window_secs,
            since,
            until,
            timeline,
        } = &first.action
        else {
            return Err(IncidentError::Corrupt(format!(
                "incident {}: history line {} is not `opened`",
                first.incident, first.seq
            )));
        };
        let mut inc = Incident {
            id: first.incident.clone(),
            title: title.clone(),
            phase: Phase::Detection,
            opened_at: first.time.clone(),
            opened_by: first.actor.clone(),
            alerts: alerts.clone(),
            related: related.clone(),
            entities: entities.clone(),
            window_secs: *window_secs,
            since: *since,
            until: *until,
            timeline: timeline.clone(),
            phases: vec![(Phase::Detection, first.time.clone())],
            notes: Vec::new(),
            closed_at: None,
            history: vec![first.clone()],
        };
        for e in &entries[1..] {
            match &e.action {
                Action::Opened { .. } => {
                    return Err(IncidentError::Corrupt(format!(
                        "incident {}: opened twice (history line {})",
                        e.incident, e.seq
                    )))
                }
                Action::Note { text } => inc.notes.push(Note {
                    time: e.time.clone(),
                    actor: e.actor.clone(),
                    phase: inc.phase,
                    text: text.clone(),
                }),
                Action::Phase { to, note, .. } => {
                    if let Some(text) = note {
                        inc.notes.push(Note {
                            time: e.time.clone(),
                            actor: e.actor.clone(),
                            phase: inc.phase,
                            text: text.clone(),
                        });
                    }
                    inc.phase = *to;
                    inc.phases.push((*to, e.time.clone()));
                }
                Action::Closed { note } => {
                    if let Some(text) = note {
                        inc.notes.push(Note {
                            time: e.time.clone(),
                            actor: e.actor.clone(),
                            phase: inc.phase,
                            text: text.clone(),
                        });
                    }
                    inc.phase = Phase::Closed;
                    inc.phases.push((Phase::Closed, e.time.clone()));
                    inc.closed_at = Some(e.time.clone());
                }
            }
            inc.history.push(e.clone());
        }
        Ok(inc)
    }

    /// When the incident entered `phase`, if it did.
    pub fn entered(&self, phase: Phase) -> Option<&str> {
        self.phases
            .iter()
            .find(|(p, _)| *p == phase)
            .map(|(_, t)| t.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IncidentError {
    #[error("{0}")]
    Usage(String),
    #[error("no incident {0:?} (see `vigil incident list`)")]
    NotFound(String),
    #[error("incident history damaged: {0}")]
    Corrupt(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] vigil_store::StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, action: Action) -> HistoryEntry {
        HistoryEntry {
            seq,
            incident: "INC-0001".into(),
            time: format!("2026-11-27T10:00:0{seq}Z"),
            actor: "alice".into(),
            action,
            prev: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn replay_tracks_phases_and_notes_per_phase() {
        let opened = Action::Opened {
            title: "t".into(),
            alerts: vec!["a1".into()],
            related: vec![],
            entities: vec![],
            window_secs: 3600,
            since: 0,
            until: 1,
            timeline: vec![],
        };
        let inc = Incident::replay(&[
            entry(1, opened),
            entry(
                2,
                Action::Note {
                    text: "seen".into(),
                },
            ),
            entry(
                3,
                Action::Phase {
                    from: Phase::Detection,
                    to: Phase::Containment,
                    note: Some("scoped".into()),
                },
            ),
            entry(
                4,
                Action::Note {
                    text: "isolated pod".into(),
                },
            ),
            entry(5, Action::Closed { note: None }),
        ])
        .unwrap();
        assert_eq!(inc.phase, Phase::Closed);
        let phases: Vec<_> = inc
            .notes
            .iter()
            .map(|n| (n.phase, n.text.as_str()))
            .collect();
        assert_eq!(
            phases,
            [
                (Phase::Detection, "seen"),
                (Phase::Detection, "scoped"),
                (Phase::Containment, "isolated pod")
            ]
        );
        assert_eq!(
            inc.entered(Phase::Containment),
            Some("2026-11-27T10:00:03Z")
        );
        assert_eq!(inc.closed_at.as_deref(), Some("2026-11-27T10:00:05Z"));
    }

    #[test]
    fn history_lines_round_trip_flat() {
        let e = entry(2, Action::Note { text: "x".into() });
        let line = serde_json::to_string(&e).unwrap();
        assert!(line.contains(r#""action":"note""#), "{line}");
        assert_eq!(serde_json::from_str::<HistoryEntry>(&line).unwrap(), e);
    }

    #[test]
    fn phase_names() {
        assert_eq!(
            Phase::parse("lessons-learned").unwrap(),
            Phase::LessonsLearned
        );
        assert!(Phase::parse("nope")
            .unwrap_err()
            .to_string()
            .contains("expected one of"));
    }
}
