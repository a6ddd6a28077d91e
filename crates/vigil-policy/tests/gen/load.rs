//! Policy files for the loader comparison: valid policies with a few mutations each, covering
//! validation errors, unknown and duplicate fields, wrong types, YAML 1.1 scalars, apiVersion
//! and kind variants, metadata, JSON input, and whole-document oddities.

use super::{policy, quote, GenPolicy, Rng};

/// Values that are wrong (or interestingly right) for a field of some type.
const LEVEL_VALUES: &[&str] = &[
    "\"Foo\"",
    "\"metadata\"",
    "\"\"",
    "~",
    "1",
    "None",
    "\"RequestResponse\"",
    "[Metadata]",
    "!!str Metadata",
    "Metadata # comment",
    "'Request'",
];
const STAGE_VALUES: &[&str] = &[
    "[\"Foo\"]",
    "[\"requestReceived\"]",
    "\"RequestReceived\"",
    "[~]",
    "[RequestReceived, Panic]",
    "[Panic, Panic]",
    "[]",
    "~",
    "[1]",
];
const URL_VALUES: &[&str] = &[
    "[\"\"]",
    "[\"logs\"]",
    "[\"/a*b\"]",
    "[\"*x\"]",
    "[\"/logs/*/*\"]",
    "[\"**\"]",
    "[~]",
    "[\"/ok*\"]",
    "[\"*\"]",
    "[\"/logs/*.log\"]",
    "\"/healthz\"",
];
const GROUP_VALUES: &[&str] = &[
    "\"Apps\"",
    "\"apps/v1\"",
    "\"a..b\"",
    "\"-a\"",
    "\"*\"",
    "\"\"",
    "~",
    "1",
    "\"rbac.authorization.k8s.io\"",
    "\"x_y\"",
    "\"a.\"",
    "\"1.2\"",
    "[apps]",
];
const LIST_VALUES: &[&str] = &[
    "\"get\"",
    "1",
    "{\"a\": 1}",
    "[1]",
    "[yes]",
    "[on]",
    "[true]",
    "[0x1F]",
    "[1e3]",
    "[1e400]",
    "[~]",
    "[null]",
    "[2001-01-01]",
    "[.5]",
    "[.nan]",
    "[08]",
    "[\"get\", ~]",
    "~",
    "[]",
    "[Y]",
    "[!!str 1]",
    "[!!int \"1\"]",
    "[[get]]",
    "[0b101]",
    "[+1]",
];
const BOOL_VALUES: &[&str] = &[
    "\"true\"",
    "yes",
    "1",
    "~",
    "on",
    "True",
    "n",
    "[true]",
    "!!bool \"true\"",
    "FALSE",
];
const RULES_VALUES: &[&str] = &["{}", "\"x\"", "~", "[]", "[~]", "[1]", "[{}]", "[[]]"];
const RESOURCES_VALUES: &[&str] = &[
    "\"pods\"",
    "[\"pods\"]",
    "{\"group\": \"\"}",
    "[~]",
    "[{}]",
    "[{\"group\": \"\", \"resourceNames\": [\"a\"]}]",
    "[{\"resourceNames\": []}]",
    "[{\"resources\": [], \"resourceNames\": [\"a\"]}]",
    "[{\"group\": \"\", \"resources\": [\"pods\"], \"verbs\": [\"get\"]}]",
    "[{\"group\": \"\", \"Resources\": [\"pods\"]}]",
    "[{\"group\": \"\", \"resources\": \"pods\"}]",
    "[{\"resources\": [\"pods\"], \"resourceNames\": \"a\"}]",
];
const API_VERSIONS: &[&str] = &[
    "audit.k8s.io/v1beta1",
    "\"audit.k8s.io/v1 \"",
    "v1",
    "1",
    "~",
    "\"AUDIT.k8s.io/v1\"",
    "audit.k8s.io/v1alpha1",
    "audit.k8s.io/",
    "/",
    "a/b/c",
    "\"\"",
    "[audit.k8s.io/v1]",
];
const KINDS: &[&str] = &[
    "\"\"",
    "policy",
    "PolicyList",
    "Event",
    "~",
    "1",
    "EventList",
    "Policy ",
    "[Policy]",
];
const METADATA: &[&str] = &[
    "{\"name\": \"x\"}",
    "{\"name\": 1}",
    "{\"labels\": {\"a\": \"b\"}}",
    "{\"labels\": {\"a\": 1}}",
    "{\"creationTimestamp\": \"2020-01-01T00:00:00Z\"}",
    "{\"creationTimestamp\": \"2020-01-01\"}",
    "{\"generation\": 3}",
    "{\"generation\": 3.0}",
    "{\"generation\": 3.5}",
    "{\"generation\": \"3\"}",
    "{\"foo\": 1}",
    "\"x\"",
    "{\"annotations\": ~}",
    "{\"finalizers\": [\"a\"]}",
    "{\"ownerReferences\": [{\"name\": \"a\", \"controller\": \"yes\"}]}",
    "{\"ownerReferences\": [{\"name\": \"a\", \"controller\": true, \"x\": 1}]}",
    "{\"managedFields\": [{\"fieldsV1\": {\"f:a\": {}}, \"time\": null}]}",
    "{\"deletionGracePeriodSeconds\": -1}",
    "{\"uid\": 5}",
    "~",
    "[]",
];
const UNKNOWN_RULE_KEYS: &[&str] = &[
    "Verbs",
    "verb",
    "foo",
    "LEVEL",
    "resourceNames",
    "group",
    "apiVersion",
    "nonResourceUrls",
    "Users",
    "omitstages",
];
const UNKNOWN_TOP_KEYS: &[&str] = &[
    "Rules",
    "spec",
    "verbs",
    "OmitStages",
    "items",
    "Kind",
    "APIVERSION",
];

fn set(pairs: &mut Vec<(String, String)>, key: &str, value: &str) {
    match pairs.iter_mut().find(|(k, _)| k == key) {
        Some(p) => p.1 = value.to_string(),
        None => pairs.push((key.to_string(), value.to_string())),
    }
}

fn remove(pairs: &mut Vec<(String, String)>, key: &str) {
    pairs.retain(|(k, _)| k != key);
}

fn mutate(p: &mut GenPolicy, rng: &mut Rng) {
    let ri = rng
        .below(p.rules.len().max(1))
        .min(p.rules.len().saturating_sub(1));
    let rule = p.rules.get_mut(ri);
    let Some(rule) = rule else { return };
    match rng.below(17) {
        0 => {
            if rng.chance(20) {
                remove(rule, "level");
            } else {
                set(rule, "level", rng.pick(LEVEL_VALUES));
            }
        }
        1 => set(rule, "omitStages", rng.pick(STAGE_VALUES)),
        2 => set(&mut p.top, "omitStages", rng.pick(STAGE_VALUES)),
        3 => {
            // A resource rule with non-resource URLs, or the other way round.
            if rule.iter().any(|(k, _)| k == "nonResourceURLs") {
                set(
                    rule,
                    rng.pick(&["namespaces", "resources"]),
                    "[\"default\"]",
                );
                if rng.chance(50) {
                    set(rule, "resources", "[{\"resources\": [\"pods\"]}]");
                }
            } else {
                set(rule, "nonResourceURLs", "[\"/healthz\"]");
            }
        }
        4 => set(rule, "nonResourceURLs", rng.pick(URL_VALUES)),
        5 => {
            let g = rng.pick(GROUP_VALUES);
            set(
                rule,
                "resources",
                &format!("[{{\"group\": {g}, \"resources\": [\"pods\"]}}]"),
            );
        }
        6 => set(rule, "resources", rng.pick(RESOURCES_VALUES)),
        7 => {
            let k = rng.pick(UNKNOWN_RULE_KEYS);
            set(rule, k, "[\"get\"]");
        }
        8 => {
            let k = rng.pick(&[
                "verbs",
                "users",
                "userGroups",
                "namespaces",
                "nonResourceURLs",
            ]);
            set(rule, k, rng.pick(LIST_VALUES));
        }
        9 => set(rule, "omitManagedFields", rng.pick(BOOL_VALUES)),
        10 => set(&mut p.top, "omitManagedFields", rng.pick(BOOL_VALUES)),
        11 => p.rules_override = Some(rng.pick(RULES_VALUES).to_string()),
        12 if !rule.is_empty() => {
            // Duplicate keys, in a rule or at the top.
            let (k, v) = rule[rng.below(rule.len())].clone();
            let other = if rng.chance(50) { v } else { quote("Metadata") };
            rule.push((k, other));
            if rng.chance(30) {
                p.top.push(("kind".into(), "Policy".into()));
            }
        }
        13 => {
            if rng.chance(20) {
                remove(&mut p.top, "apiVersion");
            } else if rng.chance(15) {
                remove(&mut p.top, "apiVersion");
                let key = rng.pick(&["ApiVersion", "apiversion", "APIVERSION"]);
                p.top.push((key.into(), "audit.k8s.io/v1".into()));
            } else {
                set(&mut p.top, "apiVersion", rng.pick(API_VERSIONS));
            }
        }
        14 => {
            if rng.chance(25) {
                remove(&mut p.top, "kind");
            } else if rng.chance(15) {
                remove(&mut p.top, "kind");
                p.top
                    .push((rng.pick(&["Kind", "KIND"]).into(), "Policy".into()));
            } else {
                set(&mut p.top, "kind", rng.pick(KINDS));
            }
        }
        15 => set(&mut p.top, "metadata", rng.pick(METADATA)),
        _ => {
            let k = rng.pick(UNKNOWN_TOP_KEYS);
            let v = rng.pick(&["1", "[\"get\"]", ".nan", ".inf", "{\"a\": .NaN}", "x", "~"]);
            p.top.push((k.into(), v.into()));
        }
    }
}

const VALID: &str = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n";

/// Whole documents the mutation scheme cannot express; the `n`th, cycling.
fn special(n: usize) -> String {
    let docs = [
        String::new(),
        "# only a comment\n".into(),
        "---\n".into(),
        "null\n".into(),
        "[]\n".into(),
        "\"x\"\n".into(),
        "{}\n".into(),
        format!("{VALID}---\nfoo: bar\n"),
        format!("---\n{VALID}"),
        format!("{VALID}...\n"),
        "{apiVersion: audit.k8s.io/v1, kind: Policy, rules: [{level: None}]}\n".into(),
        " {\"apiVersion\": \"audit.k8s.io/v1\", \"kind\": \"Policy\", \"rules\": [{\"level\": \"None\"}]}\n".into(),
        "{\"apiVersion\": \"audit.k8s.io/v1\", \"kind\": \"Policy\", \"rules\": [{\"level\": \"None\"}]} x\n".into(),
        "{\"apiVersion\": \"audit.k8s.io/v1\", \"kind\": \"Policy\", \"rules\": [{\"level\": \"None\", \"level\": \"Bogus\"}]}\n".into(),
        "{\"apiVersion\": \"audit.k8s.io/v1\", \"kind\": \"Policy\", \"rules\": [{\"level\": \"None\", \"verbs\": \"get\", \"verbs\": [\"get\"]}]}\n".into(),
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, verbs: get, verbs: [get]}]\n".into(),
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nbase: &b {level: Metadata}\nrules: [{<<: *b, verbs: [get]}]\n".into(),
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nbase: &b {level: Bogus}\nrules: [{<<: *b, level: None}]\n".into(),
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{<<: [{level: None}, {level: Bogus}]}]\n".into(),
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{<<: x, level: None}]\n".into(),
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{\"<<\": {level: Bogus}, level: None}]\n".into(),
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, ~: 1}]\n".into(),
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, 1: 1, true: 2}]\n".into(),
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, [a]: 1}]\n".into(),
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: !!int 1}]\n".into(),
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: !!null Metadata}]\n".into(),
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: !custom Metadata}]\n".into(),
        "apiVersion: audit.k8s.io/v1\r\nkind: Policy\r\nrules:\r\n- level: None\r\n".into(),
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  resources:\n  - group: coordination.k8s.io\n    resources:\n    - \"leases\"\n    verbs: [\"watch\", \"get\", \"list\"]\n".into(),
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  verbs: [get\n".into(),
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n\tverbs: [get]\n".into(),
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: *missing\n".into(),
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitManagedFields: 0\nrules: [{level: None}]\n".into(),
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, omitStages: [!!str Panic]}]\n".into(),
        "kind: Policy\napiVersion: audit.k8s.io/v1\nKind: Bogus\nrules: [{level: None}]\n".into(),
        "kind: Bogus\napiVersion: audit.k8s.io/v1\nKind: Policy\nrules: [{level: None}]\n".into(),
        "kind: Policy\nApiVersion: v1\napiVersion: audit.k8s.io/v1\nrules: [{level: None}]\n".into(),
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, nonResourceURLs: ['/x'], namespaces: []}]\n".into(),
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, nonResourceURLs: ['/x'], resources: ~}]\n".into(),
        // A byte-order mark: go-yaml skips it, and it hides JSON from the JSON sniffing.
        format!("\u{feff}{VALID}"),
        "\u{feff}{\"apiVersion\": \"audit.k8s.io/v1\", \"kind\": \"Policy\", \"rules\": [{\"level\": \"None\"}]}\n".into(),
        // `\/` is a YAML 1.2 escape only; in JSON it is fine.
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, users: [\"a\\/b\"]}]\n".into(),
        "{\"apiVersion\": \"audit.k8s.io/v1\", \"kind\": \"Policy\", \"rules\": [{\"level\": \"None\", \"users\": [\"a\\/b\"]}]}\n".into(),
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, users: [\"a\\x41\\_\\N\\u00e9\"]}]\n".into(),
        // go-yaml never reads past the first document, broken or not.
        format!("{VALID}---\nfoo: [\n"),
        format!("{VALID}...\n[[[\n"),
        format!("{VALID}---\n---\n"),
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None}\n---\nfoo: bar\n".into(),
        // 1e400 overflows, so go-yaml calls it a string; JSON calls it a number.
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, users: [1e400]}]\n".into(),
        "{\"apiVersion\": \"audit.k8s.io/v1\", \"kind\": \"Policy\", \"rules\": [{\"level\": \"None\", \"users\": [1e400]}]}\n".into(),
    ];
    docs[n % docs.len()].clone()
}

/// The `i`th load case.
pub fn load_case(rng: &mut Rng, i: usize) -> String {
    if i.is_multiple_of(8) {
        return special(i / 8);
    }
    let json = rng.chance(25);
    rng.plain = !json;
    let mut p = policy(rng);
    for _ in 0..rng.below(3) {
        mutate(&mut p, rng);
    }
    p.render(json)
}
