//! Turning what was read into records for the store: redaction first (for Kubernetes audit),
//! normalization, event time, and the dedup identity.

use serde_json::{Map, Value};
use vigil_model::alert::Alert;
use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

use crate::redact::redact_k8s;
use crate::segment::{FLAG_K8S_V1, FLAG_MESSAGE_IS_RAW, FLAG_OVERLAY, FLAG_REDACTED};

pub const ALERT_DATASET: &str = "vigil.alert";

/// An event (or alert) ready to be appended. Built by the functions of this module only, so
/// that nothing unredacted reaches the journal.
#[derive(Clone, Debug)]
pub struct Record {
    pub(crate) dataset: String,
    pub(crate) source: String,
    pub(crate) received: i64,
    pub(crate) event_time: i64,
    /// The event as received, after redaction.
    pub(crate) raw: String,
    pub(crate) redacted: bool,
    /// The normalized document.
    pub(crate) doc: Value,
    /// What makes two deliveries the same event: `auditID` + stage, an alert id.
    pub(crate) identity: Option<String>,
    /// Segment flags and the document bytes as stored (see `segment`).
    pub(crate) flags: u8,
    pub(crate) stored_doc: Vec<u8>,
}

impl Record {
    pub fn dataset(&self) -> &str {
        &self.dataset
    }
    pub fn doc(&self) -> &Value {
        &self.doc
    }
    pub fn raw(&self) -> &str {
        &self.raw
    }
    pub fn event_time(&self) -> i64 {
        self.event_time
    }
    pub fn redacted(&self) -> bool {
        self.redacted
    }
}

pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

pub fn parse_time_micros(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_micros())
}

fn stage_code(stage: &str) -> u64 {
    match stage {
        "RequestReceived" => 1,
        "ResponseStarted" => 2,
        "ResponseComplete" => 3,
        "Panic" => 4,
        "" => 5,
        other => 0x80 | (xxh3_64(other.as_bytes()) & 0x7f),
    }
}

/// The dedup key of an identity: a 32-bit hash of the event's id alone in the high bits (so the
/// same file answers "where is auditID X", see `Reader::locate_id`) and the stage code in the
/// low byte (`ids::KEY_MASK`).
pub fn dedup_key(identity: &str) -> u64 {
    let (id, stage) = identity.split_once('\0').unwrap_or((identity, ""));
    id_hash(id) | stage_code(stage)
}

pub fn id_hash(id: &str) -> u64 {
    xxh3_64(id.as_bytes()) & crate::ids::KEY_MASK & !0xff
}

/// A Kubernetes audit event's identity, read from its JSON.
pub fn k8s_identity(raw: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Id<'a> {
        #[serde(rename = "auditID", borrow)]
        audit_id: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow)]
        stage: Option<std::borrow::Cow<'a, str>>,
    }
    let id: Id = serde_json::from_str(raw).ok()?;
    let a = id.audit_id?;
    Some(format!("{a}\0{}", id.stage.unwrap_or_default()))
}

/// The identity of a stored record (for checking dedup hits).
pub fn identity_of(dataset: &str, raw: &[u8]) -> Option<String> {
    let raw = std::str::from_utf8(raw).ok()?;
    match dataset {
        "k8s.audit" => k8s_identity(raw),
        ALERT_DATASET => serde_json::from_str::<Value>(raw)
            .ok()?
            .get("id")?
            .as_str()
            .map(|s| format!("alert:{s}")),
        _ => None,
    }
}

fn set_path(doc: &mut Map<String, Value>, path: &str, v: Value) {
    let mut parts = path.split('.').peekable();
    let mut cur = doc;
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(p.to_string(), v);
            return;
        }
        let next = cur
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !next.is_object() {
            *next = Value::Object(Map::new());
        }
        let Value::Object(m) = next else { return };
        cur = m;
    }
}

fn event_time_of(doc: &Value, received: i64) -> i64 {
    [
        "stageTimestamp",
        "requestReceivedTimestamp",
        "timestamp",
        "@timestamp",
    ]
    .iter()
    .find_map(|k| {
        doc.get(*k)
            .and_then(Value::as_str)
            .and_then(parse_time_micros)
    })
    .unwrap_or(received)
}

/// A Kubernetes audit event from its JSON text: secrets redacted, then normalized.
pub fn k8s_event(raw: &str, source: &str, received: i64) -> Result<Record, String> {
    let redaction = redact_k8s(raw);
    let text = redaction.as_ref().map_or(raw, |r| r.raw.as_str());
    let map: Map<String, Value> = match serde_json::from_str(text) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err("not a JSON object".into()),
        Err(e) => return Err(e.to_string()),
    };
    let mut doc = vigil_normalize::k8s::normalize(map);
    // The normalizer is a pure function of the raw event (pinned by a test): what is stored
    // beside the raw is only what it does not give, the redaction record.
    let mut extra = Map::new();
    if let Some(r) = &redaction {
        let paths = Value::Array(r.paths.iter().cloned().map(Value::from).collect());
        set_path(&mut doc, "vigil.redacted", paths.clone());
        set_path(&mut extra, "vigil.redacted", paths);
    }
    let doc = Value::Object(doc);
    let identity = k8s_identity(text);
    let stored_doc = if extra.is_empty() {
        Vec::new()
    } else {
        Value::Object(extra).to_string().into_bytes()
    };
    let mut flags = FLAG_K8S_V1;
    if redaction.is_some() {
        flags |= FLAG_REDACTED;
    }
    Ok(Record {
        flags,
        stored_doc,
        dataset: "k8s.audit".into(),
        source: source.to_string(),
        received,
        event_time: event_time_of(&doc, received),
        raw: text.to_string(),
        redacted: redaction.is_some(),
        doc,
        identity,
    })
}

/// An event parsed by `vigil-normalize` (auth.log, auditd, Zeek, VPC flow logs). The raw is the
/// original line(s) where the parser keeps them in `message`, else the document itself.
pub fn parsed_event(dataset: &str, doc: Value, source: &str, received: i64) -> Record {
    let message = doc
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string);
    let (raw, message_is_raw) = match message {
        Some(m) => (m, true),
        None => (doc.to_string(), false),
    };
    let (flags, stored_doc) = if message_is_raw {
        let mut d = doc.clone();
        if let Value::Object(m) = &mut d {
            m.remove("message");
        }
        (FLAG_MESSAGE_IS_RAW, d.to_string().into_bytes())
    } else {
        (FLAG_OVERLAY, b"{}".to_vec())
    };
    Record {
        flags,
        stored_doc,
        dataset: dataset.to_string(),
        source: source.to_string(),
        received,
        event_time: event_time_of(&doc, received),
        raw,
        redacted: false,
        doc,
        identity: None,
    }
}

/// A stable id for an alert: the same detection on the same evidence gets the same id.
pub fn alert_id(a: &Alert) -> String {
    let mut key = format!("{}\n{}\n", a.rule.id, a.time);
    for e in &a.events {
        match &e.id {
            Some(id) => key.push_str(id),
            // The file's name, not its path: `vigil ingest ./x/auth.log`, `x/auth.log` and
            // `vigil serve` following `/abs/x/auth.log` must agree on the same detection.
            None => {
                let name = e.file.rsplit(['/', '\\']).next().unwrap_or(&e.file);
                key.push_str(&format!("{}:{}:{}", e.dataset, name, e.line))
            }
        }
        key.push('\n');
    }
    key.push_str(&Value::Object(a.group.clone()).to_string());
    format!("{:032x}", xxh3_128(key.as_bytes()))[..20].to_string()
}

/// Entity fields copied from the triggering event into an alert's document, so that timelines
/// find alerts by the same fields as events.
const ENTITY_FIELDS: &[&str] = &[
    "user",
    "source",
    "destination",
    "host",
    "related",
    "objectRef",
    "orchestrator",
    "verb",
    "sourceIPs",
    "impersonatedUser",
    "requestURI",
    "responseStatus",
];

/// An alert from the detection engine, with the document of the event that triggered it.
pub fn alert(a: &Alert, trigger: Option<&Value>, received: i64) -> Record {
    let id = alert_id(a);
    let mut raw = Map::new();
    raw.insert("id".into(), Value::from(id.clone()));
    if let Ok(Value::Object(m)) = serde_json::to_value(a) {
        raw.extend(m);
    }
    let mut doc = Map::new();
    if let Some(Value::Object(t)) = trigger {
        for f in ENTITY_FIELDS {
            if let Some(v) = t.get(*f) {
                doc.insert(f.to_string(), v.clone());
            }
        }
    }
    let time = parse_time_micros(&a.time).unwrap_or(received);
    let ts = chrono::DateTime::from_timestamp_micros(time)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_default();
    doc.insert("@timestamp".into(), Value::from(ts));
    set_path(&mut doc, "event.kind", Value::from("alert"));
    set_path(&mut doc, "event.dataset", Value::from(ALERT_DATASET));
    set_path(&mut doc, "event.id", Value::from(id.clone()));
    set_path(&mut doc, "rule.id", Value::from(a.rule.id.clone()));
    set_path(&mut doc, "rule.name", Value::from(a.rule.title.clone()));
    set_path(&mut doc, "rule.level", Value::from(a.rule.level.clone()));
    set_path(&mut doc, "vigil.kind", Value::from("alert"));
    if let Some(ev) = a.events.first() {
        set_path(
            &mut doc,
            "vigil.evidence.dataset",
            Value::from(ev.dataset.clone()),
        );
        if let Some(eid) = &ev.id {
            set_path(&mut doc, "vigil.evidence.id", Value::from(eid.clone()));
        }
    }
    let doc = Value::Object(doc);
    Record {
        flags: 0,
        stored_doc: doc.to_string().into_bytes(),
        dataset: ALERT_DATASET.into(),
        source: a.events.first().map(|e| e.file.clone()).unwrap_or_default(),
        received,
        event_time: time,
        raw: Value::Object(raw).to_string(),
        redacted: false,
        doc,
        identity: Some(format!("alert:{id}")),
    }
}

/// The normalized document of a stored record.
pub fn materialize(flags: u8, raw: &[u8], stored_doc: &[u8]) -> Value {
    let doc: Value = if stored_doc.is_empty() {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(stored_doc).unwrap_or(Value::Null)
    };
    if flags & FLAG_K8S_V1 != 0 {
        let base = match serde_json::from_slice::<Value>(raw) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let mut base = vigil_normalize::k8s::normalize(base);
        if let Value::Object(o) = doc {
            for (k, v) in o {
                merge(&mut base, k, v);
            }
        }
        return Value::Object(base);
    }
    if flags & FLAG_OVERLAY != 0 {
        let mut base = match serde_json::from_slice::<Value>(raw) {
            Ok(Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        if let Value::Object(o) = doc {
            base.extend(o);
        }
        return Value::Object(base);
    }
    if flags & FLAG_MESSAGE_IS_RAW != 0 {
        let mut doc = doc;
        if let Value::Object(m) = &mut doc {
            m.insert(
                "message".into(),
                Value::from(String::from_utf8_lossy(raw).into_owned()),
            );
        }
        return doc;
    }
    doc
}

fn merge(into: &mut Map<String, Value>, k: String, v: Value) {
    match (into.get_mut(&k), v) {
        (Some(Value::Object(a)), Value::Object(b)) => {
            for (k2, v2) in b {
                merge(a, k2, v2);
            }
        }
        (_, v) => {
            into.insert(k, v);
        }
    }
}

/// The part of `doc` that `raw` (a JSON object) does not already hold, top-level key by key.
pub fn overlay(doc: &Value, raw: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    if let Value::Object(d) = doc {
        for (k, v) in d {
            if raw.get(k) != Some(v) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_ids_do_not_depend_on_how_the_file_was_named() {
        let at = |file: &str, line: usize| Alert {
            rule: vigil_model::alert::AlertRule {
                id: "r".into(),
                title: "t".into(),
                level: "high".into(),
                tags: vec![],
            },
            time: "2026-11-20T10:00:00Z".into(),
            group: Map::new(),
            events: vec![vigil_model::alert::EvidenceRef {
                dataset: "linux.auth".into(),
                file: file.into(),
                line,
                id: None,
            }],
            matched: Map::new(),
        };
        let id = alert_id(&at("auth.log", 7));
        assert_eq!(alert_id(&at("./logs/auth.log", 7)), id);
        assert_eq!(alert_id(&at("/var/log/auth.log", 7)), id);
        assert_ne!(alert_id(&at("auth.log", 8)), id);
    }

    #[test]
    fn k8s_event_is_redacted_before_normalization() {
        let raw = r#"{"kind":"Event","auditID":"x1","stage":"ResponseComplete","verb":"get","user":{"username":"eve"},"objectRef":{"resource":"secrets","namespace":"n","name":"s"},"responseObject":{"kind":"Secret","data":{"k":"c2VjcmV0"}},"stageTimestamp":"2026-01-02T03:04:05.000006Z"}"#;
        let r = k8s_event(raw, "a.log", 0).unwrap();
        assert!(r.redacted);
        assert!(!r.raw.contains("c2VjcmV0"));
        assert!(!r.doc.to_string().contains("c2VjcmV0"));
        assert_eq!(r.doc["vigil"]["redacted"][0], "responseObject.data");
        assert_eq!(r.event_time, 1_767_323_045_000_006);
        assert_eq!(r.identity.as_deref(), Some("x1\0ResponseComplete"));
        let back = materialize(r.flags, r.raw.as_bytes(), &r.stored_doc);
        assert_eq!(back, r.doc);
        assert!(r.stored_doc.len() < r.doc.to_string().len());
    }

    #[test]
    fn dedup_keys_share_the_id_hash_across_stages() {
        let a = dedup_key("id-1\0RequestReceived");
        let b = dedup_key("id-1\0ResponseComplete");
        assert_ne!(a, b);
        assert_eq!(a & !0xff, b & !0xff);
        assert_eq!(a & !0xff, id_hash("id-1"));
    }
}
