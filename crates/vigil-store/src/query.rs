//! The query language of `vigil search` (documented in README.md, "Query language").
//!
//! ```text
//! query  = or
//! or     = and ("OR" and)*
//! and    = unary (["AND"] unary)*          -- juxtaposition is AND
//! unary  = ("NOT" | "-") unary | atom
//! atom   = "(" or ")" | "*" | FIELD ":" value | FIELD ":" "(" or ")" | text
//! value  = WORD | "quoted phrase" | "*" | ("[" | "{") bound "TO" bound ("]" | "}")
//! ```
//! A word may hold `*` and `?` wildcards; `\` escapes the next character. `FIELD:(a OR b)` gives
//! the field to every bare term inside. Values of address fields may be CIDR blocks.
//!
//! Matching (`matches`) is the reference semantics; the index answers the same question faster
//! (see `index::translate`) and falls back to this where it cannot.

mod matcher;
mod parse;
mod print;
mod values;

#[cfg(test)]
mod tests;

use std::ops::Bound;

pub use matcher::{fields, matches};
pub use parse::parse;
pub use values::{
    glob, ip_range, ip_value, is_free_text_key, lookup, text_values, time_value, tokens,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// `*`: everything.
    All,
    Not(Box<Query>),
    And(Vec<Query>),
    Or(Vec<Query>),
    /// `field:value`, or free text when `field` is `None`.
    Match {
        field: Option<String>,
        value: Val,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Val {
    Term(String),
    /// A pattern with `*` (any run) and `?` (one character).
    Wildcard(String),
    Phrase(String),
    Range {
        lo: Bound<String>,
        hi: Bound<String>,
    },
    /// `field:*`
    Exists,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("query: {message} (at character {pos})")]
pub struct ParseError {
    pub pos: usize,
    pub message: String,
}

/// Field names people type, and the field they mean.
pub const ALIASES: &[(&str, &str)] = &[
    ("verb", "event.action"),
    ("auditID", "event.id"),
    ("user", "user.name"),
    ("user.username", "user.name"),
    ("impersonatedUser.username", "user.effective.name"),
    ("ip", "related.ip"),
    ("namespace", "objectRef.namespace"),
    ("resource", "objectRef.resource"),
    ("code", "http.response.status_code"),
    ("responseStatus.code", "http.response.status_code"),
    ("dataset", "event.dataset"),
    ("host", "host.name"),
    ("timestamp", "@timestamp"),
];

pub fn canonical_field(f: &str) -> String {
    ALIASES
        .iter()
        .find(|(a, _)| *a == f)
        .map_or(f, |(_, c)| c)
        .to_string()
}

/// Whether a field holds IP addresses (CIDR and IP comparisons apply).
pub fn is_address_field(f: &str) -> bool {
    f == "ip" || f.ends_with(".ip") || f == "sourceIPs"
}
