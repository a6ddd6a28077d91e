//! From text to audit events.
//!
//! Audit logs come as JSON lines (the log backend), as EventList documents (what the webhook
//! backend POSTs, often saved whole and pretty-printed), and in older shapes (no apiVersion,
//! v1beta1 with `metadata` and `timestamp`). [`LineAssembler`] finds document boundaries in a
//! stream of lines; [`decode_document`] turns one document into events. A bad item in an
//! EventList fails alone: its neighbours are still returned.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::audit::Event;

mod assembler;
mod brackets;

pub use assembler::{Chunk, LineAssembler};

/// Why one record is not a usable audit event. Lines are absolute (1-based) in the input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("line {line}, column {column}: not valid JSON: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("line {line}{}: not an audit event: {reason}", item_suffix(*.item))]
    NotAnEvent {
        line: usize,
        item: Option<usize>,
        reason: String,
    },
    #[error("line {line}: a JSON document longer than {limit} bytes never ended; is this a JSON audit log?")]
    TooLong { line: usize, limit: usize },
}

fn item_suffix(item: Option<usize>) -> String {
    item.map(|i| format!(" (EventList item {i})"))
        .unwrap_or_default()
}

impl DecodeError {
    pub fn line(&self) -> usize {
        match self {
            DecodeError::Json { line, .. }
            | DecodeError::NotAnEvent { line, .. }
            | DecodeError::TooLong { line, .. } => *line,
        }
    }
}

/// One decoded record: its event, and the line where its document starts.
#[derive(Debug)]
pub struct Decoded {
    pub line: usize,
    pub event: Event,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    kind: Option<&'a str>,
    #[serde(default, borrow)]
    items: Option<Vec<&'a RawValue>>,
}

/// Decodes one JSON document that starts at `line`: a single event or an EventList.
pub fn decode_document(text: &str, line: usize) -> Vec<Result<Decoded, DecodeError>> {
    let json_err = |e: serde_json::Error| DecodeError::Json {
        line: line + e.line().saturating_sub(1),
        column: e.column(),
        message: strip_position(&e.to_string()),
    };
    let envelope: Envelope = match serde_json::from_str(text) {
        Ok(env) => env,
        Err(e) if e.is_data() => {
            return vec![Err(DecodeError::NotAnEvent {
                line,
                item: None,
                reason: format!(
                    "expected a JSON object with auditID, verb and requestURI: {}",
                    strip_position(&e.to_string())
                ),
            })]
        }
        Err(e) => return vec![Err(json_err(e))],
    };
    match (envelope.kind, envelope.items) {
        (Some("EventList"), Some(items)) | (None, Some(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, raw)| decode_event(raw.get(), line, Some(i)))
            .collect(),
        (Some("EventList"), None) => Vec::new(),
        _ => vec![decode_event(text, line, None)],
    }
}

/// The event time of an audit event's JSON text, found without parsing the whole event:
/// `stageTimestamp`, else `requestReceivedTimestamp`, else `timestamp`. Used to merge inputs by
/// event time cheaply; a value that is not a plain RFC 3339 string gives `None`.
pub fn quick_event_time(text: &str) -> Option<crate::MicroTime> {
    [
        "\"stageTimestamp\":\"",
        "\"requestReceivedTimestamp\":\"",
        "\"timestamp\":\"",
    ]
    .iter()
    .find_map(|key| {
        // memmem (SIMD) rather than `str::find` (a scalar two-way search): the time keys come
        // late in a line, after the request and response bodies.
        let start = memchr::memmem::find(text.as_bytes(), key.as_bytes())? + key.len();
        let len = text[start..].find('"')?;
        text[start..start + len].parse().ok()
    })
}

/// Finders of `"auditID"` and `"items"`, built once.
static FINDERS: std::sync::OnceLock<(
    memchr::memmem::Finder<'static>,
    memchr::memmem::Finder<'static>,
)> = std::sync::OnceLock::new();

fn finders() -> (
    memchr::memmem::Finder<'static>,
    memchr::memmem::Finder<'static>,
) {
    (
        memchr::memmem::Finder::new(b"\"auditID\""),
        memchr::memmem::Finder::new(b"\"items\""),
    )
}

fn contains(text: &str, f: &memchr::memmem::Finder) -> bool {
    f.find(text.as_bytes()).is_some()
}

/// Splits one JSON document into the texts of the events it holds, without decoding them: the
/// document itself, or each item of an EventList. For detection, which parses lazily and only
/// what a rule needs. A single event is checked cheaply (an object that names an auditID); an
/// EventList is parsed enough to find its items, each checked the same way.
pub fn split_event_texts(text: &str, line: usize) -> Vec<Result<&str, DecodeError>> {
    if let Some(single) = split_single_event(text, line) {
        return vec![single];
    }
    match serde_json::from_str::<Envelope>(text) {
        Ok(Envelope {
            kind: Some("EventList") | None,
            items: Some(items),
        }) => items
            .into_iter()
            .enumerate()
            .map(|(i, raw)| looks_like_event(raw.get(), line, Some(i)))
            .collect(),
        Ok(Envelope {
            kind: Some("EventList"),
            items: None,
        }) => Vec::new(),
        Ok(_) => vec![looks_like_event(text, line, None)],
        Err(e) => vec![Err(DecodeError::Json {
            line: line + e.line().saturating_sub(1),
            column: e.column(),
            message: strip_position(&e.to_string()),
        })],
    }
}

/// [`split_event_texts`] of a document that cannot be an EventList (it holds no `"items"`),
/// without allocating: the reader of a JSON-lines log asks this once per line. `None`: the
/// document may be an EventList; ask [`split_event_texts`].
pub fn split_single_event(text: &str, line: usize) -> Option<Result<&str, DecodeError>> {
    (!contains(text, &FINDERS.get_or_init(finders).1)).then(|| looks_like_event(text, line, None))
}

/// A cheap check of one event's text: an object that names an auditID.
fn looks_like_event(t: &str, line: usize, item: Option<usize>) -> Result<&str, DecodeError> {
    let t = t.trim();
    if !(t.starts_with('{') && t.ends_with('}')) {
        return Err(DecodeError::NotAnEvent {
            line,
            item,
            reason: "expected a JSON object".into(),
        });
    }
    if !contains(t, &FINDERS.get_or_init(finders).0) {
        return Err(DecodeError::NotAnEvent {
            line,
            item,
            reason: "field auditID is missing".into(),
        });
    }
    Ok(t)
}

fn decode_event(text: &str, line: usize, item: Option<usize>) -> Result<Decoded, DecodeError> {
    let not_event = |reason: String| DecodeError::NotAnEvent { line, item, reason };
    let event: Event =
        serde_json::from_str(text).map_err(|e| not_event(strip_position(&e.to_string())))?;
    if let Some(kind) = event.kind.as_deref() {
        if kind != "Event" {
            return Err(not_event(format!(
                "field kind is {kind:?}, expected \"Event\""
            )));
        }
    }
    if let Some(v) = event.api_version.as_deref() {
        if !v.starts_with("audit.k8s.io/") {
            return Err(not_event(format!(
                "field apiVersion is {v:?}, expected audit.k8s.io/v1 (or the older v1beta1/v1alpha1)"
            )));
        }
    }
    if event.audit_id.is_empty() {
        return Err(not_event("field auditID is missing or empty".into()));
    }
    if event.verb.is_empty() && event.request_uri.is_empty() {
        return Err(not_event(
            "fields verb and requestURI are both missing".into(),
        ));
    }
    if event.time().is_none() {
        return Err(not_event(
            "no time: expected stageTimestamp or requestReceivedTimestamp (or timestamp)".into(),
        ));
    }
    Ok(Decoded { line, event })
}

/// serde_json appends "at line X column Y" relative to the document; we report absolute lines.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a1","stage":"ResponseComplete","requestURI":"/api/v1/pods","verb":"list","user":{"username":"alice"},"requestReceivedTimestamp":"2024-01-01T00:00:00.000000Z","stageTimestamp":"2024-01-01T00:00:00.100000Z"}"#;

    #[test]
    fn decodes_a_single_event() {
        let out = decode_document(EVENT, 7);
        let d = out[0].as_ref().unwrap();
        assert_eq!(d.line, 7);
        assert_eq!(d.event.audit_id, "a1");
        assert_eq!(d.event.user.username, "alice");
    }

    #[test]
    fn bad_eventlist_item_does_not_lose_the_others() {
        let doc = format!(
            r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{EVENT},{{"hello":1}},{EVENT}]}}"#
        );
        let out = decode_document(&doc, 1);
        assert_eq!(out.len(), 3);
        assert!(out[0].is_ok() && out[2].is_ok());
        let err = out[1].as_ref().unwrap_err().to_string();
        assert!(err.contains("item 1") && err.contains("auditID"), "{err}");
    }

    #[test]
    fn finds_the_time_without_parsing() {
        assert_eq!(
            quick_event_time(EVENT).unwrap().to_string(),
            "2024-01-01T00:00:00.100000Z"
        );
        assert!(quick_event_time(r#"{"stageTimestamp":null}"#).is_none());
    }

    #[test]
    fn splits_eventlists_into_item_texts() {
        let doc = format!(r#"{{"kind":"EventList","items":[{EVENT},{{"x":1}},{EVENT}]}}"#);
        let out = split_event_texts(&doc, 5);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].as_ref().unwrap(), &EVENT);
        assert!(out[1].as_ref().unwrap_err().to_string().contains("item 1"));
        assert_eq!(split_event_texts(EVENT, 1)[0].as_ref().unwrap(), &EVENT);
        assert!(split_event_texts("nope", 9)[0]
            .as_ref()
            .unwrap_err()
            .to_string()
            .starts_with("line 9"));
    }

    #[test]
    fn non_events_are_named() {
        let out = decode_document(r#"{"kind":"Pod","apiVersion":"v1"}"#, 3);
        let err = out[0].as_ref().unwrap_err().to_string();
        assert!(err.starts_with("line 3") && err.contains("kind"), "{err}");
        let out = decode_document("[1,2]", 4);
        assert!(out[0].as_ref().unwrap_err().to_string().contains("line 4"));
    }

    #[test]
    fn old_shapes_are_tolerated() {
        let old = r#"{"metadata":{"creationTimestamp":"2017-09-11T19:55:05Z"},"level":"Metadata","timestamp":"2017-09-11T19:55:05Z","auditID":"x","stage":"ResponseComplete","requestURI":"/api","verb":"get","user":{}}"#;
        let out = decode_document(old, 1);
        let ev = &out[0].as_ref().unwrap().event;
        assert_eq!(
            ev.time().unwrap().to_string(),
            "2017-09-11T19:55:05.000000Z"
        );
    }
}
