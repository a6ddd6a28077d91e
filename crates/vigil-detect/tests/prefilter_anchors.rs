//! The anchored automaton never changes a result: cores that share an anchor (`hostpid"`,
//! `hostipc"`, `hostpath`), cores containing others (`sets"` in `statefulsets"`), and cores
//! overlapping each other are put into random strings in random case, next to and across each
//! other, and events are evaluated with and without the prefilter.

use proptest::prelude::*;
use vigil_detect::RuleSet;

mod common;

const RULES: &str = r#"
title: a1
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        - x|contains: 'hostpid"'
        - y: hostipc
        - z|contains: hostpath
    condition: sel
---
title: a2
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        x|endswith: statefulsets
    condition: sel
---
title: a3
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        x|endswith: sets
    condition: sel
---
title: a4
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        y: secrets
    condition: sel
---
title: a5
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        z|contains: tsetst
    condition: sel
---
title: a6
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        x|startswith: 'system:serviceaccount:'
    condition: sel
---
title: a7
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        z|contains: 'aaaab'
    condition: sel
"#;

/// Pieces of the rules' literals, cut anywhere, so that strings join them in every way.
fn piece() -> impl Strategy<Value = String> {
    let words = prop::sample::select(vec![
        "hostpid",
        "hostipc",
        "hostpath",
        "statefulsets",
        "sets",
        "secrets",
        "tsetst",
        "system:",
        "serviceaccount:",
        "aaaab",
        "aaaa",
        "host",
        "ets",
        "x",
        "\\\"",
    ]);
    (words, 0usize..20, 0usize..20, any::<bool>()).prop_map(|(w, a, b, up)| {
        let (a, b) = (a.min(w.len()), b.min(w.len()));
        let (a, b) = if a <= b { (0, b.max(1)) } else { (b, w.len()) };
        let w = if w == "\\\"" { w } else { &w[a..b] };
        if up {
            w.to_uppercase()
        } else {
            w.to_string()
        }
    })
}

fn string() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..6).prop_map(|ps| format!("\"{}\"", ps.concat()))
}

fn event() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec!["x", "y", "z", "w"]);
    prop::collection::vec((key, string()), 0..5).prop_map(|ms| {
        let members: Vec<String> = ms
            .into_iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        format!("{{{}}}", members.join(","))
    })
}

/// Compiled once for every case.
fn rules() -> &'static (RuleSet, RuleSet) {
    static SETS: std::sync::OnceLock<(RuleSet, RuleSet)> = std::sync::OnceLock::new();
    SETS.get_or_init(|| common::rule_sets("a.yml", RULES))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn anchored_prefilter_never_changes_results(raw in event()) {
        let (with, without) = rules();
        common::same(with, without, &raw)?;
    }
}
