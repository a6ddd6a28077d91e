//! Alerts in the `vigil detect` contract, built from engine matches and correlations, and the
//! service's own alert for a silent source.

use std::time::Duration;

use serde_json::{Map, Value};
use vigil_detect::{CorrelationAlert, RuleInfo, RuleSet};
use vigil_model::alert::{Alert, AlertRule, EvidenceRef};

pub fn alert_rule(info: &RuleInfo) -> AlertRule {
    AlertRule {
        id: info
            .id
            .clone()
            .or_else(|| info.name.clone())
            .unwrap_or_else(|| info.title.clone()),
        title: info.title.clone(),
        level: info.level.clone().unwrap_or_else(|| "medium".into()),
        tags: info.tags.clone(),
    }
}

pub(super) fn correlation_alert(set: &RuleSet, c: &CorrelationAlert, file: &str) -> Alert {
    let info = &set.rules()[c.rule];
    let time = chrono::DateTime::from_timestamp_millis(c.last_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_default();
    let mut matched = Map::new();
    matched.insert("count".into(), Value::from(c.count));
    if let Some(field) = &c.field {
        matched.insert(field.clone(), Value::Array(c.values.clone()));
    }
    Alert {
        rule: alert_rule(info),
        time,
        group: c.group.iter().cloned().collect(),
        events: c
            .events
            .iter()
            .map(|e| EvidenceRef {
                dataset: set.rules()[e.rule]
                    .datasets
                    .first()
                    .cloned()
                    .unwrap_or_default(),
                file: file.to_string(),
                line: 0,
                id: e.id.clone(),
            })
            .collect(),
        matched,
    }
}

pub(super) fn event_id(dataset: &str, doc: &Value) -> Option<String> {
    let key = match dataset {
        "k8s.audit" => "auditID",
        d if d.starts_with("zeek.") => "uid",
        _ => return None,
    };
    doc.get(key).and_then(Value::as_str).map(str::to_string)
}

pub(super) fn event_time(doc: &Value) -> String {
    [
        "stageTimestamp",
        "requestReceivedTimestamp",
        "timestamp",
        "@timestamp",
    ]
    .iter()
    .find_map(|k| doc.get(*k).and_then(Value::as_str))
    .unwrap_or_default()
    .to_string()
}

/// The alert a silent source raises.
pub fn silent_alert(source: &str, silent_for: Duration) -> Alert {
    let mut group = Map::new();
    group.insert("source".into(), Value::from(source));
    let mut matched = Map::new();
    matched.insert("silent_seconds".into(), Value::from(silent_for.as_secs()));
    Alert {
        rule: AlertRule {
            id: "vigil-source-silent".into(),
            title: format!("Log source {source} went silent"),
            level: "high".into(),
            tags: vec!["attack.defense-evasion".into(), "attack.t1562.002".into()],
        },
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        group,
        events: Vec::new(),
        matched,
    }
}
