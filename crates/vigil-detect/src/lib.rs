//! Vigil's Sigma detection engine. Pure library: no I/O, no async.
//!
//! ```
//! use vigil_detect::{Config, Event, RuleSet, RuleSource};
//!
//! let rule = r#"
//! title: Exec into a pod
//! logsource: {product: kubernetes, service: audit}
//! detection:
//!     selection:
//!         verb: create
//!         objectRef.resource: pods
//!         objectRef.subresource: exec
//!     condition: selection
//! "#;
//! let (rules, errors) = RuleSet::compile(&[RuleSource::new("exec.yml", rule)], &Config::default());
//! assert!(errors.is_empty());
//! let raw = r#"{"verb":"create","objectRef":{"resource":"pods","subresource":"exec"}}"#;
//! let mut matches = Vec::new();
//! rules.evaluate(&Event::from_raw("k8s.audit", raw), &mut matches);
//! assert_eq!(matches.len(), 1);
//! assert_eq!(rules.rules()[matches[0].rule].title, "Exec into a pod");
//! ```
//!
//! - [`RuleSet::compile`] reads Sigma files (rules, `action: global` multi-document files,
//!   correlation rules, filters) and reports every rule it leaves out as a [`RuleError`] naming
//!   file, line, title, id and a [`RejectKind`].
//! - [`RuleSet::evaluate`] runs the stateless rules on one [`Event`];
//!   [`RuleSet::process`] also feeds correlations ([`CorrelationState`]).
//! - [`RuleSet::explain`] says, per selection and condition node, what was true and why.
//!
//! Semantics follow the Sigma specification v2.1 and pySigma where the specification is silent:
//! case-insensitive matching by default (Unicode lowercase), wildcards `*` `?` with `\` escapes,
//! every modifier of the specification's appendix, keywords searched in every value of the
//! event, `42` matching both the number and the string, arrays matching when any element does.
//! Logsources map to Vigil datasets, and Sigma field names to event paths, through the data
//! files in `mappings/`.

pub mod builtin;
mod compile;
mod condition;
mod correlation;
mod dedup;
mod dispatch;
mod error;
mod eval;
mod event;
mod explain;
mod mapping;
mod pattern;
mod prefilter;
mod rule;
mod value;

pub use compile::{Config, RuleInfo, RuleKind, RuleSet, RuleSource};
pub use correlation::{
    Carried, ContributingEvent, CorrKind, CorrelationAlert, CorrelationState, CorrelationStats,
    Limits, Op, StateLayout,
};
pub use dedup::AlertDedup;
pub use error::{RejectKind, RuleError};
pub use eval::Match;
pub use event::Event;
pub use explain::{
    CondExplanation, Explanation, ItemExplanation, NodeExplanation, SelectionExplanation,
};
pub use mapping::{LogSource, Mappings};
