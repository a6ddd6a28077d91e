//! `vigil policy` as a user runs it: the real binary, fixture files, exit codes, golden output.

mod common;

use common::text;
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn vigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run vigil")
}

fn vigil_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vigil");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn eval_reports_every_event_in_order_and_names_rejected_lines() {
    let out = vigil(&[
        "policy",
        "eval",
        "--policy",
        "tests/fixtures/policy.yaml",
        "tests/fixtures/mixed-audit.log",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    insta::assert_snapshot!("eval_mixed", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("tests/fixtures/mixed-audit.log: line 2"),
        "{err}"
    );
    assert!(
        err.contains("tests/fixtures/mixed-audit.log: line 4") && err.contains("kind"),
        "{err}"
    );
    assert!(err.contains("item 1") && err.contains("auditID"), "{err}");
}

#[test]
fn eval_reads_stdin_and_gzip() {
    let log = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/mixed-audit.log"
    ))
    .unwrap();
    let plain = vigil_stdin(
        &[
            "policy",
            "eval",
            "--policy",
            "tests/fixtures/policy.yaml",
            "-",
        ],
        &log,
    );
    let dir = tempfile::tempdir().unwrap();
    let gz_path = dir.path().join("audit.log.1");
    let mut gz = flate2_free_gzip(&log);
    std::fs::write(&gz_path, &mut gz).unwrap();
    let gzipped = vigil(&[
        "policy",
        "eval",
        "--policy",
        "tests/fixtures/policy.yaml",
        gz_path.to_str().unwrap(),
    ]);
    assert_eq!(plain.status.code(), Some(0));
    assert_eq!(text(&plain.stdout), text(&gzipped.stdout));
    assert_eq!(text(&plain.stdout).lines().count(), 5);
}

/// A gzip stream with stored (uncompressed) deflate blocks: enough to prove detection by content.
fn flate2_free_gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let chunks: Vec<&[u8]> = data.chunks(65535).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        out.push(u8::from(i + 1 == chunks.len()));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn eval_table_is_for_people() {
    let out = vigil(&[
        "policy",
        "eval",
        "--format",
        "table",
        "--policy",
        "tests/fixtures/policy.yaml",
        "tests/fixtures/mixed-audit.log",
    ]);
    let s = text(&out.stdout);
    assert!(s.starts_with("AUDIT ID"), "{s}");
    assert!(
        s.contains("pods/exec") && s.contains("RequestResponse"),
        "{s}"
    );
}

#[test]
fn validate_exit_codes_follow_the_apiserver() {
    let ok = vigil(&["policy", "validate", "tests/fixtures/policy.yaml"]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));

    let invalid = vigil(&["policy", "validate", "tests/fixtures/policy-invalid.yaml"]);
    assert_eq!(invalid.status.code(), Some(1));
    let err = text(&invalid.stderr);
    assert!(
        err.contains("policy-invalid.yaml:4:"),
        "level error names line 4: {err}"
    );
    assert!(err.contains("Everything"), "{err}");
    assert!(
        err.contains("policy-invalid.yaml:6:") || err.contains("policy-invalid.yaml:5:"),
        "{err}"
    );

    let empty = vigil(&[
        "policy",
        "validate",
        "tests/fixtures/policy-empty-rules.yaml",
    ]);
    assert_eq!(empty.status.code(), Some(1));

    let missing = vigil(&["policy", "validate", "tests/fixtures/nope.yaml"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("nope.yaml"));
}

#[test]
fn unknown_fields_warn_with_their_line_and_strict_refuses() {
    let lenient = vigil(&[
        "policy",
        "validate",
        "tests/fixtures/policy-unknown-field.yaml",
    ]);
    assert_eq!(lenient.status.code(), Some(0));
    let err = text(&lenient.stderr);
    assert!(
        err.contains("policy-unknown-field.yaml:8:") && err.contains("warning"),
        "{err}"
    );
    assert!(err.contains("verbs"), "{err}");

    let strict = vigil(&[
        "policy",
        "validate",
        "--strict",
        "tests/fixtures/policy-unknown-field.yaml",
    ]);
    assert_eq!(strict.status.code(), Some(1));
    assert!(text(&strict.stderr).contains("error"));
}

#[test]
fn baseline_validates_and_lints_clean() {
    let baseline = vigil(&["policy", "baseline"]);
    assert_eq!(baseline.status.code(), Some(0));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baseline.yaml");
    std::fs::write(&path, &baseline.stdout).unwrap();
    let p = path.to_str().unwrap();
    let v = vigil(&["policy", "validate", "--strict", p]);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v.stderr));
    let lint = vigil(&["policy", "lint", "--format", "jsonl", p]);
    assert_eq!(lint.status.code(), Some(0));
    for line in text(&lint.stdout).lines() {
        let f: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            f["severity"], "Info",
            "baseline has a finding above info: {line}"
        );
    }
}

#[test]
fn lint_fails_on_secret_bodies() {
    let out = vigil(&[
        "policy",
        "lint",
        "--format",
        "jsonl",
        "../../examples/policy.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let s = text(&out.stdout);
    assert!(s.contains("\"code\":\"sensitive-data-logged\""), "{s}");
}

#[test]
fn simulate_accounts_for_every_event() {
    let out = vigil(&[
        "policy",
        "simulate",
        "--format",
        "jsonl",
        "--policy",
        "tests/fixtures/policy.yaml",
        "tests/fixtures/mixed-audit.log",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["totals"]["events_in"], 5);
    assert_eq!(report["totals"]["events_kept"], 4, "healthz is dropped");
    let table = vigil(&[
        "policy",
        "simulate",
        "--policy",
        "tests/fixtures/policy.yaml",
        "tests/fixtures/mixed-audit.log",
    ]);
    assert!(text(&table.stdout).contains("BY RULE"));
}
