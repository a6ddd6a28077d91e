//! The few top-level strings an alert reads from its event (the event's id and time), taken
//! from the JSON text without building the whole document: most matched events alert without
//! feeding a correlation, and building their document was the largest cost left after matching.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize as _;

/// The keys read, in [`Head::values`] order: ids first, then times by preference.
pub const KEYS: [&str; 6] = [
    "auditID",
    "uid",
    "stageTimestamp",
    "requestReceivedTimestamp",
    "timestamp",
    "@timestamp",
];

/// Per key of [`KEYS`]: `None` when absent, `Some(None)` when its value is not a string, else
/// the string. A key given twice keeps its last value, as `serde_json::Value` does.
#[derive(Default)]
pub struct Head {
    pub values: [Option<Option<String>>; 6],
}

impl Head {
    /// `None` when the text is not a JSON object (the caller then parses it in full).
    pub fn parse(raw: &str) -> Option<Head> {
        let mut de = serde_json::Deserializer::from_str(raw);
        let head = (&mut de).deserialize_map(HeadVisitor).ok()?;
        de.end().ok()?;
        Some(head)
    }

    /// The string value of `key` (one of [`KEYS`]).
    pub fn str(&self, key: &str) -> Option<&str> {
        let i = KEYS.iter().position(|k| *k == key)?;
        self.values[i].as_ref()?.as_deref()
    }
}

struct HeadVisitor;

impl<'de> Visitor<'de> for HeadVisitor {
    type Value = Head;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Head, A::Error> {
        let mut head = Head::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match KEYS.iter().position(|k| *k == key) {
                Some(i) => head.values[i] = Some(map.next_value_seed(StrOrOther)?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(head)
    }
}

/// A value read as `Value::as_str` would see it: the string, or `None` for anything else.
struct StrOrOther;

impl<'de> DeserializeSeed<'de> for StrOrOther {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Ok(match v {
            serde_json::Value::String(s) => Some(s),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_document_would_give() {
        let h = Head::parse(
            r#"{"auditID":"a\u0062","x":{"auditID":"no"},"stageTimestamp":1,"timestamp":"t","uid":"u","uid":null}"#,
        )
        .unwrap();
        assert_eq!(h.str("auditID"), Some("ab"));
        assert_eq!(h.str("stageTimestamp"), None);
        assert!(h.values[2].is_some(), "present, not a string");
        assert_eq!(h.str("timestamp"), Some("t"));
        assert_eq!(h.str("uid"), None, "the last of a duplicate key wins");
        assert!(Head::parse("[1]").is_none());
        assert!(Head::parse(r#"{"a":1} x"#).is_none());
    }
}
