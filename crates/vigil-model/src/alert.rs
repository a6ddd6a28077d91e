//! The alert: what every detection (single event or correlation) reports. A contract: the JSON
//! field names here are relied on outside the repository; extend, never rename.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One alert, as `vigil detect` prints it (one JSON line each).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub rule: AlertRule,
    /// The triggering event's time, RFC 3339.
    pub time: String,
    /// Group-by values of a correlation; `{}` for single-event rules.
    pub group: Map<String, Value>,
    /// The evidence: the events that made the alert.
    pub events: Vec<EvidenceRef>,
    /// The fields and values that made the rule's selections true.
    pub matched: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    pub id: String,
    pub title: String,
    pub level: String,
    pub tags: Vec<String>,
}

/// Where an event of the evidence is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceRef {
    pub dataset: String,
    pub file: String,
    pub line: usize,
    /// The event's own id where it has one (a Kubernetes auditID); else null.
    pub id: Option<String>,
}

/// Sigma levels in order; unknown levels rank lowest.
pub fn level_rank(level: &str) -> u8 {
    match level.to_ascii_lowercase().as_str() {
        "informational" => 1,
        "low" => 2,
        "medium" => 3,
        "high" => 4,
        "critical" => 5,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered() {
        assert!(level_rank("critical") > level_rank("high"));
        assert!(level_rank("HIGH") > level_rank("medium"));
        assert!(level_rank("low") > level_rank("nonsense"));
    }

    #[test]
    fn alert_json_has_the_contract_fields() {
        let a = Alert {
            rule: AlertRule {
                id: "x".into(),
                title: "t".into(),
                level: "high".into(),
                tags: vec![],
            },
            time: "2026-01-01T00:00:00Z".into(),
            group: Map::new(),
            events: vec![EvidenceRef {
                dataset: "k8s.audit".into(),
                file: "a.log".into(),
                line: 3,
                id: Some("id".into()),
            }],
            matched: Map::new(),
        };
        let v = serde_json::to_value(&a).unwrap();
        for key in ["rule", "time", "group", "events", "matched"] {
            assert!(v.get(key).is_some(), "{key}");
        }
        for key in ["id", "title", "level", "tags"] {
            assert!(v["rule"].get(key).is_some(), "{key}");
        }
        for key in ["dataset", "file", "line", "id"] {
            assert!(v["events"][0].get(key).is_some(), "{key}");
        }
    }
}
