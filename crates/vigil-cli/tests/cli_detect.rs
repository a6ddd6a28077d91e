//! `vigil detect`, `vigil rules` and `vigil explain` as a user runs them.

mod common;

use common::{text, EXAMPLE, SCENARIO};
use std::process::{Command, Output};

fn vigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run vigil")
}

fn alerts(out: &Output) -> Vec<serde_json::Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

#[test]
fn the_example_attack_chain_is_detected_and_nothing_else() {
    let out = vigil(&["detect", EXAMPLE]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let alerts = alerts(&out);
    let mut titles: Vec<String> = alerts
        .iter()
        .map(|a| a["rule"]["title"].as_str().unwrap().to_string())
        .collect();
    titles.sort();
    titles.dedup();
    insta::assert_snapshot!("example_alert_titles", titles.join("\n"));
    // Only the attacker's and the unauthenticated client's requests alert: the routine traffic
    // of controllers, kubelets, probes and the kubectl user is quiet.
    for a in &alerts {
        let id = a["events"][0]["id"].as_str().unwrap();
        let line = a["events"][0]["line"].as_u64().unwrap();
        assert!(
            line >= 500,
            "alert on routine traffic at line {line} ({id}): {a}"
        );
    }
    insta::assert_snapshot!("example_alerts_jsonl", text(&out.stdout));
}

/// Rule id -> kind ("detection" or "correlation"), from `vigil rules list`.
fn rule_kinds() -> std::collections::HashMap<String, String> {
    let out = vigil(&["rules", "list", "--format", "jsonl"]);
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|r| {
            Some((
                r["id"].as_str()?.to_string(),
                r["kind"].as_str()?.to_string(),
            ))
        })
        .collect()
}

#[test]
fn alert_lines_follow_the_contract() {
    let out = vigil(&["detect", EXAMPLE]);
    let kinds = rule_kinds();
    let mut correlations = 0;
    for a in alerts(&out) {
        for key in ["id", "title", "level", "tags"] {
            assert!(a["rule"].get(key).is_some(), "rule.{key} missing: {a}");
        }
        assert!(a["time"].as_str().unwrap().ends_with('Z'));
        let kind = &kinds[a["rule"]["id"].as_str().unwrap()];
        if kind == "correlation" {
            correlations += 1;
            assert!(
                !a["group"].as_object().unwrap().is_empty(),
                "a correlation groups: {a}"
            );
            assert!(a["events"].as_array().unwrap().len() > 1, "{a}");
        } else {
            assert!(a["group"].as_object().unwrap().is_empty(), "{a}");
            assert_eq!(a["events"].as_array().unwrap().len(), 1, "{a}");
        }
        let ev = &a["events"][0];
        assert_eq!(ev["dataset"], "k8s.audit");
        assert_eq!(ev["file"], EXAMPLE);
        assert!(ev["line"].as_u64().unwrap() > 0 && ev["id"].is_string());
        assert!(a["matched"].is_object());
    }
    assert!(
        correlations >= 1,
        "the secrets enumeration across namespaces correlates"
    );
}

#[test]
fn a_request_seen_at_several_stages_alerts_once() {
    let out = vigil(&[
        "detect",
        "--no-default-rules",
        "--rules",
        "tests/fixtures/rules",
        "tests/fixtures/stages-audit.log",
    ]);
    let alerts = alerts(&out);
    assert_eq!(alerts.len(), 1, "{}", text(&out.stdout));
    assert_eq!(
        alerts[0]["events"][0]["line"], 1,
        "the first stage seen alerts"
    );
}

#[test]
fn fail_on_sets_the_exit_code() {
    assert_eq!(
        vigil(&["detect", "--fail-on", "high", EXAMPLE])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        vigil(&["detect", "--fail-on", "critical", EXAMPLE])
            .status
            .code(),
        Some(0)
    );
    let bad = vigil(&["detect", "--fail-on", "severe", EXAMPLE]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("--fail-on"));
}

#[test]
fn usage_errors_and_unreadable_input_exit_2() {
    assert_eq!(
        vigil(&["detect", "--no-default-rules", EXAMPLE])
            .status
            .code(),
        Some(2)
    );
    let missing = vigil(&["detect", "no/such/file.log"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("no/such/file.log"));
    // The cause is said once (the library error names it, anyhow's chain repeats it).
    assert_eq!(
        text(&missing.stderr)
            .matches("No such file or directory")
            .count(),
        1,
        "{}",
        text(&missing.stderr)
    );
}

#[test]
fn a_broken_rule_is_named_and_the_others_still_run() {
    let out = vigil(&["rules", "validate", "tests/fixtures/bad-rules"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("broken.yml:5:"), "{err}");
    assert!(err.contains("sometimes"), "{err}");
    assert!(err.contains("1 rules valid, 1 rejected"), "{err}");
}

#[test]
fn rules_test_runs_fixtures_and_fails_on_a_wrong_one() {
    let ok = vigil(&["rules", "test"]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
    assert!(text(&ok.stdout).contains(" 0 failed"));
    let user = vigil(&[
        "rules",
        "test",
        "--no-default-rules",
        "--rules",
        "tests/fixtures/rules",
    ]);
    assert_eq!(user.status.code(), Some(0), "{}", text(&user.stderr));
    assert!(text(&user.stdout).contains("2 passed, 0 failed"));
    let failing = vigil(&[
        "rules",
        "test",
        "--no-default-rules",
        "--rules",
        "tests/fixtures/rules-failing",
    ]);
    assert_eq!(failing.status.code(), Some(1));
    assert!(text(&failing.stderr).contains("nomatch-wrong.json: fired but should not"));
}

#[test]
fn explain_says_why() {
    let fixture = "tests/fixtures/rules/tests/exec_by_alice/nomatch-bob.json";
    let out = vigil(&[
        "explain",
        "--no-default-rules",
        "--rules",
        "tests/fixtures/rules",
        "--rule",
        "Alice Execs Into a Pod",
        fixture,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("NO MATCH") || s.contains("no match"), "{s}");
    assert!(s.contains("user.username") && s.contains("bob"), "{s}");
}

#[test]
fn detect_table_is_for_people() {
    let out = vigil(&["detect", "--format", "table", EXAMPLE]);
    let s = text(&out.stdout);
    assert!(s.starts_with("TIME"), "{s}");
    assert!(
        s.contains("Privileged Container Created") && s.contains("system:serviceaccount:shop:web")
    );
}

/// `vigil detect` with `--threads N` prints exactly what one thread prints: same alerts, same
/// order, same bytes (single files, several sources merged by event time, generated traffic
/// with correlations firing, table output), and the same summary on stderr.
#[test]
fn any_number_of_threads_gives_the_same_output() {
    let dir = tempfile::tempdir().unwrap();
    let generated = dir.path().join("audit.jsonl");
    let out = vigil(&["gen", "audit", "--events", "30000", "--seed", "3"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    std::fs::write(&generated, &out.stdout).unwrap();
    let generated = generated.to_str().unwrap();
    let scenario = SCENARIO;
    let mut cases: Vec<Vec<&str>> = vec![vec![EXAMPLE], vec![generated], scenario.to_vec()];
    cases.extend(scenario.iter().map(|f| vec![*f]));
    cases.push(vec!["--format", "table", EXAMPLE]);
    for case in cases {
        let run = |threads: &str| {
            let mut args = vec!["detect", "--threads", threads];
            args.extend(&case);
            let out = vigil(&args);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{case:?}: {}",
                text(&out.stderr)
            );
            out
        };
        let one = run("1");
        // (The scenario's auditd log alone raises nothing; everything else does.)
        assert!(
            !one.stdout.is_empty() || case.iter().any(|f| f.ends_with("/audit.log")),
            "{case:?} raises alerts"
        );
        for threads in ["2", "4"] {
            let many = run(threads);
            assert!(
                one.stdout == many.stdout,
                "{case:?}: --threads {threads} differs from --threads 1"
            );
            assert_eq!(text(&one.stderr), text(&many.stderr), "{case:?}");
        }
    }
}
