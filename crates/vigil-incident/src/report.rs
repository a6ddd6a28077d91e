//! `vigil incident report ID --format md|html`: summary, impact, timeline, root cause, actions
//! per phase, time to detect and to contain, detection and logging gaps, lessons learned.
//!
//! Pure: built from the incident, its events and scope into a small document model
//! ([`Block`]s), then rendered. Every text from an event or a note goes through the renderer's
//! escaping (Markdown: backslash escapes; HTML: entities), so an attacker-chosen user name
//! cannot inject markup or script. The HTML is one self-contained file (inline CSS, no
//! scripts, no external resources).

pub mod gaps;
mod render;
#[cfg(test)]
mod tests;

use std::fmt::Write as _;

use serde_json::Value;
use vigil_policy::Policy;

use crate::model::{EntityKind, Incident, Phase};
use crate::scope::{acts, Ev, Scope};

pub use render::{html, html_escape, markdown, md_escape};

/// The document model of a report.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Heading(u8, String),
    Para(String),
    List(Vec<String>),
    Table(Vec<String>, Vec<Vec<String>>),
}

pub struct ReportInput<'a> {
    pub incident: &'a Incident,
    /// The timeline's events and alerts.
    pub events: &'a [Ev],
    pub scope: &'a Scope,
    pub policy: Option<&'a Policy>,
}

/// Timeline rows shown; the export has them all.
pub const TIMELINE_ROWS: usize = 300;

fn parse_time(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_micros())
}

/// `1h 2m 3s` (negative with a leading `-`).
pub fn duration(micros: i64) -> String {
    let mut s = micros.unsigned_abs() / 1_000_000;
    // Less than a second either way (phase times are kept to the second) is no time.
    let neg = micros < 0 && s > 0;
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    s %= 60;
    let mut out = String::new();
    for (n, u) in [(d, "d"), (h, "h"), (m, "m")] {
        if n > 0 || !out.is_empty() {
            let _ = write!(out, "{n}{u} ");
        }
    }
    let _ = write!(out, "{s}s");
    if neg {
        format!("-{out}")
    } else {
        out
    }
}

fn tags(a: &Ev) -> String {
    a.raw
        .pointer("/rule/tags")
        .and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .filter_map(Value::as_str)
                .filter(|t| t.starts_with("attack."))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// The ATT&CK tactics of the alerts in the order they first appeared, each with its first
/// alert: the attack's path through the kill chain.
fn attack_path(alerts: &[&Ev]) -> Option<String> {
    let mut seen: Vec<String> = Vec::new();
    let mut steps = Vec::new();
    for a in alerts {
        let tags = a.raw.pointer("/rule/tags").and_then(Value::as_array);
        for t in tags.into_iter().flatten().filter_map(Value::as_str) {
            let Some(tactic) = t.strip_prefix("attack.") else {
                continue;
            };
            // Techniques are `t1234`, `t1234.001`; tactics are words.
            let technique =
                tactic.starts_with('t') && tactic[1..].starts_with(|c: char| c.is_ascii_digit());
            if technique || seen.iter().any(|s| s == tactic) {
                continue;
            }
            seen.push(tactic.to_string());
            steps.push(format!(
                "{tactic} ({}, {})",
                a.time_rfc3339(),
                a.str("rule.name").unwrap_or("")
            ));
        }
    }
    (!steps.is_empty()).then(|| {
        format!(
            "Attack path (ATT&CK tactics as first alerted): {}.",
            steps.join(" → ")
        )
    })
}

/// Kubernetes requests of the entities that succeeded and changed something, read a secret
/// or opened an exec session, and that no alert names as evidence (by auditID).
fn unalerted(k8s: &[&Ev], alerts: &[&Ev]) -> Vec<String> {
    let cited: std::collections::HashSet<&str> = alerts
        .iter()
        .filter_map(|a| a.raw.get("events").and_then(Value::as_array))
        .flatten()
        .filter_map(|e| e.get("id").and_then(Value::as_str))
        .collect();
    k8s.iter()
        .filter(|e| e.succeeded())
        .filter(|e| {
            let verb = e.str("verb").unwrap_or("");
            let o = e.doc.get("objectRef");
            let res = o.and_then(|o| o.get("resource")).and_then(Value::as_str);
            let sub = o.and_then(|o| o.get("subresource")).and_then(Value::as_str);
            matches!(
                verb,
                "create" | "update" | "patch" | "delete" | "deletecollection"
            ) && !res.is_some_and(|r| r.ends_with("reviews"))
                || (res == Some("secrets") && matches!(verb, "get" | "list" | "watch"))
                || matches!(sub, Some("exec" | "attach"))
        })
        .filter(|e| e.str("auditID").is_none_or(|id| !cited.contains(id)))
        .map(|e| format!("{} {} by {}", e.time_rfc3339(), e.what(), e.actor()))
        .collect()
}

/// The report as blocks.
pub fn build(input: &ReportInput) -> Vec<Block> {
    let inc = input.incident;
    let mut evs: Vec<&Ev> = input.events.iter().collect();
    evs.sort_by_key(|e| (e.time, e.loc));
    let alerts: Vec<&Ev> = evs.iter().copied().filter(|e| e.alert).collect();
    // Who acted: a host or node entity is where the attack happened, and everything its
    // legitimate users did there is not the attacker's.
    let actors: Vec<_> = inc
        .entities
        .iter()
        .filter(|ent| !matches!(ent.kind, EntityKind::Host | EntityKind::Node))
        .collect();
    let malicious: Vec<&Ev> = evs
        .iter()
        .copied()
        .filter(|e| !e.alert && actors.iter().any(|ent| acts(ent, e)))
        .collect();
    let first_bad = malicious.first().copied();
    let first_alert = alerts.first().copied();
    let contained = inc.entered(Phase::Containment).and_then(parse_time);

    let mut b = vec![Block::Heading(
        1,
        format!("Incident report {}: {}", inc.id, inc.title),
    )];

    // Summary.
    b.push(Block::Heading(2, "Summary".into()));
    let ents: Vec<String> = inc.entities.iter().map(|e| e.to_string()).collect();
    let mut rows = vec![
        vec!["Incident".into(), inc.id.clone()],
        vec!["Title".into(), inc.title.clone()],
        vec!["Phase".into(), inc.phase.title().into()],
        vec![
            "Opened".into(),
            format!("{} by {}", inc.opened_at, inc.opened_by),
        ],
    ];
    if let Some(c) = &inc.closed_at {
        rows.push(vec!["Closed".into(), c.clone()]);
    }
    rows.push(vec!["Entities".into(), ents.join(", ")]);
    rows.push(vec![
        "Evidence".into(),
        format!(
            "{} events, {} alerts in the timeline",
            evs.len() - alerts.len(),
            alerts.len()
        ),
    ]);
    b.push(Block::Table(vec!["Field".into(), "Value".into()], rows));

    // Impact.
    b.push(Block::Heading(2, "Impact".into()));
    let mut impact = Vec::new();
    for s in &input.scope.entities {
        let Some(ent) = &s.entity else { continue };
        let mut parts = Vec::new();
        for (n, one, many) in [
            (s.secrets_read.len(), "secret read", "secret reads"),
            (s.objects_created.len(), "object created", "objects created"),
            (s.objects_changed.len(), "object changed", "objects changed"),
            (s.objects_deleted.len(), "object deleted", "objects deleted"),
            (s.exec_sessions.len(), "exec session", "exec sessions"),
            (s.rbac_changes.len(), "RBAC change", "RBAC changes"),
            (s.hosts_reached.len(), "host reached", "hosts reached"),
            (
                s.hosts_probed.len(),
                "host probed without success",
                "hosts probed without success",
            ),
            (s.logins.len(), "login to it", "logins to it"),
            (
                s.denied,
                "refused or failed attempt",
                "refused or failed attempts",
            ),
        ] {
            if n > 0 {
                parts.push(format!("{n} {}", if n == 1 { one } else { many }));
            }
        }
        let mut line = format!(
            "{ent}: {}",
            if parts.is_empty() {
                "no recorded activity".to_string()
            } else {
                parts.join(", ")
            }
        );
        let details: Vec<String> = s
            .secrets_read
            .iter()
            .chain(&s.rbac_changes)
            .chain(&s.exec_sessions)
            .chain(&s.objects_created)
            .chain(&s.objects_changed)
            .chain(&s.objects_deleted)
            .map(|t| format!("{} {}", t.verb, t.target))
            .chain(s.hosts_reached.iter().map(|t| t.target.clone()))
            .chain(s.logins.iter().map(|t| format!("login of {}", t.target)))
            .collect();
        if !details.is_empty() {
            let _ = write!(line, " ({})", details.join("; "));
        }
        impact.push(line);
    }
    b.push(Block::List(impact));

    // Timeline.
    b.push(Block::Heading(2, "Timeline".into()));
    let rows: Vec<Vec<String>> = evs
        .iter()
        .take(TIMELINE_ROWS)
        .map(|e| {
            vec![
                e.time_rfc3339(),
                if e.alert { "alert" } else { "event" }.into(),
                e.dataset.clone(),
                e.actor(),
                e.what(),
                e.code()
                    .map(|c| c.to_string())
                    .or_else(|| e.str("event.outcome").map(str::to_string))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    b.push(Block::Table(
        ["Time", "Kind", "Source", "Who", "What", "Result"]
            .map(String::from)
            .to_vec(),
        rows,
    ));
    if evs.len() > TIMELINE_ROWS {
        b.push(Block::Para(format!(
            "{} more entries are in the evidence export (timeline.jsonl).",
            evs.len() - TIMELINE_ROWS
        )));
    }

    // Root cause.
    b.push(Block::Heading(2, "Root cause".into()));
    let mut rc = Vec::new();
    match first_bad {
        Some(e) => rc.push(format!(
            "First malicious event: {} {} by {} ({}).",
            e.time_rfc3339(),
            e.what(),
            e.actor(),
            e.dataset
        )),
        None => rc.push("No event of the incident's entities is in the timeline.".into()),
    }
    if let Some(path) = attack_path(&alerts) {
        rc.push(path);
    }
    let mut seen = std::collections::BTreeSet::new();
    for a in &alerts {
        let rule = a.str("rule.name").unwrap_or("").to_string();
        if seen.insert(rule.clone()) {
            let t = tags(a);
            rc.push(format!(
                "Rule {rule} first fired at {}{}.",
                a.time_rfc3339(),
                if t.is_empty() {
                    String::new()
                } else {
                    format!(" ({t})")
                }
            ));
        }
    }
    for n in inc.notes.iter().filter(|n| n.phase == Phase::Detection) {
        rc.push(format!(
            "Analysis note ({}, {}): {}",
            n.time, n.actor, n.text
        ));
    }
    b.push(Block::List(rc));

    // Actions per phase.
    b.push(Block::Heading(2, "Actions per phase".into()));
    for (phase, at) in &inc.phases {
        b.push(Block::Heading(
            3,
            format!("{} (entered {at})", phase.title()),
        ));
        let notes: Vec<String> = inc
            .notes
            .iter()
            .filter(|n| n.phase == *phase)
            .map(|n| format!("{} {}: {}", n.time, n.actor, n.text))
            .collect();
        if notes.is_empty() {
            b.push(Block::Para("No notes recorded.".into()));
        } else {
            b.push(Block::List(notes));
        }
    }

    // Metrics.
    b.push(Block::Heading(2, "Time to detect and contain".into()));
    // When Vigil raised the first alert (stored it): later than its event when the logs
    // reached it late (a batch ingest); the responders could only act from then on.
    let raised = alerts.iter().map(|a| a.received).min();
    let ttd = match (first_bad, first_alert) {
        (Some(e), Some(a)) => {
            let late = raised
                .filter(|r| r - a.time > 60_000_000)
                .map(|r| {
                    format!(
                        "; Vigil raised it at {} ({} after the event: the logs arrived late)",
                        vigil_store::reader::micros_rfc3339(r),
                        duration(r - a.time)
                    )
                })
                .unwrap_or_default();
            format!(
                "{} (first malicious event {} → first alert {}{late})",
                duration(a.time - e.time),
                e.time_rfc3339(),
                a.time_rfc3339()
            )
        }
        _ => "not measurable (no alert or no event of the entities)".into(),
    };
    let ttc = match (raised, contained) {
        (Some(r), Some(c)) => format!(
            "{} (first alert raised {} → containment entered {})",
            duration(c - r),
            vigil_store::reader::micros_rfc3339(r),
            inc.entered(Phase::Containment).unwrap_or("")
        ),
        (_, None) => "not contained yet".into(),
        (None, Some(_)) => "not measurable (no alert)".into(),
    };
    b.push(Block::List(vec![
        format!("Time to detect: {ttd}"),
        format!("Time to contain: {ttc}"),
    ]));
    b.push(Block::Para(
        "Detection is measured in event time (an alert's time is that of the event that \
         triggered it); containment from when Vigil raised the first alert."
            .into(),
    ));

    // Gaps.
    b.push(Block::Heading(2, "Detection and logging gaps".into()));
    let k8s: Vec<&Ev> = malicious
        .iter()
        .copied()
        .filter(|e| e.doc.get("objectRef").is_some())
        .collect();
    let gaps = gaps::gaps(&k8s, input.policy);
    if gaps.is_empty() {
        b.push(Block::Para(
            "No event of the incident was logged at a level that hid what a built-in rule needs."
                .into(),
        ));
    }
    let mut items = Vec::new();
    for g in &gaps {
        let earlier = first_alert
            .zip(parse_time(&g.time))
            .filter(|(a, t)| *t < a.time)
            .map(|(a, t)| format!(" ({} before the first alert)", duration(a.time - t)))
            .unwrap_or_default();
        items.push(format!(
            "{} {}: logged at {}{}, so {} could not be read; {} rule(s) could not check it{earlier}: {}.",
            g.time,
            g.what,
            g.level,
            g.policy
                .as_ref()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default(),
            g.needs.join(", "),
            g.rules.len(),
            g.rules.join(", ")
        ));
    }
    if !gaps.is_empty() {
        b.push(Block::Para(
            "Events of the incident logged without the request body that built-in rules read \
             (log these requests at Request level):"
                .into(),
        ));
        b.push(Block::List(items));
    }
    let unalerted = unalerted(&k8s, &alerts);
    if !unalerted.is_empty() {
        b.push(Block::Para(
            "Changes, secret reads and exec sessions of the incident's entities that no alert \
             points at (a rule for them would have made them visible):"
                .into(),
        ));
        b.push(Block::List(unalerted));
    }

    // Lessons learned.
    b.push(Block::Heading(2, "Lessons learned".into()));
    let lessons: Vec<String> = inc
        .notes
        .iter()
        .filter(|n| n.phase == Phase::LessonsLearned)
        .map(|n| format!("{} ({}, {})", n.text, n.actor, n.time))
        .collect();
    if lessons.is_empty() {
        b.push(Block::Para("None recorded yet.".into()));
    } else {
        b.push(Block::List(lessons));
    }
    b
}
