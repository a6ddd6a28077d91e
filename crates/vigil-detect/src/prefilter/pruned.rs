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
mod tests;
