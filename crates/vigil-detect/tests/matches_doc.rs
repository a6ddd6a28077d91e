//! `RuleSet::matches_doc`: the pruned document a match hands over holds what the rules and the
//! caller read, as the whole document has it, and nothing is handed over when nothing matched.

use serde_json::json;
use vigil_detect::{Config, Event, RuleSet, RuleSource};

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
    // The rule's fields only.
    assert_eq!(
        doc,
        Some(json!({"verb":"create","objectRef":{"subresource":"exec"}}))
    );

    set.keep_fields(&["auditID", "requestObject.big", "stageTimestamp"]);
    out.clear();
    let doc = set.matches_doc(&Event::from_raw("k8s.audit", raw), true, &mut out);
    assert_eq!(
        doc,
        Some(
            json!({"auditID":"a1","verb":"create","objectRef":{"subresource":"exec"},
            "stageTimestamp":"2024-01-01T00:00:00Z","requestObject":{"big":[1,2]}})
        )
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
