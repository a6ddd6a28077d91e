//! `lint`: each finding on the smallest policy that shows it, the absence of false alarms on
//! good policies, snapshots of whole reports, and properties (soundness of "unreachable", no
//! panics).

use proptest::prelude::*;
use vigil_model::{Level, Stage};
use vigil_policy::baseline::BASELINE;
use vigil_policy::lint::{codes, lint, Finding};
use vigil_policy::{load_policy, Attributes, GroupResources, Policy, PolicyRule, Severity, User};

// ---- builders -------------------------------------------------------------------------------

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn rule(level: Level) -> PolicyRule {
    PolicyRule {
        level,
        ..Default::default()
    }
}

fn res(level: Level, group: &str, resources: &[&str]) -> PolicyRule {
    PolicyRule {
        level,
        resources: vec![GroupResources {
            group: group.into(),
            resources: s(resources),
            resource_names: vec![],
        }],
        ..Default::default()
    }
}

fn urls(level: Level, u: &[&str]) -> PolicyRule {
    PolicyRule {
        level,
        non_resource_urls: s(u),
        ..Default::default()
    }
}

/// A policy with good hygiene (RequestReceived omitted, managed fields omitted, probes
/// excluded), so a test sees only the finding it is about.
fn policy(rules: Vec<PolicyRule>) -> Policy {
    let mut all = vec![urls(
        Level::None,
        &["/healthz*", "/livez*", "/readyz*", "/version", "/metrics"],
    )];
    all.extend(rules);
    Policy {
        rule_lines: (0..all.len()).map(|i| 10 + 5 * i).collect(),
        rules: all,
        omit_stages: vec![Stage::RequestReceived],
        omit_managed_fields: true,
    }
}

fn with_code<'a>(findings: &'a [Finding], code: &str) -> Vec<&'a Finding> {
    findings.iter().filter(|f| f.code == code).collect()
}

fn codes_of(findings: &[Finding]) -> Vec<&'static str> {
    let mut c: Vec<&'static str> = findings.iter().map(|f| f.code).collect();
    c.sort();
    c.dedup();
    c
}

/// One line per finding, without the (long, constant) `why`.
fn render(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| {
            let rule = f.rule.map_or("-".to_string(), |r| r.to_string());
            format!(
                "line {:>3} rule {rule:>2} {:?} {}: {}",
                f.line, f.severity, f.code, f.message
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Snapshots live beside the fixtures they describe.
fn snapshot(f: impl FnOnce()) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("fixtures/snapshots");
    settings.bind(f);
}

fn load(text: &str) -> Policy {
    match load_policy(text) {
        Ok(l) => l.policy,
        Err(e) => panic!("fixture does not load: {:?}", e.errors),
    }
}

// ---- the baseline ---------------------------------------------------------------------------

#[test]
fn baseline_loads_cleanly_and_lints_without_warnings() {
    let loaded =
        load_policy(BASELINE).unwrap_or_else(|e| panic!("baseline does not load: {:?}", e.errors));
    assert!(
        loaded.warnings.is_empty(),
        "baseline load warnings: {:?}",
        loaded.warnings
    );
    let findings = lint(&loaded.policy);
    let serious: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.severity >= Severity::Warning)
        .collect();
    assert!(
        serious.is_empty(),
        "baseline findings:\n{}",
        render(&findings)
    );
}

#[test]
fn baseline_does_what_its_comments_say() {
    let p = load(BASELINE);
    let who = |name: &str, groups: &[&str]| {
        Some(User {
            name: name.into(),
            groups: s(groups),
        })
    };
    let req = |user, verb: &str, group: &str, resource: &str, sub: &str, ns: &str| Attributes {
        user,
        verb: verb.into(),
        namespace: ns.into(),
        api_group: group.into(),
        api_version: "v1".into(),
        resource: resource.into(),
        subresource: sub.into(),
        name: "x".into(),
        resource_request: true,
        path: String::new(),
    };
    let jane = || who("jane", &["system:authenticated"]);
    let node = || who("system:node:n1", &["system:nodes", "system:authenticated"]);
    let level = |a: &Attributes| p.evaluate(a).level;
    assert_eq!(
        level(&req(jane(), "get", "", "secrets", "", "prod")),
        Level::Metadata
    );
    assert_eq!(
        level(&req(node(), "get", "", "secrets", "", "prod")),
        Level::Metadata,
        "node secret reads stay on record"
    );
    assert_eq!(
        level(&req(
            jane(),
            "create",
            "",
            "serviceaccounts",
            "token",
            "prod"
        )),
        Level::Metadata
    );
    assert_eq!(
        level(&req(
            jane(),
            "create",
            "authentication.k8s.io",
            "tokenreviews",
            "",
            ""
        )),
        Level::Metadata
    );
    assert_eq!(
        level(&req(jane(), "create", "", "pods", "exec", "prod")),
        Level::Request
    );
    assert_eq!(
        level(&req(node(), "get", "", "nodes", "proxy", "")),
        Level::Request,
        "exec/proxy for every caller"
    );
    assert_eq!(
        level(&req(
            jane(),
            "create",
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            "",
            ""
        )),
        Level::RequestResponse
    );
    assert_eq!(level(&req(node(), "list", "", "pods", "", "")), Level::None);
    assert_eq!(
        level(&req(jane(), "list", "", "pods", "", "")),
        Level::Request
    );
    assert_eq!(
        level(&req(jane(), "create", "apps", "deployments", "", "prod")),
        Level::RequestResponse
    );
    assert_eq!(
        level(&req(jane(), "create", "", "events", "", "prod")),
        Level::None
    );
    assert_eq!(
        level(&req(jane(), "create", "example.com", "widgets", "", "prod")),
        Level::Metadata,
        "catch-all"
    );
    let d = p.evaluate(&req(jane(), "create", "apps", "deployments", "", "prod"));
    assert!(d.omit_stages.contains(&Stage::RequestReceived));
    assert!(d.omit_managed_fields);
}

// ---- snapshots of whole reports -------------------------------------------------------------

#[test]
fn website_example_report() {
    let findings = lint(&load(include_str!("fixtures/website-example.yaml")));
    snapshot(|| insta::assert_snapshot!(render(&findings)));
}

#[test]
fn gke_style_report() {
    let findings = lint(&load(include_str!("fixtures/gke-style.yaml")));
    snapshot(|| insta::assert_snapshot!(render(&findings)));
    assert!(
        findings.iter().all(|f| f.severity < Severity::Error),
        "{}",
        render(&findings)
    );
}

#[test]
fn bad_policy_report() {
    let findings = lint(&load(include_str!("fixtures/bad-policy.yaml")));
    snapshot(|| insta::assert_snapshot!(render(&findings)));
    let mut expected: Vec<&str> = codes::ALL
        .iter()
        .copied()
        .filter(|c| *c != codes::CATCH_ALL_NONE)
        .collect();
    expected.sort();
    assert_eq!(codes_of(&findings), expected);
    assert!(
        findings.iter().any(|f| f.severity == Severity::Error),
        "the CLI must exit 1 on it"
    );
}

#[test]
fn finding_json_shape() {
    let p = Policy {
        rules: vec![res(Level::Request, "", &["secrets"])],
        rule_lines: vec![7],
        ..Default::default()
    };
    let f = lint(&p)
        .into_iter()
        .find(|f| f.code == codes::SENSITIVE_DATA_LOGGED)
        .unwrap();
    let json = serde_json::to_value(&f).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["code", "line", "message", "rule", "severity", "why"]);
    assert_eq!(json["rule"], 0);
    assert_eq!(json["line"], 7);
    assert_eq!(json["severity"], "Error");
    assert_eq!(json["code"], "sensitive-data-logged");
}

#[test]
fn findings_are_sorted_explained_and_coded() {
    for text in [
        include_str!("fixtures/bad-policy.yaml"),
        include_str!("fixtures/website-example.yaml"),
        include_str!("fixtures/gke-style.yaml"),
        BASELINE,
    ] {
        let findings = lint(&load(text));
        for w in findings.windows(2) {
            assert!(
                (w[0].rule, std::cmp::Reverse(w[0].severity))
                    <= (w[1].rule, std::cmp::Reverse(w[1].severity)),
                "not sorted: {:?} then {:?}",
                w[0],
                w[1]
            );
        }
        for f in &findings {
            assert!(codes::ALL.contains(&f.code), "{} not in codes::ALL", f.code);
            assert!(f.why.len() > 100, "{}: the why must explain", f.code);
            assert!(f.code.chars().all(|c| c.is_ascii_lowercase() || c == '-'));
        }
    }
}

// ---- sensitive-data-logged ------------------------------------------------------------------

fn sensitive(p: &Policy) -> Vec<&'static str> {
    let f = lint(p);
    let msgs: Vec<String> = with_code(&f, codes::SENSITIVE_DATA_LOGGED)
        .iter()
        .map(|f| f.message.clone())
        .collect();
    let all = msgs.join("\n");
    [
        "secrets (",
        "configmaps (",
        "tokenreviews (",
        "serviceaccounts/token (",
    ]
    .into_iter()
    .filter(|t| all.contains(t))
    .collect()
}

#[test]
fn bodies_of_secrets_are_an_error_however_they_are_reached() {
    let all = [
        "secrets (",
        "configmaps (",
        "tokenreviews (",
        "serviceaccounts/token (",
    ];
    assert_eq!(
        sensitive(&policy(vec![rule(Level::RequestResponse)])),
        all,
        "catch-all"
    );
    assert_eq!(
        sensitive(&policy(vec![res(Level::RequestResponse, "*", &["*"])])),
        all,
        "`*` in any group"
    );
    assert_eq!(
        sensitive(&policy(vec![res(Level::RequestResponse, "", &[])])),
        ["secrets (", "configmaps (", "serviceaccounts/token ("],
        "the whole core group"
    );
    assert_eq!(
        sensitive(&policy(vec![res(
            Level::RequestResponse,
            "",
            &["serviceaccounts/*"]
        )])),
        ["serviceaccounts/token ("]
    );
    assert_eq!(
        sensitive(&policy(vec![res(Level::RequestResponse, "", &["*/token"])])),
        ["serviceaccounts/token ("]
    );
    assert_eq!(
        sensitive(&policy(vec![res(
            Level::Request,
            "authentication.k8s.io",
            &[]
        )])),
        ["tokenreviews ("]
    );
    let mut named = res(Level::Request, "", &["configmaps"]);
    named.resources[0].resource_names = s(&["app-config"]);
    assert_eq!(
        sensitive(&policy(vec![named])),
        ["configmaps ("],
        "named objects still leak"
    );
    let mut alice = res(Level::RequestResponse, "", &["secrets"]);
    alice.users = s(&["alice"]);
    assert_eq!(
        sensitive(&policy(vec![alice])),
        ["secrets ("],
        "one user's reads still leak"
    );
}

#[test]
fn bodies_without_secret_data_are_fine() {
    // Request level stores request bodies only: reads have none, a TokenRequest's holds no token.
    let mut reads = rule(Level::Request);
    reads.verbs = s(&["get", "list", "watch"]);
    assert!(sensitive(&policy(vec![reads])).is_empty());
    assert!(sensitive(&policy(vec![res(
        Level::Request,
        "",
        &["serviceaccounts/token"]
    )]))
    .is_empty());
    // watch events carry no response body.
    let mut watch = res(Level::RequestResponse, "", &["secrets"]);
    watch.verbs = s(&["watch"]);
    assert!(sensitive(&policy(vec![watch])).is_empty());
    assert!(sensitive(&policy(vec![res(Level::Metadata, "", &["secrets"])])).is_empty());
    assert!(sensitive(&policy(vec![res(
        Level::RequestResponse,
        "",
        &["pods", "secrets/status"]
    )]))
    .is_empty());
    assert!(sensitive(&policy(vec![urls(Level::RequestResponse, &["*"])])).is_empty());
}

#[test]
fn earlier_metadata_rules_shield_later_broad_rules() {
    let shield = |resources: &[&str]| res(Level::Metadata, "", resources);
    let p = policy(vec![
        shield(&["secrets", "configmaps", "serviceaccounts/token"]),
        res(Level::RequestResponse, "", &[]),
    ]);
    assert!(sensitive(&p).is_empty());
    // A shield limited to one namespace does not cover the others.
    let mut partial = shield(&["secrets"]);
    partial.namespaces = s(&["prod"]);
    let p = policy(vec![
        partial,
        shield(&["configmaps", "serviceaccounts/token"]),
        res(Level::RequestResponse, "", &[]),
    ]);
    assert_eq!(sensitive(&p), ["secrets ("]);
    // The website example's mistake: configmaps in kube-system at Request, *before* the shield.
    let mut kube_system = res(Level::Request, "", &["configmaps"]);
    kube_system.namespaces = s(&["kube-system"]);
    let p = policy(vec![
        kube_system,
        shield(&["secrets", "configmaps"]),
        res(Level::Request, "", &[]),
    ]);
    let f = lint(&p);
    let errors = with_code(&f, codes::SENSITIVE_DATA_LOGGED);
    assert_eq!(errors.len(), 1, "{}", render(&f));
    assert_eq!(errors[0].rule, Some(1));
    assert_eq!(errors[0].severity, Severity::Error);
    assert!(
        errors[0]
            .message
            .contains("configmaps (create, update, patch)"),
        "{}",
        errors[0].message
    );
}

// ---- unreachable-rule -----------------------------------------------------------------------

fn unreachable(rules: Vec<PolicyRule>) -> Vec<usize> {
    let p = Policy {
        rule_lines: vec![],
        omit_stages: vec![Stage::RequestReceived],
        rules,
        omit_managed_fields: true,
    };
    let f = lint(&p);
    with_code(&f, codes::UNREACHABLE_RULE)
        .iter()
        .filter_map(|f| f.rule)
        .collect()
}

#[test]
fn unreachable_rules_are_reported_with_the_rule_that_shadows_them() {
    let pods = res(Level::Metadata, "", &["pods"]);
    assert_eq!(
        unreachable(vec![
            pods.clone(),
            res(Level::RequestResponse, "", &["pods"])
        ]),
        [1]
    );
    assert_eq!(
        unreachable(vec![
            res(Level::Metadata, "", &["pods/*"]),
            res(Level::Request, "", &["pods"])
        ]),
        [1],
        "R/* covers R"
    );
    assert_eq!(
        unreachable(vec![
            res(Level::None, "", &[]),
            res(Level::Request, "", &["secrets", "pods/log"])
        ]),
        [1]
    );
    assert_eq!(
        unreachable(vec![
            rule(Level::Metadata),
            res(Level::Request, "apps", &["*"]),
            urls(Level::None, &["/x"])
        ]),
        [1, 2]
    );
    assert_eq!(
        unreachable(vec![
            urls(Level::None, &["/healthz*"]),
            urls(Level::Metadata, &["/healthz/etcd", "/healthzx"])
        ]),
        [1]
    );
    let mut narrow = pods.clone();
    narrow.users = s(&["alice"]);
    narrow.verbs = s(&["get"]);
    narrow.namespaces = s(&["prod"]);
    narrow.resources[0].resource_names = s(&["web-0"]);
    assert_eq!(unreachable(vec![pods.clone(), narrow]), [1]);

    let p = Policy {
        rules: vec![rule(Level::Metadata), res(Level::None, "", &["pods"])],
        rule_lines: vec![3, 4],
        ..Default::default()
    };
    let f = lint(&p);
    let u = with_code(&f, codes::UNREACHABLE_RULE);
    assert_eq!(u.len(), 1);
    assert!(u[0].message.contains("line 3"), "{}", u[0].message);
    assert!(
        u[0].message.contains("level None never applies"),
        "{}",
        u[0].message
    );
    assert_eq!(u[0].severity, Severity::Warning);
}

#[test]
fn reachable_rules_are_never_called_unreachable() {
    let pods = res(Level::Metadata, "", &["pods"]);
    assert!(
        unreachable(vec![pods.clone(), res(Level::Request, "", &["pods/exec"])]).is_empty(),
        "pods does not cover pods/exec"
    );
    assert!(unreachable(vec![res(Level::None, "", &["pods/exec"]), pods.clone()]).is_empty());
    assert!(unreachable(vec![
        res(Level::None, "", &["*/exec"]),
        res(Level::Request, "", &["pods/*"])
    ])
    .is_empty());
    assert!(
        unreachable(vec![pods.clone(), res(Level::Request, "apps", &["pods"])]).is_empty(),
        "other group"
    );
    assert!(unreachable(vec![
        res(Level::None, "", &["*"]),
        res(Level::Request, "*", &["*"])
    ])
    .is_empty());
    assert!(unreachable(vec![
        urls(Level::None, &["/healthz"]),
        urls(Level::Metadata, &["/healthz*"])
    ])
    .is_empty());
    assert!(
        unreachable(vec![urls(Level::None, &["*"]), rule(Level::Metadata)]).is_empty(),
        "the catch-all also matches resources"
    );
    assert!(unreachable(vec![res(Level::None, "*", &[]), rule(Level::Metadata)]).is_empty());
    let mut alice = pods.clone();
    alice.users = s(&["alice"]);
    let mut devs = pods.clone();
    devs.user_groups = s(&["devs"]);
    assert!(unreachable(vec![alice, devs, pods.clone()]).is_empty());
    let mut named = pods.clone();
    named.resources[0].resource_names = s(&["a"]);
    assert!(unreachable(vec![named, pods.clone()]).is_empty());
    // Conservative: two rules that only together cover a third are not reported.
    let mut get = pods.clone();
    get.verbs = s(&["get"]);
    let mut list = pods.clone();
    list.verbs = s(&["list"]);
    let mut both = pods.clone();
    both.verbs = s(&["get", "list"]);
    assert!(unreachable(vec![get, list, both]).is_empty());
}

// ---- catch-all ------------------------------------------------------------------------------

#[test]
fn missing_catch_all_is_a_warning() {
    let f = lint(&policy(vec![res(Level::Metadata, "", &["pods"])]));
    let w = with_code(&f, codes::NO_CATCH_ALL);
    assert_eq!(w.len(), 1);
    assert_eq!(
        (w[0].rule, w[0].line, w[0].severity),
        (None, 15, Severity::Warning),
        "points after the last rule"
    );

    assert!(with_code(
        &lint(&policy(vec![rule(Level::Metadata)])),
        codes::NO_CATCH_ALL
    )
    .is_empty());
    let split = policy(vec![
        res(Level::Metadata, "*", &[]),
        urls(Level::Metadata, &["/*"]),
    ]);
    assert!(
        with_code(&lint(&split), codes::NO_CATCH_ALL).is_empty(),
        "a resource and a non-resource catch-all"
    );
    let f = lint(&policy(vec![res(Level::Metadata, "*", &["*"])]));
    let w = with_code(&f, codes::NO_CATCH_ALL);
    assert!(w[0].message.contains("non-resource"), "{}", w[0].message);
    let mut only_get = rule(Level::Metadata);
    only_get.verbs = s(&["get"]);
    assert_eq!(
        with_code(&lint(&policy(vec![only_get])), codes::NO_CATCH_ALL).len(),
        1
    );
    assert_eq!(
        with_code(&lint(&Policy::default()), codes::NO_CATCH_ALL).len(),
        1
    );
}

#[test]
fn a_catch_all_at_level_none_is_a_warning() {
    let f = lint(&policy(vec![
        res(Level::Metadata, "", &["pods"]),
        rule(Level::None),
    ]));
    let w = with_code(&f, codes::CATCH_ALL_NONE);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].rule, Some(2));
    assert!(with_code(&f, codes::NO_CATCH_ALL).is_empty());
}

// ---- stages ---------------------------------------------------------------------------------

#[test]
fn request_received_must_be_omitted() {
    let mut p = policy(vec![rule(Level::Metadata)]);
    p.omit_stages.clear();
    let f = lint(&p);
    let w = with_code(&f, codes::REQUEST_RECEIVED_NOT_OMITTED);
    assert_eq!(
        (w.len(), w[0].rule, w[0].severity),
        (1, None, Severity::Warning)
    );

    // Omitted by some rules only: the others are named.
    let mut omits = res(Level::Metadata, "", &["pods"]);
    omits.omit_stages = vec![Stage::RequestReceived];
    let mut p = policy(vec![omits, rule(Level::Metadata)]);
    p.omit_stages.clear();
    let f = lint(&p);
    let w: Vec<Option<usize>> = with_code(&f, codes::REQUEST_RECEIVED_NOT_OMITTED)
        .iter()
        .map(|f| f.rule)
        .collect();
    assert_eq!(
        w,
        [Some(2)],
        "rule 0 (None) logs nothing and rule 1 omits it"
    );

    assert!(with_code(
        &lint(&policy(vec![rule(Level::Metadata)])),
        codes::REQUEST_RECEIVED_NOT_OMITTED
    )
    .is_empty());
}

#[test]
fn omitting_response_complete_is_a_warning() {
    let mut r = rule(Level::Metadata);
    r.omit_stages = vec![Stage::ResponseComplete];
    let f = lint(&policy(vec![r]));
    assert_eq!(
        with_code(&f, codes::RESPONSE_COMPLETE_OMITTED)[0].rule,
        Some(1)
    );
    let mut p = policy(vec![rule(Level::Metadata)]);
    p.omit_stages.push(Stage::ResponseComplete);
    let f = lint(&p);
    assert_eq!(
        with_code(&f, codes::RESPONSE_COMPLETE_OMITTED)[0].rule,
        None
    );
    // With both stages omitted, ordinary requests leave nothing: coverage says so.
    let gaps = with_code(&f, codes::COVERAGE_GAP);
    assert!(gaps.iter().any(|g| g.message.contains("secrets reads") && g.message.contains("omits every stage")), "{}", render(&f));
    assert!(
        !gaps.iter().any(|g| g.message.contains("pods/exec")),
        "exec still emits ResponseStarted"
    );
}

// ---- managed fields -------------------------------------------------------------------------

#[test]
fn managed_fields_are_an_info() {
    let mut p = policy(vec![rule(Level::RequestResponse)]);
    p.omit_managed_fields = false;
    let f = lint(&p);
    assert_eq!(
        with_code(&f, codes::MANAGED_FIELDS_LOGGED)[0].severity,
        Severity::Info
    );
    let mut p = policy(vec![rule(Level::Metadata)]);
    p.omit_managed_fields = false;
    assert!(
        with_code(&lint(&p), codes::MANAGED_FIELDS_LOGGED).is_empty(),
        "Metadata logs no bodies"
    );
}

// ---- probes: health, noise, discovery -------------------------------------------------------

#[test]
fn health_endpoints_must_be_excluded_first() {
    let bare = |rules| Policy {
        rules,
        omit_stages: vec![Stage::RequestReceived],
        omit_managed_fields: true,
        rule_lines: vec![],
    };
    let f = lint(&bare(vec![rule(Level::Metadata)]));
    let h = with_code(&f, codes::HEALTH_ENDPOINTS_LOGGED);
    assert_eq!(
        (h.len(), h[0].rule, h[0].severity),
        (1, Some(0), Severity::Warning)
    );
    assert!(
        h[0].message.contains("/healthz")
            && h[0].message.contains("/metrics")
            && h[0].message.contains("/livez")
    );

    // Excluded, but after the rule that logs them: still logged.
    let late = bare(vec![
        urls(Level::Metadata, &["*"]),
        urls(Level::None, &["/healthz*"]),
        rule(Level::Metadata),
    ]);
    assert_eq!(
        with_code(&lint(&late), codes::HEALTH_ENDPOINTS_LOGGED)[0].rule,
        Some(0)
    );

    // Only /version logged: Info.
    let f = lint(&bare(vec![
        urls(
            Level::None,
            &["/healthz*", "/livez*", "/readyz*", "/metrics"],
        ),
        rule(Level::Metadata),
    ]));
    let h = with_code(&f, codes::HEALTH_ENDPOINTS_LOGGED);
    assert_eq!((h.len(), h[0].severity), (1, Severity::Info));

    // Excluded for anonymous callers only: Prometheus' scrapes are still logged.
    let mut anon = urls(
        Level::None,
        &["/healthz*", "/livez*", "/readyz*", "/metrics", "/version"],
    );
    anon.user_groups = s(&["system:unauthenticated"]);
    let f = lint(&bare(vec![anon, rule(Level::Metadata)]));
    assert!(with_code(&f, codes::HEALTH_ENDPOINTS_LOGGED)[0]
        .message
        .contains("/metrics"));

    assert!(with_code(
        &lint(&policy(vec![rule(Level::Metadata)])),
        codes::HEALTH_ENDPOINTS_LOGGED
    )
    .is_empty());
}

#[test]
fn control_plane_noise_at_request_or_above_is_a_warning() {
    let f = lint(&policy(vec![rule(Level::Request)]));
    let n = with_code(&f, codes::NOISY_SYSTEM_TRAFFIC);
    assert_eq!(
        (n.len(), n[0].rule, n[0].severity),
        (1, Some(1), Severity::Warning)
    );
    assert!(
        n[0].message.contains("system:node:node-1 get pods"),
        "{}",
        n[0].message
    );
    assert!(with_code(
        &lint(&policy(vec![rule(Level::Metadata)])),
        codes::NOISY_SYSTEM_TRAFFIC
    )
    .is_empty());

    // Excluding the components' reads is not enough: lease renewals and events are writes.
    let mut reads = rule(Level::None);
    reads.user_groups = s(&["system:nodes"]);
    reads.verbs = s(&["get", "list", "watch"]);
    let mut components = reads.clone();
    components.user_groups.clear();
    components.users = s(&[
        "system:kube-proxy",
        "system:kube-scheduler",
        "system:kube-controller-manager",
    ]);
    let f = lint(&policy(vec![
        reads.clone(),
        components.clone(),
        rule(Level::RequestResponse),
    ]));
    let n = with_code(&f, codes::NOISY_SYSTEM_TRAFFIC);
    assert!(
        n[0].message.contains("system:kube-scheduler create events"),
        "{}",
        n[0].message
    );
    let events = res(Level::Metadata, "*", &["events"]);
    let f = lint(&policy(vec![
        reads.clone(),
        components.clone(),
        events.clone(),
        rule(Level::RequestResponse),
    ]));
    let n = with_code(&f, codes::NOISY_SYSTEM_TRAFFIC);
    assert!(
        n[0].message
            .contains("system:node:node-1 update coordination.k8s.io/leases"),
        "{}",
        n[0].message
    );
    let mut leases = res(Level::None, "coordination.k8s.io", &["leases"]);
    leases.verbs = s(&["get", "update"]);
    let f = lint(&policy(vec![
        reads,
        components,
        leases,
        events,
        rule(Level::RequestResponse),
    ]));
    assert!(
        with_code(&f, codes::NOISY_SYSTEM_TRAFFIC).is_empty(),
        "{}",
        render(&f)
    );
}

#[test]
fn dropped_discovery_is_an_info() {
    let mut drop = urls(Level::None, &["/api*"]);
    drop.user_groups = s(&["system:authenticated"]);
    let f = lint(&policy(vec![drop, rule(Level::Metadata)]));
    let d = with_code(&f, codes::DISCOVERY_NOT_LOGGED);
    assert_eq!(
        (d.len(), d[0].rule, d[0].severity),
        (1, Some(1), Severity::Info)
    );
    assert!(d[0].message.contains("/apis/apps/v1") && !d[0].message.contains("/openapi"));
}

// ---- coverage -------------------------------------------------------------------------------

fn gaps(p: &Policy) -> Vec<String> {
    lint(p)
        .into_iter()
        .filter(|f| f.code == codes::COVERAGE_GAP)
        .map(|f| f.message)
        .collect()
}

#[test]
fn complete_policies_have_no_gaps() {
    assert!(gaps(&policy(vec![rule(Level::Metadata)])).is_empty());
    assert!(gaps(&load(BASELINE)).is_empty());
}

#[test]
fn every_requirement_is_probed() {
    let g = gaps(&policy(vec![res(Level::Metadata, "apps", &[])]));
    for (what, requirement) in [
        ("pods/exec", "CIS Kubernetes Benchmark 3.2.2"),
        ("pods/attach", "CIS"),
        ("pods/portforward", "CIS"),
        ("pods/proxy", "CIS"),
        ("services/proxy", "CIS"),
        ("nodes/proxy", "CIS"),
        ("roles and rolebindings changes", "PCI DSS 10.2.1.5"),
        (
            "clusterroles and clusterrolebindings changes",
            "PCI DSS 10.2.1.5",
        ),
        ("serviceaccounts/token", "PCI DSS 10.2.1.5"),
        ("secrets reads (get, list)", "PCI DSS 10.2.1.1"),
        ("nodes changes", "PCI DSS 10.2.1.7"),
        ("namespaces changes", "PCI DSS 10.2.1.7"),
    ] {
        assert!(
            g.iter().any(|m| m.starts_with(what)
                && m.contains(requirement)
                && m.contains("no rule matches it")),
            "{what}: {g:#?}"
        );
    }
    assert_eq!(g.len(), 12);
}

#[test]
fn gaps_name_the_rule_the_callers_and_the_verbs() {
    // The classic: `pods` at RequestResponse, everything else dropped; pods/exec is not `pods`.
    let p = policy(vec![
        res(Level::RequestResponse, "", &["pods"]),
        rule(Level::None),
    ]);
    let f = lint(&p);
    let exec: Vec<&Finding> = f
        .iter()
        .filter(|f| f.code == codes::COVERAGE_GAP && f.message.starts_with("pods/exec"))
        .collect();
    assert_eq!(exec.len(), 1);
    assert_eq!(exec[0].rule, Some(2));
    assert_eq!(exec[0].line, 20);
    assert!(
        exec[0].message.contains("(create, get)"),
        "{}",
        exec[0].message
    );
    assert!(
        exec[0].message.contains("system:anonymous")
            && exec[0].message.contains("kubernetes-admin")
    );

    // Dropping one group hides exactly that group's callers.
    let mut anon = rule(Level::None);
    anon.user_groups = s(&["system:unauthenticated"]);
    let g = gaps(&policy(vec![anon, rule(Level::Metadata)]));
    assert_eq!(g.len(), 12);
    assert!(
        g.iter()
            .all(|m| m.contains("by system:anonymous is not audited")),
        "{g:#?}"
    );

    // Dropping in one namespace is still a gap.
    let mut ks = res(Level::None, "", &["secrets"]);
    ks.namespaces = s(&["kube-system"]);
    let g = gaps(&policy(vec![ks, rule(Level::Metadata)]));
    assert_eq!(g.len(), 1);
    assert!(g[0].starts_with("secrets reads (get, list)"));

    // Only `update` of RBAC objects dropped.
    let mut upd = res(Level::None, "rbac.authorization.k8s.io", &[]);
    upd.verbs = s(&["update"]);
    let g = gaps(&policy(vec![upd, rule(Level::Metadata)]));
    assert_eq!(g.len(), 2);
    assert!(g.iter().all(|m| m.contains("changes (update)")), "{g:#?}");
}

// ---- verbs and values that never match ------------------------------------------------------

#[test]
fn verbs_no_request_carries() {
    let verbs_of = |v: &[&str]| {
        let mut r = rule(Level::Metadata);
        r.verbs = s(v);
        lint(&policy(vec![r, rule(Level::Metadata)]))
            .into_iter()
            .filter(|f| f.code == codes::UNKNOWN_VERB)
            .map(|f| f.message)
            .collect::<Vec<_>>()
    };
    assert!(verbs_of(&[
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
        "proxy",
        "post",
        "put",
        "head"
    ])
    .is_empty());
    let m = verbs_of(&["GET", "impersonate", "*", "read"]);
    assert_eq!(m.len(), 1);
    for needle in [
        "`GET` (verbs are case-sensitive",
        "`impersonate` (an RBAC",
        "`*` (policy verbs have no wildcard",
        "`read` (not a Kubernetes verb",
    ] {
        assert!(m[0].contains(needle), "{needle}: {}", m[0]);
    }
}

#[test]
fn values_that_never_match() {
    let nothing = |r: PolicyRule| {
        lint(&policy(vec![r, rule(Level::Metadata)]))
            .into_iter()
            .filter(|f| f.code == codes::MATCHES_NOTHING)
            .map(|f| f.message)
            .collect::<Vec<_>>()
    };
    assert!(nothing(res(
        Level::Metadata,
        "",
        &["pods", "pods/log", "*", "*/scale", "deployments/*"]
    ))
    .is_empty());
    let m = nothing(res(Level::Metadata, "", &["*/*", "Pod", "pods/"]));
    assert_eq!(m.len(), 1);
    assert!(m[0].contains("`*/*`") && m[0].contains("`Pod`") && m[0].contains("`pods/`"));
    assert!(m[0].ends_with("the rule as a whole matches no request"));
    let m = nothing(res(Level::Metadata, "", &["*/*", "pods"]));
    assert!(!m[0].contains("as a whole"));
    let mut ns = res(Level::Metadata, "", &["pods"]);
    ns.namespaces = s(&["Kube-System", ""]);
    let m = nothing(ns);
    assert!(
        m[0].contains("namespace `Kube-System`") && !m[0].contains("as a whole"),
        "{}",
        m[0]
    );
}

// ---- properties -----------------------------------------------------------------------------

fn pick(v: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
    proptest::sample::subsequence(v.to_vec(), 0..=v.len().min(2))
        .prop_map(|x| x.into_iter().map(String::from).collect())
}

fn arb_rule() -> impl Strategy<Value = PolicyRule> {
    let gr = (
        prop_oneof![Just(""), Just("apps"), Just("*")],
        pick(&[
            "pods",
            "pods/exec",
            "pods/*",
            "*/exec",
            "*",
            "*/*",
            "secrets",
            "deployments",
        ]),
        pick(&["a", "b"]),
    )
        .prop_map(|(g, resources, names)| GroupResources {
            group: g.to_string(),
            resource_names: if resources.is_empty() { vec![] } else { names },
            resources,
        });
    (
        pick(&["alice", "bob"]),
        pick(&["devs", "ops"]),
        pick(&["get", "create", "list"]),
        proptest::collection::vec(gr, 0..3),
        pick(&["", "prod", "dev"]),
        pick(&["/healthz*", "/healthz", "/api*", "*", "/apis"]),
        0usize..4,
    )
        .prop_map(
            |(users, user_groups, verbs, resources, namespaces, urls, kind)| PolicyRule {
                level: Level::Metadata,
                users,
                user_groups,
                verbs,
                // kind 0: resource rule, 1: namespaces only, 2: non-resource rule, 3: neither
                resources: if kind == 0 { resources } else { vec![] },
                namespaces: if kind <= 1 { namespaces } else { vec![] },
                non_resource_urls: if kind == 2 && !urls.is_empty() {
                    urls
                } else {
                    vec![]
                },
                omit_stages: vec![],
                omit_managed_fields: None,
            },
        )
}

/// A rule close to `a`: some of its fields replaced by `other`'s, or narrowed. Most such rules
/// are shadowed by `a`; many others only nearly so, which is where an unsound claim would hide.
fn near(a: &PolicyRule, other: PolicyRule, f: [bool; 9]) -> PolicyRule {
    let mut b = a.clone();
    if f[0] {
        b.users = other.users;
    }
    if f[1] {
        b.user_groups = other.user_groups;
    }
    if f[2] {
        b.verbs = other.verbs;
    }
    if f[3] {
        b.namespaces = other.namespaces;
    }
    if f[4] {
        b.resources = other.resources;
    }
    if f[5] {
        for gr in &mut b.resources {
            for item in &mut gr.resources {
                *item = match item.as_str() {
                    "*" => "pods",
                    "pods/*" | "*/exec" => "pods/exec",
                    "pods" => "pods/log",
                    other => other,
                }
                .to_string();
            }
        }
    }
    if f[6] {
        b.non_resource_urls = other.non_resource_urls;
    }
    let names: &[&str] = match (f[7], f[8]) {
        (false, false) => &[],
        (true, false) => &["a"],
        (false, true) => &["a", "b"],
        (true, true) => &["b"],
    };
    if !names.is_empty() {
        for gr in &mut b.resources {
            if !gr.resources.is_empty() {
                gr.resource_names = s(names);
            }
        }
    }
    b
}

/// Every request over the vocabulary `arb_rule` draws from, plus values no rule names.
fn all_requests() -> Vec<Attributes> {
    let mut users = vec![None];
    for name in ["alice", "bob", "carol"] {
        for groups in [&[][..], &["devs"][..], &["ops", "other"][..]] {
            users.push(Some(User {
                name: name.to_string(),
                groups: s(groups),
            }));
        }
    }
    let mut out = Vec::new();
    for user in &users {
        for verb in ["get", "create", "list", "delete"] {
            for path in ["/healthz", "/healthz/etcd", "/api", "/apis", "/apis/apps"] {
                out.push(Attributes {
                    user: user.clone(),
                    verb: verb.to_string(),
                    namespace: String::new(),
                    api_group: String::new(),
                    api_version: String::new(),
                    resource: String::new(),
                    subresource: String::new(),
                    name: String::new(),
                    resource_request: false,
                    path: path.to_string(),
                });
            }
            for group in ["", "apps", "batch"] {
                for resource in ["pods", "secrets", "deployments", "nodes"] {
                    for sub in ["", "exec", "log"] {
                        for ns in ["", "prod", "dev", "kube-system"] {
                            for name in ["", "a", "b"] {
                                out.push(Attributes {
                                    user: user.clone(),
                                    verb: verb.to_string(),
                                    namespace: ns.to_string(),
                                    api_group: group.to_string(),
                                    api_version: "v1".to_string(),
                                    resource: resource.to_string(),
                                    subresource: sub.to_string(),
                                    name: name.to_string(),
                                    resource_request: true,
                                    path: String::new(),
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// If lint calls rule 1 unreachable, no request may reach it: checked exhaustively over the
    /// vocabulary the rules are drawn from.
    #[test]
    fn unreachable_is_sound(a in arb_rule(), other in arb_rule(), flags in any::<[bool; 9]>()) {
        static REQUESTS: std::sync::OnceLock<Vec<Attributes>> = std::sync::OnceLock::new();
        let mut second = near(&a, other, flags);
        second.level = Level::Request;
        let p = Policy { rules: vec![a, second], ..Default::default() };
        if lint(&p).iter().any(|f| f.code == codes::UNREACHABLE_RULE) {
            for r in REQUESTS.get_or_init(all_requests) {
                prop_assert_ne!(p.evaluate(r).rule, Some(1), "reached by {:?}", r);
            }
        }
    }

    #[test]
    fn lint_never_panics(rules in proptest::collection::vec(arb_rule(), 0..6), omit in any::<bool>()) {
        let p = Policy {
            rule_lines: (1..=rules.len()).collect(),
            rules,
            omit_stages: if omit { vec![Stage::RequestReceived] } else { vec![] },
            omit_managed_fields: omit,
        };
        let findings = lint(&p);
        for f in &findings {
            prop_assert!(f.rule.is_none_or(|r| r < p.rules.len()));
        }
    }
}
