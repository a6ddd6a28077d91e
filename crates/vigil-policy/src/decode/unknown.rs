//! Saying what the apiserver's silent dropping of an unknown field changes.

use super::{GROUP_RESOURCES_FIELDS, RULE_FIELDS};
use crate::gojson::GEntry;

/// Which object an unknown field was found in, for saying what dropping it changes.
#[derive(Clone, Copy)]
pub(super) enum Where<'a> {
    Policy,
    Rule(&'a [GEntry]),
    GroupResources(&'a [GEntry]),
    Other(&'static str),
}

impl Where<'_> {
    pub(super) fn name(&self) -> &'static str {
        match self {
            Where::Policy => "the Policy",
            Where::Rule(_) => "a rule",
            Where::GroupResources(_) => "a resources entry",
            Where::Other(name) => name,
        }
    }
}

/// What the apiserver's dropping of `field` (found in `at`) does, when that is knowable.
fn consequence(field: &str, at: Where<'_>) -> Option<&'static str> {
    let for_rule = |rule: &[GEntry]| -> Option<&'static str> {
        if !RULE_FIELDS.contains(&field) {
            return None;
        }
        if rule.iter().any(|e| e.key == field) {
            return Some("the rule's own value applies");
        }
        Some(match field {
            "level" => "the rule has no level",
            "users" => "this rule applies to all users",
            "userGroups" => "this rule applies to all user groups",
            "verbs" => "this rule applies to all verbs",
            "resources" => "this rule is not limited to particular resources",
            "namespaces" => "this rule applies to all namespaces",
            "nonResourceURLs" => "this rule is not limited to particular non-resource URLs",
            "omitStages" => "only the policy-level omitStages apply to this rule",
            _ => "the policy-level omitManagedFields applies to this rule",
        })
    };
    match at {
        Where::GroupResources(_) if field == "group" => {
            Some("the entry matches the core API group only")
        }
        Where::GroupResources(_) if field == "resources" => {
            Some("the entry matches every resource of its group")
        }
        Where::GroupResources(_) if field == "resourceNames" => {
            Some("the entry matches objects of any name")
        }
        Where::GroupResources(rule) | Where::Rule(rule) => for_rule(rule),
        Where::Policy => match field {
            "rules" => Some("the policy has no rules"),
            "omitStages" => Some("no stages are omitted policy-wide"),
            "omitManagedFields" => Some("managed fields are kept by default"),
            _ => None,
        },
        Where::Other(_) => None,
    }
}

/// Whether `key` is probably `field` misspelt: the same name in another case, or its
/// singular/plural.
fn similar(key: &str, field: &str) -> bool {
    field.eq_ignore_ascii_case(key)
        || field.eq_ignore_ascii_case(&format!("{key}s"))
        || format!("{field}s").eq_ignore_ascii_case(key)
}

pub(super) fn unknown_field_message(key: &str, at: Where<'_>, fields: &[&str]) -> String {
    let mut msg = format!("unknown field {key:?} in {}", at.name());
    // Fields one level up or down, for keys written at the wrong indentation.
    let (elsewhere, owner): (&[&str], &str) = match at {
        Where::GroupResources(_) | Where::Policy => (RULE_FIELDS, "a rule"),
        Where::Rule(_) => (GROUP_RESOURCES_FIELDS, "a resources entry"),
        Where::Other(_) => (&[], ""),
    };
    let meant = if let Some(f) = fields.iter().find(|f| similar(key, f)) {
        if f.eq_ignore_ascii_case(key) {
            msg.push_str(&format!(
                " (field names are case-sensitive: did you mean {f:?}?)"
            ));
        } else {
            msg.push_str(&format!(" (did you mean {f:?}?)"));
        }
        Some(*f)
    } else if let Some(f) = elsewhere.iter().find(|f| similar(key, f)) {
        if *f == key {
            msg.push_str(&format!(
                " ({key:?} is a field of {owner}; check its indentation)"
            ));
        } else {
            msg.push_str(&format!(
                " (did you mean {f:?}, a field of {owner}? check its indentation)"
            ));
        }
        Some(*f)
    } else {
        None
    };
    msg.push_str(": the apiserver ignores it");
    if let Some(c) = meant.and_then(|m| consequence(m, at)) {
        msg.push_str(", so ");
        msg.push_str(c);
    }
    msg
}
