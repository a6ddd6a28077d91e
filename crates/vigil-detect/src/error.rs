//! Why a rule was not loaded.

use std::fmt;

/// The class of a rule error, so callers (and the reference-corpus test) can tell a rule Vigil
/// deliberately does not run from a rule that is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectKind {
    /// Not valid YAML, or not a valid Sigma rule (missing detection, bad modifier, bad condition,
    /// a selection the condition names that does not exist, an invalid regex or CIDR ...).
    Invalid,
    /// The rule's logsource maps to no dataset Vigil reads.
    NoSource,
    /// The condition uses the `near` operator, removed from the specification (correlations
    /// replace it).
    NearRemoved,
    /// A legacy aggregation (`| sum(...)`, `| min(...)` ...) or correlation type this version
    /// does not run yet.
    NotYetSupported,
    /// A legacy aggregation that is not well-formed (no timeframe, unparseable expression).
    BadAggregation,
    /// `|expand` with a placeholder the configuration does not define (the specification
    /// requires rejecting such rules).
    UndefinedPlaceholder,
    /// A correlation or filter names a rule that is not loaded.
    UnknownReference,
    /// Another rule already uses this id or name.
    Duplicate,
}

impl RejectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectKind::Invalid => "invalid rule",
            RejectKind::NoSource => "logsource has no Vigil source",
            RejectKind::NearRemoved => "uses the `near` aggregation removed from the spec",
            RejectKind::NotYetSupported => "feature not yet supported",
            RejectKind::BadAggregation => "malformed legacy aggregation",
            RejectKind::UndefinedPlaceholder => "undefined placeholder",
            RejectKind::UnknownReference => "unknown rule reference",
            RejectKind::Duplicate => "duplicate rule id or name",
        }
    }
}

impl fmt::Display for RejectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule that was not loaded, and where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{origin}:{line}: {}{reason}", rule_label(.title, .id))]
pub struct RuleError {
    /// The file (or other origin) the rule came from.
    pub origin: String,
    /// 1-based line of the offending node (the document's first line when nothing narrower).
    pub line: usize,
    pub title: Option<String>,
    pub id: Option<String>,
    pub kind: RejectKind,
    pub reason: String,
}

fn rule_label(title: &Option<String>, id: &Option<String>) -> String {
    match (title, id) {
        (Some(t), Some(i)) => format!("rule \"{t}\" ({i}): "),
        (Some(t), None) => format!("rule \"{t}\": "),
        (None, Some(i)) => format!("rule {i}: "),
        (None, None) => String::new(),
    }
}

/// An error before it is attached to a rule's origin and title.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    pub line: usize,
    pub kind: RejectKind,
    pub reason: String,
}

impl Problem {
    pub fn new(line: usize, kind: RejectKind, reason: impl Into<String>) -> Problem {
        Problem {
            line,
            kind,
            reason: reason.into(),
        }
    }
    pub fn invalid(line: usize, reason: impl Into<String>) -> Problem {
        Problem::new(line, RejectKind::Invalid, reason)
    }
}
