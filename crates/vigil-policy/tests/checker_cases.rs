//! The policy checker against kube-apiserver's own checker tests
//! (`k8s.io/apiserver/pkg/audit/policy/checker_test.go`), re-expressed as tables, and the
//! semantics the reference calls surprising. Properties are in `checker_properties.rs`.

use vigil_model::{Level, Stage};
use vigil_policy::{Attributes, GroupResources, Policy, PolicyRule, User};

use Level::{Metadata, None as LNone, Request, RequestResponse};
use Stage::{Panic, RequestReceived, ResponseComplete, ResponseStarted};

fn tim() -> Option<User> {
    Some(User {
        name: "tim@k8s.io".into(),
        groups: vec!["humans".into(), "developers".into()],
    })
}

/// The upstream test's requests, by name.
fn request(name: &str) -> Attributes {
    let base = Attributes {
        user: tim(),
        verb: "get".into(),
        ..Attributes::default()
    };
    let pod = Attributes {
        namespace: "default".into(),
        api_version: "v1".into(),
        resource: "pods".into(),
        name: "busybox".into(),
        resource_request: true,
        path: "/api/v1/namespaces/default/pods/busybox".into(),
        ..base.clone()
    };
    match name {
        "namespaced" => pod,
        "cluster" => Attributes {
            api_group: "rbac.authorization.k8s.io".into(),
            api_version: "v1beta1".into(),
            resource: "clusterroles".into(),
            name: "edit".into(),
            resource_request: true,
            path: "/apis/rbac.authorization.k8s.io/v1beta1/clusterroles/edit".into(),
            ..base
        },
        "nonResource" => Attributes {
            path: "/logs/kubelet.log".into(),
            ..base
        },
        "subresource" => Attributes {
            subresource: "log".into(),
            ..pod
        },
        "Unauthorized" => Attributes { user: None, ..pod },
        "ClusterRoleUpdate" => Attributes {
            verb: "update".into(),
            api_group: "rbac.authorization.k8s.io".into(),
            api_version: "v1beta1".into(),
            resource: "clusterroles".into(),
            subresource: "status".into(),
            name: "somerole".into(),
            resource_request: true,
            path: "/apis/rbac.authorization.k8s.io/v1beta1/clusterroles/somerole".into(),
            ..base
        },
        _ => panic!("no request {name}"),
    }
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn resources(group: &str, res: &[&str], names: &[&str]) -> Vec<GroupResources> {
    vec![GroupResources {
        group: group.into(),
        resources: strs(res),
        resource_names: strs(names),
    }]
}

/// The upstream test's rules, by name.
fn rule(name: &str) -> PolicyRule {
    let level = |level| PolicyRule {
        level,
        ..PolicyRule::default()
    };
    match name {
        "default" => level(Metadata),
        "create" => PolicyRule {
            verbs: strs(&["create"]),
            ..level(Request)
        },
        "tims" => PolicyRule {
            users: strs(&["tim@k8s.io"]),
            ..level(Metadata)
        },
        "humans" => PolicyRule {
            user_groups: strs(&["humans"]),
            ..level(Metadata)
        },
        "serviceAccounts" => PolicyRule {
            user_groups: strs(&["system:serviceaccounts"]),
            ..level(Request)
        },
        "getPods" => PolicyRule {
            verbs: strs(&["get"]),
            resources: resources("", &["pods"], &[]),
            ..level(RequestResponse)
        },
        "getPodLogs" => PolicyRule {
            verbs: strs(&["get"]),
            resources: resources("", &["pods/log"], &[]),
            ..level(Request)
        },
        "getPodWildcardMatching" => PolicyRule {
            verbs: strs(&["get"]),
            resources: resources("", &["*"], &[]),
            ..level(Request)
        },
        "getPodResourceWildcardMatching" => PolicyRule {
            verbs: strs(&["get"]),
            resources: resources("", &["*/log"], &[]),
            ..level(Request)
        },
        "getPodSubResourceWildcardMatching" => PolicyRule {
            verbs: strs(&["get"]),
            resources: resources("", &["pods/*"], &[]),
            ..level(Request)
        },
        "getClusterRoles" => PolicyRule {
            verbs: strs(&["get"]),
            resources: resources("rbac.authorization.k8s.io", &["clusterroles"], &[]),
            namespaces: strs(&[""]),
            ..level(RequestResponse)
        },
        "getGroupWildCardMatchingWithSubresourceWildcardMatching" => PolicyRule {
            verbs: strs(&["update"]),
            resources: resources("*", &["*/status"], &[]),
            ..level(RequestResponse)
        },
        "getLogs" => PolicyRule {
            verbs: strs(&["get"]),
            non_resource_urls: strs(&["/logs*"]),
            ..level(RequestResponse)
        },
        "getMetrics" => PolicyRule {
            verbs: strs(&["get"]),
            non_resource_urls: strs(&["/metrics"]),
            ..level(Request)
        },
        "clusterRoleEdit" => PolicyRule {
            resources: resources("rbac.authorization.k8s.io", &["clusterroles"], &["edit"]),
            ..level(Request)
        },
        "omit RequestReceived" => PolicyRule {
            omit_stages: vec![RequestReceived],
            ..level(Request)
        },
        "only audit panic" => PolicyRule {
            omit_stages: vec![RequestReceived, ResponseStarted, ResponseComplete],
            ..level(Request)
        },
        _ => panic!("no rule {name}"),
    }
}

fn sorted(mut stages: Vec<Stage>) -> Vec<Stage> {
    stages.sort_by_key(|s| s.as_str());
    stages.dedup();
    stages
}

fn check(
    req: &str,
    level: Level,
    policy_stages: &[Stage],
    expected_stages: &[Stage],
    rules: &[&str],
) {
    let policy = Policy {
        rules: rules.iter().map(|r| rule(r)).collect(),
        omit_stages: policy_stages.to_vec(),
        ..Policy::default()
    };
    let d = policy.evaluate(&request(req));
    assert_eq!(d.level, level, "request {req}, rules {rules:?}");
    assert_eq!(
        d.omit_stages,
        sorted(expected_stages.to_vec()),
        "request {req}, rules {rules:?}"
    );
}

/// `testAuditLevel`: (request, expected level, rules), run with and without policy stages.
#[rustfmt::skip]
const LEVEL_CASES: &[(&str, Level, &[&str])] = &[
    ("namespaced", Metadata, &["default"]),
    ("namespaced", LNone, &["create"]),
    ("namespaced", Metadata, &["tims"]),
    ("namespaced", Metadata, &["humans"]),
    ("namespaced", LNone, &["serviceAccounts"]),
    ("namespaced", RequestResponse, &["getPods"]),
    ("namespaced", LNone, &["getClusterRoles"]),
    ("namespaced", LNone, &["getLogs"]),
    ("namespaced", LNone, &["getMetrics"]),
    ("namespaced", Metadata, &["getMetrics", "serviceAccounts", "default"]),
    ("namespaced", RequestResponse, &["getMetrics", "getPods", "default"]),
    ("namespaced", RequestResponse, &["getPodLogs", "getPods"]),
    ("cluster", Metadata, &["default"]),
    ("cluster", LNone, &["create"]),
    ("cluster", Metadata, &["tims"]),
    ("cluster", Metadata, &["humans"]),
    ("cluster", LNone, &["serviceAccounts"]),
    ("cluster", LNone, &["getPods"]),
    ("cluster", RequestResponse, &["getClusterRoles"]),
    ("cluster", Request, &["clusterRoleEdit", "getClusterRoles"]),
    ("cluster", LNone, &["getLogs"]),
    ("cluster", LNone, &["getMetrics"]),
    ("cluster", Metadata, &["getMetrics", "serviceAccounts", "default"]),
    ("cluster", RequestResponse, &["getMetrics", "getClusterRoles", "default"]),
    ("cluster", LNone, &["getPodLogs", "getPods"]),
    ("nonResource", Metadata, &["default"]),
    ("nonResource", LNone, &["create"]),
    ("nonResource", Metadata, &["tims"]),
    ("nonResource", Metadata, &["humans"]),
    ("nonResource", LNone, &["serviceAccounts"]),
    ("nonResource", LNone, &["getPods"]),
    ("nonResource", LNone, &["getClusterRoles"]),
    ("nonResource", RequestResponse, &["getLogs"]),
    ("nonResource", LNone, &["getMetrics"]),
    ("nonResource", Metadata, &["getMetrics", "serviceAccounts", "default"]),
    ("nonResource", RequestResponse, &["getLogs", "getClusterRoles", "default"]),
    ("nonResource", LNone, &["getPodLogs", "getPods"]),
    ("subresource", Request, &["getPodLogs", "getPods"]),
    ("subresource", Request, &["getPodWildcardMatching"]),
    ("subresource", Request, &["getPodResourceWildcardMatching"]),
    ("subresource", Request, &["getPodSubResourceWildcardMatching"]),
    ("Unauthorized", LNone, &["tims"]),
    ("Unauthorized", Metadata, &["tims", "default"]),
    ("Unauthorized", LNone, &["humans"]),
    ("Unauthorized", Metadata, &["humans", "default"]),
    ("ClusterRoleUpdate", RequestResponse, &["getGroupWildCardMatchingWithSubresourceWildcardMatching"]),
];

#[test]
fn upstream_checker_levels() {
    for stages in [&[][..], &[RequestReceived, ResponseStarted][..]] {
        for (req, level, rules) in LEVEL_CASES {
            // The matched rule sets no stages, so the policy's stages come back either way.
            check(req, *level, stages, stages, rules);
        }
    }
}

/// (request, level, policy stages, expected stages, rules).
type StageCase = (
    &'static str,
    Level,
    &'static [Stage],
    &'static [Stage],
    &'static [&'static str],
);

/// `TestChecker` and `TestCheckerPolicyOmitStages`: (request, level, policy stages, expected
/// stages, rules).
#[test]
fn upstream_checker_omit_stages() {
    let rr = &[RequestReceived][..];
    let rr_rs = &[RequestReceived, ResponseStarted][..];
    let panic_only = &[RequestReceived, ResponseStarted, ResponseComplete][..];
    #[rustfmt::skip]
    let cases: &[StageCase] = &[
        ("namespaced", Request, &[], rr, &["omit RequestReceived", "getPods", "default"]),
        ("namespaced", Request, &[], panic_only, &["only audit panic", "getPods", "default"]),
        ("cluster", Request, &[], rr, &["omit RequestReceived", "getPods", "default"]),
        ("cluster", Request, &[], panic_only, &["only audit panic", "getPods", "default"]),
        ("nonResource", Request, &[], rr, &["omit RequestReceived", "getPods", "default"]),
        ("nonResource", Request, &[], panic_only, &["only audit panic", "getPods", "default"]),
        ("namespaced", Request, rr_rs, rr_rs, &["omit RequestReceived", "getPods", "default"]),
        ("namespaced", Request, rr_rs, panic_only, &["only audit panic", "getPods", "default"]),
        ("cluster", Request, rr_rs, rr_rs, &["omit RequestReceived", "getPods", "default"]),
        ("cluster", Request, rr_rs, panic_only, &["only audit panic", "getPods", "default"]),
        ("nonResource", Metadata, rr_rs, rr_rs, &["default", "omit RequestReceived", "getPods"]),
        ("nonResource", Request, rr_rs, panic_only, &["only audit panic", "getPods", "default"]),
    ];
    for (req, level, policy_stages, expected, rules) in cases {
        check(req, *level, policy_stages, expected, rules);
    }
}

/// `TestUnionStages`, through evaluation: policy stages ∪ rule stages, deduplicated.
#[test]
fn upstream_union_stages() {
    #[rustfmt::skip]
    let cases: &[(&[Stage], &[Stage], &[Stage])] = &[
        (&[], &[], &[]),
        (&[RequestReceived], &[], &[RequestReceived]),
        (&[RequestReceived], &[RequestReceived], &[RequestReceived]),
        (&[RequestReceived], &[ResponseStarted], &[RequestReceived, ResponseStarted]),
        (&[RequestReceived, RequestReceived], &[RequestReceived, RequestReceived], &[RequestReceived]),
        (&[RequestReceived, ResponseStarted], &[Panic, RequestReceived], &[RequestReceived, ResponseStarted, Panic]),
    ];
    for (policy_stages, rule_stages, expected) in cases {
        let policy = Policy {
            rules: vec![PolicyRule {
                level: Metadata,
                omit_stages: rule_stages.to_vec(),
                ..PolicyRule::default()
            }],
            omit_stages: policy_stages.to_vec(),
            ..Policy::default()
        };
        let d = policy.evaluate(&Attributes::default());
        assert_eq!(d.omit_stages, sorted(expected.to_vec()));
        assert_eq!(d.rule, Some(0));
    }
    // Sorted by name, not by the stage order.
    let sorted_names: Vec<&str> = sorted(vec![
        ResponseStarted,
        Panic,
        RequestReceived,
        ResponseComplete,
    ])
    .iter()
    .map(|s| s.as_str())
    .collect();
    assert_eq!(
        sorted_names,
        [
            "Panic",
            "RequestReceived",
            "ResponseComplete",
            "ResponseStarted"
        ]
    );
}

/// `TestOmitManagedFields`: the rule's value, when set, overrides the policy default.
#[test]
fn upstream_omit_managed_fields() {
    for (policy_default, rule_value, want) in [
        (false, None, false),
        (true, None, true),
        (true, Some(false), false),
        (false, Some(true), true),
    ] {
        let policy = Policy {
            rules: vec![PolicyRule {
                level: RequestResponse,
                verbs: strs(&["get"]),
                omit_managed_fields: rule_value,
                ..PolicyRule::default()
            }],
            omit_managed_fields: policy_default,
            ..Policy::default()
        };
        let attrs = Attributes {
            verb: "get".into(),
            ..Attributes::default()
        };
        assert_eq!(policy.evaluate(&attrs).omit_managed_fields, want);
        // No match: the policy default, and level None.
        let other = Attributes {
            verb: "list".into(),
            ..Attributes::default()
        };
        let d = policy.evaluate(&other);
        assert_eq!(
            (d.level, d.omit_managed_fields, d.rule),
            (LNone, policy_default, None)
        );
    }
}

/// Semantics the reference spells out beyond the upstream tests.
#[test]
fn surprising_semantics() {
    let pods = |items: &[&str]| Policy {
        rules: vec![PolicyRule {
            level: Request,
            resources: resources("", items, &[]),
            ..PolicyRule::default()
        }],
        ..Policy::default()
    };
    let mut req = request("namespaced");
    // R/* also matches bare R.
    assert_eq!(pods(&["pods/*"]).evaluate(&req).level, Request);
    // */* matches nothing.
    assert_eq!(pods(&["*/*"]).evaluate(&req).level, LNone);
    req.subresource = "log".into();
    assert_eq!(pods(&["*/*"]).evaluate(&req).level, LNone);
    // A bare resource does not cover its subresources; a group entry without resources does.
    assert_eq!(pods(&["pods"]).evaluate(&req).level, LNone);
    assert_eq!(pods(&[]).evaluate(&req).level, Request);
    // The core group is "" only.
    req.api_group = "apps".into();
    assert_eq!(pods(&[]).evaluate(&req).level, LNone);
    // namespaces: [""] matches all-namespace lists; a namespace rule never matches non-resource.
    let ns = |n: &str| Policy {
        rules: vec![PolicyRule {
            level: Metadata,
            namespaces: strs(&[n]),
            ..PolicyRule::default()
        }],
        ..Policy::default()
    };
    let list_all = Attributes {
        verb: "list".into(),
        resource: "pods".into(),
        resource_request: true,
        ..Attributes::default()
    };
    assert_eq!(ns("").evaluate(&list_all).level, Metadata);
    assert_eq!(ns("").evaluate(&request("nonResource")).level, LNone);
    // resourceNames: a request without a name never matches.
    let named = Policy {
        rules: vec![PolicyRule {
            level: Metadata,
            resources: resources("", &["pods"], &["busybox"]),
            ..PolicyRule::default()
        }],
        ..Policy::default()
    };
    assert_eq!(named.evaluate(&request("namespaced")).level, Metadata);
    assert_eq!(named.evaluate(&list_all).level, LNone);
    // Non-resource patterns are raw prefixes; a rule with only users applies to both kinds.
    let urls = |u: &str| Policy {
        rules: vec![PolicyRule {
            level: Metadata,
            non_resource_urls: strs(&[u]),
            ..PolicyRule::default()
        }],
        ..Policy::default()
    };
    let path = |p: &str| Attributes {
        path: p.into(),
        verb: "get".into(),
        ..Attributes::default()
    };
    assert_eq!(
        urls("/healthz*").evaluate(&path("/healthzfoo")).level,
        Metadata
    );
    assert_eq!(
        urls("/api*").evaluate(&path("/apis/apps/v1")).level,
        Metadata
    );
    assert_eq!(urls("/api*").evaluate(&request("namespaced")).level, LNone);
    assert_eq!(urls("/version").evaluate(&path("/version/")).level, LNone);
    // Verbs are case-sensitive; an empty user name still is a user.
    let verbs = Policy {
        rules: vec![PolicyRule {
            level: Metadata,
            verbs: strs(&["get"]),
            users: strs(&[""]),
            ..PolicyRule::default()
        }],
        ..Policy::default()
    };
    let mut a = path("/x");
    a.user = Some(User::default());
    assert_eq!(verbs.evaluate(&a).level, Metadata);
    a.verb = "GET".into();
    assert_eq!(verbs.evaluate(&a).level, LNone);
}
