//! Kubernetes audit policy with kube-apiserver's exact semantics. Pure: no I/O.
//!
//! - [`load_policy`]: reads a policy file the way kube-apiserver does (strict decoding with a
//!   lenient fallback, then validation), but reports everything the apiserver silently drops.
//! - [`Policy::evaluate`]: the policy checker (first matching rule wins).
//! - [`Attributes`]: what the checker sees of a request; built from an audit event.
//! - [`parse_request_info`]: a port of the apiserver's request-info parser.

pub mod attributes;
pub mod checker;
mod decode;
mod escapes;
mod gojson;
pub mod loader;
mod prescan;
pub mod requestinfo;
mod selectors;
pub mod types;
pub mod validate;

pub mod baseline;
pub mod lint;
pub mod simulate;

pub use attributes::{Attributes, User};
pub use checker::Decision;
pub use loader::{load_policy, Diagnostic, LoadError, Loaded, Severity};
pub use requestinfo::{parse_request_info, try_parse_request_info, RequestInfo, RequestInfoError};
pub use types::{GroupResources, Policy, PolicyRule};
pub use validate::validate_policy;
