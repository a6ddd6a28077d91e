//! The raw-text prefilter and the field dispatch never change a result: random events (with escapes, Unicode, numbers
//! of every JSON form) are evaluated with and without it.

use proptest::prelude::*;
use serde_json::Value;
use vigil_detect::{Config, Event, RuleSet, RuleSource};

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
        Just("\"/bin/zsh -c\"".to_string()),
        "\"[a-fA-F/ .\\-]{0,8}\"".prop_map(|s| s),
    ]
}

fn event() -> impl Strategy<Value = String> {
    let keys = prop::sample::select(vec!["verb", "code", "msg", "flag", "name", "x"]);
    (
        prop::collection::vec((keys, scalar()), 0..6),
        prop::option::of(scalar()),
        prop::option::of(scalar()),
    )
        .prop_map(|(fields, res, arr)| {
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
            format!("{{{}}}", parts.join(","))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn prefilter_never_changes_results(raw in event()) {
        let (with, e1) = RuleSet::compile(&[RuleSource::new("r.yml", RULES)], &Config::default());
        let (without, e2) = RuleSet::compile(
            &[RuleSource::new("r.yml", RULES)],
            &Config { prefilter: false, ..Config::default() },
        );
        prop_assert!(e1.is_empty() && e2.is_empty());
        let Ok(doc) = serde_json::from_str::<Value>(&raw) else {
            return Ok(());
        };
        let mut a = vec![];
        with.evaluate(&Event::from_raw("k8s.audit", &raw), &mut a);
        let mut b = vec![];
        without.evaluate(&Event::new("k8s.audit", &doc), &mut b);
        let ra: Vec<usize> = a.iter().map(|m| m.rule).collect();
        let rb: Vec<usize> = b.iter().map(|m| m.rule).collect();
        prop_assert_eq!(ra, rb, "{}", raw);
    }
}
