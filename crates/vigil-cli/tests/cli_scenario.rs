//! The committed multi-source scenario (`examples/scenario/`: auth.log, auditd, Zeek conn,
//! kube-apiserver audit) through the real `vigil detect`: the attack chain raises exactly the
//! expected correlation alerts, each pointing at the right files and lines, and the decoys
//! raise nothing.

mod common;

use common::text;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output};

use serde_json::{json, Value};

const AUTH: &str = "../../examples/scenario/auth.log";
const AUDITD: &str = "../../examples/scenario/audit.log";
const CONN: &str = "../../examples/scenario/conn.log";
const K8S: &str = "../../examples/scenario/k8s-audit.jsonl";

fn vigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run vigil")
}

fn lines_of(path: &str) -> Vec<String> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(p)
        .expect("scenario file")
        .lines()
        .map(str::to_string)
        .collect()
}

/// The text of the line an alert's event points at.
fn line_at(files: &BTreeMap<&str, Vec<String>>, ev: &Value) -> String {
    let file = ev["file"].as_str().unwrap();
    let line = ev["line"].as_u64().unwrap() as usize;
    assert!(line > 0, "no line: {ev}");
    files[file][line - 1].clone()
}

struct Run {
    alerts: Vec<Value>,
    correlation_ids: BTreeSet<String>,
    files: BTreeMap<&'static str, Vec<String>>,
    stderr: String,
}

fn run() -> Run {
    let out = vigil(&["detect", AUTH, AUDITD, CONN, K8S]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let alerts: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let list = vigil(&["rules", "list", "--format", "jsonl"]);
    let correlation_ids = text(&list.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["kind"] == "correlation")
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let files = [AUTH, AUDITD, CONN, K8S]
        .into_iter()
        .map(|f| (f, lines_of(f)))
        .collect();
    Run {
        alerts,
        correlation_ids,
        files,
        stderr,
    }
}

fn correlation_alerts(r: &Run) -> Vec<&Value> {
    r.alerts
        .iter()
        .filter(|a| {
            r.correlation_ids
                .contains(a["rule"]["id"].as_str().unwrap())
        })
        .collect()
}

/// `(file, line)` of every contributing event.
fn places(a: &Value) -> Vec<(String, u64)> {
    a["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let f = e["file"].as_str().unwrap();
            let short = f.rsplit('/').next().unwrap().to_string();
            (short, e["line"].as_u64().unwrap())
        })
        .collect()
}

fn find<'a>(alerts: &[&'a Value], name: &str) -> &'a Value {
    let hits: Vec<&&Value> = alerts
        .iter()
        .filter(|a| a["rule"]["title"].as_str().unwrap() == name)
        .collect();
    assert_eq!(hits.len(), 1, "{name}: {hits:#?}");
    hits[0]
}

#[test]
fn the_attack_chain_raises_exactly_the_expected_correlations() {
    let r = run();
    let corr = correlation_alerts(&r);
    let got: BTreeSet<(String, String)> = corr
        .iter()
        .map(|a| {
            (
                a["rule"]["title"].as_str().unwrap().to_string(),
                a["group"].to_string(),
            )
        })
        .collect();
    let attacker = json!({"source.ip": "203.0.113.77"}).to_string();
    let bastion = json!({"host": "10.0.0.5"}).to_string();
    let deployer = json!({"user.username": "system:serviceaccount:ci:deployer"}).to_string();
    let expected: BTreeSet<(String, String)> = [
        ("SSH Brute Force From One Address", attacker.clone()),
        ("SSH Password Spraying From One Address", attacker.clone()),
        (
            "SSH Login Succeeds After a Brute Force From the Same Address",
            attacker,
        ),
        (
            "Host Reaches the Kubernetes API Right After an SSH Login",
            bastion.clone(),
        ),
        (
            "Service Account Token Used From a Host With an SSH Login",
            bastion,
        ),
        (
            "SSH Fan-Out From One Internal Host",
            json!({"SourceIp": "10.0.0.5"}).to_string(),
        ),
        ("Secrets Enumerated Across Namespaces", deployer.clone()),
        (
            "Burst of Forbidden Kubernetes API Requests",
            deployer.clone(),
        ),
        ("Commands Executed in Pods of Several Namespaces", deployer),
    ]
    .into_iter()
    .map(|(t, g)| (t.to_string(), g))
    .collect();
    assert_eq!(got, expected);
    assert_eq!(corr.len(), expected.len(), "one alert each");
    // Nothing was lost on the way: no late, untimed or evicted matches.
    assert!(!r.stderr.contains("correlations:"), "{}", r.stderr);
}

#[test]
fn correlation_alerts_point_at_their_events() {
    let r = run();
    let corr = correlation_alerts(&r);
    // Every contributing event is a real line of one of the inputs, and carries that line's id.
    for a in &corr {
        assert!(!a["events"].as_array().unwrap().is_empty(), "{a}");
        for e in a["events"].as_array().unwrap() {
            let line = line_at(&r.files, e);
            if let Some(id) = e["id"].as_str() {
                assert!(line.contains(id), "{id} is not on {e}: {line}");
            }
            let dataset = e["dataset"].as_str().unwrap();
            let file = e["file"].as_str().unwrap();
            let want = match dataset {
                "linux.auth" => AUTH,
                "zeek.conn" => CONN,
                "k8s.audit" => K8S,
                other => panic!("unexpected dataset {other}"),
            };
            assert_eq!(file, want, "{e}");
        }
    }
    let at = |a: &Value, i: usize| line_at(&r.files, &a["events"][i]);

    // The brute force: the first ten failures of the attacker (alice's two are not among them).
    let bf = find(&corr, "SSH Brute Force From One Address");
    let expected_failures: Vec<(String, u64)> = [6, 8, 9, 11, 13, 15, 17, 19, 20, 21]
        .into_iter()
        .map(|l| ("auth.log".to_string(), l))
        .collect();
    assert_eq!(places(bf), expected_failures);
    assert_eq!(bf["matched"]["count"], 10);
    for i in 0..10 {
        let line = at(bf, i);
        assert!(
            line.contains("Failed password") && line.contains("203.0.113.77"),
            "{line}"
        );
    }
    // Spraying: the failures that brought the fifth user name.
    let spray = find(&corr, "SSH Password Spraying From One Address");
    assert_eq!(
        spray["matched"]["user.name"],
        json!(["admin", "oracle", "root", "test", "ubuntu"])
    );
    assert_eq!(places(spray).len(), 5);
    // The login after the brute force: the failures, then the accepted login on line 54.
    let after = find(
        &corr,
        "SSH Login Succeeds After a Brute Force From the Same Address",
    );
    let mut expected = expected_failures.clone();
    expected.push(("auth.log".into(), 54));
    assert_eq!(places(after), expected);
    assert!(at(after, 10).contains("Accepted password for ubuntu from 203.0.113.77"));
    assert_eq!(after["time"], "2026-11-20T10:01:15Z");
    // Login on the bastion, then its first connection to the API server (Zeek), 35 s later.
    let api = find(
        &corr,
        "Host Reaches the Kubernetes API Right After an SSH Login",
    );
    assert_eq!(
        places(api),
        [("auth.log".to_string(), 54), ("conn.log".to_string(), 62)]
    );
    assert!(at(api, 1).contains("10.0.0.5\t54000\t10.0.0.1\t6443"));
    // Login on the bastion, then the deployer token's first request from it.
    let sa = find(
        &corr,
        "Service Account Token Used From a Host With an SSH Login",
    );
    assert_eq!(
        places(sa),
        [
            ("auth.log".to_string(), 54),
            ("k8s-audit.jsonl".to_string(), 27)
        ]
    );
    assert!(at(sa, 1).contains("system:serviceaccount:ci:deployer"));
    // The SSH fan-out: ten distinct internal hosts, from the Zeek log.
    let fan = find(&corr, "SSH Fan-Out From One Internal Host");
    assert_eq!(
        places(fan),
        (72..82)
            .map(|l| ("conn.log".to_string(), l))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        fan["matched"]["DestinationIp"].as_array().unwrap().len(),
        10
    );
    // Kubernetes: secrets in four namespaces (two denied, two allowed), eight denials, three
    // namespaces exec'ed into.
    let secrets = find(&corr, "Secrets Enumerated Across Namespaces");
    assert_eq!(
        secrets["matched"]["objectRef.namespace"],
        json!(["default", "kube-system", "payments", "shop"])
    );
    assert_eq!(
        places(secrets),
        (28..32)
            .map(|l| ("k8s-audit.jsonl".to_string(), l))
            .collect::<Vec<_>>()
    );
    let denied = find(&corr, "Burst of Forbidden Kubernetes API Requests");
    assert_eq!(denied["matched"]["count"], 8);
    for i in 0..8 {
        assert!(at(denied, i).contains("\"code\":403"), "{}", at(denied, i));
    }
    let execs = find(&corr, "Commands Executed in Pods of Several Namespaces");
    assert_eq!(
        execs["matched"]["objectRef.namespace"],
        json!(["ci", "payments", "shop"])
    );
    assert_eq!(
        places(execs),
        [50, 51, 52]
            .map(|l| ("k8s-audit.jsonl".to_string(), l))
            .to_vec()
    );
}

#[test]
fn decoys_raise_nothing() {
    let r = run();
    // The decoys: the admin alice (two failed SSH logins, then a success, then kubectl), the
    // monitoring host scraping port 9100 on the same hosts the attacker reaches, cert-manager
    // reading its own secret, and the scheduler renewing its lease.
    let decoy = |file: &str, line: &str| match file {
        AUTH => line.contains("alice"),
        CONN => line.contains("\t10.0.0.9\t") || line.contains("198.51.100.10"),
        K8S => {
            line.contains("cert-manager")
                || line.contains("system:kube-scheduler")
                || line.contains("alice@example.com")
        }
        _ => false,
    };
    let mut decoy_lines = 0;
    for (file, lines) in &r.files {
        decoy_lines += lines.iter().filter(|l| decoy(file, l)).count();
    }
    assert!(
        decoy_lines > 40,
        "the scenario keeps its decoys ({decoy_lines})"
    );
    for a in &r.alerts {
        for e in a["events"].as_array().unwrap() {
            let file = e["file"].as_str().unwrap();
            let line = line_at(&r.files, e);
            assert!(
                !decoy(file, &line),
                "{} on a decoy: {line}",
                a["rule"]["title"]
            );
        }
    }
    // And no correlation fires for them in any other way.
    for a in correlation_alerts(&r) {
        let g = a["group"].to_string();
        for who in [
            "alice",
            "10.0.0.9",
            "cert-manager",
            "kube-scheduler",
            "198.51.100.10",
        ] {
            assert!(!g.contains(who), "{g}");
        }
    }
}

#[test]
fn correlation_alerts_snapshot() {
    let r = run();
    let mut corr: Vec<String> = correlation_alerts(&r)
        .iter()
        .map(|a| serde_json::to_string(a).unwrap())
        .collect();
    corr.sort();
    insta::assert_snapshot!("scenario_correlation_alerts", corr.join("\n"));
}
