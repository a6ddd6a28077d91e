//! `vigil alerts` and `vigil incident open|list|show|note|phase|close` as a responder runs them,
//! on the committed multi-source scenario (`examples/scenario/`: an SSH brute force on a
//! bastion, a service-account token used from it, secrets enumerated, a privileged pod, exec,
//! a cluster-admin binding, SSH fan-out).

mod common;

use common::text;
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

const INPUTS: [&str; 4] = [
    "examples/scenario/auth.log",
    "examples/scenario/audit.log",
    "examples/scenario/conn.log",
    "examples/scenario/k8s-audit.jsonl",
];

/// The workspace root: inputs are named as in the README, so alert ids match `vigil detect`'s
/// documented runs (an alert on a log line without an id is identified by file and line).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn vigil_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
    c.args(args)
        .current_dir(root())
        .env_remove("VIGIL_DATA_DIR")
        .env_remove("VIGIL_ACTOR")
        .env("USER", "tester");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run vigil")
}

fn vigil(args: &[&str]) -> Output {
    vigil_env(args, &[])
}

fn ok(args: &[&str]) -> String {
    let out = vigil(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Exit 2 with the message on stderr.
fn refused(args: &[&str]) -> String {
    let out = vigil(args);
    assert_eq!(out.status.code(), Some(2), "{args:?} should be refused");
    assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
    text(&out.stderr)
}

fn store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["ingest", "--data-dir", dir.path().to_str().unwrap()];
    args.extend(INPUTS);
    let out = vigil(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    dir
}

fn jsonl(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

fn alerts(d: &str) -> Vec<Value> {
    jsonl(&ok(&["alerts", "--data-dir", d, "--format", "jsonl"]))
}

/// The id of the (first) alert of a rule.
fn alert_id(alerts: &[Value], title: &str) -> String {
    alerts
        .iter()
        .find(|a| a["rule"]["title"] == title)
        .unwrap_or_else(|| panic!("no alert {title:?}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Status (and incident) of every alert of a rule.
fn status_of(alerts: &[Value], title: &str) -> Vec<String> {
    alerts
        .iter()
        .filter(|a| a["rule"]["title"] == title)
        .map(|a| match a.get("incident") {
            Some(i) => format!("{} {}", a["status"].as_str().unwrap(), i.as_str().unwrap()),
            None => a["status"].as_str().unwrap().to_string(),
        })
        .collect()
}

/// Replaces the times of the test run (history, phases) with `<now>`; the scenario's event
/// times (2026-11-20) stay.
fn stable_times(s: &str) -> String {
    let b = s.as_bytes();
    let shape = |w: &[u8]| {
        w.len() == 20
            && w.iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'-',
                10 => *c == b'T',
                13 | 16 => *c == b':',
                19 => *c == b'Z',
                _ => c.is_ascii_digit(),
            })
    };
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if i + 20 <= b.len() && shape(&b[i..i + 20]) && !s[i..].starts_with("2026-11-20") {
            out.push_str("<now>               ");
            i += 20;
        } else {
            let c = s[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

#[test]
fn alerts_have_stable_ids_and_start_new() {
    let (a, b) = (store(), store());
    let first = alerts(a.path().to_str().unwrap());
    let second = alerts(b.path().to_str().unwrap());
    assert!(!first.is_empty());
    let ids = |v: &[Value]| -> Vec<String> {
        v.iter()
            .map(|a| a["id"].as_str().expect("every alert has an id").to_string())
            .collect()
    };
    assert_eq!(ids(&first), ids(&second), "ids differ between runs");
    for a in &first {
        assert_eq!(a["status"], "new", "{a}");
        assert!(a.get("incident").is_none(), "{a}");
        // The `vigil detect` alert contract is kept.
        for k in ["rule", "time", "group", "events", "matched"] {
            assert!(a.get(k).is_some(), "no {k}: {a}");
        }
    }
    let table = ok(&["alerts", "--data-dir", a.path().to_str().unwrap()]);
    insta::assert_snapshot!("alerts_table", table);
    // --since narrows by event time.
    let late = jsonl(&ok(&[
        "alerts",
        "--data-dir",
        a.path().to_str().unwrap(),
        "--format",
        "jsonl",
        "--since",
        "2026-11-20T10:02:30Z",
    ]));
    assert!(!late.is_empty() && late.len() < first.len());
    assert!(late
        .iter()
        .all(|a| a["time"].as_str().unwrap() >= "2026-11-20T10:02:30"));
}

#[test]
fn incident_lifecycle() {
    let dir = store();
    let d = dir.path().to_str().unwrap();
    let before = alerts(d);
    let token = alert_id(
        &before,
        "Service Account Token Used From a Host With an SSH Login",
    );
    let binding = alert_id(
        &before,
        "Binding to a Cluster-Admin Role Created or Changed",
    );

    let out = vigil(&[
        "incident",
        "open",
        "--data-dir",
        d,
        "--alert",
        &token,
        "--actor",
        "alice",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // The id is the only line on stdout.
    assert_eq!(text(&out.stdout), "INC-0001\n");

    let shown: Value = serde_json::from_str(&ok(&[
        "incident",
        "show",
        "--data-dir",
        d,
        "INC-0001",
        "--format",
        "json",
    ]))
    .unwrap();
    assert_eq!(
        shown["title"],
        "Service Account Token Used From a Host With an SSH Login"
    );
    assert_eq!(shown["phase"], "detection");
    assert_eq!(shown["opened_by"], "alice");
    let entities: Vec<String> = shown["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["kind"].as_str().unwrap(),
                e["value"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        entities,
        [
            "service_account system:serviceaccount:ci:deployer",
            "ip 10.0.0.5",
            "host 10.0.0.5"
        ]
    );
    // Alerts about the same service account and host within the hour are pulled in; the
    // spraying from 203.0.113.77 names none of them.
    let related: Vec<&str> = shown["related"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(related.contains(&binding.as_str()), "{related:?}");
    let spraying = alert_id(&before, "SSH Password Spraying From One Address");
    assert!(!related.contains(&spraying.as_str()));
    // The timeline crosses sources, is in time order and holds the alert itself.
    let tl = shown["timeline"].as_array().unwrap();
    let times: Vec<_> = tl
        .iter()
        .map(|e| chrono::DateTime::parse_from_rfc3339(e["time"].as_str().unwrap()).unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    for ds in ["k8s.audit", "linux.auth", "zeek.conn", "vigil.alert"] {
        assert!(tl.iter().any(|e| e["dataset"] == ds), "no {ds} in timeline");
    }
    assert!(
        tl.iter()
            .any(|e| e["summary"]
                == "[high] Service Account Token Used From a Host With an SSH Login")
    );

    // Alert statuses follow.
    let now = alerts(d);
    assert_eq!(
        status_of(
            &now,
            "Service Account Token Used From a Host With an SSH Login"
        ),
        ["incident INC-0001"]
    );
    assert_eq!(
        status_of(&now, "Binding to a Cluster-Admin Role Created or Changed"),
        ["incident INC-0001"]
    );
    assert_eq!(
        status_of(&now, "SSH Password Spraying From One Address"),
        ["new"]
    );

    // Notes and phases, with their actors; phases only move forward.
    ok(&[
        "incident",
        "note",
        "--data-dir",
        d,
        "INC-0001",
        "--actor",
        "bob",
        "token",
        "from",
        "the",
        "CI",
        "runner",
    ]);
    let out = vigil_env(
        &[
            "incident",
            "phase",
            "--data-dir",
            d,
            "inc-0001",
            "containment",
            "--note",
            "SA token revoked, binding deleted",
        ],
        &[("VIGIL_ACTOR", "carol")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let err = refused(&[
        "incident",
        "phase",
        "--data-dir",
        d,
        "INC-0001",
        "detection",
    ]);
    assert!(
        err.contains("INC-0001 is in containment") && err.contains("only move forward"),
        "{err}"
    );
    let err = refused(&["incident", "phase", "--data-dir", d, "INC-0001", "sideways"]);
    assert!(err.contains("unknown phase \"sideways\""), "{err}");
    ok(&[
        "incident",
        "phase",
        "--data-dir",
        d,
        "INC-0001",
        "eradication",
    ]);
    ok(&[
        "incident",
        "close",
        "--data-dir",
        d,
        "INC-0001",
        "--note",
        "node rebuilt",
    ]);
    let err = refused(&["incident", "phase", "--data-dir", d, "INC-0001", "recovery"]);
    assert!(err.contains("INC-0001 is closed"), "{err}");
    let err = refused(&["incident", "note", "--data-dir", d, "INC-0001", "late"]);
    assert!(err.contains("INC-0001 is closed"), "{err}");
    assert_eq!(
        status_of(
            &alerts(d),
            "Service Account Token Used From a Host With an SSH Login"
        ),
        ["closed INC-0001"]
    );

    let shown: Value = serde_json::from_str(&ok(&[
        "incident",
        "show",
        "--data-dir",
        d,
        "INC-0001",
        "--format",
        "json",
    ]))
    .unwrap();
    let history: Vec<(String, String)> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            assert!(
                chrono::DateTime::parse_from_rfc3339(h["time"].as_str().unwrap()).is_ok(),
                "{h}"
            );
            (
                h["actor"].as_str().unwrap().to_string(),
                h["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expect = [
        ("alice", "opened"),
        ("bob", "note"),
        ("carol", "phase"),
        ("tester", "phase"),
        ("tester", "closed"),
    ];
    assert_eq!(history, expect.map(|(a, b)| (a.to_string(), b.to_string())));
    let notes: Vec<(String, String)> = shown["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["phase"].as_str().unwrap().to_string(),
                n["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        notes,
        [
            ("detection", "token from the CI runner"),
            ("detection", "SA token revoked, binding deleted"),
            ("eradication", "node rebuilt"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let table = ok(&["incident", "show", "--data-dir", d, "INC-0001"]);
    insta::assert_snapshot!("show_table", stable_times(&table));

    // A second incident from a title only; list shows both.
    let out = ok(&[
        "incident",
        "open",
        "--data-dir",
        d,
        "--title",
        "Reported by phone",
        "--actor",
        "dave",
    ]);
    assert_eq!(out, "INC-0002\n");
    let list = jsonl(&ok(&[
        "incident",
        "list",
        "--data-dir",
        d,
        "--format",
        "jsonl",
    ]));
    let rows: Vec<String> = list
        .iter()
        .map(|i| format!("{} {} {}", i["id"], i["phase"], i["title"]))
        .collect();
    assert_eq!(
        rows,
        [
            r#""INC-0001" "closed" "Service Account Token Used From a Host With an SSH Login""#,
            r#""INC-0002" "detection" "Reported by phone""#,
        ]
    );
    let table = ok(&["incident", "list", "--data-dir", d]);
    insta::assert_snapshot!("list_table", stable_times(&table));
}

#[test]
fn window_and_bad_input() {
    let dir = store();
    let d = dir.path().to_str().unwrap();
    let all = alerts(d);
    let pod = alert_id(&all, "Privileged Container Created");
    let related = |window: &str| -> usize {
        let id = ok(&[
            "incident",
            "open",
            "--data-dir",
            d,
            "--alert",
            &pod,
            "--window",
            window,
        ]);
        let shown: Value = serde_json::from_str(&ok(&[
            "incident",
            "show",
            "--data-dir",
            d,
            id.trim(),
            "--format",
            "json",
        ]))
        .unwrap();
        assert_eq!(shown["window_secs"], if window == "1s" { 1 } else { 7200 });
        shown["related"].as_array().unwrap().len()
    };
    // The same pod creation, seen by three rules at the same instant: related even at 1s; a
    // wider window pulls in the enumeration before and the binding after.
    let narrow = related("1s");
    let wide = related("2h");
    assert!(narrow >= 3 && wide > narrow, "{narrow} {wide}");

    let err = refused(&[
        "incident",
        "open",
        "--data-dir",
        d,
        "--alert",
        &pod,
        "--alert",
        "0000nosuchalert",
    ]);
    assert!(
        err.contains("no alert with id \"0000nosuchalert\""),
        "{err}"
    );
    let err = refused(&[
        "incident",
        "open",
        "--data-dir",
        d,
        "--alert",
        &pod,
        "--window",
        "an hour",
    ]);
    assert!(err.contains("--window \"an hour\""), "{err}");
    let err = refused(&["incident", "show", "--data-dir", d, "INC-0042"]);
    assert!(err.contains("no incident \"INC-0042\""), "{err}");
    // Nothing refused was recorded.
    let list = jsonl(&ok(&[
        "incident",
        "list",
        "--data-dir",
        d,
        "--format",
        "jsonl",
    ]));
    assert_eq!(list.len(), 2);

    // A capped timeline keeps what is nearest the alert, and says so in the history.
    let out = vigil(&[
        "incident",
        "open",
        "--data-dir",
        d,
        "--alert",
        &pod,
        "--max-timeline",
        "10",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("capped at 10"));
    let shown: Value = serde_json::from_str(&ok(&[
        "incident",
        "show",
        "--data-dir",
        d,
        "INC-0003",
        "--format",
        "json",
    ]))
    .unwrap();
    assert!(shown["notes"][0]["text"]
        .as_str()
        .unwrap()
        .starts_with("timeline capped at the 10 events nearest the first alert"));
    let tl = shown["timeline"].as_array().unwrap();
    assert!(tl.iter().any(|e| e["summary"]
        == "system:serviceaccount:ci:deployer (10.0.0.5): create pods ci/node-debug (201)"));
    // The events kept are those nearest the alert (10:02:30), not the window's first (10:00).
    assert!(tl
        .iter()
        .filter(|e| e["kind"] == "event")
        .all(|e| e["time"].as_str().unwrap() > "2026-11-20T10:02"));
    // Multiple alerts: the title comes from the highest level one.
    let low = alert_id(&all, "RBAC Role or Binding Created, Modified or Deleted");
    let high = alert_id(&all, "Binding to a Cluster-Admin Role Created or Changed");
    let id = ok(&[
        "incident",
        "open",
        "--data-dir",
        d,
        "--alert",
        &low,
        "--alert",
        &high,
    ]);
    let shown: Value = serde_json::from_str(&ok(&[
        "incident",
        "show",
        "--data-dir",
        d,
        id.trim(),
        "--format",
        "json",
    ]))
    .unwrap();
    assert_eq!(
        shown["title"],
        "Binding to a Cluster-Admin Role Created or Changed (and 1 more alert)"
    );
    assert_eq!(shown["alerts"], serde_json::json!([low, high]));
}
