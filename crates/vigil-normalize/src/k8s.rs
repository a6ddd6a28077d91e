//! `k8s.audit`: Kubernetes audit events (one JSON object a line; an
//! `EventList` line gives one event per item). The raw event stays as is at
//! the top level; ECS fields are added beside it (`user.name` joins the
//! event's own `user` object next to `username`).

use serde_json::{Map, Value};

use crate::ecs::{self, set, set_address, set_categories, set_str, Outcome};
use crate::{excerpt, Dataset, Output, ParseError, Parsed, Parser};

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// Adds the ECS fields to one audit event object.
pub fn normalize(mut ev: Map<String, Value>) -> Map<String, Value> {
    let raw = Value::Object(ev.clone());
    set_str(&mut ev, "event.dataset", Dataset::K8sAudit.as_str());
    let ts = s(&raw, &["stageTimestamp"])
        .or_else(|| s(&raw, &["requestReceivedTimestamp"]))
        .or_else(|| s(&raw, &["timestamp"]));
    if let Some(t) = ts.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) {
        set_str(&mut ev, "@timestamp", &ecs::rfc3339(&t));
    }
    if let Some(id) = s(&raw, &["auditID"]) {
        set_str(&mut ev, "event.id", id);
    }
    if let Some(u) = s(&raw, &["user", "username"]) {
        set_str(&mut ev, "user.name", u);
    }
    if let Some(u) = s(&raw, &["impersonatedUser", "username"]) {
        set_str(&mut ev, "user.effective.name", u);
    }
    if let Some(ip) = raw
        .get("sourceIPs")
        .and_then(Value::as_array)
        .and_then(|a| a.last())
        .and_then(Value::as_str)
    {
        set_address(&mut ev, "source", ip);
    }
    if let Some(ua) = s(&raw, &["userAgent"]) {
        set_str(&mut ev, "user_agent.original", ua);
    }
    if let Some(uri) = s(&raw, &["requestURI"]) {
        set_str(&mut ev, "url.original", uri);
    }
    let verb = s(&raw, &["verb"]).unwrap_or("");
    set_str(&mut ev, "event.action", verb);
    let code = raw
        .get("responseStatus")
        .and_then(|r| r.get("code"))
        .and_then(Value::as_i64);
    let outcome = match code {
        Some(c) if c < 400 => Outcome::Success,
        Some(_) => Outcome::Failure,
        None => Outcome::Unknown,
    };
    ecs::set_outcome(&mut ev, outcome);
    if let Some(c) = code {
        set(&mut ev, "http.response.status_code", Value::from(c));
    }
    set_str(&mut ev, "orchestrator.type", "kubernetes");
    let resource = s(&raw, &["objectRef", "resource"]).unwrap_or("");
    if !resource.is_empty() {
        let ty = match s(&raw, &["objectRef", "subresource"]) {
            Some(sub) if !sub.is_empty() => format!("{resource}/{sub}"),
            _ => resource.to_string(),
        };
        set_str(&mut ev, "orchestrator.resource.type", &ty);
    }
    if let Some(n) = s(&raw, &["objectRef", "name"]) {
        set_str(&mut ev, "orchestrator.resource.name", n);
    }
    if let Some(n) = s(&raw, &["objectRef", "namespace"]) {
        set_str(&mut ev, "orchestrator.namespace", n);
    }
    if let Some(n) = s(&raw, &["objectRef", "apiVersion"]) {
        set_str(&mut ev, "orchestrator.api_version", n);
    }
    let mut cats: Vec<&str> = vec!["api"];
    if matches!(
        resource,
        "roles"
            | "rolebindings"
            | "clusterroles"
            | "clusterrolebindings"
            | "serviceaccounts"
            | "certificatesigningrequests"
    ) {
        cats.push("iam");
    }
    if matches!(
        resource,
        "tokenreviews" | "subjectaccessreviews" | "selfsubjectaccessreviews"
    ) {
        cats.push("authentication");
    }
    if matches!(resource, "secrets" | "configmaps") {
        cats.push("configuration");
    }
    let types: &[&str] = match verb {
        "create" => &["creation"],
        "update" | "patch" => &["change"],
        "delete" | "deletecollection" => &["deletion"],
        "get" | "list" | "watch" => &["access"],
        _ => &["info"],
    };
    set_categories(&mut ev, &cats, types);
    ecs::add_related(&mut ev);
    ev
}

#[derive(Default)]
pub struct K8sAuditParser;

impl K8sAuditParser {
    pub fn new() -> Self {
        K8sAuditParser
    }
}

impl Parser for K8sAuditParser {
    fn dataset(&self) -> Dataset {
        Dataset::K8sAudit
    }

    fn push_line(&mut self, line: &str, line_no: usize, out: &mut Output) {
        if line.trim().is_empty() {
            return;
        }
        let err = |what: &str| ParseError::new(line_no, what, excerpt(line));
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(m)) if m.get("kind").and_then(Value::as_str) == Some("EventList") => {
                let items = m
                    .get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for item in items {
                    out.push(match item {
                        Value::Object(ev) => Ok(Parsed {
                            line: line_no,
                            doc: Value::Object(normalize(ev)),
                        }),
                        _ => Err(err("an audit event object in EventList.items")),
                    });
                }
            }
            Ok(Value::Object(m)) if m.contains_key("verb") || m.contains_key("auditID") => out
                .push(Ok(Parsed {
                    line: line_no,
                    doc: Value::Object(normalize(m)),
                })),
            Ok(_) => out.push(Err(err(
                "a Kubernetes audit event object (with verb, auditID)",
            ))),
            Err(e) => out.push(Err(ParseError::new(
                line_no,
                "a JSON object",
                format!("{e}: {}", excerpt(line)),
            ))),
        }
    }

    fn flush(&mut self, _out: &mut Output) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecs::lookup;
    use crate::parse_all;
    use serde_json::json;

    #[test]
    fn audit_event() {
        let line = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/pods/p1/exec","verb":"create","user":{"username":"alice","groups":["dev"]},"impersonatedUser":{"username":"bob"},"sourceIPs":["10.0.0.1","192.0.2.7"],"userAgent":"kubectl/v1.29","objectRef":{"resource":"pods","subresource":"exec","namespace":"default","name":"p1","apiVersion":"v1"},"responseStatus":{"code":101},"requestReceivedTimestamp":"2024-03-01T12:00:00.100000Z","stageTimestamp":"2024-03-01T14:00:00.200000+02:00"}"#;
        let out = parse_all(&mut K8sAuditParser::new(), line);
        let v = &out[0].as_ref().unwrap().doc;
        assert_eq!(v["user"]["username"], "alice");
        assert_eq!(v["user"]["groups"], json!(["dev"]));
        assert_eq!(lookup(v, "user.name").unwrap(), "alice");
        assert_eq!(lookup(v, "user.effective.name").unwrap(), "bob");
        assert_eq!(lookup(v, "source.ip").unwrap(), "192.0.2.7");
        assert_eq!(lookup(v, "event.action").unwrap(), "create");
        assert_eq!(lookup(v, "event.outcome").unwrap(), "success");
        assert_eq!(v["@timestamp"], "2024-03-01T12:00:00.200Z");
        assert_eq!(lookup(v, "user_agent.original").unwrap(), "kubectl/v1.29");
        assert_eq!(
            lookup(v, "orchestrator.resource.type").unwrap(),
            "pods/exec"
        );
        assert_eq!(lookup(v, "orchestrator.resource.name").unwrap(), "p1");
        assert_eq!(lookup(v, "orchestrator.namespace").unwrap(), "default");
        assert_eq!(v["objectRef"]["subresource"], "exec");
        assert_eq!(lookup(v, "event.dataset").unwrap(), "k8s.audit");
    }

    #[test]
    fn failures_and_rejects() {
        let text = "{\"verb\":\"list\",\"auditID\":\"x\",\"responseStatus\":{\"code\":403}}\n[1,2]\n{oops\n";
        let out = parse_all(&mut K8sAuditParser::new(), text);
        assert_eq!(out.len(), 3);
        let v = &out[0].as_ref().unwrap().doc;
        assert_eq!(lookup(v, "event.outcome").unwrap(), "failure");
        assert_eq!(out[1].as_ref().unwrap_err().line, 2);
        assert_eq!(out[2].as_ref().unwrap_err().line, 3);
    }
}
