//! The raw-text prefilter and the field dispatch never change a result: random events (with escapes, Unicode, numbers
//! of every JSON form, nested and dotted keys, arrays) are evaluated with and without it.

use proptest::prelude::*;
use vigil_detect::RuleSet;

mod common;

const RULES: &str = r#"
title: r1
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        verb: [create, patch]
        objectRef.resource|contains: pod
    condition: sel
---
title: r2
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        code: [401, 403]
    other:
        msg|contains|all: ['a/b', 'K']
    condition: sel or other
---
title: r3
logsource: {product: kubernetes, service: audit}
detection:
    keywords:
        - '1.5'
        - 'kube-system'
        - 'x<y'
    condition: keywords
---
title: r4
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        flag: true
        name|startswith: 'ab'
    condition: sel
---
title: r5
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        name|endswith: 'İx'
    not_this:
        verb: get
    condition: sel and not not_this
---
title: r6
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        x|contains: 'abcd'
    condition: sel
---
title: r7
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        x|contains: 'cdef'
    condition: sel
---
title: r8
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        x|contains: 'bc'
    condition: sel
---
title: r9
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        x|contains:
            - '/bin/sh'
            - '/bin/bash'
            - '/bin/zsh'
            - '/bin/dash'
            - '%2fbin%2fsh'
            - '%2fbin%2fbash'
    condition: sel
---
title: r10
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        verb: [Delete, GET]
        name|startswith: 'ab'
    condition: sel
---
title: r11
logsource: {product: kubernetes, service: audit}
detection:
    sel1:
        verb: patch
    sel2:
        verb: create
        x: abcd
    condition: 1 of sel*
---
title: r12
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        verb: create
    filter:
        verb: patch
    condition: sel or not filter
---
title: r13
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        a.b.c: 'xyz'
    condition: sel
---
title: r14
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        a.b|exists: true
    condition: sel
---
title: r15
logsource: {product: kubernetes, service: audit}
detection:
    s1:
        name|endswith: 'cd'
    s2:
        verb: create
    s3:
        x|startswith: 'ab'
    s4:
        code: 401
    condition: (s1 and s2) or (s3 and s4)
---
title: r16
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        x: '*'
        code: 0x1F
    condition: sel
---
title: r17
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        a.b:
            - create
            - pods
            - cdef
            - abcd
            - patch
            - kube-system
    condition: sel
---
title: r18
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        x: 'true'
        a.b.c|endswith: 'yz'
    condition: sel
---
title: r19
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        - a.b|startswith: 'kube-'
        - list.deep: 'abcd'
    condition: sel
"#;

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"create\"".to_string()),
        Just("\"CrEaTe\"".to_string()),
        Just("\"p\\u006fd\"".to_string()),
        Just("\"pods\"".to_string()),
        Just("\"a\\/b\"".to_string()),
        Just("\"\u{212A}\"".to_string()),
        Just("\"kube-system\"".to_string()),
        Just("\"x\\u003cy\"".to_string()),
        Just("\"ab\u{130}x\"".to_string()),
        Just("\"abİx\"".to_string()),
        Just("\"ABC\"".to_string()),
        Just("401".to_string()),
        Just("403.0".to_string()),
        Just("4.01e2".to_string()),
        Just("15e-1".to_string()),
        Just("1.5".to_string()),
        Just("\"401\"".to_string()),
        Just("true".to_string()),
        Just("\"true\"".to_string()),
        Just("null".to_string()),
        Just("\"patch\"".to_string()),
        Just("\"get\"".to_string()),
        Just("\"abcdef\"".to_string()),
        Just("\"xABCdefx\"".to_string()),
        Just("\"abcd\"".to_string()),
        Just("\"cdef\"".to_string()),
        Just("\"%2Fbin%2Fbash\"".to_string()),
        Just("\"xyz\"".to_string()),
        Just("\"XyZ\"".to_string()),
        Just("\"x\\u0079z\"".to_string()),
        Just("31".to_string()),
        Just("\"31\"".to_string()),
        Just("\"0x1F\"".to_string()),
        Just("\"0x1f\"".to_string()),
        Just("\"kube-proxy\"".to_string()),
        Just("\"/bin/zsh -c\"".to_string()),
        "\"[a-fA-F/ .\\-]{0,8}\"".prop_map(|s| s),
    ]
}

/// Ways to reach `a.b.c` (or `a.b`): nested objects, keys holding dots, arrays, escapes.
fn nested() -> impl Strategy<Value = String> {
    let shape = prop::sample::select(vec![
        r#""a":{"b":{"c":S}}"#,
        r#""a":{"b.c":S}"#,
        r#""a.b":{"c":S}"#,
        r#""a.b.c":S"#,
        r#""a":[{"b":{"c":S}},{"b":S}]"#,
        r#""a":{"b":S}"#,
        r#""a":{"b":[S,null]}"#,
        r#""a":{"b":null}"#,
        r#""a":{"\u0062":{"c":S}}"#,
        r#""a":{"B":{"c":S}}"#,
        r#""a" : { "b" : { "c" : S } }"#,
    ]);
    (shape, scalar()).prop_map(|(sh, v)| sh.replace('S', &v))
}

fn event() -> impl Strategy<Value = String> {
    let keys = prop::sample::select(vec!["verb", "code", "msg", "flag", "name", "x"]);
    (
        prop::collection::vec((keys, scalar()), 0..6),
        prop::option::of(scalar()),
        prop::option::of(scalar()),
        prop::option::of(nested()),
    )
        .prop_map(|(fields, res, arr, nest)| {
            let mut parts: Vec<String> = fields
                .into_iter()
                .map(|(k, v)| format!("\"{k}\":{v}"))
                .collect();
            if let Some(r) = res {
                parts.push(format!("\"objectRef\":{{\"resource\":{r}}}"));
            }
            if let Some(a) = arr {
                parts.push(format!("\"list\":[{a},{{\"deep\":{a}}}]"));
            }
            if let Some(n) = nest {
                parts.push(n);
            }
            format!("{{{}}}", parts.join(","))
        })
}

/// Compiled once for every case.
fn rules() -> &'static (RuleSet, RuleSet) {
    static SETS: std::sync::OnceLock<(RuleSet, RuleSet)> = std::sync::OnceLock::new();
    SETS.get_or_init(|| common::rule_sets("r.yml", RULES))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn prefilter_never_changes_results(raw in event()) {
        let (with, without) = rules();
        common::same(with, without, &raw)?;
    }
}
