//! Untrusted input: raw audit log lines, through everything `vigil detect` does before a rule
//! sees a field: the escape and Unicode checks, the anchor search, key-scoped literals, the
//! plain-JSON scanner (capturing values, or building a document) and its serde fallback. The
//! built-in pack must give the same matches on the raw text (prefilter and pruned parse) as on
//! the whole document without the prefilter.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vigil_detect::{builtin, Config, Event, RuleSet};

fn rule_sets() -> &'static (RuleSet, RuleSet) {
    static SETS: OnceLock<(RuleSet, RuleSet)> = OnceLock::new();
    SETS.get_or_init(|| {
        let config = |prefilter| Config {
            placeholders: builtin::placeholders(),
            prefilter,
            ..Config::default()
        };
        let (with, _) = RuleSet::compile(&builtin::rules(), &config(true));
        let (without, _) = RuleSet::compile(&builtin::rules(), &config(false));
        (with, without)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let (with, without) = rule_sets();
    let mut a = Vec::new();
    with.evaluate(&Event::from_raw("k8s.audit", raw), &mut a);
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(raw) else {
        return;
    };
    let mut b = Vec::new();
    without.evaluate(&Event::new("k8s.audit", &doc), &mut b);
    assert_eq!(a, b, "{raw}");
});
