//! Parsing only what rules read: a raw JSON event becomes a [`Value`] that holds the values of
//! the dataset's field paths (whole) and the objects and arrays on the way to them, nothing
//! else. Rules that read other parts (keywords search every value; correlations read their
//! own fields) are given the whole document instead.
//!
//! Same answers as the whole document. A field path resolves (see
//! [`FieldPath`](crate::event::FieldPath)) through object keys, each key one or more of its
//! dot-separated segments joined back together, and through arrays, whose elements are all tried;
//! the tree below keeps, at every object on the way, exactly the keys some path can look up there,
//! so every lookup a rule makes finds what it finds in the whole document. (The root's dotted keys
//! tell resolution to try joined keys there: a dotted root key left out is one no path looks up, so
//! trying it finds nothing in either document.)
//!
//! Same acceptance as the whole document: skipped values go through the same deserializer as
//! [`Value`] does (`deserialize_any`: syntax, escapes and surrogates, number range, nesting
//! depth), into a visitor that keeps nothing; trailing characters are refused; an object whose
//! first key is serde_json's raw-value marker (which [`Value`] reads specially) makes the pruned
//! parse give up, and the caller parses the whole document.
//!
//! Most texts never reach serde: the scanner in `fast` answers for plain JSON (no `\u`
//! escapes, integers only) and gives up on everything else, which the serde path then decides.
//!
//! Capturing instead of building: the scanner can also hand over the values of some paths
//! directly, each path's in a slot ([`Tree::capture`], [`Captured`]), building a document
//! only of the other (kept) paths. The rules then look nothing up: their values are at hand,
//! and no map is built on the way to them. Same values, in the same order, as the lookup in
//! the whole document: `fast::capture` says why, and gives up where it could differ (the
//! caller then parses down to a document as above).

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde::Deserialize as _;
use serde_json::{Map, Number, Value};

#[cfg(test)]
use crate::event::FieldPath;

mod fast;
mod tree;

pub(crate) use tree::Tree;

/// serde_json's marker key for raw values (its `raw_value` feature): [`Value`] parses the
/// string after it as JSON.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// The values of captured paths, by slot (see [`Tree::capture`]).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Captured {
    /// (slot, value), sorted by slot.
    pairs: fast::Slotted,
}

impl Captured {
    /// From (slot, value) pairs in document order: a slot's values keep that order.
    fn new(mut pairs: fast::Slotted) -> Captured {
        pairs.sort_by_key(|&(s, _)| s);
        Captured { pairs }
    }

    /// The values the path of `slot` reaches, as [`crate::event::FieldPath::any`] gives them in the whole
    /// document (none for a slot the tree does not capture).
    #[inline]
    pub(crate) fn values(&self, slot: u32) -> impl Iterator<Item = &Value> + Clone {
        let a = self.pairs.partition_point(|&(s, _)| s < slot);
        self.pairs[a..]
            .iter()
            .take_while(move |&&(s, _)| s == slot)
            .map(|(_, v)| v)
    }
}

impl Tree {
    /// Parses `raw` capturing the values of the tree's captured paths and building a document
    /// of its kept paths (`None` when none is kept). `None` when the text is not a JSON
    /// object or the fast scanner cannot be sure (see `fast`); the caller then parses with a
    /// tree that keeps every path.
    pub(crate) fn capture(&self, raw: &str) -> Option<(Option<Value>, Captured)> {
        let (doc, pairs) = fast::capture(self, raw).ok()?;
        Some((doc, Captured::new(pairs)))
    }

    /// Parses `raw` keeping what the paths reach; `None` when the text is not a JSON object or
    /// the pruned parse cannot tell (the caller then parses the whole document).
    pub(crate) fn parse(&self, raw: &str) -> Option<Value> {
        if let Ok(v) = fast::parse(self, raw) {
            return Some(v);
        }
        self.parse_serde(raw)
    }

    /// The serde path: decides every text the fast scanner gives up on.
    fn parse_serde(&self, raw: &str) -> Option<Value> {
        let mut de = serde_json::Deserializer::from_str(raw);
        let v = Seed {
            tree: self,
            node: 0,
        }
        .deserialize(&mut de)
        .ok()?;
        de.end().ok()?;
        v.is_object().then_some(v)
    }
}

#[derive(Clone, Copy)]
struct Seed<'t> {
    tree: &'t Tree,
    node: u32,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.tree.nodes[self.node as usize].whole {
            return Value::deserialize(d);
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    // Scalars as `Value` reads them.
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        // Arrays are transparent to paths: every element is read at this node.
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let node = &self.tree.nodes[self.node as usize];
        let mut out = Map::new();
        let mut first = true;
        while let Some(key) = map.next_key_seed(Key)? {
            if first && key == RAW_VALUE_TOKEN {
                return Err(A::Error::custom("raw value marker"));
            }
            first = false;
            match node.child(&key) {
                Some((_, c)) => {
                    let v = map.next_value_seed(Seed { node: c, ..self })?;
                    out.insert(key.into_owned(), v);
                }
                None => map.next_value_seed(Discard)?,
            }
        }
        Ok(Value::Object(out))
    }
}

/// Reads a value the way [`Value`] does and keeps nothing.
#[derive(Clone, Copy)]
struct Discard;

impl<'de> DeserializeSeed<'de> for Discard {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Discard {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut first = true;
        while let Some(key) = map.next_key_seed(Key)? {
            if first && key == RAW_VALUE_TOKEN {
                return Err(A::Error::custom("raw value marker"));
            }
            first = false;
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}

/// A key, borrowed from the text when it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = std::borrow::Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = std::borrow::Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tree(paths: &[&str]) -> Tree {
        let ps: Vec<FieldPath> = paths.iter().map(|p| FieldPath::new(p)).collect();
        Tree::new(&ps.iter().collect::<Vec<_>>())
    }

    #[test]
    fn keeps_what_paths_reach() {
        let t = tree(&["objectRef.resource", "a.b.c", "verb"]);
        let raw = r#"{"kind":"Event","verb":"get","objectRef":{"resource":"pods","name":"x"},"a":[{"b":{"c":1,"d":2}},{"b.c":3,"e":4}],"a.b":{"c":5,"f":6},"user":{"username":"u"}}"#;
        assert_eq!(
            t.parse(raw).unwrap(),
            json!({"verb":"get","objectRef":{"resource":"pods"},"a":[{"b":{"c":1}},{"b.c":3}],"a.b":{"c":5}})
        );
        // A path ending at an object keeps all of it.
        let t = tree(&["objectRef"]);
        assert_eq!(
            t.parse(r#"{"objectRef":{"resource":"pods","x":[1]},"verb":"get"}"#)
                .unwrap(),
            json!({"objectRef":{"resource":"pods","x":[1]}})
        );
    }

    #[test]
    fn refuses_what_value_refuses() {
        let t = tree(&["a"]);
        for bad in [
            r#"{"a":1,"b":1e999}"#,
            r#"{"a":1,"b":"\ud800"}"#,
            r#"{"a":1,"b":"x"} x"#,
            r#"{"a":1,"b":[1,]}"#,
            r#"{"a":1,"b":"tab	inside"}"#,
            r#"[{"a":1}]"#,
        ] {
            assert!(
                serde_json::from_str::<Value>(bad).map_or(true, |v| !v.is_object()),
                "{bad}"
            );
            assert!(t.parse(bad).is_none(), "{bad}");
        }
        let deep = format!(r#"{{"a":1,"b":{}{}}}"#, "[".repeat(200), "]".repeat(200));
        assert!(serde_json::from_str::<Value>(&deep).is_err());
        assert!(t.parse(&deep).is_none());
        let marker = format!(r#"{{"a":1,"b":{{"{RAW_VALUE_TOKEN}":"[1]"}}}}"#);
        assert!(t.parse(&marker).is_none());
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    fn json() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("1".to_string()),
            Just("-2.5e3".to_string()),
            Just("true".to_string()),
            Just("null".to_string()),
            Just("\"x\"".to_string()),
            Just("\"a\\u0062\"".to_string()),
            Just("[]".to_string()),
            Just("{}".to_string()),
        ];
        let key = prop::sample::select(vec!["a", "b", "a.b", "b.c", "a.b.c", "c", "\\u0061"]);
        leaf.prop_recursive(4, 40, 4, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec((key.clone(), inner), 0..4).prop_map(|kv| {
                    let parts: Vec<String> = kv
                        .into_iter()
                        .map(|(k, v)| format!("\"{k}\": {v}"))
                        .collect();
                    format!("{{{}}}", parts.join(","))
                }),
            ]
        })
    }

    fn values(p: &FieldPath, v: &Value) -> Vec<Value> {
        let mut out = Vec::new();
        p.any(v, &mut |x| {
            out.push(x.clone());
            false
        });
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Every path reaches the same values in the pruned and the whole document, and the
        /// pruned parse accepts exactly the objects the whole parse accepts.
        #[test]
        fn pruned_documents_answer_like_whole_ones(
            raw in json(),
            paths in prop::collection::vec(
                prop::sample::select(vec!["a", "b", "a.b", "a.b.c", "b.c", "c", "a.c", "x"]),
                1..4,
            ),
        ) {
            let raw = format!("{{\"a\":{raw},\"b\":{raw}}}");
            let ps: Vec<FieldPath> = paths.iter().map(|p| FieldPath::new(p)).collect();
            let tree = Tree::new(&ps.iter().collect::<Vec<_>>());
            let whole = serde_json::from_str::<Value>(&raw).ok().filter(Value::is_object);
            let pruned = tree.parse(&raw);
            prop_assert_eq!(whole.is_some(), pruned.is_some(), "{}", raw);
            if let (Some(w), Some(p)) = (whole, pruned) {
                for path in &ps {
                    prop_assert_eq!(values(path, &w), values(path, &p), "{} {}", path.text, raw);
                }
            }
        }

        /// Captured paths get the values the whole document gives them, in its order, and
        /// kept paths answer in the built document as in the whole one; texts the whole
        /// parse refuses are never captured.
        #[test]
        fn captured_values_are_the_whole_documents(
            raw in json(),
            captured in prop::collection::vec(
                prop::sample::select(vec!["a", "b", "a.b", "a.b.c", "b.c", "c", "a.c", "x"]),
                1..4,
            ),
            kept in prop::collection::vec(
                prop::sample::select(vec!["a", "b.c", "a.b", "c"]),
                0..2,
            ),
        ) {
            let raw = format!("{{\"a\":{raw},\"b\":{raw}}}");
            let cs: Vec<FieldPath> = captured.iter().map(|p| FieldPath::new(p)).collect();
            let ks: Vec<FieldPath> = kept.iter().map(|p| FieldPath::new(p)).collect();
            let slots: Vec<(&FieldPath, u32)> =
                cs.iter().enumerate().map(|(i, p)| (p, i as u32)).collect();
            let tree = Tree::with_captures(&ks.iter().collect::<Vec<_>>(), &slots);
            let whole = serde_json::from_str::<Value>(&raw).ok().filter(Value::is_object);
            if let Some((doc, cap)) = tree.capture(&raw) {
                let w = whole.expect("captured a text the whole parse refuses");
                for (i, path) in cs.iter().enumerate() {
                    let first = cs.iter().position(|p| p.text == path.text).unwrap() as u32;
                    prop_assert_eq!(
                        values(path, &w),
                        cap.values(first).cloned().collect::<Vec<_>>(),
                        "{} {}", path.text, raw
                    );
                    let _ = i;
                }
                let doc = doc.unwrap_or_else(|| Value::Object(Map::new()));
                for path in &ks {
                    prop_assert_eq!(values(path, &w), values(path, &doc), "{} {}", path.text, raw);
                }
            }
        }
    }
}

#[cfg(test)]
mod capture_tests {
    use super::*;
    use serde_json::json;

    fn capture(
        raw: &str,
        keep: &[&str],
        paths: &[&str],
    ) -> Option<(Option<Value>, Vec<Vec<Value>>)> {
        let ks: Vec<FieldPath> = keep.iter().map(|p| FieldPath::new(p)).collect();
        let cs: Vec<FieldPath> = paths.iter().map(|p| FieldPath::new(p)).collect();
        let slots: Vec<(&FieldPath, u32)> =
            cs.iter().enumerate().map(|(i, p)| (p, i as u32)).collect();
        let tree = Tree::with_captures(&ks.iter().collect::<Vec<_>>(), &slots);
        let (doc, cap) = tree.capture(raw)?;
        Some((
            doc,
            (0..paths.len() as u32)
                .map(|s| cap.values(s).cloned().collect())
                .collect(),
        ))
    }

    #[test]
    fn audit_events_are_captured() {
        let raw = r#"{"auditID":"a1","verb":"create","user":{"username":"u","groups":["g1","g2"]},
            "objectRef":{"resource":"pods"},"requestObject":{"spec":{"containers":[
            {"image":"x","securityContext":{"privileged":true}},{"image":"y"}]}},
            "annotations":{"authorization.k8s.io/decision":"allow"}}"#;
        let (doc, vals) = capture(
            raw,
            &["auditID"],
            &[
                "verb",
                "user.groups",
                "requestObject.spec.containers.image",
                "requestObject.spec.containers.securityContext.privileged",
                "annotations.authorization.k8s.io/decision",
                "objectRef.subresource",
                "user",
                "user.username",
            ],
        )
        .expect("captured");
        assert_eq!(doc, Some(json!({"auditID": "a1"})));
        assert_eq!(vals[0], vec![json!("create")]);
        assert_eq!(vals[1], vec![json!("g1"), json!("g2")]);
        assert_eq!(vals[2], vec![json!("x"), json!("y")]);
        assert_eq!(vals[3], vec![json!(true)]);
        assert_eq!(vals[4], vec![json!("allow")]);
        assert!(vals[5].is_empty());
        assert_eq!(vals[6], vec![json!({"username":"u","groups":["g1","g2"]})]);
        assert_eq!(vals[7], vec![json!("u")]);
    }

    #[test]
    fn gives_up_where_the_lookup_would_choose() {
        // Nested and joined keys for one path, and a duplicate key.
        assert!(capture(r#"{"a":{"b":1},"a.b":2}"#, &[], &["a.b"]).is_none());
        assert!(capture(r#"{"a":1,"a":2}"#, &[], &["a"]).is_none());
        // A duplicate key no captured path goes through is the built document's business.
        assert!(capture(r#"{"k":1,"k":2,"a":3}"#, &["k"], &["a"]).is_some());
        // One route only: captured.
        assert_eq!(
            capture(r#"{"a.b":2,"c":1}"#, &[], &["a.b"]).unwrap().1,
            vec![vec![json!(2)]]
        );
    }
}

#[cfg(test)]
mod speed {
    #[test]
    #[ignore]
    fn pruned_vs_whole() {
        let text = std::fs::read_to_string("/tmp/a30k.jsonl").unwrap();
        let cfg = crate::Config {
            placeholders: crate::builtin::placeholders(),
            ..Default::default()
        };
        let (set, _) = crate::RuleSet::compile(&crate::builtin::rules(), &cfg);
        let ds = &set.datasets[set.dataset_index("k8s.audit").unwrap()];
        let mut paths = vec![];
        let mut kw = false;
        for r in &ds.rules {
            for s in &r.selections {
                super::super::collect_paths(&s.node, &mut paths, &mut kw);
            }
        }
        let tree = super::Tree::new(&paths);
        let small = super::Tree::new(&[
            &crate::event::FieldPath::new("requestURI"),
            &crate::event::FieldPath::new("user.username"),
            &crate::event::FieldPath::new("responseStatus.code"),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        for (name, t) in [("all paths", &tree), ("3 paths", &small)] {
            let c = std::time::Instant::now();
            let mut k = 0;
            for l in &lines {
                k += t.parse(l).map_or(0, |v| v.as_object().unwrap().len());
            }
            println!("pruned ({name}) {:?} {k}", c.elapsed());
            let c = std::time::Instant::now();
            let mut k = 0;
            for l in &lines {
                k += t.parse_serde(l).map_or(0, |v| v.as_object().unwrap().len());
            }
            println!("pruned by serde ({name}) {:?} {k}", c.elapsed());
        }
        let t = std::time::Instant::now();
        let mut k = 0;
        for l in &lines {
            k += serde_json::from_str::<serde_json::Value>(l)
                .map_or(0, |v| v.as_object().unwrap().len());
        }
        println!("whole {:?} {k}", t.elapsed());
        let bails = lines
            .iter()
            .filter(|l| super::fast::parse(&small, l).is_err())
            .count();
        println!("fast gives up on {bails} of {}", lines.len());
        let t = std::time::Instant::now();
        let mut k = 0;
        for l in &lines {
            k += serde_json::from_str::<serde::de::IgnoredAny>(l).map_or(0, |_| 1);
        }
        println!("ignored {:?} {k}", t.elapsed());
    }
}
