//! Structural reasoning about rules: which requests a rule can match, and whether one rule
//! matches every request another could.
//!
//! Everything here is *sound*: [`subsumes`] returns true only when every request the later rule
//! can match is provably matched by the earlier one, with kube-apiserver's matching semantics
//! (exact user/group/verb/namespace, resource items `R`, `R/S`, `*`, `*/S`, `R/*` (which also
//! matches bare `R`), `resourceNames`, and raw-prefix `nonResourceURLs`). When in doubt it says no.

use crate::checker::resource_item_matches;
use crate::types::{GroupResources, PolicyRule};

/// What kind of request a rule can match at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `namespaces` or `resources` set: resource requests only.
    Resource,
    /// Only `nonResourceURLs` set: non-resource requests only.
    NonResource,
    /// Neither: both kinds.
    Any,
}

pub(crate) fn kind(rule: &PolicyRule) -> Kind {
    if !rule.namespaces.is_empty() || !rule.resources.is_empty() {
        Kind::Resource
    } else if !rule.non_resource_urls.is_empty() {
        Kind::NonResource
    } else {
        Kind::Any
    }
}

/// `true` when the rule puts no constraint on who or which verb.
pub(crate) fn anyone_any_verb(rule: &PolicyRule) -> bool {
    rule.users.is_empty() && rule.user_groups.is_empty() && rule.verbs.is_empty()
}

/// An empty list means "anything"; a non-empty `a` contains every request `b` allows only when
/// `b` is non-empty and a subset.
fn list_superset(a: &[String], b: &[String]) -> bool {
    a.is_empty() || (!b.is_empty() && b.iter().all(|x| a.contains(x)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Res<'a> {
    Any,
    Exact(&'a str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sub<'a> {
    Any,
    /// No subresource.
    Bare,
    Exact(&'a str),
}

/// One shape of `(resource, subresource)` pairs an item matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape<'a> {
    res: Res<'a>,
    sub: Sub<'a>,
}

impl Shape<'_> {
    fn covers(&self, other: &Shape<'_>) -> bool {
        let res = match (self.res, other.res) {
            (Res::Any, _) => true,
            (Res::Exact(a), Res::Exact(b)) => a == b,
            (Res::Exact(_), Res::Any) => false,
        };
        let sub = match (self.sub, other.sub) {
            (Sub::Any, _) => true,
            (Sub::Bare, Sub::Bare) => true,
            (Sub::Exact(a), Sub::Exact(b)) => a == b,
            _ => false,
        };
        res && sub
    }
}

/// The union of shapes a `resources` item matches, following checker.go: `*`; the literal
/// `resource[/subresource]`; `*/S` (only requests with subresource S); `R/*` (R with any or no
/// subresource).
fn shapes(item: &str) -> Vec<Shape<'_>> {
    let mut out = Vec::with_capacity(2);
    if item == "*" {
        out.push(Shape {
            res: Res::Any,
            sub: Sub::Any,
        });
        return out;
    }
    match item.split_once('/') {
        None if !item.is_empty() => out.push(Shape {
            res: Res::Exact(item),
            sub: Sub::Bare,
        }),
        Some((r, s)) if !r.is_empty() && !s.is_empty() => out.push(Shape {
            res: Res::Exact(r),
            sub: Sub::Exact(s),
        }),
        _ => {}
    }
    if let Some(s) = item.strip_prefix("*/") {
        if !s.is_empty() {
            out.push(Shape {
                res: Res::Any,
                sub: Sub::Exact(s),
            });
        }
    }
    if let Some(r) = item.strip_suffix("/*") {
        out.push(Shape {
            res: Res::Exact(r),
            sub: Sub::Any,
        });
    }
    out
}

/// Does a group/resources entry match this concrete request (for some name)?
pub(crate) fn entry_reaches(
    gr: &GroupResources,
    group: &str,
    resource: &str,
    subresource: &str,
) -> bool {
    (gr.group == "*" || gr.group == group)
        && (gr.resources.is_empty()
            || gr
                .resources
                .iter()
                .any(|i| resource_item_matches(i, resource, subresource)))
}

/// One piece of what a rule's `resources` matches: a group, a shape, and a name restriction.
struct Atom<'a> {
    group: &'a str,
    shape: Shape<'a>,
    /// `None`: any name (including none).
    names: Option<&'a [String]>,
}

const ANY_GROUP: &str = "*";

/// What a rule's resource constraint matches, as atoms. Empty `resources` means everything.
fn atoms(resources: &[GroupResources]) -> Vec<Atom<'_>> {
    if resources.is_empty() {
        return vec![Atom {
            group: ANY_GROUP,
            shape: Shape {
                res: Res::Any,
                sub: Sub::Any,
            },
            names: None,
        }];
    }
    let mut out = Vec::new();
    for gr in resources {
        if gr.resources.is_empty() {
            out.push(Atom {
                group: &gr.group,
                shape: Shape {
                    res: Res::Any,
                    sub: Sub::Any,
                },
                names: None,
            });
            continue;
        }
        let names = (!gr.resource_names.is_empty()).then_some(gr.resource_names.as_slice());
        for item in &gr.resources {
            for shape in shapes(item) {
                out.push(Atom {
                    group: &gr.group,
                    shape,
                    names,
                });
            }
        }
    }
    out
}

fn entry_covers(a: &GroupResources, atom: &Atom<'_>) -> bool {
    let group = a.group == "*" || (atom.group != "*" && a.group == atom.group);
    if !group {
        return false;
    }
    if a.resources.is_empty() {
        return true;
    }
    let names = a.resource_names.is_empty()
        || atom
            .names
            .is_some_and(|n| !n.is_empty() && n.iter().all(|x| a.resource_names.contains(x)));
    names
        && a.resources
            .iter()
            .any(|item| shapes(item).iter().any(|s| s.covers(&atom.shape)))
}

fn resources_cover(a: &[GroupResources], b: &[GroupResources]) -> bool {
    if a.is_empty() {
        return true;
    }
    atoms(b)
        .iter()
        .all(|atom| a.iter().any(|e| entry_covers(e, atom)))
}

/// `true` when a `resources` list can match no real request (every item matches nothing).
pub(crate) fn resources_match_nothing(resources: &[GroupResources]) -> bool {
    !resources.is_empty() && atoms(resources).is_empty()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Url<'a> {
    Prefix(&'a str),
    Exact(&'a str),
}

fn url(pattern: &str) -> Url<'_> {
    if pattern.ends_with('*') {
        Url::Prefix(pattern.trim_end_matches('*'))
    } else {
        Url::Exact(pattern)
    }
}

fn url_covers(a: Url<'_>, b: Url<'_>) -> bool {
    match (a, b) {
        (Url::Prefix(p), Url::Prefix(q)) | (Url::Prefix(p), Url::Exact(q)) => q.starts_with(p),
        (Url::Exact(p), Url::Exact(q)) => p == q,
        (Url::Exact(_), Url::Prefix(_)) => false,
    }
}

/// `true` only if every request `b` can match is also matched by `a`.
pub(crate) fn subsumes(a: &PolicyRule, b: &PolicyRule) -> bool {
    if !list_superset(&a.users, &b.users)
        || !list_superset(&a.user_groups, &b.user_groups)
        || !list_superset(&a.verbs, &b.verbs)
    {
        return false;
    }
    match (kind(a), kind(b)) {
        (Kind::Any, _) => true,
        (Kind::Resource, Kind::Resource) => {
            list_superset(&a.namespaces, &b.namespaces)
                && resources_cover(&a.resources, &b.resources)
        }
        (Kind::NonResource, Kind::NonResource) => b.non_resource_urls.iter().all(|q| {
            a.non_resource_urls
                .iter()
                .any(|p| url_covers(url(p), url(q)))
        }),
        _ => false,
    }
}

/// `true` when the rule matches every resource request (anyone, any verb, any namespace, any
/// group and resource, any name).
pub(crate) fn all_resource_requests(rule: &PolicyRule) -> bool {
    if !anyone_any_verb(rule) {
        return false;
    }
    match kind(rule) {
        Kind::Any => true,
        Kind::NonResource => false,
        Kind::Resource => {
            let probe = PolicyRule::default();
            rule.namespaces.is_empty() && resources_cover(&rule.resources, &probe.resources)
        }
    }
}

/// `true` when the rule matches every non-resource request.
pub(crate) fn all_non_resource_requests(rule: &PolicyRule) -> bool {
    if !anyone_any_verb(rule) {
        return false;
    }
    match kind(rule) {
        Kind::Any => true,
        Kind::Resource => false,
        // Every request path starts with `/`.
        Kind::NonResource => rule
            .non_resource_urls
            .iter()
            .any(|p| matches!(url(p), Url::Prefix("") | Url::Prefix("/"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gr(group: &str, resources: &[&str], names: &[&str]) -> GroupResources {
        GroupResources {
            group: group.into(),
            resources: resources.iter().map(|s| s.to_string()).collect(),
            resource_names: names.iter().map(|s| s.to_string()).collect(),
        }
    }
    fn res_rule(resources: Vec<GroupResources>) -> PolicyRule {
        PolicyRule {
            resources,
            ..Default::default()
        }
    }
    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn resource_subsumption() {
        let star = res_rule(vec![gr("", &["*"], &[])]);
        let pods = res_rule(vec![gr("", &["pods"], &[])]);
        let pods_all = res_rule(vec![gr("", &["pods/*"], &[])]);
        let exec = res_rule(vec![gr("", &["pods/exec"], &[])]);
        let any_exec = res_rule(vec![gr("", &["*/exec"], &[])]);
        let whole_core = res_rule(vec![gr("", &[], &[])]);
        let apps = res_rule(vec![gr("apps", &["deployments"], &[])]);
        let any_group = res_rule(vec![gr("*", &[], &[])]);
        assert!(subsumes(&star, &pods));
        assert!(subsumes(&pods_all, &pods));
        assert!(subsumes(&pods_all, &exec));
        assert!(subsumes(&any_exec, &exec));
        assert!(!subsumes(&exec, &any_exec));
        assert!(!subsumes(&pods, &exec));
        assert!(!subsumes(&pods, &pods_all));
        assert!(subsumes(&whole_core, &star));
        assert!(
            subsumes(&star, &whole_core),
            "`*` in the core group is the whole core group"
        );
        assert!(!subsumes(&whole_core, &apps));
        assert!(subsumes(&any_group, &apps));
        assert!(!subsumes(&star, &apps));
        // A rule that is not a resource rule matches non-resource requests too.
        assert!(!subsumes(&star, &PolicyRule::default()));
        assert!(subsumes(&PolicyRule::default(), &star));
    }

    #[test]
    fn names_namespaces_and_subjects() {
        let named = res_rule(vec![gr("", &["configmaps"], &["a", "b"])]);
        let named_a = res_rule(vec![gr("", &["configmaps"], &["a"])]);
        let unnamed = res_rule(vec![gr("", &["configmaps"], &[])]);
        assert!(subsumes(&named, &named_a));
        assert!(!subsumes(&named_a, &named));
        assert!(!subsumes(&named, &unnamed));
        assert!(subsumes(&unnamed, &named));

        let mut in_ns = unnamed.clone();
        in_ns.namespaces = strs(&["kube-system"]);
        assert!(subsumes(&unnamed, &in_ns));
        assert!(!subsumes(&in_ns, &unnamed));

        let mut alice = unnamed.clone();
        alice.users = strs(&["alice"]);
        let mut alice_get = alice.clone();
        alice_get.verbs = strs(&["get"]);
        assert!(subsumes(&alice, &alice_get));
        assert!(!subsumes(&alice_get, &alice));
        let mut group = unnamed.clone();
        group.user_groups = strs(&["devs"]);
        assert!(!subsumes(&alice, &group));
        assert!(!subsumes(&group, &alice), "alice may not be in devs");
    }

    #[test]
    fn url_subsumption_is_a_raw_prefix() {
        let r = |u: &[&str]| PolicyRule {
            non_resource_urls: strs(u),
            ..Default::default()
        };
        assert!(subsumes(
            &r(&["/healthz*"]),
            &r(&["/healthz", "/healthz/etcd", "/healthzfoo*"])
        ));
        assert!(!subsumes(&r(&["/healthz"]), &r(&["/healthz*"])));
        assert!(subsumes(&r(&["*"]), &r(&["/api*"])));
        assert!(!subsumes(&r(&["/api*"]), &r(&["*"])));
        assert!(!subsumes(&r(&["*"]), &res_rule(vec![gr("", &[], &[])])));
    }

    #[test]
    fn catch_all_detection() {
        assert!(all_resource_requests(&PolicyRule::default()));
        assert!(all_non_resource_requests(&PolicyRule::default()));
        assert!(all_resource_requests(&res_rule(vec![gr("*", &[], &[])])));
        assert!(all_resource_requests(&res_rule(vec![gr("*", &["*"], &[])])));
        assert!(!all_resource_requests(&res_rule(vec![gr("", &[], &[])])));
        assert!(!all_resource_requests(&res_rule(vec![gr(
            "*",
            &["*"],
            &["x"]
        )])));
        let urls = PolicyRule {
            non_resource_urls: strs(&["/*"]),
            ..Default::default()
        };
        assert!(all_non_resource_requests(&urls));
        assert!(!all_resource_requests(&urls));
        let who = PolicyRule {
            users: strs(&["alice"]),
            ..Default::default()
        };
        assert!(!all_resource_requests(&who));
        assert!(resources_match_nothing(&[gr("", &[""], &[])]));
    }
}
