//! Inputs beyond the built-in formats: generic JSON lines mapped to ECS by a mapping file.

use std::process::{Command, Output};

fn vigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run vigil")
}

#[test]
fn json_lines_with_a_mapping_file_are_normalized_stored_and_searchable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let mapping = "tests/fixtures/json/vpn.yaml";
    let ingest = vigil(&[
        "ingest",
        "--data-dir",
        data,
        "--mapping",
        mapping,
        "tests/fixtures/json/vpn.jsonl",
    ]);
    assert_eq!(
        ingest.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ingest.stderr)
    );
    let err = String::from_utf8_lossy(&ingest.stderr);
    assert!(
        err.contains("vpn.jsonl: line 2"),
        "the bad line is named: {err}"
    );
    let search = vigil(&[
        "search",
        "--data-dir",
        data,
        "user.name:mallory AND source.ip:203.0.113.0/24",
    ]);
    let out = String::from_utf8_lossy(&search.stdout);
    let hits: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(hits.len(), 2, "{out}");
    for h in &hits {
        assert_eq!(h["dataset"], "vpn.auth");
        assert_eq!(h["fields"]["event"]["action"], "login");
        assert_eq!(h["fields"]["account"], "mallory", "native fields are kept");
    }
}

#[test]
fn a_bad_mapping_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "dataset: x\nfeilds: {}\n").unwrap();
    let out = vigil(&[
        "detect",
        "--mapping",
        bad.to_str().unwrap(),
        "tests/fixtures/json/vpn.jsonl",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml") && err.contains("feilds"), "{err}");
}
