use ed25519_dalek::SigningKey;
use serde_json::json;

use super::*;
use crate::book::Book;
use crate::model::Action;
use crate::runbook::tests::ev;

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

/// An incident with a real (hash-chained) history, two events of one partition and a
/// checkpoint covering them, signed by `key(1)`.
fn bundle() -> Vec<(String, Vec<u8>)> {
    let d = tempfile::tempdir().unwrap();
    let mut b = Book::open(d.path()).unwrap();
    let opened = Action::Opened {
        title: "t".into(),
        alerts: vec![],
        related: vec![],
        entities: vec![],
        window_secs: 0,
        since: 0,
        until: 0,
        timeline: vec![1, 2],
    };
    b.append("", "alice", opened.clone()).unwrap();
    b.append("", "bob", opened).unwrap(); // another incident in between
    b.append("INC-0001", "alice", Action::Note { text: "n".into() })
        .unwrap();
    let inc = b.get("INC-0001").unwrap();
    let events = vec![
        ev(1, json!({"user": {"name": "u"}})),
        ev(2, json!({"user": {"name": "v"}})),
    ];
    let ck = Checkpoint::new(&key(1), "k8s.audit/2026-11-20", 1, 0, 3, &[9; 32]);
    files(&ExportInput {
        incident: &inc,
        events: &events,
        runbook: "# r\n",
        report: Some("# report\n"),
        checkpoints: vec![ck],
        key: &key(1),
        created: "2026-11-27T00:00:00Z".into(),
    })
    .unwrap()
}

fn check(fs: &[(String, Vec<u8>)], k: Option<&VerifyingKey>) -> Verification {
    verify(&archive(fs, 0).unwrap(), k)
}

#[test]
fn an_intact_archive_verifies() {
    let fs = bundle();
    let names: Vec<&str> = fs.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "events.jsonl",
            "alerts.jsonl",
            "timeline.jsonl",
            "notes.jsonl",
            "incident.json",
            "runbook.md",
            "report.md",
            "checkpoints.jsonl",
            "signing.pub",
            "manifest.json",
            "manifest.sig"
        ]
    );
    let v = check(&fs, Some(&key(1).verifying_key()));
    assert_eq!(v.problems, Vec::<String>::new());
    assert_eq!((v.events, v.checkpoints), (2, 1));
    assert!(!v.key_from_archive);
    let v = check(&fs, None);
    assert!(v.problems.is_empty() && v.key_from_archive);
}

#[test]
fn another_key_and_uncovered_events_are_named() {
    let fs = bundle();
    let v = check(&fs, Some(&key(2).verifying_key()));
    assert!(v
        .problems
        .iter()
        .any(|p| p.starts_with("signing.pub: not the public key")));
    assert!(v
        .problems
        .iter()
        .any(|p| p.starts_with("manifest.sig: bad signature")));
    assert!(v
        .problems
        .iter()
        .any(|p| p.starts_with("checkpoints.jsonl line 1: bad checkpoint signature")));
    // A checkpoint that covers fewer records than exported: re-signed, consistent, but the
    // second event (record 2) is past it.
    let mut inc_files = bundle();
    let ck = Checkpoint::new(&key(1), "k8s.audit/2026-11-20", 1, 0, 2, &[9; 32]);
    let i = inc_files
        .iter()
        .position(|f| f.0 == "checkpoints.jsonl")
        .unwrap();
    inc_files[i].1 = jsonl([&ck]);
    let v = check(&inc_files, Some(&key(1).verifying_key()));
    assert!(v
        .problems
        .contains(&"events.jsonl line 2: not covered by a signed checkpoint".to_string()));
}

#[test]
fn an_edited_history_line_is_named() {
    let mut fs = bundle();
    let i = fs.iter().position(|f| f.0 == "notes.jsonl").unwrap();
    fs[i].1 = String::from_utf8(fs[i].1.clone())
        .unwrap()
        .replace("\"text\":\"n\"", "\"text\":\"m\"")
        .into_bytes();
    let v = check(&fs, None);
    assert!(v
        .problems
        .contains(&"notes.jsonl: edited (its SHA-256 differs from the manifest)".to_string()));
    assert!(v
        .problems
        .contains(&"notes.jsonl line 2: the history's hash chain breaks here".to_string()));
}

#[test]
fn a_missing_manifest_is_named() {
    let a = archive(&[("events.jsonl".into(), b"{}\n".to_vec())], 0).unwrap();
    let v = verify(&a, None);
    assert_eq!(
        v.problems,
        ["manifest.json: missing (nothing can be checked)"]
    );
    assert!(verify(b"not gzip", None).problems[0].starts_with("not a gzip archive"));
}
