//! `vigil ingest`, `search`, `timeline`, `report`, `verify` and `stats` as a user runs them, on
//! a small committed fixture (`tests/fixtures/store/`: Kubernetes audit with an attack chain, a
//! duplicate delivery and a Secret read with its data; an auth.log of the same morning).

mod common;

use common::{ok, text, vigil};
use std::path::Path;
use std::process::{Command, Stdio};

const AUDIT: &str = "tests/fixtures/store/audit.jsonl";
const AUTH: &str = "tests/fixtures/store/auth.log";

/// A data directory with the fixture ingested.
fn store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = vigil(&["ingest", "--data-dir", d, "--year", "2026", AUDIT, AUTH]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("22 events read, 0 rejected; 21 events stored, 1 duplicates skipped"),
        "{err}"
    );
    dir
}

/// JSON lines without the receive time (the time of the test run).
fn stable_jsonl(s: &str) -> String {
    s.lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
            if let Some(store) = v.get_mut("store").and_then(|s| s.as_object_mut()) {
                store.remove("received");
                store.insert("source".into(), "<fixture>".into());
            }
            serde_json::to_string(&v).unwrap()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn search_golden() {
    let dir = store();
    let d = dir.path().to_str().unwrap();
    let out = ok(&[
        "search",
        "--data-dir",
        d,
        "--oldest-first",
        "user.name:alice@example.com AND verb:get",
    ]);
    insta::assert_snapshot!("search_alice_get_jsonl", stable_jsonl(&out));
    // The original event is printed byte for byte as it was received.
    let first_line = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(AUDIT))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert!(out.contains(&format!("\"event\":{first_line},")), "{out}");
    let cases = [
        ("search_cidr", "source.ip:198.51.100.0/24"),
        ("search_phrase", "\"db-password\""),
        (
            "search_boolean",
            "verb:(create OR patch) AND NOT user.name:bob*",
        ),
        (
            "search_range",
            "code:[400 TO 499] OR @timestamp:[2026-11-20T09:08:00Z TO *]",
        ),
        ("search_everything", "*"),
    ];
    for (name, q) in cases {
        let out = ok(&[
            "search",
            "--data-dir",
            d,
            "--format",
            "table",
            "--limit",
            "0",
            q,
        ]);
        insta::assert_snapshot!(name, out);
    }
    let out = ok(&[
        "search",
        "--data-dir",
        d,
        "--format",
        "table",
        "--limit",
        "2",
        "*",
    ]);
    assert_eq!(out.lines().count(), 3, "{out}");
    let out = ok(&[
        "search",
        "--data-dir",
        d,
        "--format",
        "table",
        "--since",
        "2026-11-20T09:05:00Z",
        "--until",
        "2026-11-20T09:06:00Z",
        "*",
    ]);
    assert_eq!(out.lines().count(), 3, "{out}");
    let bad = vigil(&["search", "--data-dir", d, "user.name:(alice"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("expected )"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn timeline_golden() {
    let dir = store();
    let d = dir.path().to_str().unwrap();
    let cases: [(&str, &[&str]); 5] = [
        (
            "timeline_user",
            &["--user", "system:serviceaccount:shop:web"],
        ),
        ("timeline_ip_across_sources", &["--ip", "198.51.100.23"]),
        ("timeline_pod", &["--pod", "shop/web-1"]),
        ("timeline_node", &["--node", "node-1"]),
        ("timeline_host", &["--host", "node-2"]),
    ];
    for (name, flags) in cases {
        let mut args = vec!["timeline", "--data-dir", d];
        args.extend_from_slice(flags);
        insta::assert_snapshot!(name, ok(&args));
    }
    let jsonl = ok(&[
        "timeline",
        "--data-dir",
        d,
        "--user",
        "bob@example.com",
        "--format",
        "jsonl",
    ]);
    let kinds: Vec<String> = jsonl
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(kinds.contains(&"alert".to_string()) && kinds.contains(&"event".to_string()));
    let times: Vec<String> = jsonl
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["@timestamp"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "time order");
    let none = vigil(&["timeline", "--data-dir", d]);
    assert_eq!(none.status.code(), Some(2), "an entity is required");
}

#[test]
fn report_golden() {
    let dir = store();
    let d = dir.path().to_str().unwrap();
    for kind in [
        "secrets-access",
        "exec-sessions",
        "rbac-changes",
        "impersonation",
        "anonymous",
        "audit-config-changes",
    ] {
        insta::assert_snapshot!(
            format!("report_{kind}"),
            ok(&["report", "--data-dir", d, kind])
        );
    }
    let jsonl = ok(&[
        "report",
        "--data-dir",
        d,
        "exec-sessions",
        "--format",
        "jsonl",
    ]);
    let first: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(first["command"], "sh");
    assert_eq!(first["result"], "101");
}

#[test]
fn secrets_are_redacted_and_say_so() {
    let dir = store();
    let d = dir.path().to_str().unwrap();
    let out = ok(&["search", "--data-dir", d, "objectRef.name:db-password"]);
    assert!(!out.contains("czNjcjN0LWh1bnRlcjI="), "{out}");
    let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(
        v["event"]["responseObject"]["data"]["password"],
        "vigil:redacted"
    );
    assert_eq!(v["fields"]["vigil"]["redacted"][0], "responseObject.data");
    assert_eq!(v["store"]["redacted"], true);
}

#[test]
fn ingest_twice_stores_once() {
    let dir = store();
    let d = dir.path().to_str().unwrap();
    let out = vigil(&["ingest", "--data-dir", d, AUDIT]);
    let err = text(&out.stderr);
    assert!(
        err.contains("0 events stored, 18 duplicates skipped"),
        "{err}"
    );
    assert!(
        err.contains("(0 stored)"),
        "alerts are not stored twice: {err}"
    );
    let stats = ok(&["stats", "--data-dir", d, "--format", "jsonl"]);
    let total: serde_json::Value = serde_json::from_str(stats.lines().last().unwrap()).unwrap();
    assert_eq!(total["total"]["events"], 21 + 17, "{stats}");
    let table = ok(&["stats", "--data-dir", d]);
    assert!(table.contains("k8s.audit    2026-11-20  17"), "{table}");
    assert!(table.contains("linux.auth   2026-11-20  4"), "{table}");
}

#[test]
fn verify_passes_then_names_the_edit() {
    let dir = store();
    let d = dir.path().to_str().unwrap();
    let out = ok(&["verify", "--data-dir", d]);
    assert!(
        out.starts_with("intact: 3 partitions, 3 segments, 38 records"),
        "{out}"
    );
    let key = ok(&["verify", "--data-dir", d, "--export-public-key"]);
    assert_eq!(key.trim().len(), 64);
    ok(&["verify", "--data-dir", d, "--public-key", key.trim()]);
    let seg = dir.path().join("journal/k8s.audit/2026-11-20/000001.seg");
    let mut bytes = std::fs::read(&seg).unwrap();
    let n = bytes.len();
    bytes[n - 20] ^= 1;
    std::fs::write(&seg, bytes).unwrap();
    let out = vigil(&["verify", "--data-dir", d]);
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out.stdout);
    assert!(
        report.starts_with("FAIL k8s.audit/2026-11-20: segment journal/k8s.audit/2026-11-20/000001.seg: record 0: block 0"),
        "{report}"
    );
    let other = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";
    let out = vigil(&["verify", "--data-dir", d, "--public-key", other]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn disk_full_stops_ingest_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["ingest", "--data-dir", d, AUDIT])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("VIGIL_TEST_DISK_BYTES", "600")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("disk full writing"), "{err}");
    assert!(err.contains("ingest stopped"), "{err}");
    // Nothing half-written: the store verifies and takes the input again.
    ok(&["verify", "--data-dir", d]);
    let out = vigil(&["ingest", "--data-dir", d, AUDIT]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    ok(&["verify", "--data-dir", d]);
}

/// The writer is killed mid-ingest (SIGKILL) on a large generated input: what it stored is
/// whole and verifiable after recovery, and ingesting the same input again completes it
/// without storing anything twice.
#[test]
fn a_killed_ingest_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.jsonl");
    let data = dir.path().join("data");
    let gen = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["gen", "audit", "--events", "60000", "--seed", "7"])
        .stdout(std::fs::File::create(&input).unwrap())
        .status()
        .unwrap();
    assert!(gen.success());
    let (input, d) = (input.to_str().unwrap(), data.to_str().unwrap());
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "ingest",
            "--no-detect",
            "--batch",
            "2000",
            "--data-dir",
            d,
            input,
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill once a few batches are acknowledged (signed checkpoints written), well before
    // the end, most likely in the middle of the next batch.
    let ckpts = data.join("checkpoints.log");
    let start = std::time::Instant::now();
    while std::fs::metadata(&ckpts).map(|m| m.len()).unwrap_or(0) < 3_000 {
        assert!(start.elapsed().as_secs() < 120, "ingest made no progress");
        if child.try_wait().unwrap().is_some() {
            panic!("ingest finished before it could be killed; use a bigger input");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let stored = |d: &str| -> u64 {
        let stats = ok(&["stats", "--data-dir", d, "--format", "jsonl"]);
        let total: serde_json::Value = serde_json::from_str(stats.lines().last().unwrap()).unwrap();
        total["total"]["events"].as_u64().unwrap()
    };
    let before = stored(d);
    assert!(before > 0 && before < 60_000, "{before}");
    // Everything served reads back (search scans what the index does not have yet).
    let all = ok(&[
        "search",
        "--data-dir",
        d,
        "--limit",
        "0",
        "--format",
        "table",
        "*",
    ]);
    assert_eq!(all.lines().count() as u64, before + 1);
    // Recovery and the rest of the input.
    let out = vigil(&["ingest", "--no-detect", "--data-dir", d, input]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!(
            "{} events stored, {before} duplicates skipped",
            60_000 - before
        )),
        "{err}"
    );
    assert_eq!(stored(d), 60_000);
    ok(&["verify", "--data-dir", d]);
}
