//! Parsers for host and network logs and their normalization into one model.
//!
//! Every parsed event is a JSON object (`serde_json::Value::Object`) that keeps
//! the source's native fields under the names the source gives them, and gains
//! ECS fields as nested objects (`{"event": {"dataset": ...}}`), so that a
//! dotted lookup such as `event.dataset` works. Native names that contain a dot
//! (Zeek's `id.orig_h`) stay flat keys.
//!
//! The crate is pure: input is text (one line at a time), output is JSON
//! documents. Nothing here reads files, the clock or the environment; the
//! caller gives the reference time used to infer the year of classic syslog
//! lines (see [`YearHint`]).
//!
//! | dataset | source | parser |
//! |---|---|---|
//! | `linux.auth` | auth.log / secure (RFC 3164, RFC 3339 rsyslog, RFC 5424) | [`linux_auth::LinuxAuthParser`] |
//! | `auditd` | raw / enriched audit.log, records grouped per event | [`auditd::AuditdParser`] |
//! | `zeek.conn` | Zeek TSV (any `#path`, dataset `zeek.<path>`) and Zeek JSON lines | [`zeek::ZeekParser`] |
//! | `aws.vpcflow` | VPC flow logs, default v2 or a header's field order | [`vpcflow::VpcFlowParser`] |
//! | `k8s.audit` | Kubernetes audit events, one JSON object a line | [`k8s::K8sAuditParser`] |
//! | any name | JSON lines with a [`json_mapped::JsonMapping`] | [`json_mapped::JsonMappedParser`] |

pub mod auditd;
mod auditd_record;
mod auth_msg;
mod detect;
pub mod ecs;
pub mod json_mapped;
pub mod k8s;
pub mod linux_auth;
mod sshd;
pub mod vpcflow;
pub mod zeek;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use detect::detect_format;

/// One normalized event and the (first) input line it came from (1-based, as
/// given to [`Parser::push_line`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub line: usize,
    pub doc: Value,
}

/// A line that could not be turned into an event. The other lines are not
/// affected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: expected {expected}: {detail}")]
pub struct ParseError {
    pub line: usize,
    /// What the parser expected to find, e.g. "a syslog header".
    pub expected: String,
    /// What was wrong, with a short excerpt of the input.
    pub detail: String,
}

impl ParseError {
    pub fn new(line: usize, expected: impl Into<String>, detail: impl Into<String>) -> Self {
        ParseError {
            line,
            expected: expected.into(),
            detail: detail.into(),
        }
    }
}

/// What one call of [`Parser::push_line`] or [`Parser::flush`] appends to.
pub type Output = Vec<Result<Parsed, ParseError>>;

/// A configuration problem (not a data problem).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "unknown dataset {0:?} (expected k8s.audit, linux.auth, auditd, zeek.conn, aws.vpcflow)"
    )]
    UnknownDataset(String),
    #[error(
        "dataset {0:?} is a mapped JSON dataset: build it with JsonMappedParser::new(mapping)"
    )]
    NeedsMapping(String),
    #[error("invalid field mapping: {0}")]
    Mapping(String),
}

/// The sources. [`Dataset::as_str`] gives the `event.dataset` value, a
/// contract with the rules that select on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dataset {
    K8sAudit,
    LinuxAuth,
    Auditd,
    ZeekConn,
    AwsVpcFlow,
    /// Generic JSON lines normalized through a field mapping; the name is the
    /// mapping's dataset name.
    Json(String),
}

impl Dataset {
    pub fn as_str(&self) -> &str {
        match self {
            Dataset::K8sAudit => "k8s.audit",
            Dataset::LinuxAuth => "linux.auth",
            Dataset::Auditd => "auditd",
            Dataset::ZeekConn => "zeek.conn",
            Dataset::AwsVpcFlow => "aws.vpcflow",
            Dataset::Json(name) => name,
        }
    }

    /// The built-in datasets (all but `Json`).
    pub const BUILTIN: [Dataset; 5] = [
        Dataset::K8sAudit,
        Dataset::LinuxAuth,
        Dataset::Auditd,
        Dataset::ZeekConn,
        Dataset::AwsVpcFlow,
    ];
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Dataset {
    type Err = ConfigError;
    /// Built-in names only; a mapped JSON dataset comes from its mapping.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dataset::BUILTIN
            .iter()
            .find(|d| d.as_str() == s)
            .cloned()
            .ok_or_else(|| ConfigError::UnknownDataset(s.to_string()))
    }
}

/// How to complete syslog dates that carry no year (`Mar  1 12:00:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YearHint {
    /// A time at or after which the file was written (its modification time):
    /// a date that would fall more than a day after it belongs to the year
    /// before (a December line read in January).
    Reference(DateTime<Utc>),
    /// The year given by the user (`--year`), used as is.
    Year(i32),
}

/// Options shared by the parsers.
#[derive(Debug, Clone)]
pub struct Options {
    pub year: YearHint,
    /// auditd: events kept open waiting for more records (older ones are
    /// emitted when this is exceeded).
    pub max_open_events: usize,
    /// auditd: pid → image entries remembered per host for parent resolution.
    pub pid_cache_size: usize,
}

impl Options {
    pub fn new(year: YearHint) -> Self {
        Options {
            year,
            max_open_events: 64,
            pid_cache_size: 4096,
        }
    }
}

/// A line-oriented parser for one source. Feed lines in order with their
/// 1-based numbers, then call [`Parser::flush`] at the end of the input.
/// Results are appended to `out`; a bad line yields one `Err` and never
/// affects the other lines. No input makes a parser panic.
pub trait Parser {
    fn dataset(&self) -> Dataset;
    fn push_line(&mut self, line: &str, line_no: usize, out: &mut Output);
    fn flush(&mut self, out: &mut Output);
}

/// The parser for a built-in dataset (mapped JSON datasets need their
/// mapping: use [`json_mapped::JsonMappedParser::new`]).
pub fn parser_for(dataset: &Dataset, opts: &Options) -> Result<Box<dyn Parser>, ConfigError> {
    Ok(match dataset {
        Dataset::K8sAudit => Box::new(k8s::K8sAuditParser::new()),
        Dataset::LinuxAuth => Box::new(linux_auth::LinuxAuthParser::new(opts.year)),
        Dataset::Auditd => Box::new(auditd::AuditdParser::new(opts)),
        Dataset::ZeekConn => Box::new(zeek::ZeekParser::new()),
        Dataset::AwsVpcFlow => Box::new(vpcflow::VpcFlowParser::new()),
        Dataset::Json(name) => return Err(ConfigError::NeedsMapping(name.clone())),
    })
}

/// Parses a whole text with one parser: every line, then a flush.
pub fn parse_all(parser: &mut dyn Parser, text: &str) -> Output {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        parser.push_line(line, i + 1, &mut out);
    }
    parser.flush(&mut out);
    out
}

/// A short excerpt of a line for error messages (at most 80 characters).
pub(crate) fn excerpt(s: &str) -> String {
    let mut e: String = s.chars().take(80).collect();
    if e.len() < s.len() {
        e.push('…');
    }
    e
}
