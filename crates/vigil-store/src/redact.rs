//! Secrets never land in the store: the values of `data` and `stringData` of Secret objects in
//! Kubernetes audit request and response bodies (and the `last-applied-configuration`
//! annotation, which repeats them) are replaced before anything is written.
//!
//! The replacement is surgical: only the spans of those values change, the rest of the event
//! keeps its bytes. Map values keep their keys (which key was read is evidence; its value is
//! not): `{"password":"vigil:redacted"}`.

use serde_json::value::RawValue;

pub const MARKER: &str = "vigil:redacted";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What redaction did to one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redacted {
    /// The event with secret values replaced.
    pub raw: String,
    /// Where, as dotted paths (`responseObject.items[2].data`).
    pub paths: Vec<String>,
}

type Entries<'a> = Vec<(String, &'a RawValue)>;

fn entries(text: &str) -> Option<Entries<'_>> {
    let mut out = Vec::new();
    let m: std::collections::BTreeMap<String, &RawValue> = serde_json::from_str(text).ok()?;
    for (k, v) in m {
        out.push((k, v));
    }
    Some(out)
}

fn get<'a>(e: &Entries<'a>, key: &str) -> Option<&'a RawValue> {
    e.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

fn as_str(v: &RawValue) -> Option<String> {
    serde_json::from_str::<String>(v.get()).ok()
}

struct Redactor<'s> {
    base: &'s str,
    edits: Vec<(usize, usize, String)>,
    paths: Vec<String>,
}

impl<'s> Redactor<'s> {
    fn offset(&self, v: &RawValue) -> (usize, usize) {
        let start = v.get().as_ptr() as usize - self.base.as_ptr() as usize;
        (start, start + v.get().len())
    }

    fn replace(&mut self, v: &RawValue, path: String) {
        let replacement = match entries(v.get()) {
            Some(e) => {
                let mut s = String::from("{");
                for (i, (k, _)) in e.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    s.push_str(&serde_json::to_string(k).unwrap_or_default());
                    s.push(':');
                    s.push_str(&serde_json::to_string(MARKER).unwrap_or_default());
                }
                s.push('}');
                s
            }
            None => serde_json::to_string(MARKER).unwrap_or_default(),
        };
        if v.get() == replacement {
            return;
        }
        let (a, b) = self.offset(v);
        self.edits.push((a, b, replacement));
        self.paths.push(path);
    }

    /// `text` is an object (or patch) at `path`; `secret` says the API call was about secrets.
    fn visit(&mut self, v: &'s RawValue, path: &str, secret: bool) {
        let text = v.get();
        if text.starts_with('[') {
            // A JSON patch to a secret: redact the values written under /data and /stringData.
            if !secret {
                return;
            }
            let Ok(ops) = serde_json::from_str::<Vec<&RawValue>>(text) else {
                return;
            };
            for (i, op) in ops.iter().enumerate() {
                let Some(e) = entries(op.get()) else { continue };
                let p = get(&e, "path").and_then(as_str).unwrap_or_default();
                if p.starts_with("/data") || p.starts_with("/stringData") {
                    if let Some(val) = get(&e, "value") {
                        self.replace(val, format!("{path}[{i}].value"));
                    }
                }
            }
            return;
        }
        let Some(e) = entries(text) else { return };
        let kind = get(&e, "kind").and_then(as_str);
        let is_list = kind.as_deref().is_some_and(|k| k.ends_with("List"));
        if kind.as_deref() == Some("Secret") || (secret && !is_list) {
            for field in ["data", "stringData"] {
                if let Some(val) = get(&e, field) {
                    self.replace(val, format!("{path}.{field}"));
                }
            }
            let annotations = get(&e, "metadata")
                .and_then(|m| entries(m.get()))
                .and_then(|m| get(&m, "annotations"))
                .and_then(|a| entries(a.get()));
            if let Some(a) = annotations {
                if let Some(val) = get(&a, LAST_APPLIED) {
                    self.replace(val, format!("{path}.metadata.annotations.{LAST_APPLIED}"));
                }
            }
        }
        if let Some(items) = get(&e, "items") {
            let item_secret = kind.as_deref() == Some("SecretList") || (secret && is_list);
            if let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(items.get()) {
                for (i, item) in items.iter().enumerate() {
                    self.visit(item, &format!("{path}.items[{i}]"), item_secret);
                }
            }
        }
    }
}

/// Redacts one Kubernetes audit event (JSON text). `None`: nothing to redact (the common case,
/// decided by a byte scan without parsing).
pub fn redact_k8s(raw: &str) -> Option<Redacted> {
    let finder = |needle: &str| raw.contains(needle);
    if !(finder("ecret") || finder("\\u")) {
        return None;
    }
    let top: std::collections::BTreeMap<String, &RawValue> = serde_json::from_str(raw).ok()?;
    let secret = top
        .get("objectRef")
        .and_then(|o| entries(o.get()))
        .and_then(|o| get(&o, "resource").and_then(as_str))
        .is_some_and(|r| r == "secrets");
    let mut r = Redactor {
        base: raw,
        edits: Vec::new(),
        paths: Vec::new(),
    };
    for key in ["requestObject", "responseObject"] {
        if let Some(v) = top.get(key) {
            r.visit(v, key, secret);
        }
    }
    if r.edits.is_empty() {
        return None;
    }
    r.edits.sort_by_key(|e| e.0);
    let mut out = String::with_capacity(raw.len());
    let mut pos = 0;
    for (a, b, rep) in &r.edits {
        if *a < pos {
            continue; // nested inside an edit already made
        }
        out.push_str(&raw[pos..*a]);
        out.push_str(rep);
        pos = *b;
    }
    out.push_str(&raw[pos..]);
    Some(Redacted {
        raw: out,
        paths: r.paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn secret_get_response_is_redacted_and_the_rest_kept_byte_exact() {
        let raw = r#"{"auditID":"a","verb":"get","objectRef":{"resource":"secrets","namespace":"ns","name":"db"},"responseObject":{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"data\":{\"password\":\"aHVudGVyMg==\"}}"}},"data":{"password":"aHVudGVyMg==","user":"YWRtaW4="},"type":"Opaque"},  "stage":"ResponseComplete"}"#;
        let r = redact_k8s(raw).unwrap();
        assert!(!r.raw.contains("aHVudGVyMg=="), "{}", r.raw);
        assert!(!r.raw.contains("YWRtaW4="));
        assert!(r
            .raw
            .contains(r#""data":{"password":"vigil:redacted","user":"vigil:redacted"}"#));
        assert!(r
            .raw
            .ends_with(r#""type":"Opaque"},  "stage":"ResponseComplete"}"#));
        assert_eq!(
            r.paths,
            vec![
                "responseObject.data".to_string(),
                format!("responseObject.metadata.annotations.{LAST_APPLIED}")
            ]
        );
        let v: Value = serde_json::from_str(&r.raw).unwrap();
        assert_eq!(v["responseObject"]["type"], "Opaque");
    }

    #[test]
    fn secret_lists_and_generic_lists() {
        let raw = r#"{"verb":"list","objectRef":{"resource":"secrets"},"responseObject":{"kind":"SecretList","items":[{"metadata":{"name":"a"},"data":{"k":"c2VjcmV0"}},{"metadata":{"name":"b"},"stringData":{"k":"plain"}}]}}"#;
        let r = redact_k8s(raw).unwrap();
        assert!(!r.raw.contains("c2VjcmV0") && !r.raw.contains("plain"));
        assert_eq!(
            r.paths,
            [
                "responseObject.items[0].data",
                "responseObject.items[1].stringData"
            ]
        );
        // A List of mixed kinds (kubectl apply -f of a folder): only the Secret is touched.
        let raw = r#"{"verb":"create","objectRef":{"resource":"configmaps"},"requestObject":{"kind":"List","items":[{"kind":"ConfigMap","data":{"a":"keep"}},{"kind":"Secret","data":{"b":"c2VjcmV0"}}]}}"#;
        let r = redact_k8s(raw).unwrap();
        assert!(r.raw.contains("keep") && !r.raw.contains("c2VjcmV0"));
        assert_eq!(r.paths, ["requestObject.items[1].data"]);
    }

    #[test]
    fn patches_to_secrets() {
        let raw = r#"{"verb":"patch","objectRef":{"resource":"secrets","name":"s"},"requestObject":[{"op":"replace","path":"/data/token","value":"dG9rZW4="},{"op":"replace","path":"/metadata/labels/a","value":"b"}]}"#;
        let r = redact_k8s(raw).unwrap();
        assert!(!r.raw.contains("dG9rZW4=") && r.raw.contains(r#""value":"b""#));
        let raw = r#"{"verb":"patch","objectRef":{"resource":"secrets","name":"s"},"requestObject":{"stringData":{"pw":"hunter2"}}}"#;
        let r = redact_k8s(raw).unwrap();
        assert!(!r.raw.contains("hunter2"));
    }

    #[test]
    fn no_secret_no_change() {
        assert_eq!(
            redact_k8s(
                r#"{"verb":"get","objectRef":{"resource":"configmaps"},"responseObject":{"kind":"ConfigMap","data":{"a":"b"}}}"#
            ),
            None
        );
        assert_eq!(
            redact_k8s(r#"{"verb":"list","objectRef":{"resource":"secrets"}}"#),
            None
        );
        assert_eq!(redact_k8s("not json with Secret"), None);
    }
}
