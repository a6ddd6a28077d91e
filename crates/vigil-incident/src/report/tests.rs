use serde_json::json;

use super::*;
use crate::model::{Action, Entity, EntityKind, HistoryEntry};
use crate::runbook::tests::ev;
use crate::scope::scope;

fn entry(seq: u64, time: &str, action: Action) -> HistoryEntry {
    HistoryEntry {
        seq,
        incident: "INC-0003".into(),
        time: time.into(),
        actor: "alice".into(),
        action,
        prev: String::new(),
        hash: String::new(),
    }
}

/// Attacker `mallory` acts at t=10s and t=70s; an alert at t=40s; containment entered at
/// t=100s (the epoch plus seconds, as RFC 3339).
fn fixture() -> (Incident, Vec<Ev>) {
    let at = |s: i64| vigil_store::reader::micros_rfc3339(s * 1_000_000);
    let inc = Incident::replay(&[
        entry(
            1,
            &at(50),
            Action::Opened {
                title: "t <i>".into(),
                alerts: vec![],
                related: vec![],
                entities: vec![Entity {
                    kind: EntityKind::User,
                    value: "mallory".into(),
                }],
                window_secs: 3600,
                since: 0,
                until: 0,
                timeline: vec![],
            },
        ),
        entry(
            2,
            &at(100),
            Action::Phase {
                from: Phase::Detection,
                to: Phase::Containment,
                note: None,
            },
        ),
        entry(
            3,
            &at(110),
            Action::Phase {
                from: Phase::Containment,
                to: Phase::LessonsLearned,
                note: Some("cut off".into()),
            },
        ),
        entry(
            4,
            &at(120),
            Action::Note {
                text: "audit pods at Request | *now*".into(),
            },
        ),
    ])
    .unwrap();
    let mut e1 = ev(
        10,
        json!({"user": {"name": "mallory"}, "verb": "create", "level": "Metadata",
               "objectRef": {"resource": "pods", "namespace": "x", "name": "p"},
               "http": {"response": {"status_code": 201}}}),
    );
    e1.time = 10_000_000;
    let mut alert = ev(40, json!({"rule": {"name": "R"}}));
    alert.alert = true;
    alert.time = 40_000_000;
    alert.received = 40_000_000;
    alert.raw = json!({"rule": {"level": "high", "tags": ["attack.t1610"]}});
    let mut e2 = ev(
        70,
        json!({"user": {"name": "mallory"}, "verb": "get", "level": "Metadata",
               "objectRef": {"resource": "secrets", "namespace": "x", "name": "s"},
               "http": {"response": {"status_code": 200}}}),
    );
    e2.time = 70_000_000;
    (inc, vec![e2, alert, e1])
}

#[test]
fn times_to_detect_and_contain() {
    let (inc, evs) = fixture();
    let s = scope(&inc, &evs);
    let md = markdown(&build(&ReportInput {
        incident: &inc,
        events: &evs,
        scope: &s,
        policy: None,
    }));
    assert!(
        md.contains("- Time to detect: 30s (first malicious event"),
        "{md}"
    );
    assert!(md.contains("- Time to contain: 1m 0s (first alert"), "{md}");
    // Notes per phase; lessons learned.
    assert!(md.contains("### Containment (entered"), "{md}");
    assert!(md.contains("cut off"), "{md}");
    let lessons = &md[md.find("## Lessons learned").unwrap()..];
    assert!(
        lessons.contains("audit pods at Request \\| \\*now\\*"),
        "{lessons}"
    );
    // The Metadata-level pod creation is a gap, earlier than the first alert.
    let gaps = &md[md.find("## Detection and logging gaps").unwrap()..];
    assert!(
        gaps.contains("create pods x/p: logged at Metadata"),
        "{gaps}"
    );
    assert!(gaps.contains("(30s before the first alert)"), "{gaps}");
    assert!(
        gaps.contains("Privileged Container Created (high)"),
        "{gaps}"
    );
    // The alert cites no event: both actions are listed as not alerted on.
    let quiet = &gaps[gaps.find("that no alert points at").unwrap()..];
    assert!(quiet.contains("create pods x/p by mallory"), "{quiet}");
    assert!(quiet.contains("get secrets x/s by mallory"), "{quiet}");
}

#[test]
fn actions_an_alert_cites_are_not_listed_as_unalerted() {
    let (inc, mut evs) = fixture();
    for e in &mut evs {
        e.doc["auditID"] = json!(format!("id-{}", e.loc));
        if e.alert {
            e.raw["events"] = json!([{"id": "id-10"}, {"id": "id-70"}]);
        }
    }
    let s = scope(&inc, &evs);
    let md = markdown(&build(&ReportInput {
        incident: &inc,
        events: &evs,
        scope: &s,
        policy: None,
    }));
    assert!(!md.contains("that no alert points at"), "{md}");
}

#[test]
fn escaping() {
    assert_eq!(
        html_escape(r#"<script>"a" & 'b'</script>"#),
        "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
    );
    assert_eq!(
        md_escape("a|b <x> *y* [l](u)\n#"),
        "a\\|b \\<x\\> \\*y\\* \\[l\\](u) \\#"
    );
    let (inc, evs) = fixture();
    let s = scope(&inc, &evs);
    let h = html(&build(&ReportInput {
        incident: &inc,
        events: &evs,
        scope: &s,
        policy: None,
    }));
    assert!(
        h.contains("<title>Incident report INC-0003: t &lt;i&gt;</title>"),
        "{h}"
    );
    assert!(!h.contains("<i>"));
}

#[test]
fn durations() {
    assert_eq!(duration(0), "0s");
    assert_eq!(duration(61_000_000), "1m 1s");
    assert_eq!(duration(90_061_000_000), "1d 1h 1m 1s");
    assert_eq!(duration(-5_000_000), "-5s");
    assert_eq!(duration(-273_520), "0s");
}
