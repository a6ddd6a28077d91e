//! Events as the engine sees them, and field paths.

use std::cell::OnceCell;
use std::fmt::Write as _;

use serde_json::Value;

/// One event to evaluate: a JSON document, the dataset it came from (`k8s.audit`, `linux.auth`,
/// `auditd`, `zeek.conn`, ...), and optionally the raw JSON text it was parsed from.
///
/// With the raw text, [`crate::RuleSet::evaluate`] first runs a literal prefilter over it and
/// skips rules that provably cannot match; an event built with [`Event::from_raw`] is only parsed
/// when some rule needs its fields. The raw text must be the JSON the document was parsed from.
#[derive(Debug)]
pub struct Event<'a> {
    dataset: &'a str,
    raw: Option<&'a str>,
    doc: Doc<'a>,
    time_ms: Option<i64>,
    origin: Option<u64>,
}

#[derive(Debug)]
enum Doc<'a> {
    Borrowed(&'a Value),
    Lazy(OnceCell<Option<Value>>),
}

impl<'a> Event<'a> {
    /// An event from an already parsed document (no prefilter: there is no raw text).
    pub fn new(dataset: &'a str, doc: &'a Value) -> Self {
        Event {
            dataset,
            raw: None,
            doc: Doc::Borrowed(doc),
            time_ms: None,
            origin: None,
        }
    }

    /// An event from a parsed document and the JSON text it was parsed from.
    pub fn with_raw(dataset: &'a str, doc: &'a Value, raw: &'a str) -> Self {
        Event {
            dataset,
            raw: Some(raw),
            doc: Doc::Borrowed(doc),
            time_ms: None,
            origin: None,
        }
    }

    /// An event from JSON text alone; it is parsed on first use (never, if the prefilter rules
    /// out every rule). Text that is not a JSON object matches nothing.
    pub fn from_raw(dataset: &'a str, raw: &'a str) -> Self {
        Event {
            dataset,
            raw: Some(raw),
            doc: Doc::Lazy(OnceCell::new()),
            time_ms: None,
            origin: None,
        }
    }

    /// Sets the event time (milliseconds since the Unix epoch) used by correlations, overriding
    /// the dataset's time field.
    pub fn at(mut self, time_ms: i64) -> Self {
        self.time_ms = Some(time_ms);
        self
    }

    /// Attaches the caller's reference to the event (an opaque number, e.g. file and line);
    /// correlation alerts carry it in [`crate::ContributingEvent::origin`].
    pub fn with_ref(mut self, origin: u64) -> Self {
        self.origin = Some(origin);
        self
    }

    pub fn origin(&self) -> Option<u64> {
        self.origin
    }

    pub fn dataset(&self) -> &str {
        self.dataset
    }

    pub fn raw(&self) -> Option<&'a str> {
        self.raw
    }

    pub fn explicit_time_ms(&self) -> Option<i64> {
        self.time_ms
    }

    /// The document, parsing it if needed. `None` when the raw text is not a JSON object.
    pub fn doc(&self) -> Option<&Value> {
        match &self.doc {
            Doc::Borrowed(v) => Some(v),
            Doc::Lazy(cell) => cell
                .get_or_init(|| {
                    self.raw
                        .and_then(|r| serde_json::from_str::<Value>(r).ok())
                        .filter(Value::is_object)
                })
                .as_ref(),
        }
    }

    /// The document, owned (parsed now if it was not yet; cloned when borrowed), e.g. to hand
    /// an event evaluated on a worker thread to the thread that feeds correlations.
    pub fn into_doc(self) -> Option<Value> {
        match self.doc {
            Doc::Borrowed(v) => Some(v.clone()),
            Doc::Lazy(cell) => match cell.into_inner() {
                Some(parsed) => parsed,
                None => self
                    .raw
                    .and_then(|r| serde_json::from_str::<Value>(r).ok())
                    .filter(Value::is_object),
            },
        }
    }

    /// Whether the document has been parsed (for tests and benchmarks of the prefilter).
    pub fn is_parsed(&self) -> bool {
        match &self.doc {
            Doc::Borrowed(_) => true,
            Doc::Lazy(cell) => cell.get().is_some(),
        }
    }
}

/// A dotted field path, split once at compile time.
///
/// Resolution walks nested objects; an array anywhere on the path is entered and every element
/// tried; a key that itself contains dots (`"event.dataset"`, `"id.orig_h"`,
/// `"authorization.k8s.io/decision"`) is found too, by trying the segments joined back together.
#[derive(Debug, Clone)]
pub struct FieldPath {
    pub text: String,
    segs: Vec<String>,
    /// joined[i] = every key that may start at segment i: (segs[i..=j] joined by '.', j + 1).
    joined: Vec<Vec<(String, usize)>>,
}

impl FieldPath {
    pub fn new(text: &str) -> FieldPath {
        let segs: Vec<String> = if text.is_empty() {
            vec![String::new()]
        } else {
            text.split('.').map(str::to_string).collect()
        };
        let joined = (0..segs.len())
            .map(|i| {
                (i..segs.len())
                    .map(|j| (segs[i..=j].join("."), j + 1))
                    .collect()
            })
            .collect();
        FieldPath {
            text: text.to_string(),
            segs,
            joined,
        }
    }

    /// Calls `f` with every value the path reaches (arrays at the end are flattened, so `f` never
    /// sees an array). Returns early when `f` returns true; the result says whether it did.
    pub fn any<'v>(&self, root: &'v Value, f: &mut dyn FnMut(&'v Value) -> bool) -> bool {
        self.walk(root, 0, true, f)
    }

    /// Like [`FieldPath::any`], told whether the root object has any key containing a dot (when
    /// it has none, joined keys are not looked up there).
    pub(crate) fn any_hinted<'v>(
        &self,
        root: &'v Value,
        root_dotted: bool,
        f: &mut dyn FnMut(&'v Value) -> bool,
    ) -> bool {
        self.walk(root, 0, root_dotted, f)
    }

    /// The values the path reaches from `v`, a value its lookup reached at segment `pos`
    /// below the root (as [`FieldPath::any`] goes on from there).
    pub(crate) fn walk_from<'v>(
        &self,
        v: &'v Value,
        pos: usize,
        f: &mut dyn FnMut(&'v Value) -> bool,
    ) -> bool {
        self.walk(v, pos, true, f)
    }

    /// Whether the path reaches anything at all (a null counts; an empty array does not).
    #[cfg(test)]
    pub fn exists(&self, root: &Value) -> bool {
        self.any(root, &mut |_| true)
    }

    /// Nested keys first; the same segments joined back together (`"a.b"` as one key) are tried
    /// only where the nested route reaches nothing.
    fn walk<'v>(
        &self,
        v: &'v Value,
        i: usize,
        dotted: bool,
        f: &mut dyn FnMut(&'v Value) -> bool,
    ) -> bool {
        if i == self.segs.len() {
            return leaves(v, f);
        }
        match v {
            Value::Object(m) => {
                let (first, rest) = self.joined[i].split_first().expect("a key per segment");
                let mut seen = false;
                if let Some(c) = m.get(first.0.as_str()) {
                    if self.walk(c, first.1, true, &mut |x| {
                        seen = true;
                        f(x)
                    }) {
                        return true;
                    }
                }
                // Joined keys hold a dot: none can be here when no key of this object has
                // one (checking costs less than looking each joined key up in vain).
                if seen || !dotted || !has_dotted_key(m) {
                    return false;
                }
                for (key, next) in rest {
                    if let Some(c) = m.get(key.as_str()) {
                        if self.walk(c, *next, true, f) {
                            return true;
                        }
                    }
                }
                false
            }
            Value::Array(items) => items.iter().any(|e| self.walk(e, i, dotted, f)),
            _ => false,
        }
    }
}

fn has_dotted_key(m: &serde_json::Map<String, Value>) -> bool {
    m.keys().any(|k| k.bytes().any(|b| b == b'.'))
}

fn leaves<'v>(v: &'v Value, f: &mut dyn FnMut(&'v Value) -> bool) -> bool {
    match v {
        Value::Array(items) => items.iter().any(|e| leaves(e, f)),
        _ => f(v),
    }
}

/// Visits every scalar leaf of a document (for keyword search) with its dotted path.
pub fn visit_leaves<'v>(
    v: &'v Value,
    path: &mut String,
    f: &mut dyn FnMut(&str, &'v Value) -> bool,
) -> bool {
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                let stop = visit_leaves(c, path, f);
                path.truncate(len);
                if stop {
                    return true;
                }
            }
            false
        }
        Value::Array(items) => items.iter().any(|c| visit_leaves(c, path, f)),
        _ => f(path, v),
    }
}

/// A small stack buffer for rendering numbers as text without allocating.
pub struct NumBuf {
    buf: [u8; 40],
    len: usize,
}

impl NumBuf {
    pub fn new() -> Self {
        NumBuf {
            buf: [0; 40],
            len: 0,
        }
    }
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl Default for NumBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Write for NumBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let b = s.as_bytes();
        if self.len + b.len() > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
        Ok(())
    }
}

/// Calls `f` with the text form of a scalar (strings as is, numbers and booleans rendered);
/// `None` for null, objects and arrays.
pub fn with_text<R>(v: &Value, f: impl FnOnce(&str) -> R) -> Option<R> {
    match v {
        Value::String(s) => Some(f(s)),
        Value::Number(n) => {
            let mut b = NumBuf::new();
            let _ = write!(b, "{n}");
            Some(f(b.as_str()))
        }
        Value::Bool(true) => Some(f("true")),
        Value::Bool(false) => Some(f("false")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn all(p: &str, v: &Value) -> Vec<Value> {
        let mut out = vec![];
        FieldPath::new(p).any(v, &mut |x| {
            out.push(x.clone());
            false
        });
        out
    }

    #[test]
    fn nested_flat_and_arrays() {
        let v = json!({
            "objectRef": {"resource": "pods"},
            "event.dataset": "flat",
            "id.orig_h": "10.0.0.1",
            "annotations": {"authorization.k8s.io/decision": "allow"},
            "requestObject": {"spec": {"containers": [
                {"securityContext": {"privileged": true}},
                {"securityContext": {"privileged": false}},
                {"image": "x"}
            ]}},
            "list": [[1, 2], 3],
        });
        assert_eq!(all("objectRef.resource", &v), vec![json!("pods")]);
        assert_eq!(all("event.dataset", &v), vec![json!("flat")]);
        assert_eq!(all("id.orig_h", &v), vec![json!("10.0.0.1")]);
        assert_eq!(
            all("annotations.authorization.k8s.io/decision", &v),
            vec![json!("allow")]
        );
        assert_eq!(
            all(
                "requestObject.spec.containers.securityContext.privileged",
                &v
            ),
            vec![json!(true), json!(false)]
        );
        assert_eq!(all("list", &v), vec![json!(1), json!(2), json!(3)]);
        assert!(all("objectRef.missing", &v).is_empty());
        assert!(!FieldPath::new("nope").exists(&v));
        assert!(FieldPath::new("objectRef").exists(&v));
    }

    mod walk_reference {
        use super::*;
        use proptest::prelude::*;

        /// The walk as specified, without shortcuts: nested keys first, joined keys tried
        /// wherever the nested route reached nothing (at the root only when `dotted`).
        fn reference<'v>(
            p: &FieldPath,
            v: &'v Value,
            i: usize,
            dotted: bool,
            out: &mut Vec<&'v Value>,
        ) {
            if i == p.segs.len() {
                let mut f = |x: &'v Value| {
                    out.push(x);
                    false
                };
                leaves(v, &mut f);
                return;
            }
            match v {
                Value::Object(m) => {
                    let before = out.len();
                    let (first, rest) = p.joined[i].split_first().unwrap();
                    if let Some(c) = m.get(first.0.as_str()) {
                        reference(p, c, first.1, true, out);
                    }
                    if out.len() > before || !dotted {
                        return;
                    }
                    for (key, next) in rest {
                        if let Some(c) = m.get(key.as_str()) {
                            reference(p, c, *next, true, out);
                        }
                    }
                }
                Value::Array(items) => {
                    for e in items {
                        reference(p, e, i, dotted, out);
                    }
                }
                _ => {}
            }
        }

        fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(json!(1)),
                Just(json!("x")),
                Just(json!(null)),
                Just(json!([])),
                Just(json!({})),
            ];
            let key = prop::sample::select(vec!["a", "b", "a.b", "b.c", "a.b.c", "c"]);
            leaf.prop_recursive(4, 40, 4, move |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::vec((key.clone(), inner), 0..4).prop_map(|kv| {
                        Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
                    }),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]

            /// The walk (with its shortcut past objects without dotted keys) reaches what the
            /// specification reaches, in the same order.
            #[test]
            fn walk_is_the_reference(
                v in json(),
                p in prop::sample::select(vec!["a", "a.b", "a.b.c", "b.c", "c", "a.c", "b"]),
                dotted in any::<bool>(),
            ) {
                let p = FieldPath::new(p);
                let mut want = Vec::new();
                reference(&p, &v, 0, dotted, &mut want);
                let mut got = Vec::new();
                p.any_hinted(&v, dotted, &mut |x| {
                    got.push(x);
                    false
                });
                prop_assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn lazy_events_parse_once() {
        let ev = Event::from_raw("k8s.audit", r#"{"verb":"get"}"#);
        assert!(!ev.is_parsed());
        assert_eq!(ev.doc().unwrap()["verb"], "get");
        assert!(ev.is_parsed());
        let bad = Event::from_raw("k8s.audit", "[1,2]");
        assert!(bad.doc().is_none());
    }

    #[test]
    fn scalar_text() {
        assert_eq!(with_text(&json!(42), |s| s.to_string()), Some("42".into()));
        assert_eq!(
            with_text(&json!(1.5), |s| s.to_string()),
            Some("1.5".into())
        );
        assert_eq!(
            with_text(&json!(true), |s| s.to_string()),
            Some("true".into())
        );
        assert_eq!(with_text(&json!(null), |s| s.to_string()), None);
    }
}
