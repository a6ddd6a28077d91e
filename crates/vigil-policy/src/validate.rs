//! kube-apiserver's policy validation (`pkg/apis/audit/validation`): what makes a decoded policy
//! unloadable. It deliberately checks little: users, groups, verbs, namespaces, resource names
//! and the shape of resource items (`*/*`, typos, overlaps) are all accepted as written.

use crate::decode::{RawGroupResources, RawPolicy, RawRule, Str, StrList};
use crate::loader::{Diagnostic, Severity};
use crate::types::Policy;

const LEVELS: &str = "None, Metadata, Request or RequestResponse";
const STAGES: &str = "RequestReceived, ResponseStarted, ResponseComplete or Panic";

/// Validates an in-memory policy (e.g. one built in code). Levels and stages are typed, so only
/// the structural rules can fail; lines come from `rule_lines` when present.
pub fn validate_policy(policy: &Policy) -> Vec<Diagnostic> {
    let line_of = |i: usize| policy.rule_lines.get(i).copied().unwrap_or(0);
    let strs = |v: &[String], line: usize| StrList {
        line,
        items: v
            .iter()
            .map(|s| Str {
                value: s.clone(),
                line,
            })
            .collect(),
    };
    let raw = RawPolicy {
        line: 0,
        rules_line: 0,
        omit_stages: StrList::default(),
        omit_managed_fields: policy.omit_managed_fields,
        rules: policy
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let line = line_of(i);
                RawRule {
                    line,
                    level: Str {
                        value: r.level.as_str().to_string(),
                        line,
                    },
                    users: strs(&r.users, line),
                    user_groups: strs(&r.user_groups, line),
                    verbs: strs(&r.verbs, line),
                    resources_line: line,
                    resources: r
                        .resources
                        .iter()
                        .map(|g| RawGroupResources {
                            line,
                            group: Str {
                                value: g.group.clone(),
                                line,
                            },
                            resources: strs(&g.resources, line),
                            resource_names: strs(&g.resource_names, line),
                        })
                        .collect(),
                    namespaces: strs(&r.namespaces, line),
                    non_resource_urls: strs(&r.non_resource_urls, line),
                    omit_stages: StrList::default(),
                    omit_managed_fields: r.omit_managed_fields,
                }
            })
            .collect(),
    };
    validate_raw(&raw)
}

fn error(line: usize, field: String, message: String) -> Diagnostic {
    Diagnostic {
        line,
        field,
        severity: Severity::Error,
        message,
    }
}

/// Every validation error of a decoded policy, in the apiserver's order.
pub(crate) fn validate_raw(p: &RawPolicy) -> Vec<Diagnostic> {
    let mut errs = omit_stages(&p.omit_stages, "omitStages");
    for (i, rule) in p.rules.iter().enumerate() {
        errs.extend(validate_rule(rule, &format!("rules[{i}]")));
    }
    errs
}

fn validate_rule(r: &RawRule, path: &str) -> Vec<Diagnostic> {
    let mut errs = Vec::new();
    if let Some(msg) = level_error(&r.level.value) {
        errs.push(error(r.level.line, format!("{path}.level"), msg));
    }
    for (i, url) in r.non_resource_urls.items.iter().enumerate() {
        for msg in non_resource_url_errors(&url.value) {
            errs.push(error(url.line, format!("{path}.nonResourceURLs[{i}]"), msg));
        }
    }
    for (i, g) in r.resources.iter().enumerate() {
        let gpath = format!("{path}.resources[{i}]");
        if let Some(msg) = group_error(&g.group.value) {
            errs.push(error(g.group.line, format!("{gpath}.group"), msg));
        }
        if !g.resource_names.items.is_empty() && g.resources.items.is_empty() {
            errs.push(error(
                g.resource_names.line,
                format!("{gpath}.resourceNames"),
                "using resourceNames requires at least one resource: add `resources` to this entry (resourceNames alone would name objects of no kind)".into(),
            ));
        }
    }
    errs.extend(omit_stages(&r.omit_stages, &format!("{path}.omitStages")));
    if !r.non_resource_urls.items.is_empty()
        && (!r.resources.is_empty() || !r.namespaces.items.is_empty())
    {
        errs.push(error(
            r.non_resource_urls.line,
            format!("{path}.nonResourceURLs"),
            "rules cannot apply to both regular resources and non-resource URLs: split this into one rule with resources/namespaces and another with nonResourceURLs".into(),
        ));
    }
    errs
}

fn omit_stages(stages: &StrList, path: &str) -> Vec<Diagnostic> {
    stages
        .items
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            stage_error(&s.value).map(|msg| error(s.line, format!("{path}[{i}]"), msg))
        })
        .collect()
}

/// Why `level` is not a valid rule level, if it is not.
pub fn level_error(level: &str) -> Option<String> {
    if level.is_empty() {
        return Some(format!("level is required: expected {LEVELS}"));
    }
    if level.parse::<vigil_model::Level>().is_ok() {
        return None;
    }
    let mut msg = format!("unsupported level {level:?}: expected {LEVELS}");
    if let Some(l) = vigil_model::Level::ALL
        .iter()
        .find(|l| l.as_str().eq_ignore_ascii_case(level))
    {
        msg.push_str(&format!(" (levels are case-sensitive: did you mean {l}?)"));
    }
    Some(msg)
}

/// Why `stage` is not a valid omitStages entry, if it is not.
pub fn stage_error(stage: &str) -> Option<String> {
    if stage.parse::<vigil_model::Stage>().is_ok() {
        return None;
    }
    Some(format!(
        "invalid stage {stage:?}: allowed stages are {STAGES}"
    ))
}

/// Why a nonResourceURLs entry is invalid: it must be `*` or start with `/`, and a `*` may only
/// be its last character.
pub fn non_resource_url_errors(url: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if url == "*" {
        return errs;
    }
    if !url.starts_with('/') {
        errs.push(format!(
            "invalid non-resource URL {url:?}: non-resource URL rules must begin with a '/' character (or be \"*\")"
        ));
    }
    if let Some(head) = url.strip_suffix(|_: char| true) {
        if head.contains('*') {
            errs.push(format!(
                "invalid non-resource URL {url:?}: non-resource URL wildcards '*' must be the final character of the rule (a trailing '*' matches any path with that prefix)"
            ));
        }
    }
    errs
}

/// Why a resources entry's group is invalid: it must be `""` (core), `*`, or a DNS-1123
/// subdomain.
pub fn group_error(group: &str) -> Option<String> {
    if group.is_empty() || group == "*" || is_dns1123_subdomain(group) {
        return None;
    }
    let mut msg = format!(
        "invalid group {group:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com'), at most 253 characters; use \"\" for the core group or \"*\" for all groups"
    );
    if group.contains('/') {
        msg.push_str(" (the API version is not part of the group)");
    }
    Some(msg)
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`, at most 253 bytes.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            match (b.first(), b.last()) {
                (Some(&f), Some(&l)) => {
                    alnum(f) && alnum(l) && b.iter().all(|&c| alnum(c) || c == b'-')
                }
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_subdomains() {
        assert!(is_dns1123_subdomain("apps"));
        assert!(is_dns1123_subdomain("rbac.authorization.k8s.io"));
        assert!(is_dns1123_subdomain("a-b.c0"));
        assert!(!is_dns1123_subdomain("Apps"));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(!is_dns1123_subdomain("-a"));
        assert!(!is_dns1123_subdomain("a."));
        assert!(!is_dns1123_subdomain("rbac.authorization.k8s.io/v1"));
        assert!(!is_dns1123_subdomain(&"a".repeat(254)));
        assert!(is_dns1123_subdomain(&"a".repeat(63)));
    }

    #[test]
    fn urls() {
        assert!(non_resource_url_errors("*").is_empty());
        assert!(non_resource_url_errors("/logs*").is_empty());
        assert!(non_resource_url_errors("/logs/*").is_empty());
        assert_eq!(non_resource_url_errors("").len(), 1);
        assert_eq!(non_resource_url_errors("logs").len(), 1);
        assert_eq!(non_resource_url_errors("a*b").len(), 2);
        assert_eq!(non_resource_url_errors("/logs/*/*").len(), 1);
        assert_eq!(non_resource_url_errors("/logs/*.log").len(), 1);
        assert_eq!(non_resource_url_errors("**").len(), 2);
    }
}
