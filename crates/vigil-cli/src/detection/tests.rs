//! The detector over a few events, one after the other, as `vigil detect --threads 1` runs it.

use vigil_detect::{Config, RuleSet, RuleSource};

use super::{Detector, JsonLines, LoadedRules};
use crate::input::Item;

const RULE: &str = r#"
title: Exec into a pod
id: exec
logsource: {product: kubernetes, service: audit}
detection:
    selection:
        verb: create
        objectRef.subresource: exec
    condition: selection
"#;

fn rules() -> LoadedRules {
    let sources = vec![RuleSource::new("exec.yml", RULE)];
    let (mut set, errors) = RuleSet::compile(&sources, &Config::default());
    assert!(errors.is_empty(), "{errors:?}");
    set.keep_fields(&super::head::KEYS);
    LoadedRules {
        set,
        errors,
        sources,
    }
}

fn item(raw: &str, line: usize) -> Item<'_> {
    Item {
        dataset: "k8s.audit",
        file: "a.jsonl",
        line,
        raw: Some(raw),
        doc: None,
        time_ms: None,
    }
}

#[test]
fn each_alert_has_its_own_event_id_and_time() {
    let rules = rules();
    let mut detector = Detector::new(&rules).without_docs();
    let mut sink = JsonLines::new(Vec::new());
    let events = [
        r#"{"auditID":"a-1","stage":"RequestReceived","stageTimestamp":"2024-01-01T00:00:01Z","verb":"create","objectRef":{"subresource":"exec"}}"#,
        // No match: what the last event left must not leak into the next.
        r#"{"auditID":"b-1","stageTimestamp":"2024-01-01T00:00:02Z","verb":"get"}"#,
        // No id: alerts every time, with a null id.
        r#"{"requestReceivedTimestamp":"2024-01-01T00:00:03Z","verb":"create","objectRef":{"subresource":"exec"}}"#,
        // The first request's next stage: already alerted.
        r#"{"auditID":"a-1","stage":"ResponseComplete","stageTimestamp":"2024-01-01T00:00:04Z","verb":"create","objectRef":{"subresource":"exec"}}"#,
        // No time.
        r#"{"auditID":"c-1","verb":"create","objectRef":{"subresource":"exec"}}"#,
    ];
    for (i, raw) in events.iter().enumerate() {
        detector.process_to(item(raw, i + 1), &mut sink).unwrap();
    }
    let got: Vec<(serde_json::Value, String, usize)> = String::from_utf8(sink.out)
        .unwrap()
        .lines()
        .map(|l| {
            let a: serde_json::Value = serde_json::from_str(l).unwrap();
            let e = &a["events"][0];
            (
                e["id"].clone(),
                a["time"].as_str().unwrap().to_string(),
                e["line"].as_u64().unwrap() as usize,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("a-1".into(), "2024-01-01T00:00:01Z".into(), 1),
            (serde_json::Value::Null, "2024-01-01T00:00:03Z".into(), 3),
            ("c-1".into(), String::new(), 5),
        ]
    );
}
