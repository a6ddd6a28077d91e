//! Key-scoped prefilter literals never change a result: random events put the rules' values
//! at random places (under the rules' keys, under other keys, inside longer strings, in arrays
//! and nested objects, after keys holding dots, with whitespace around `:`), and are evaluated
//! with and without the prefilter.

use proptest::prelude::*;
use vigil_detect::{Event, RuleSet};

mod common;
use common::same;

const RULES: &str = r#"
title: s1
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        responseStatus.code: 401
    condition: sel
---
title: s2
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        code: 403
    condition: sel
---
title: s3
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        a.code|contains: '12'
    condition: sel
---
title: s4
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        name|startswith: 'ab'
    condition: sel
---
title: s5
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        responseStatus.code: [401, 403]
        verb: get
    condition: sel
---
title: s6
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        n.code: 500
    filter:
        verb: get
    condition: sel and not filter
---
title: s7
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        verb: [list, patch, get]
        name|contains: 'ab'
        n.code: [500, 401]
    condition: sel
"#;

fn ws() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", "", "", " ", "\n  ", "\t"])
}

fn scalar() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "401",
        "403",
        "500",
        "4010",
        "1401",
        "-401",
        "4.01e2",
        "401.0",
        "12",
        "120",
        "0.12",
        "\"401\"",
        "\"+0401\"",
        "\"x401\"",
        "\"403 \"",
        "\"a\\\"401\"",
        "\"a\\\\401\"",
        "\"ab\"",
        "\"abc\"",
        "\"xab\"",
        "\"AB\"",
        "\"get\"",
        "\"GET\"",
        "\"12\"",
        "\"a12b\"",
        "\"code\"",
        "\"500\"",
        "true",
        "null",
        "\"list\"",
        "\"patch\"",
        "\"xpatch\"",
        "\"\"",
    ])
    .prop_map(str::to_string)
}

fn key() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "code",
        "xcode",
        "Code",
        "responseStatus",
        "responseStatus.code",
        "a",
        "a.code",
        "n",
        "name",
        "verb",
        "msg",
    ])
}

/// A JSON value's text, with random whitespace.
fn value() -> impl Strategy<Value = String> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            (prop::collection::vec((ws(), inner.clone()), 0..3)).prop_map(|xs| {
                let items: Vec<String> = xs.into_iter().map(|(w, v)| format!("{w}{v}")).collect();
                format!("[{}]", items.join(","))
            }),
            prop::collection::vec((key(), ws(), ws(), inner), 0..4).prop_map(|ms| {
                let members: Vec<String> = ms
                    .into_iter()
                    .map(|(k, w1, w2, v)| format!("\"{k}\"{w1}:{w2}{v}"))
                    .collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

fn event() -> impl Strategy<Value = String> {
    prop::collection::vec((key(), ws(), ws(), value()), 0..6).prop_map(|ms| {
        let members: Vec<String> = ms
            .into_iter()
            .map(|(k, w1, w2, v)| format!("\"{k}\"{w1}:{w2}{v}"))
            .collect();
        format!("{{{}}}", members.join(","))
    })
}

fn rules() -> &'static (RuleSet, RuleSet) {
    static SETS: std::sync::OnceLock<(RuleSet, RuleSet)> = std::sync::OnceLock::new();
    SETS.get_or_init(|| common::rule_sets("s.yml", RULES))
}

#[test]
fn scoped_literals_are_in_use() {
    // The test is about scoped literals: make sure the rules get them.
    let (with, _) = rules();
    let report = with.prefilter_report("k8s.audit");
    let scoped = report
        .iter()
        .flat_map(|(_, cs)| cs.iter().flatten())
        .filter(|l| l.contains("in the value of"))
        .count();
    assert!(scoped >= 4, "{report:#?}");
}

#[test]
fn known_events() {
    let (with, without) = rules();
    for raw in [
        r#"{"responseStatus":{"code":401}}"#,
        r#"{"responseStatus" : { "code" :  401 }}"#,
        r#"{"responseStatus.code":"401"}"#,
        r#"{"responseStatus":[{"code":[500,401]}]}"#,
        r#"{"code":"+0403","verb":"get"}"#,
        r#"{"a":{"code":"x12"}}"#,
        r#"{"name":"abc"}"#,
        r#"{"n":{"code":500},"verb":"list"}"#,
        r#"{"n":{"code":401},"verb":"patch","name":"xab"}"#,
    ] {
        same(with, without, raw).unwrap();
        let mut a = vec![];
        with.evaluate(&Event::from_raw("k8s.audit", raw), &mut a);
        assert!(!a.is_empty(), "{raw} matches a rule");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn scoped_prefilter_never_changes_results(raw in event()) {
        let (with, without) = rules();
        same(with, without, &raw)?;
    }
}
