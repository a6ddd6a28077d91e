//! The policy checker: which level a request is audited at, as kube-apiserver decides it
//! (`pkg/audit/policy/checker.go`). Rules are tried in order and the first match wins.

use serde::Serialize;
use vigil_model::{Level, Stage};

use crate::attributes::Attributes;
use crate::types::{GroupResources, Policy, PolicyRule};

/// The audit configuration the policy gives one request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub level: Level,
    /// Stages not emitted: policy-level ∪ rule-level, sorted by name, without duplicates.
    pub omit_stages: Vec<Stage>,
    pub omit_managed_fields: bool,
    /// Index of the first matching rule; `None` when no rule matched (level None).
    pub rule: Option<usize>,
}

/// Sorted by name (as the stages' strings sort), deduplicated.
fn union_stages(a: &[Stage], b: &[Stage]) -> Vec<Stage> {
    let mut out: Vec<Stage> = a.iter().chain(b).copied().collect();
    out.sort_by_key(|s| s.as_str());
    out.dedup();
    out
}

impl Policy {
    /// Evaluates the policy for one request.
    pub fn evaluate(&self, attrs: &Attributes) -> Decision {
        match self.rules.iter().position(|r| r.matches(attrs)) {
            Some(i) => {
                let rule = &self.rules[i];
                Decision {
                    level: rule.level,
                    omit_stages: union_stages(&self.omit_stages, &rule.omit_stages),
                    // A rule's own value, true or false, overrides the policy default.
                    omit_managed_fields: rule
                        .omit_managed_fields
                        .unwrap_or(self.omit_managed_fields),
                    rule: Some(i),
                }
            }
            None => Decision {
                level: Level::None,
                omit_stages: union_stages(&self.omit_stages, &[]),
                omit_managed_fields: self.omit_managed_fields,
                rule: None,
            },
        }
    }
}

fn has(list: &[String], value: &str) -> bool {
    list.iter().any(|s| s == value)
}

impl PolicyRule {
    /// Whether this rule applies to the request. Every constraint the rule sets must hold.
    pub fn matches(&self, attrs: &Attributes) -> bool {
        // A request without a user (failed authentication) matches no user constraint.
        if !self.users.is_empty()
            && !attrs
                .user
                .as_ref()
                .is_some_and(|u| has(&self.users, &u.name))
        {
            return false;
        }
        if !self.user_groups.is_empty()
            && !attrs
                .user
                .as_ref()
                .is_some_and(|u| u.groups.iter().any(|g| has(&self.user_groups, g)))
        {
            return false;
        }
        if !self.verbs.is_empty() && !has(&self.verbs, &attrs.verb) {
            return false;
        }
        // namespaces or resources make it a resource rule; nonResourceURLs are then not looked
        // at (validation forbids having both anyway).
        if !self.namespaces.is_empty() || !self.resources.is_empty() {
            return self.matches_resource(attrs);
        }
        if !self.non_resource_urls.is_empty() {
            return !attrs.resource_request
                && self
                    .non_resource_urls
                    .iter()
                    .any(|spec| path_matches(&attrs.path, spec));
        }
        // Neither: the rule applies to resource and non-resource requests alike.
        true
    }

    fn matches_resource(&self, attrs: &Attributes) -> bool {
        if !attrs.resource_request {
            return false;
        }
        // Cluster-scoped requests and all-namespace lists have namespace "".
        if !self.namespaces.is_empty() && !has(&self.namespaces, &attrs.namespace) {
            return false;
        }
        if self.resources.is_empty() {
            return true;
        }
        self.resources.iter().any(|gr| gr.matches(attrs))
    }
}

impl GroupResources {
    /// Whether this resources entry covers the request (which must be a resource request).
    pub fn matches(&self, attrs: &Attributes) -> bool {
        // "" is the core group only; the version is never part of the group.
        if self.group != attrs.api_group && self.group != "*" {
            return false;
        }
        // No resources: the whole group, subresources included.
        if self.resources.is_empty() {
            return true;
        }
        if !self.resource_names.is_empty() && !has(&self.resource_names, &attrs.name) {
            return false;
        }
        let (resource, sub) = (attrs.resource.as_str(), attrs.subresource.as_str());
        self.resources
            .iter()
            .any(|item| resource_item_matches(item, resource, sub))
    }
}

/// One `resources` item against a request's resource and subresource:
/// - `*` matches everything; `R` only the bare resource; `R/sub` only that subresource;
/// - `*/sub` that subresource of any resource (never a bare resource);
/// - `R/*` any subresource of R **and bare R too** (the apiserver compares only the resource);
/// - `*/*` matches nothing, unless a request's resource or subresource is literally `*`.
pub fn resource_item_matches(item: &str, resource: &str, subresource: &str) -> bool {
    if item == "*" {
        return true;
    }
    let exact = if subresource.is_empty() {
        item == resource
    } else {
        item.len() == resource.len() + 1 + subresource.len()
            && item.starts_with(resource)
            && item[resource.len()..].starts_with('/')
            && item.ends_with(subresource)
    };
    if exact {
        return true;
    }
    if !subresource.is_empty() && item.strip_prefix("*/") == Some(subresource) {
        return true;
    }
    item.strip_suffix("/*") == Some(resource)
}

/// A nonResourceURLs pattern against a request path: `*`, an exact path, or (with trailing
/// `*`s) a raw string prefix with no `/` boundary: `/healthz*` matches `/healthzfoo`.
pub fn path_matches(path: &str, spec: &str) -> bool {
    spec == "*"
        || spec == path
        || (spec.ends_with('*') && path.starts_with(spec.trim_end_matches('*')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_items() {
        assert!(resource_item_matches("pods", "pods", ""));
        assert!(!resource_item_matches("pods", "pods", "log"));
        assert!(resource_item_matches("pods/log", "pods", "log"));
        assert!(!resource_item_matches("pods/log", "pods", ""));
        assert!(resource_item_matches("pods/*", "pods", ""));
        assert!(resource_item_matches("pods/*", "pods", "exec"));
        assert!(resource_item_matches("*/log", "pods", "log"));
        assert!(!resource_item_matches("*/log", "log", ""));
        assert!(!resource_item_matches("*/*", "pods", "log"));
        assert!(!resource_item_matches("*/*", "pods", ""));
        // Go's "*/*" quirks: HasPrefix "*/" with subresource "*", or resource "*".
        assert!(resource_item_matches("*/*", "pods", "*"));
        assert!(resource_item_matches("*/*", "*", ""));
        assert!(resource_item_matches("*", "anything", "x"));
    }

    #[test]
    fn paths() {
        assert!(path_matches("/healthzfoo", "/healthz*"));
        assert!(path_matches("/healthz", "/healthz**"));
        assert!(path_matches("/apis/apps", "/api*"));
        assert!(!path_matches("/version/", "/version"));
        assert!(path_matches("", "*"));
    }
}
