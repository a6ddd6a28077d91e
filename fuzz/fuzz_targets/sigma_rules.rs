//! Untrusted input: Sigma rule files (users load third-party rule corpora). Compile them, then
//! run what compiled over an event built from the same bytes, through the prefilter and the
//! correlation engine.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigil_detect::{Config, Event, RuleSet, RuleSource};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (rules, _errors) = RuleSet::compile(
        &[RuleSource::new("fuzz.yml", text.as_ref())],
        &Config::default(),
    );
    let doc = serde_json::json!({
        "verb": "create",
        "user": {"username": text.chars().take(32).collect::<String>()},
        "objectRef": {"resource": "pods", "namespace": "kube-system"},
        "requestObject": {"spec": {"containers": [{"securityContext": {"privileged": true}}]}},
    });
    let raw = doc.to_string();
    let mut out = Vec::new();
    rules.evaluate(
        &Event::with_raw("k8s.audit", &doc, &raw).at(1_700_000_000_000),
        &mut out,
    );
});
