//! Properties of the policy checker that must hold for any policy and any request.

use proptest::prelude::*;
use vigil_model::{Level, Stage};
use vigil_policy::{Attributes, GroupResources, Policy, PolicyRule, User};

use Level::{Metadata, None as LNone, Request, RequestResponse};
use Stage::{Panic, RequestReceived, ResponseComplete, ResponseStarted};

fn pick(items: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::sample::select(items).prop_map(String::from)
}

fn picks(items: &'static [&'static str], max: usize) -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(pick(items), 0..=max)
}

const USERS: &[&str] = &["alice", "bob", ""];
const GROUPS: &[&str] = &["dev", "ops", "system:authenticated"];
const VERBS: &[&str] = &["get", "list", "create", "delete", "watch"];
const NAMESPACES: &[&str] = &["", "default", "x"];
const API_GROUPS: &[&str] = &["", "*", "apps"];
const RESOURCE_ITEMS: &[&str] = &[
    "pods",
    "pods/*",
    "*/log",
    "*",
    "*/*",
    "pods/log",
    "secrets",
    "secrets/*",
];
const RESOURCES: &[&str] = &["pods", "secrets", "deployments"];
const SUBRESOURCES: &[&str] = &["", "", "log", "status"];
const NAMES: &[&str] = &["", "a", "b"];
const URLS: &[&str] = &["*", "/healthz*", "/api*", "/version"];
const PATHS: &[&str] = &[
    "/healthz",
    "/healthzx",
    "/api",
    "/apis/apps",
    "/version",
    "/",
];
const LEVELS: &[Level] = &[LNone, Metadata, Request, RequestResponse];
const STAGES: &[Stage] = &[RequestReceived, ResponseStarted, ResponseComplete, Panic];

fn attributes() -> impl Strategy<Value = Attributes> {
    let user = prop::option::weighted(
        0.9,
        (pick(USERS), picks(GROUPS, 2)).prop_map(|(name, groups)| User { name, groups }),
    );
    (
        user,
        pick(VERBS),
        any::<bool>(),
        (
            pick(NAMESPACES),
            pick(&["", "apps"]),
            pick(RESOURCES),
            pick(SUBRESOURCES),
            pick(NAMES),
        ),
        pick(PATHS),
    )
        .prop_map(
            |(
                user,
                verb,
                resource_request,
                (namespace, api_group, resource, subresource, name),
                path,
            )| {
                if resource_request {
                    Attributes {
                        user,
                        verb,
                        namespace,
                        api_group,
                        api_version: "v1".into(),
                        resource,
                        subresource,
                        name,
                        resource_request,
                        path,
                    }
                } else {
                    Attributes {
                        user,
                        verb,
                        path,
                        ..Attributes::default()
                    }
                }
            },
        )
}

fn group_resources() -> impl Strategy<Value = GroupResources> {
    (pick(API_GROUPS), picks(RESOURCE_ITEMS, 2), picks(NAMES, 1)).prop_map(
        |(group, resources, names)| GroupResources {
            group,
            resource_names: if resources.is_empty() {
                Vec::new()
            } else {
                names
            },
            resources,
        },
    )
}

fn policy_rule() -> impl Strategy<Value = PolicyRule> {
    (
        prop::sample::select(LEVELS),
        (picks(USERS, 1), picks(GROUPS, 1), picks(VERBS, 2)),
        0..3u8,
        (
            picks(NAMESPACES, 1),
            prop::collection::vec(group_resources(), 0..2),
            picks(URLS, 2),
        ),
        prop::collection::vec(prop::sample::select(STAGES), 0..2),
        prop::option::of(any::<bool>()),
    )
        .prop_map(
            |(
                level,
                (users, user_groups, verbs),
                kind,
                (namespaces, resources, urls),
                omit_stages,
                omf,
            )| {
                let mut r = PolicyRule {
                    level,
                    users,
                    user_groups,
                    verbs,
                    omit_stages,
                    omit_managed_fields: omf,
                    ..PolicyRule::default()
                };
                match kind {
                    0 => {
                        r.namespaces = namespaces;
                        r.resources = resources;
                    }
                    1 => r.non_resource_urls = urls,
                    _ => {}
                }
                r
            },
        )
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        prop::collection::vec(policy_rule(), 1..5),
        prop::collection::vec(prop::sample::select(STAGES), 0..2),
        any::<bool>(),
    )
        .prop_map(|(rules, omit_stages, omit_managed_fields)| Policy {
            rules,
            omit_stages,
            omit_managed_fields,
            rule_lines: Vec::new(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// A rule with no constraints matches every request, resource or not, with or without user.
    #[test]
    fn unconstrained_rule_matches_everything(a in attributes(), level in prop::sample::select(LEVELS)) {
        let p = Policy { rules: vec![PolicyRule { level, ..PolicyRule::default() }], ..Policy::default() };
        let d = p.evaluate(&a);
        prop_assert_eq!((d.level, d.rule), (level, Some(0)));
    }

    /// Rules after a catch-all are dead: appending one never changes any decision.
    #[test]
    fn rules_after_a_catch_all_never_matter(mut p in policy(), extra in policy_rule(), a in attributes()) {
        p.rules.push(PolicyRule { level: Metadata, ..PolicyRule::default() });
        let before = p.evaluate(&a);
        p.rules.push(extra);
        prop_assert_eq!(p.evaluate(&a), before);
    }

    /// `R/*` covers everything `R` covers (and bare R itself).
    #[test]
    fn subresource_wildcard_covers_the_resource(r in pick(RESOURCES), mut rule in policy_rule(), a in attributes()) {
        rule.non_resource_urls.clear();
        let with = |item: String| {
            let mut r2 = rule.clone();
            r2.resources = vec![GroupResources { group: "*".into(), resources: vec![item], resource_names: Vec::new() }];
            r2
        };
        if with(r.clone()).matches(&a) {
            let wildcard = format!("{}/*", r);
            prop_assert!(with(wildcard).matches(&a));
        }
    }

    /// The decision is the first rule that matches, and carries that rule's level.
    #[test]
    fn first_match_wins(p in policy(), a in attributes()) {
        let d = p.evaluate(&a);
        let first = p.rules.iter().position(|r| r.matches(&a));
        prop_assert_eq!(d.rule, first);
        if let Some(i) = first {
            prop_assert_eq!(d.level, p.rules[i].level);
        } else {
            prop_assert_eq!(d.level, LNone);
        }
        // Stages always come back sorted by name and without duplicates.
        let names: Vec<&str> = d.omit_stages.iter().map(|s| s.as_str()).collect();
        let mut expect = names.clone();
        expect.sort();
        expect.dedup();
        prop_assert_eq!(names, expect);
    }

    /// Users and groups never match a request without a user.
    #[test]
    fn no_user_never_matches_user_constraints(rule in policy_rule(), mut a in attributes()) {
        a.user = None;
        if !rule.users.is_empty() || !rule.user_groups.is_empty() {
            prop_assert!(!rule.matches(&a));
        }
    }
}
