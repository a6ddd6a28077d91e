//! `vigil demo`: the built-in attack through the `vigil serve` pipeline, its alerts, the
//! incident, its report and runbook; and `--keep DIR` leaves a store the other commands read.

mod common;

use common::{text, vigil};
use std::process::Command;

use serde_json::Value;

/// The text of section `n` (`== n. Title ==` up to the next section).
fn section(out: &str, n: u32) -> String {
    let start = out
        .find(&format!("\n== {n}. "))
        .unwrap_or_else(|| panic!("no section {n} in:\n{out}"));
    let rest = &out[start + 1..];
    let body_start = rest.find('\n').unwrap() + 1;
    let end = rest[body_start..]
        .find("\n== ")
        .map_or(rest.len(), |e| body_start + e);
    rest[body_start..end].trim().to_string()
}

#[test]
fn demo_prints_alerts_for_every_attack_step_and_opens_an_incident() {
    let out = vigil(&["demo"]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );

    // Every source was read through the pipeline, nothing rejected.
    let sources = section(&stdout, 1);
    for (file, n) in [
        ("auth.log", "57"),
        ("audit.log", "10"),
        ("conn.log", "83"),
        ("k8s-audit.jsonl", "71"),
    ] {
        let row = sources
            .lines()
            .find(|l| l.starts_with(file))
            .unwrap_or_else(|| panic!("{file} missing:\n{sources}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        let k = cols.len();
        assert_eq!(&cols[k - 3..], &[n, n, "0"], "{row}");
    }

    // The alerts table, as `vigil alerts` prints it.
    let alerts = section(&stdout, 2);
    assert!(alerts.starts_with("TIME"), "{alerts}");
    for rule in [
        "SSH Brute Force From One Address",
        "SSH Login Succeeds After a Brute Force From the Same Address",
        "Service Account Token Used From a Host With an SSH Login",
        "Secrets Enumerated Across Namespaces",
        "Privileged Container Created",
        "Shell or Network Tool Executed in a Pod Container",
        "Binding to a Cluster-Admin Role Created or Changed",
    ] {
        assert!(alerts.contains(rule), "{rule} not alerted:\n{alerts}");
    }
    // The decoys stay quiet: the first alert is the spraying, not alice's typos.
    assert_eq!(alerts.lines().count(), 1 + 37, "{alerts}");

    // Each step caught, in order; the table is the same on every run.
    let steps = section(&stdout, 3);
    assert!(!steps.contains("MISSED"), "{steps}");
    insta::assert_snapshot!("steps", steps);

    // The incident, opened from the high-level alerts, with the attacker's entities.
    let inc = section(&stdout, 4);
    assert!(
        stdout.contains("== 4. Incident INC-0001 (vigil incident open --alert ... for the 10 high-level alerts) =="),
        "{stdout}"
    );
    for entity in [
        "system:serviceaccount:ci:deployer",
        "203.0.113.77",
        "10.0.0.5",
        "ci/node-debug",
    ] {
        assert!(inc.contains(entity), "{entity} missing:\n{inc}");
    }

    // Its report (Markdown) and runbook.
    let report = section(&stdout, 5);
    assert!(
        report.starts_with("# Incident report INC-0001: "),
        "report:\n{report}"
    );
    for part in ["## Timeline", "## Root cause", "Time to detect: "] {
        assert!(report.contains(part), "{part} missing:\n{report}");
    }
    assert!(report.contains("create clusterrolebindings"), "{report}");
    let runbook = section(&stdout, 6);
    assert!(runbook.starts_with("# Runbook for INC-0001"), "{runbook}");
    // Undo the persistence, and cut the attacker off.
    assert!(
        runbook.contains(
            "kubectl delete clusterrolebindings.rbac.authorization.k8s.io ci-deployer-admin"
        ),
        "{runbook}"
    );
    assert!(runbook.contains("203.0.113.77 -j DROP"), "{runbook}");
}

#[test]
fn keep_leaves_a_store_the_other_commands_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let d = dir.to_str().unwrap();
    let out = vigil(&["demo", "--keep", d]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("vigil alerts --data-dir {d}")));

    // The alerts are stored, with stable ids, and the high ones are in the incident.
    let out = vigil(&["alerts", "--data-dir", d, "--format", "jsonl"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let alerts: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(alerts.len(), 37);
    for a in alerts.iter().filter(|a| a["rule"]["level"] == "high") {
        assert_eq!(a["status"], "incident", "{a}");
        assert_eq!(a["incident"], "INC-0001", "{a}");
    }
    assert_eq!(
        alerts
            .iter()
            .filter(|a| a["rule"]["level"] == "high")
            .count(),
        10
    );

    // The store is intact and searchable.
    let out = vigil(&["verify", "--data-dir", d]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let out = vigil(&[
        "search",
        "--data-dir",
        d,
        "--format",
        "jsonl",
        "resource:secrets AND verb:list",
    ]);
    assert_eq!(text(&out.stdout).lines().count(), 6);

    // A second demo does not write into a used directory.
    let out = vigil(&["demo", "--keep", d]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not empty"));
}

#[test]
fn a_store_that_refuses_writes_fails_the_demo_instead_of_hiding_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["demo"])
        .env("VIGIL_TEST_DISK_BYTES", "3000")
        .output()
        .expect("run vigil");
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("the store refused writes"), "{err}");
    assert!(!text(&out.stdout).contains("== 2. Alerts"));
}
