//! Which built-in Kubernetes detections a policy leaves blind.
//!
//! For every built-in rule over `kubernetes/audit`, from its YAML: the fields its selections read
//! (`requestObject.*` needs level Request, `responseObject.*` RequestResponse, `responseStatus.*`
//! the ResponseComplete stage) and the requests its selections pin (resource, subresource, API
//! group, verb, namespace; `|expand` placeholders resolved with the pack's defaults). Selections
//! named `filter*` only narrow a rule, so they are not counted. Each pinned request is then
//! evaluated through the policy checker, as kube-apiserver would, as the users or groups the
//! rule pins, else as two callers (a person and a workload service account): a request logged
//! at None, with every stage it emits omitted, or at a level below what the rule reads, is a
//! blind spot.

use vigil_model::Level;

mod findings;
mod needs;
mod probe;
#[cfg(test)]
mod tests;

pub use findings::findings;
pub use needs::{builtin_needs, needs_of_files};

/// One request a rule looks for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Probe {
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub verb: String,
    pub namespace: String,
}

impl Probe {
    fn resource_label(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
    pub fn label(&self) -> String {
        let g = if self.group.is_empty() {
            String::new()
        } else {
            format!("{}/", self.group)
        };
        let ns = if self.namespace.is_empty() || self.namespace == "default" {
            String::new()
        } else {
            format!(" in {}", self.namespace)
        };
        format!("{} {g}{}{ns}", self.verb, self.resource_label())
    }
}

/// What a built-in rule needs from the audit log.
#[derive(Debug, Clone)]
pub struct RuleNeeds {
    /// `builtin:<path>` or the rule file.
    pub origin: String,
    pub id: String,
    pub title: String,
    pub level: String,
    /// The first body field it reads (requestObject.*, responseObject.*).
    pub body_field: Option<String>,
    pub reads_status: bool,
    /// Exact user names and groups its selections require (probed as these callers).
    pub users: Vec<String>,
    pub groups: Vec<String>,
    /// The requests it looks for, each with the level its fields need.
    pub probes: Vec<(Probe, Level)>,
}
