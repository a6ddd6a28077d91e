//! `vigil readiness`: blind detections under a policy, lint findings, sources, retention, and
//! the exit code, through the real binary.

mod common;

use common::text;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const METADATA_ONLY: &str = "tests/fixtures/readiness/metadata-only.yaml";
const BODIES: &str = "tests/fixtures/readiness/bodies.yaml";
const EXAMPLE: &str = "../../examples/policy.yaml";
const PRIVILEGED: &str = "0c42f959-b023-4bc4-bcde-72ff1685ee7f";
const CLUSTER_ADMIN: &str = "10c06144-dd46-42dc-8f0f-9ab9c565c6a3";

fn vigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run vigil")
}

/// The JSON report: every finding, with its section.
fn findings(args: &[&str]) -> (Option<i32>, Value, Vec<Value>) {
    let mut a = vec!["readiness", "--format", "json"];
    a.extend_from_slice(args);
    let out = vigil(&a);
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)));
    let mut all = Vec::new();
    for s in doc["sections"].as_array().unwrap() {
        for f in s["findings"].as_array().unwrap() {
            let mut f = f.clone();
            f["section"] = s["name"].clone();
            for k in ["id", "severity", "what", "fix"] {
                assert!(f[k].is_string(), "{k} missing: {f}");
            }
            all.push(f);
        }
    }
    (out.status.code(), doc, all)
}

fn about<'a>(fs: &'a [Value], rule: &str) -> Option<&'a Value> {
    fs.iter()
        .find(|f| f["id"] == "blind-detection" && f["rule"] == rule)
}

#[test]
fn metadata_only_policy_blinds_the_privileged_pod_rule_and_says_which_level_fixes_it() {
    let (code, doc, fs) = findings(&["--policy", METADATA_ONLY]);
    assert_eq!(code, Some(1), "error-level findings exit 1");
    assert_eq!(doc["ready"], false);
    let f = about(&fs, PRIVILEGED).expect("privileged-pod rule reported blind");
    assert_eq!(f["severity"], "error");
    let what = f["what"].as_str().unwrap();
    assert!(what.contains("Privileged Container Created"), "{what}");
    assert!(what.contains("create pods"), "{what}");
    assert!(
        what.contains("logged at Metadata by the rule at line 9"),
        "{what}"
    );
    assert!(what.contains("needs level Request"), "{what}");
    let fix = f["fix"].as_str().unwrap();
    assert!(fix.starts_with("log them at Request"), "{fix}");
    assert!(fix.contains("resources: [pods"), "{fix}");
    assert!(fix.contains("above the rule at line 9"), "{fix}");
    assert_eq!(f["line"], 9);
    // The cluster-admin binding rule reads requestObject.roleRef.name.
    let f = about(&fs, CLUSTER_ADMIN).expect("cluster-admin binding rule reported blind");
    assert!(f["what"]
        .as_str()
        .unwrap()
        .contains("requestObject.roleRef.name"));
    // Rules that read only metadata (exec into a pod, secrets listed) are not blind.
    for f in &fs {
        let w = f["what"].as_str().unwrap();
        assert!(!w.contains("\"Secrets Listed or Watched\""), "{w}");
        assert!(!w.contains("\"Command Executed in or Attached"), "{w}");
    }
    // Without --config/--data-dir, the rest is said to be unchecked.
    assert!(fs
        .iter()
        .any(|f| f["id"] == "not-checked" && f["section"] == "sources"));
}

#[test]
fn table_output_names_the_blind_rule_and_its_fix() {
    let out = vigil(&["readiness", "--policy", METADATA_ONLY]);
    assert_eq!(out.status.code(), Some(1));
    let s = text(&out.stdout);
    let at = s
        .find("high rule \"Privileged Container Created\" is blind")
        .expect(&s);
    let fix = &s[at..];
    let fix = &fix[fix.find("fix: ").unwrap()..];
    assert!(
        fix.starts_with("fix: log them at Request: add `- {level: Request"),
        "{fix}"
    );
    assert!(s.contains("DETECTIONS"), "{s}");
    assert!(
        s.trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("not ready: "),
        "{s}"
    );
}

#[test]
fn example_policy_findings() {
    let (code, _, fs) = findings(&["--policy", EXAMPLE]);
    // It logs TokenReview bodies: a lint error.
    assert_eq!(code, Some(1));
    let lint = fs
        .iter()
        .find(|f| f["id"] == "sensitive-data-logged")
        .expect("lint finding");
    assert_eq!(lint["severity"], "error");
    assert_eq!(lint["section"], "audit policy");
    assert!(lint["fix"].as_str().unwrap().contains("Metadata"));
    // Its writes are logged with bodies: the pod and RBAC rules see what they need.
    assert!(about(&fs, PRIVILEGED).is_none(), "{fs:#?}");
    assert!(about(&fs, CLUSTER_ADMIN).is_none());
    // It drops events: the events-deleted rule is blind (level None, rule at line 20).
    let ev = fs
        .iter()
        .find(|f| {
            f["id"] == "blind-detection"
                && f["what"]
                    .as_str()
                    .unwrap()
                    .contains("\"Kubernetes Events Deleted\"")
        })
        .expect("events rule blind");
    let what = ev["what"].as_str().unwrap();
    assert!(
        what.contains("not logged (level None) by the rule at line 20"),
        "{what}"
    );
    assert!(ev["fix"].as_str().unwrap().contains("level: Metadata"));
    // Secrets are at Metadata on purpose: the rule reading secret bodies is blind by design.
    let sa = fs
        .iter()
        .find(|f| {
            f["what"]
                .as_str()
                .unwrap()
                .contains("Long-Lived Service Account Token Secret")
        })
        .unwrap();
    assert_eq!(sa["severity"], "info");
    assert!(sa["fix"].as_str().unwrap().starts_with("accept it"));
}

#[test]
fn a_policy_with_write_bodies_has_no_error() {
    let (code, doc, fs) = findings(&["--policy", BODIES]);
    assert_eq!(code, Some(0), "{fs:#?}");
    assert_eq!(doc["ready"], true);
    assert!(fs.iter().all(|f| f["severity"] != "error"));
    assert!(about(&fs, PRIVILEGED).is_none());
}

fn write_config(dir: &Path, data: &Path) -> std::path::PathBuf {
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/scenario");
    let cfg = dir.join("vigil.yaml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir: {}\nsources:\n  - type: k8s_audit_webhook\n    name: apiserver\n    listen: 127.0.0.1:18443\n    tls: {{cert: c.pem, key: k.pem}}\n    bearer_tokens_file: tokens.txt\n    silent_after: 10m\n  - type: file\n    name: hosts\n    paths: [\"{}/*.log\"]\n",
            data.display(),
            scenario.canonicalize().unwrap().display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn sources_and_retention_from_the_config_and_its_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = write_config(tmp.path(), &data);
    let cfg = cfg.to_str().unwrap();

    // Before the service ever ran: said, not guessed.
    let (_, _, fs) = findings(&["--policy", BODIES, "--config", cfg]);
    let nc = fs
        .iter()
        .find(|f| f["id"] == "not-checked" && f["section"] == "sources")
        .expect("not-checked");
    assert!(nc["what"]
        .as_str()
        .unwrap()
        .contains("not a Vigil data directory"));

    // The host logs were imported (as the file source would), the webhook delivered nothing;
    // retention is 6 months.
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/scenario");
    let auth = scenario.join("auth.log").canonicalize().unwrap();
    let out = vigil(&[
        "ingest",
        "--data-dir",
        data.to_str().unwrap(),
        "--retention",
        "180d",
        auth.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (code, _, fs) = findings(&["--policy", BODIES, "--config", cfg]);
    assert_eq!(code, Some(1));
    let silent: Vec<&Value> = fs.iter().filter(|f| f["id"] == "source-silent").collect();
    assert_eq!(silent.len(), 1, "{silent:#?}");
    assert_eq!(silent[0]["severity"], "error");
    assert!(silent[0]["what"]
        .as_str()
        .unwrap()
        .starts_with("source apiserver: no event"));
    // The file source delivered: no silence, but no silent_after either.
    assert!(fs.iter().any(|f| f["id"] == "source-no-silent-after"
        && f["what"].as_str().unwrap().starts_with("source hosts:")));
    // Imported a week after the fact: skew not measurable, and said so.
    assert!(fs.iter().any(|f| f["id"] == "clock-skew-unmeasured"));
    let r = fs
        .iter()
        .find(|f| f["id"] == "retention-short")
        .expect("retention finding");
    assert_eq!(r["severity"], "error");
    assert!(r["what"]
        .as_str()
        .unwrap()
        .contains("180d is under 12 months"));
    assert!(r["fix"].as_str().unwrap().contains("400d"));

    // With 400 days, retention passes.
    std::fs::write(data.join("retention"), "default: 400d\n").unwrap();
    let (_, _, fs) = findings(&["--policy", BODIES, "--config", cfg]);
    assert!(!fs.iter().any(|f| f["id"] == "retention-short"));
    assert!(fs
        .iter()
        .any(|f| f["id"] == "retention"
            && f["what"].as_str().unwrap().contains("meets PCI DSS 10.5.1")));
}

#[test]
fn unreadable_policy_is_a_usage_error() {
    let out = vigil(&[
        "readiness",
        "--policy",
        "tests/fixtures/readiness/missing.yaml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read policy file"));
}

#[test]
fn clock_skew_between_live_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let now = chrono::Utc::now();
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    // The bastion is on time; the apiserver's clock is ten minutes ahead.
    let auth = tmp.path().join("auth.log");
    let mut lines = String::new();
    for i in 0..5 {
        let t = now - chrono::Duration::seconds(3 + i);
        lines.push_str(&format!(
            "{} bastion sshd[1{i}]: Accepted publickey for alice from 198.51.100.10 port 5002{i} ssh2\n",
            t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        ));
    }
    std::fs::write(&auth, lines).unwrap();
    let k8s = tmp.path().join("audit.jsonl");
    let mut lines = String::new();
    for i in 0..5 {
        let t = fmt(now + chrono::Duration::seconds(600 - i));
        lines.push_str(&format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"skew-{i}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/shop/pods","verb":"list","user":{{"username":"jane"}},"objectRef":{{"resource":"pods","namespace":"shop","apiVersion":"v1"}},"responseStatus":{{"code":200}},"requestReceivedTimestamp":"{t}","stageTimestamp":"{t}"}}"#
        ));
        lines.push('\n');
    }
    std::fs::write(&k8s, lines).unwrap();
    let d = data.to_str().unwrap();
    for f in [&auth, &k8s] {
        let out = vigil(&[
            "ingest",
            "--data-dir",
            d,
            "--no-detect",
            f.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    let (_, _, fs) = findings(&["--policy", BODIES, "--data-dir", d]);
    let skew: Vec<&str> = fs
        .iter()
        .filter(|f| f["id"] == "clock-skew")
        .map(|f| f["what"].as_str().unwrap())
        .collect();
    assert_eq!(skew.len(), 2, "{fs:#?}");
    assert!(
        skew.iter().any(
            |w| w.contains("audit.jsonl: events are stamped 9m in the future")
                || w.contains("audit.jsonl: events are stamped 10m in the future")
        ),
        "{skew:?}"
    );
    assert!(
        skew.iter().any(|w| w.contains("disagree by about")),
        "{skew:?}"
    );
    // Nothing is silent: both delivered just now.
    assert!(!fs.iter().any(|f| f["id"] == "source-silent"));
}

#[test]
fn the_configurations_own_rules_are_checked_too() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/readiness/rules");
    let cfg = tmp.path().join("vigil.yaml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir: {}\nbuiltin_rules: false\nrules: [\"{}\"]\nsources:\n  - type: file\n    name: hosts\n    paths: [\"/var/log/auth.log\"]\n",
            tmp.path().join("data").display(),
            rules.display()
        ),
    )
    .unwrap();
    let (code, _, fs) = findings(&["--policy", METADATA_ONLY, "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    let blind: Vec<&Value> = fs.iter().filter(|f| f["id"] == "blind-detection").collect();
    // builtin_rules: false: only the team's rule, named with its file.
    assert_eq!(blind.len(), 1, "{blind:#?}");
    let what = blind[0]["what"].as_str().unwrap();
    assert!(
        what.contains("\"Deployment Scaled Past 50 Replicas\""),
        "{what}"
    );
    assert!(what.contains("deployment_scaled_up.yml"), "{what}");
    assert!(what.contains("requestObject.spec.replicas"), "{what}");
    assert_eq!(blind[0]["severity"], "error");
    assert!(blind[0]["fix"]
        .as_str()
        .unwrap()
        .contains("{level: Request, verbs: [create, update], resources: [{group: \"apps\", resources: [deployments]}]}"));
    // With the bodies policy it sees what it needs.
    let (_, _, fs) = findings(&["--policy", BODIES, "--config", cfg.to_str().unwrap()]);
    assert!(!fs
        .iter()
        .any(|f| f["id"] == "blind-detection" && f["severity"] != "info"));
}

#[test]
fn an_invalid_policy_is_an_error_naming_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("bad.yaml");
    std::fs::write(
        &p,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Bogus\n",
    )
    .unwrap();
    let (code, _, fs) = findings(&["--policy", p.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    let f = fs
        .iter()
        .find(|f| f["id"] == "policy-invalid")
        .expect("policy-invalid");
    assert!(
        f["what"]
            .as_str()
            .unwrap()
            .contains("bad.yaml:4: rules[0].level: "),
        "{f}"
    );
    assert!(fs
        .iter()
        .any(|f| f["id"] == "not-checked" && f["section"] == "detections"));
}

#[test]
fn nothing_to_check_is_a_usage_error() {
    let out = vigil(&["readiness"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("nothing to check"));
}
