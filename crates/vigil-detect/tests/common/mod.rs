//! What the prefilter's property tests share: a rule set compiled with and without the
//! prefilter, and the check that both give the same matches for an event.

use proptest::prelude::*;
use serde_json::Value;
use vigil_detect::{Config, Event, RuleSet, RuleSource};

/// `rules` (one YAML text) compiled with the prefilter, and without it.
pub fn rule_sets(name: &str, rules: &str) -> (RuleSet, RuleSet) {
    let (with, e1) = RuleSet::compile(&[RuleSource::new(name, rules)], &Config::default());
    let (without, e2) = RuleSet::compile(
        &[RuleSource::new(name, rules)],
        &Config {
            prefilter: false,
            ..Config::default()
        },
    );
    assert!(e1.is_empty() && e2.is_empty(), "{e1:?} {e2:?}");
    (with, without)
}

/// The raw event through the prefilter gives the same matches (rules and the field values they
/// report) as its whole document without it. Texts that are not JSON are skipped.
pub fn same(with: &RuleSet, without: &RuleSet, raw: &str) -> Result<(), TestCaseError> {
    let Ok(doc) = serde_json::from_str::<Value>(raw) else {
        return Ok(());
    };
    let mut a = vec![];
    with.evaluate(&Event::from_raw("k8s.audit", raw), &mut a);
    let mut b = vec![];
    without.evaluate(&Event::new("k8s.audit", &doc), &mut b);
    prop_assert_eq!(a, b, "{}", raw);
    Ok(())
}
