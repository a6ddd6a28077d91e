//! Loading and validation against kube-apiserver's own tests
//! (`pkg/audit/policy/reader_test.go`, `pkg/apis/audit/validation/validation_test.go`), plus
//! what Vigil adds: every silently dropped field as a warning with its line, every error with
//! its line and field, and no panic on any input.

use proptest::prelude::*;
use vigil_model::{Level, Stage};
use vigil_policy::{
    load_policy, validate_policy, Diagnostic, GroupResources, LoadError, Policy, PolicyRule,
    Severity,
};

const HEADER: &str = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n";

fn errors(text: &str) -> Vec<Diagnostic> {
    match load_policy(text) {
        Ok(l) => panic!("expected an error, loaded {:?}\n{text}", l.policy),
        Err(e) => e.errors,
    }
}

/// Asserts the load fails with an error on `field` at `line`.
fn assert_error(text: &str, field: &str, line: usize) {
    let errs = errors(text);
    assert!(
        errs.iter()
            .any(|e| e.field == field && e.line == line && e.severity == Severity::Error),
        "expected an error on {field} at line {line}, got {errs:#?}\n{text}"
    );
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// `TestParser`: the upstream policy decodes to exactly the upstream structure.
#[test]
fn upstream_parser() {
    let text = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
  - level: None
    nonResourceURLs:
      - /healthz*
      - /version
  - level: RequestResponse
    users: ["tim"]
    userGroups: ["testers", "developers"]
    verbs: ["patch", "delete", "create"]
    resources:
      - group: ""
      - group: "rbac.authorization.k8s.io"
        resources: ["clusterroles", "clusterrolebindings"]
    namespaces: ["default", "kube-system"]
  - level: Metadata
"#;
    let loaded = load_policy(text).expect("upstream policy loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let expected = Policy {
        rules: vec![
            PolicyRule {
                level: Level::None,
                non_resource_urls: strs(&["/healthz*", "/version"]),
                ..PolicyRule::default()
            },
            PolicyRule {
                level: Level::RequestResponse,
                users: strs(&["tim"]),
                user_groups: strs(&["testers", "developers"]),
                verbs: strs(&["patch", "delete", "create"]),
                resources: vec![
                    GroupResources::default(),
                    GroupResources {
                        group: "rbac.authorization.k8s.io".into(),
                        resources: strs(&["clusterroles", "clusterrolebindings"]),
                        resource_names: vec![],
                    },
                ],
                namespaces: strs(&["default", "kube-system"]),
                ..PolicyRule::default()
            },
            PolicyRule {
                level: Level::Metadata,
                ..PolicyRule::default()
            },
        ],
        omit_stages: vec![],
        omit_managed_fields: false,
        rule_lines: vec![5, 9, 18],
    };
    assert_eq!(loaded.policy, expected);
}

/// `TestParsePolicyWithNoVersionOrKind`.
#[test]
fn upstream_no_version_or_kind() {
    let errs =
        errors("rules:\n  - level: None\n    nonResourceURLs: [/healthz*]\n  - level: Metadata\n");
    assert_eq!(errs[0].field, "apiVersion");
    assert!(errs[0].message.contains("audit.k8s.io/v1"), "{errs:?}");
}

/// `TestParsePolicyWithUnknownField`: accepted (the apiserver drops the field), and Vigil says
/// where and what it means.
#[test]
fn upstream_unknown_field_is_accepted_with_a_warning() {
    let text = r#"apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  resources:
  - group: coordination.k8s.io
    resources:
    - "leases"
    verbs: ["watch", "get", "list"] # invalid indentation on verbs
"#;
    let loaded = load_policy(text).expect("the apiserver accepts it");
    assert!(loaded.policy.rules[0].verbs.is_empty());
    let w = &loaded.warnings[..];
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(
        (w[0].line, w[0].field.as_str(), w[0].severity),
        (9, "rules[0].resources[0].verbs", Severity::Warning)
    );
    assert!(
        w[0].message.contains("this rule applies to all verbs"),
        "{}",
        w[0].message
    );
    assert!(
        w[0].message.contains("check its indentation"),
        "{}",
        w[0].message
    );
}

/// `TestPolicyCntCheck`.
#[test]
fn upstream_zero_rules_and_empty_file() {
    assert_error("apiVersion: audit.k8s.io/v1\nkind: Policy", "rules", 1);
    assert!(!errors("").is_empty());
    assert_error(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n",
        "rules",
        3,
    );
}

/// `TestValidatePolicy` success cases, each alone and all together.
#[test]
fn upstream_valid_rules() {
    let rules = [
        "- level: Metadata\n",
        "- level: None\n  userGroups: [system:serviceaccounts, system:nodes]\n",
        "- level: RequestResponse\n  verbs: [get]\n  resources: [{group: rbac.authorization.k8s.io, resources: [roles, rolebindings]}]\n  namespaces: [kube-system]\n",
        "- level: Metadata\n  userGroups: [developers]\n  nonResourceURLs: [\"/logs*\", \"/healthz*\", \"/metrics\", \"*\"]\n",
        "- level: Metadata\n  omitStages: [RequestReceived]\n",
    ];
    for r in rules {
        let text = format!("{HEADER}{r}");
        load_policy(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    }
    let all = format!("{HEADER}{}", rules.concat());
    assert_eq!(load_policy(&all).unwrap().policy.rules.len(), 5);
    // An empty policy and one with only omitStages validate; loading refuses them for 0 rules.
    assert!(validate_policy(&Policy::default()).is_empty());
    let stages_only = Policy {
        omit_stages: vec![Stage::RequestReceived],
        ..Policy::default()
    };
    assert!(validate_policy(&stages_only).is_empty());
    assert_error(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\n",
        "rules",
        1,
    );
}

/// `TestValidatePolicy` error cases: (rule, field of the error, line of the error).
#[test]
fn upstream_invalid_rules() {
    #[rustfmt::skip]
    let cases = [
        ("- {}\n", "rules[0].level", 4),
        ("- verbs: [get]\n  resources: [{resources: [secrets]}]\n  namespaces: [kube-system]\n", "rules[0].level", 4),
        ("- level: FooBar\n", "rules[0].level", 4),
        ("- level: Metadata\n  namespaces: [default]\n  nonResourceURLs: [/logs*]\n", "rules[0].nonResourceURLs", 6),
        ("- level: Metadata\n  resources: [{resources: [secrets]}]\n  nonResourceURLs: [/logs*]\n", "rules[0].nonResourceURLs", 6),
        ("- level: Metadata\n  resources:\n  - group: rbac.authorization.k8s.io/v1beta1\n    resources: [roles]\n", "rules[0].resources[0].group", 6),
        ("- level: Metadata\n  nonResourceURLs:\n  - logs\n  - /healthz*\n", "rules[0].nonResourceURLs[0]", 6),
        ("- level: Metadata\n  nonResourceURLs: [\"\", /healthz*]\n", "rules[0].nonResourceURLs[0]", 5),
        ("- level: Metadata\n  nonResourceURLs: [/logs/*/*, /metrics]\n", "rules[0].nonResourceURLs[0]", 5),
        ("- level: Metadata\n  nonResourceURLs: [/logs/*.log, /metrics]\n", "rules[0].nonResourceURLs[0]", 5),
        ("- level: Metadata\n  verbs: [get]\n  resources:\n  - resourceNames: [leader]\n  namespaces: [kube-system]\n", "rules[0].resources[0].resourceNames", 7),
        ("- level: Metadata\n  omitStages: [foo]\n", "rules[0].omitStages[0]", 5),
    ];
    for (rule, field, line) in cases {
        assert_error(&format!("{HEADER}{rule}"), field, line);
    }
    // Several valid rules, then an invalid one.
    let many = format!("{HEADER}- level: Metadata\n- level: None\n  userGroups: [a]\n- {{}}\n");
    assert_error(&many, "rules[2].level", 7);
    // Invalid policy-level omitStages.
    assert_error("apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [foo]\nrules: [{level: Metadata}]\n", "omitStages[0]", 3);
}

#[test]
fn validate_policy_checks_code_built_policies() {
    let p = Policy {
        rules: vec![PolicyRule {
            level: Level::Metadata,
            non_resource_urls: strs(&["logs", "/a*b"]),
            resources: vec![GroupResources {
                group: "Apps".into(),
                resources: vec![],
                resource_names: strs(&["x"]),
            }],
            ..PolicyRule::default()
        }],
        rule_lines: vec![7],
        ..Policy::default()
    };
    let fields: Vec<(String, usize)> = validate_policy(&p)
        .into_iter()
        .map(|d| (d.field, d.line))
        .collect();
    assert_eq!(
        fields,
        [
            ("rules[0].nonResourceURLs[0]".to_string(), 7),
            ("rules[0].nonResourceURLs[1]".to_string(), 7),
            ("rules[0].resources[0].group".to_string(), 7),
            ("rules[0].resources[0].resourceNames".to_string(), 7),
            ("rules[0].nonResourceURLs".to_string(), 7),
        ]
    );
}

#[test]
fn wrong_types_are_errors_with_line_and_field() {
    #[rustfmt::skip]
    let cases = [
        ("- level: Metadata\n  verbs: get\n", "rules[0].verbs", 5, "expected a list of strings, found a string"),
        ("- level: 1\n", "rules[0].level", 4, "expected a string, found a number"),
        ("- level: Metadata\n  users: [yes]\n", "rules[0].users[0]", 5, "found a boolean"),
        ("- level: Metadata\n  users: [0x1F]\n", "rules[0].users[0]", 5, "found a number"),
        ("- level: Metadata\n  omitManagedFields: \"true\"\n", "rules[0].omitManagedFields", 5, "expected a boolean"),
        ("- level: Metadata\n  resources: pods\n", "rules[0].resources", 5, "expected a list"),
        ("- level: Metadata\n  resources: [{group: \"\", resources: [pods], resourceNames: a}]\n", "rules[0].resources[0].resourceNames", 5, "expected a list"),
    ];
    for (rule, field, line, msg) in cases {
        let text = format!("{HEADER}{rule}");
        let errs = errors(&text);
        assert!(
            errs.iter()
                .any(|e| e.field == field && e.line == line && e.message.contains(msg)),
            "{field}@{line} {msg:?}: {errs:#?}"
        );
    }
    assert_error(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: {level: None}\n",
        "rules",
        3,
    );
    assert_error(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nmetadata: {name: 1}\nrules: [{level: None}]\n",
        "metadata.name",
        3,
    );
}

#[test]
fn yaml_1_1_scalars_as_the_apiserver_reads_them() {
    let text = format!("{HEADER}- level: Metadata\n  omitManagedFields: yes\n  verbs: [\"yes\", 2001-01-01, 1e400]\n");
    let p = load_policy(&text).unwrap().policy;
    assert_eq!(p.rules[0].omit_managed_fields, Some(true));
    assert_eq!(p.rules[0].verbs, strs(&["yes", "2001-01-01", "1e400"]));
    // `verbs: [~]` is the empty verb, which matches nothing real; `verbs: ~` is no constraint.
    let p = load_policy(&format!(
        "{HEADER}- level: Metadata\n  verbs: [~]\n- level: None\n  verbs: ~\n"
    ))
    .unwrap()
    .policy;
    assert_eq!(p.rules[0].verbs, strs(&[""]));
    assert!(p.rules[1].verbs.is_empty());
    // NaN cannot become JSON, even in a field the apiserver would drop.
    assert!(!errors(&format!("{HEADER}- level: Metadata\n  foo: .nan\n")).is_empty());
    // Nor can a null key.
    assert!(!errors(&format!("{HEADER}- level: Metadata\n  ~: 1\n")).is_empty());
}

fn warnings(text: &str) -> Vec<Diagnostic> {
    load_policy(text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .warnings
}

#[test]
fn silent_drops_become_warnings() {
    // Case matters: `Verbs` is dropped, so the rule covers every verb.
    let w = warnings(&format!("{HEADER}- level: Metadata\n  Verbs: [get]\n"));
    assert_eq!((w[0].line, w[0].field.as_str()), (5, "rules[0].Verbs"));
    assert!(
        w[0].message.contains("did you mean \"verbs\"") && w[0].message.contains("all verbs"),
        "{}",
        w[0].message
    );
    // A near miss at the wrong level.
    let w = warnings(&format!(
        "{HEADER}- level: Metadata\n  resources:\n  - resources: [pods]\n    namespace: [x]\n"
    ));
    assert_eq!(w[0].field, "rules[0].resources[0].namespace");
    assert!(
        w[0].message
            .contains("did you mean \"namespaces\", a field of a rule")
            && w[0].message.contains("all namespaces"),
        "{}",
        w[0].message
    );
    // A duplicate key: the last value wins.
    let text = format!("{HEADER}- level: Metadata\n  level: None\n");
    let l = load_policy(&text).unwrap();
    assert_eq!(l.policy.rules[0].level, Level::None);
    let w = &l.warnings[0];
    assert_eq!((w.field.as_str(), w.line), ("rules[0].level", 5));
    assert!(
        l.warnings[0].message.contains("first set on line 4"),
        "{:?}",
        l.warnings
    );
    // A missing kind is assumed. `Kind` is dropped by decoding, but the type sniffing reads
    // keys case-insensitively, so it still counts as the kind.
    let w = warnings("apiVersion: audit.k8s.io/v1\nrules: [{level: None}]\n");
    assert_eq!(w[0].field, "kind");
    let w = warnings("apiVersion: audit.k8s.io/v1\nKind: Policy\nrules: [{level: None}]\n");
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].field, "Kind");
    assert!(
        errors("apiVersion: audit.k8s.io/v1\nKind: Event\nrules: [{level: None}]\n")[0].field
            == "kind"
    );
    // Only the first YAML document counts, even when a later one is broken.
    let w = warnings(&format!("{HEADER}- level: None\n---\nrules: [\n"));
    assert_eq!((w[0].line, w[0].severity), (7, Severity::Warning));
    assert!(
        w[0].message.contains("reads only the first document"),
        "{w:?}"
    );
    assert_eq!(
        errors(&format!("{HEADER}- level: [None\n---\nrules: 1\n"))[0].line,
        5
    );
    let w = warnings(&format!("{HEADER}- level: None\n---\nrules: 1\n"));
    assert_eq!((w[0].line, w[0].severity), (6, Severity::Warning));
    // Metadata is allowed, and checked like the apiserver checks it.
    assert!(warnings(&format!(
        "metadata: {{name: x, labels: {{a: b}}}}\n{HEADER}- level: None\n"
    ))
    .is_empty());
}

#[test]
fn merge_keys_json_and_tags() {
    let p = load_policy("apiVersion: audit.k8s.io/v1\nkind: Policy\nbase: &b {level: Request, verbs: [get]}\nrules: [{<<: *b, verbs: [list]}]\n")
        .unwrap()
        .policy;
    assert_eq!(
        (p.rules[0].level, p.rules[0].verbs.clone()),
        (Level::Request, strs(&["list"]))
    );
    let p = load_policy(
        r#"{"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "None"}]}"#,
    )
    .unwrap();
    assert_eq!(p.policy.rules.len(), 1);
    // A flow mapping at the top is read as JSON by the apiserver, and is not valid JSON.
    assert!(
        !errors("{apiVersion: audit.k8s.io/v1, kind: Policy, rules: [{level: None}]}").is_empty()
    );
    assert!(load_policy(&format!(
        "{HEADER}- level: !!str Metadata\n  users: [!!str 1]\n"
    ))
    .is_ok());
}

#[test]
fn yaml_1_1_parser_details() {
    // go-yaml skips a byte-order mark.
    assert!(load_policy(&format!("\u{feff}{HEADER}- level: None\n")).is_ok());
    // `\/` is YAML 1.2 only: go-yaml rejects the file. In JSON it is an ordinary escape.
    let errs = errors(&format!(
        "{HEADER}- level: None\n  users: [\"ok\", \"a\\/b\"]\n"
    ));
    assert_eq!(errs[0].line, 5);
    assert!(errs[0].message.contains("YAML 1.1"), "{errs:?}");
    let json = r#"{"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "None", "users": ["a\/b"]}]}"#;
    assert_eq!(
        load_policy(json).unwrap().policy.rules[0].users,
        strs(&["a/b"])
    );
    // 1e400 overflows a float, so go-yaml keeps it a string; in JSON it is a number.
    assert!(load_policy(&format!("{HEADER}- level: None\n  users: [1e400]\n")).is_ok());
    let json = r#"{"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "None", "users": [1e400]}]}"#;
    assert_eq!(errors(json)[0].field, "rules[0].users[0]");
}

#[test]
fn type_and_version_checks() {
    for (text, field) in [
        (
            "apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules: [{level: None}]\n",
            "apiVersion",
        ),
        (
            "apiVersion: audit.k8s.io/v1\nkind: PolicyList\nrules: [{level: None}]\n",
            "kind",
        ),
        (
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nKIND: [x]\nrules: [{level: None}]\n",
            "kind",
        ),
        ("- level: None\n", ""),
    ] {
        let errs = errors(text);
        assert_eq!(errs[0].field, field, "{errs:?}");
    }
}

/// The apiserver stops at the first failing phase; Vigil reports decoding and validation
/// problems together, without validation errors that only echo a decoding error.
#[test]
fn all_problems_at_once() {
    let text = format!(
        "{HEADER}- level: [Metadata]\n  omitStages: [Foo]\n- level: Request\n  verbs: get\n  resources: [{{group: Apps, resources: pods, resourceNames: [a]}}]\n"
    );
    let fields: Vec<String> = errors(&text).into_iter().map(|e| e.field).collect();
    assert_eq!(
        fields,
        [
            "rules[0].level",
            "rules[0].omitStages[0]",
            "rules[1].verbs",
            "rules[1].resources[0].resources",
            "rules[1].resources[0].group",
        ]
    );
    assert_eq!(
        errors("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: x\n").len(),
        1
    );
}

#[test]
fn error_display_lists_every_error() {
    let e: LoadError =
        load_policy(&format!("{HEADER}- level: Foo\n  omitStages: [Bar]\n")).unwrap_err();
    let s = e.to_string();
    assert!(s.contains("2 errors"), "{s}");
    assert!(
        s.contains("\nline 4: rules[0].level: unsupported level \"Foo\""),
        "{s}"
    );
    assert!(
        s.contains("\nline 5: rules[0].omitStages[0]: invalid stage \"Bar\""),
        "{s}"
    );
}

#[test]
fn hostile_inputs_fail_cleanly() {
    for text in [
        "- ".repeat(100_000) + "x",
        "[".repeat(100_000),
        format!("{}{}", "[".repeat(5_000), "]".repeat(5_000)),
        "a: &a [1]\nb: *c\n".to_string(),
        "\u{0}\u{1}\u{ffff}".to_string(),
        "{\"a\":".repeat(10_000),
    ] {
        assert!(load_policy(&text).is_err());
    }
    let mut big = HEADER.to_string();
    for i in 0..5_000 {
        big.push_str(&format!("- level: Metadata\n  users: [u{i}]\n  resources: [{{group: apps, resources: [pods/*]}}]\n"));
    }
    assert_eq!(load_policy(&big).unwrap().policy.rules.len(), 5_000);
}

const VALID: &str = "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: None\n  users: [\"system:kube-proxy\"]\n  verbs: [watch]\n  resources:\n  - group: \"\"\n    resources: [endpoints, services, services/status]\n- level: Metadata\n  nonResourceURLs: [/healthz*]\n  omitManagedFields: true\n";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any text: an answer, never a panic.
    #[test]
    fn arbitrary_text_never_panics(text in "[-a-zA-Z0-9:{}\\[\\],&*!|>'\" \n#~.?<]{0,200}") {
        let _ = load_policy(&text);
    }

    /// A valid policy with a chunk cut out or a character changed: an answer, never a panic;
    /// and whenever it loads, every error-free field kept a line inside the file.
    #[test]
    fn damaged_policies_never_panic(at in 0..VALID.len(), len in 0..20usize, c in prop::sample::select(vec![' ', '-', ':', '[', '\n', '"', 'x', '*'])) {
        let end = (at + len).min(VALID.len());
        let mut cut = VALID.to_string();
        cut.replace_range(at..end, "");
        let mut changed = VALID.to_string();
        changed.replace_range(at..at + 1, &c.to_string());
        for text in [cut, changed] {
            match load_policy(&text) {
                Ok(l) => {
                    let lines = text.lines().count().max(1);
                    prop_assert!(l.policy.rule_lines.iter().all(|&n| n >= 1 && n <= lines));
                    prop_assert!(l.warnings.iter().all(|w| w.line >= 1 && w.line <= lines));
                }
                Err(e) => prop_assert!(!e.errors.is_empty()),
            }
        }
    }
}
