//! The documents parsed down for callers: `RuleSet::matches_doc` (what the caller keeps, as
//! the whole document has it, and what correlations read when a match feeds one; nothing when
//! nothing matched; the rules' own fields only when their values were not captured) and `RuleSet::correlation_doc` (what correlations read:
//! they alert as on the whole document).

use serde_json::json;
use vigil_detect::{Config, CorrelationState, Event, RuleSet, RuleSource};

const RULES: &str = r#"
title: Exec
name: exec
logsource: {product: kubernetes, service: audit}
detection:
    selection:
        verb: create
        objectRef.subresource: exec
    condition: selection
---
title: Exec burst
correlation:
    type: event_count
    rules:
        - exec
    group-by:
        - user.username
    timespan: 1m
    condition:
        gte: 2
---
title: Secret read
name: secret-read
logsource: {product: kubernetes, service: audit}
detection:
    selection:
        verb: get
        objectRef.resource: secrets
    condition: selection
"#;

#[test]
fn pruned_documents_keep_what_correlations_and_callers_read() {
    let (mut set, errors) =
        RuleSet::compile(&[RuleSource::new("r.yml", RULES)], &Config::default());
    assert!(errors.is_empty(), "{errors:#?}");
    let raw = r#"{"auditID":"a1","verb":"create","objectRef":{"subresource":"exec","name":"p"},"user":{"username":"u","groups":["g"]},"stageTimestamp":"2024-01-01T00:00:00Z","requestObject":{"big":[1,2]}}"#;
    let mut out = Vec::new();
    let doc = set.matches_doc(&Event::from_raw("k8s.audit", raw), true, &mut out);
    assert_eq!(out.len(), 1);
    // What the correlation it feeds reads (time, id, group-by). The rule's own fields are
    // not there: their values were captured while parsing.
    assert_eq!(
        doc,
        Some(
            json!({"auditID":"a1","user":{"username":"u"},"stageTimestamp":"2024-01-01T00:00:00Z"})
        )
    );
    // A rule that feeds no correlation, and nothing kept: no document.
    let secret = raw
        .replace("\"create\"", "\"get\"")
        .replace("\"subresource\":\"exec\"", "\"resource\":\"secrets\"");
    out.clear();
    let doc = set.matches_doc(&Event::from_raw("k8s.audit", &secret), true, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(doc, None);

    set.keep_fields(&["auditID", "requestObject.big", "stageTimestamp"]);
    out.clear();
    let doc = set.matches_doc(&Event::from_raw("k8s.audit", &secret), true, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(
        doc,
        Some(
            json!({"auditID":"a1","stageTimestamp":"2024-01-01T00:00:00Z",
            "requestObject":{"big":[1,2]}})
        )
    );
    out.clear();
    let doc = set.matches_doc(&Event::from_raw("k8s.audit", raw), true, &mut out);
    assert_eq!(
        doc,
        Some(
            json!({"auditID":"a1","user":{"username":"u"},"stageTimestamp":"2024-01-01T00:00:00Z",
            "requestObject":{"big":[1,2]}})
        )
    );

    // A text the capture gives up on (a `\u` escape): parsed down to the rules' fields too.
    let escaped = raw.replace("\"create\"", "\"cr\\u0065ate\"");
    out.clear();
    let doc = set.matches_doc(&Event::from_raw("k8s.audit", &escaped), true, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(
        doc.as_ref().and_then(|d| d.get("verb")),
        Some(&json!("create"))
    );
    assert_eq!(
        doc.as_ref().and_then(|d| d.get("auditID")),
        Some(&json!("a1"))
    );

    out.clear();
    let other = raw.replace("\"create\"", "\"get\"");
    assert_eq!(
        set.matches_doc(&Event::from_raw("k8s.audit", &other), true, &mut out),
        None
    );
    assert!(out.is_empty());
    // An event that comes parsed has its own document.
    let parsed: serde_json::Value = serde_json::from_str(raw).unwrap();
    assert_eq!(
        set.matches_doc(&Event::new("k8s.audit", &parsed), true, &mut out),
        None
    );
    assert_eq!(out.len(), 1);
}

fn exec(id: &str, user: &str, second: u32) -> String {
    format!(
        r#"{{"auditID":"{id}","verb":"create","objectRef":{{"subresource":"exec","name":"p"}},"user":{{"username":"{user}","groups":["g"]}},"stageTimestamp":"2024-01-01T00:00:{second:02}Z","requestObject":{{"big":[1,2]}}}}"#
    )
}

#[test]
fn correlations_fed_from_the_pruned_document_alert_alike() {
    let (set, errors) = RuleSet::compile(&[RuleSource::new("r.yml", RULES)], &Config::default());
    assert!(errors.is_empty(), "{errors:#?}");
    let raw = exec("a1", "u", 1);
    // The dataset's time and id fields and the correlation's group-by, nothing else.
    assert_eq!(
        set.correlation_doc(&Event::from_raw("k8s.audit", &raw)),
        Some(
            json!({"auditID":"a1","user":{"username":"u"},"stageTimestamp":"2024-01-01T00:00:01Z"})
        )
    );
    assert_eq!(
        set.correlation_doc(&Event::from_raw("k8s.audit", "[1]")),
        None
    );
    assert_eq!(
        set.correlation_doc(&Event::from_raw("linux.auth", &raw)),
        None
    );

    let events = [exec("a1", "u", 1), exec("a2", "v", 2), exec("a3", "u", 3)];
    // The document correlations get: the whole one, `correlation_doc`'s, or `matches_doc`'s.
    let run = |source: u8| {
        let (mut state, mut alerts, mut matches) = (CorrelationState::new(), vec![], vec![]);
        for raw in &events {
            let ev = Event::from_raw("k8s.audit", raw);
            matches.clear();
            let pruned = set.matches_doc(&ev, true, &mut matches);
            let doc = match source {
                0 => serde_json::from_str(raw).unwrap(),
                1 => set.correlation_doc(&ev).unwrap(),
                _ => pruned.unwrap(),
            };
            set.correlate(
                &Event::new("k8s.audit", &doc),
                &matches,
                &mut state,
                &mut alerts,
            );
        }
        set.flush(&mut state, i64::MAX, &mut alerts);
        format!("{alerts:?}")
    };
    let whole = run(0);
    assert!(whole.contains("a3"), "{whole}");
    assert_eq!(run(1), whole);
    assert_eq!(run(2), whole);
}
