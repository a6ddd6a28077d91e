//! SigmaHQ's 16 Kubernetes audit rules (read from $VIGIL_SHARED, never copied here) against
//! hand-written audit events in tests/fixtures/k8s_audit.jsonl: each attack fires exactly the
//! rules it should, benign traffic fires none. Skips when VIGIL_SHARED is not set.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use vigil_detect::{Config, Event, RuleSet, RuleSource};

fn load_rules(prefilter: bool) -> Option<RuleSet> {
    let shared = std::env::var("VIGIL_SHARED").ok()?;
    let dir = Path::new(&shared).join("reference/sigma/rules/application/kubernetes/audit");
    let mut sources = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("kubernetes rules folder")
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    for p in names {
        sources.push(RuleSource::new(
            p.display().to_string(),
            std::fs::read_to_string(&p).unwrap(),
        ));
    }
    let cfg = Config {
        prefilter,
        ..Config::default()
    };
    let (set, errors) = RuleSet::compile(&sources, &cfg);
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(set.rules().len(), 16);
    Some(set)
}

fn fixtures() -> Vec<(String, BTreeSet<String>, String)> {
    let text = include_str!("fixtures/k8s_audit.jsonl");
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let expect = v["expect"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect();
            (
                v["note"].as_str().unwrap().to_string(),
                expect,
                serde_json::to_string(&v["event"]).unwrap(),
            )
        })
        .collect()
}

#[test]
fn kubernetes_rules_fire_on_attacks_and_not_on_benign_events() {
    let (Some(with_pf), Some(without_pf)) = (load_rules(true), load_rules(false)) else {
        println!("VIGIL_SHARED is not set: skipping the SigmaHQ Kubernetes rules test");
        return;
    };
    let fixtures = fixtures();
    let mut fired: BTreeSet<String> = BTreeSet::new();
    let mut failures = Vec::new();
    for (note, expect, raw) in &fixtures {
        let doc: Value = serde_json::from_str(raw).unwrap();
        for (how, set, ev) in [
            ("raw+prefilter", &with_pf, Event::from_raw("k8s.audit", raw)),
            ("parsed", &without_pf, Event::new("k8s.audit", &doc)),
            (
                "parsed+raw",
                &with_pf,
                Event::with_raw("k8s.audit", &doc, raw),
            ),
        ] {
            let mut out = Vec::new();
            set.evaluate(&ev, &mut out);
            let got: BTreeSet<String> = out
                .iter()
                .map(|m| set.rules()[m.rule].id.clone().unwrap())
                .collect();
            if &got != expect {
                failures.push(format!("{note} [{how}]: expected {expect:?}, got {got:?}"));
            }
            for m in &out {
                assert!(!m.matched.is_empty(), "{note}: a match lists what matched");
            }
            fired.extend(got);
        }
        // Another dataset never sees Kubernetes rules.
        let mut out = Vec::new();
        with_pf.evaluate(&Event::from_raw("linux.auth", raw), &mut out);
        assert!(out.is_empty());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        fired.len(),
        16,
        "every Kubernetes rule fires on some fixture"
    );
}

#[test]
fn prefilter_skips_parsing_benign_events() {
    let Some(set) = load_rules(true) else {
        println!("VIGIL_SHARED is not set: skipping");
        return;
    };
    let lease = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"x","stage":"ResponseComplete","requestURI":"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-1","verb":"update","user":{"username":"system:node:node-1"},"userAgent":"kubelet/v1.31.2","objectRef":{"resource":"leases","namespace":"kube-node-lease","name":"node-1","apiGroup":"coordination.k8s.io","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"annotations":{"authorization.k8s.io/decision":"allow"}}"#;
    let ev = Event::from_raw("k8s.audit", lease);
    let mut out = Vec::new();
    set.evaluate(&ev, &mut out);
    assert!(out.is_empty());
    // The enumeration rule needs `allow`, which is there, and one of its tool names, which is
    // not; nothing else applies: the event is never parsed.
    assert!(
        !ev.is_parsed(),
        "a lease renewal should be ruled out by text alone"
    );
}

#[test]
fn explain_says_why() {
    let Some(set) = load_rules(true) else {
        println!("VIGIL_SHARED is not set: skipping");
        return;
    };
    let (_, _, raw) = fixtures()
        .into_iter()
        .find(|(n, _, _)| n == "pod with a hostPath volume")
        .unwrap();
    let idx = set
        .rules()
        .iter()
        .position(|r| r.id.as_deref() == Some("402b955c-8fe0-4a8c-b635-622b4ac5f902"))
        .unwrap();
    let e = set
        .explain(idx, &Event::from_raw("k8s.audit", &raw))
        .unwrap();
    assert!(e.matched);
    let text = e.to_string();
    assert!(text.contains("hostPath"), "{text}");
    assert!(
        text.contains("requestObject.spec.volumes.hostPath.path"),
        "{text}"
    );
    // And a non-match says which item failed.
    let idx2 = set
        .rules()
        .iter()
        .position(|r| r.id.as_deref() == Some("a1b0ca4e-7835-413e-8471-3ff2b8a66be6"))
        .unwrap();
    let e = set
        .explain(idx2, &Event::from_raw("k8s.audit", &raw))
        .unwrap();
    assert!(!e.matched);
    assert!(
        e.to_string().contains("[false] objectRef.subresource"),
        "{e}"
    );
}
