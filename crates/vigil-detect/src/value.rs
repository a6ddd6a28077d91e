//! Values and modifiers: turning `field|mod1|mod2: values` into matchers, and matching them.
//!
//! This module holds the types shared by the engine (the [`Matcher`] a rule value becomes, the
//! [`RawValue`] it is written as, the [`Compiled`] detection item); the work is in submodules:
//! `modifiers` applies a modifier chain to values, `expand` and `encoding` hold the modifiers
//! that rewrite a value (`windash`, `expand`, `base64`/`utf16`), `matching` matches matchers
//! against event values, `numeric` holds CIDR, number and timestamp comparisons.

use crate::condition::CmpOp;
use crate::event::FieldPath;
use crate::pattern::StrPattern;

mod encoding;
mod expand;
mod matching;
mod modifiers;
mod numeric;
#[cfg(test)]
mod tests;

pub use matching::StrSet;
pub use modifiers::compile;
pub use numeric::{parse_time_ms, Cidr};

/// How one rule value is compared with one event value.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// A string with wildcards (case-insensitive unless cased). `*` alone matches any non-null
    /// value, objects included ("the field has a value").
    Str(StrPattern),
    /// Many plain strings of an OR list folded into one automaton and one hash set.
    StrSet(Box<StrSet>),
    /// A YAML number: equal numbers, or strings holding that number.
    Num {
        n: f64,
        text: String,
    },
    Bool(bool),
    /// `null`: the field is absent or null.
    Null,
    Regex(regex::Regex),
    Cidr(Cidr),
    /// `gt`, `gte`, `lt`, `lte`: numbers or numeric strings.
    Cmp(CmpOp, f64),
    /// `fieldref`: compare with the value(s) of another field of the same event.
    FieldRef {
        name: String,
        paths: Vec<FieldPath>,
        mode: RefMode,
        cased: bool,
    },
    /// `minute`, `hour`, `day`, `week`, `month`, `year` of a timestamp.
    TimePart {
        part: TimePart,
        op: CmpOp,
        n: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefMode {
    Equal,
    Prefix,
    Suffix,
    Contains,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimePart {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

/// A rule value as written, before modifiers.
#[derive(Debug, Clone)]
pub enum RawValue {
    Null,
    Bool(bool),
    /// A YAML number, with its source text.
    Num(f64, String),
    Str(String),
}

/// The compiled form of one `field|modifiers: values` entry.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub exists: Option<bool>,
    pub all: bool,
    pub negate: bool,
    pub matchers: Vec<Matcher>,
    /// Field references to resolve through the dataset's field mapping.
    pub fieldrefs: Vec<String>,
}
