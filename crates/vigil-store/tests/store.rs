//! The store end to end: round trips, dedup, redaction, search against the reference matcher,
//! torn tails, disk full, retention.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use vigil_store::prepare;
use vigil_store::query::{self, parse};
use vigil_store::reader::{Kinds, SearchOptions};
use vigil_store::retention::Retention;
use vigil_store::verify::verify;
use vigil_store::{Reader, Store, StoreError, StoreOptions};

fn all(reader: &Reader) -> Vec<vigil_store::StoredEvent> {
    let mut out = Vec::new();
    for p in &reader.parts {
        reader
            .scan_partition(p, 0, &mut |ev| {
                out.push(ev);
                Ok(true)
            })
            .unwrap();
    }
    out
}

#[test]
fn what_is_appended_reads_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 3, 700, small_segments());
    let reader = Reader::open(dir.path()).unwrap();
    let events = all(&reader);
    assert_eq!(events.len(), 2100);
    for (i, ev) in events.iter().enumerate() {
        let want = event(i as u64);
        assert_eq!(ev.record.raw, want.raw().as_bytes(), "raw of {i}");
        assert_eq!(&ev.doc, want.doc(), "doc of {i}");
        assert_eq!(ev.record.source, "gen.log");
        assert_eq!(ev.record.event_time, want.event_time());
    }
    let report = verify(dir.path(), None).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.records, 2100);
    assert!(report.segments >= 3, "small segments rotate");
}

#[test]
fn duplicates_are_stored_once_even_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let mut b = batch(0, 10);
    b.push(event(3)); // twice in one batch
    let ack = s.append_batch(b).unwrap();
    assert_eq!((ack.stored, ack.duplicates), (10, 1));
    assert!(ack.locs[10].is_none());
    let ack = s.append_batch(batch(5, 10)).unwrap();
    assert_eq!((ack.stored, ack.duplicates), (5, 5));
    s.close().unwrap();
    let mut s = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let ack = s.append_batch(batch(0, 20)).unwrap();
    assert_eq!((ack.stored, ack.duplicates), (5, 15));
    // Another stage of the same request is another event.
    let other = prepare::k8s_event(&event_text(1, "RequestReceived"), "x", 0).unwrap();
    let ack = s.append_batch(vec![other]).unwrap();
    assert_eq!(ack.stored, 1);
    s.close().unwrap();
    let reader = Reader::open(dir.path()).unwrap();
    assert_eq!(all(&reader).len(), 21);
    // The id file answers auditID lookups (both stages).
    assert_eq!(reader.locate_id("id-00000001").len(), 2);
    let found = reader
        .search(
            &parse("auditID:id-00000001").unwrap(),
            &SearchOptions::default(),
        )
        .unwrap();
    assert_eq!(found.events.len(), 2);
}

#[test]
fn secrets_never_reach_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let secret = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"s1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/pay/secrets/stripe","verb":"get","user":{"username":"eve"},"sourceIPs":["198.51.100.9"],"objectRef":{"resource":"secrets","namespace":"pay","name":"stripe","apiVersion":"v1"},"responseStatus":{"code":200},"responseObject":{"kind":"Secret","apiVersion":"v1","metadata":{"name":"stripe"},"data":{"apikey":"c2tfbGl2ZV9zdXBlcnNlY3JldHRva2Vu"},"stringData":{"plain":"hunter2hunter2"}},"stageTimestamp":"2026-11-20T10:00:00.000000Z"}"#;
    let mut s = Store::open(dir.path(), StoreOptions::default()).unwrap();
    s.append_batch(vec![prepare::k8s_event(secret, "a.log", 0).unwrap()])
        .unwrap();
    s.close().unwrap();
    // Not in any file (the index holds free-text tokens, the journal compressed text)...
    for entry in walk(dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        for needle in [
            "c2tfbGl2ZV9zdXBlcnNlY3JldHRva2Vu",
            "hunter2hunter2",
            "hunter2",
        ] {
            assert!(
                !bytes
                    .windows(needle.len())
                    .any(|w| w.eq_ignore_ascii_case(needle.as_bytes())),
                "{needle} in {}",
                entry.display()
            );
        }
    }
    // ...nor in what is read back; the redaction is recorded.
    let reader = Reader::open(dir.path()).unwrap();
    let ev = &all(&reader)[0];
    let raw = String::from_utf8(ev.record.raw.clone()).unwrap();
    assert!(
        raw.contains(r#""data":{"apikey":"vigil:redacted"}"#),
        "{raw}"
    );
    assert!(ev.redacted());
    assert_eq!(
        ev.doc["vigil"]["redacted"],
        serde_json::json!(["responseObject.data", "responseObject.stringData"])
    );
    let found = reader
        .search(
            &parse("vigil.redacted:*").unwrap(),
            &SearchOptions::default(),
        )
        .unwrap();
    assert_eq!(found.events.len(), 1);
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn index_answers_equal_the_reference_matcher() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 2, 500, StoreOptions::default());
    let reader = Reader::open(dir.path()).unwrap();
    let everything = all(&reader);
    let queries = [
        "*",
        "user.name:alice",
        "user:bob AND verb:get",
        "source.ip:10.0.1.0/24",
        "source.ip:10.0.1.7",
        "ip:10.0.0.0/8 AND NOT verb:list",
        "code:403",
        "code:[200 TO 299]",
        "objectRef.name:p?",
        "objectRef.namespace:ns1 OR objectRef.namespace:ns2",
        "kubectl",
        "\"namespaces ns1\"",
        "pods AND NOT ns2",
        "user.name:system*",
        "auditID:id-00000042",
        "@timestamp:[2026-11-20T09:05:00Z TO 2026-11-20T09:06:00Z}",
        "userAgent:kubectl*",
        "event.outcome:failure",
        "-user.name:alice -user.name:bob",
    ];
    for q in queries {
        let parsed = parse(q).unwrap();
        let mut want: Vec<u64> = everything
            .iter()
            .filter(|e| query::matches(&parsed, &e.doc))
            .map(|e| e.seq)
            .collect();
        want.sort();
        let found = reader.search(&parsed, &SearchOptions::default()).unwrap();
        let mut got: Vec<u64> = found.events.iter().map(|e| e.seq).collect();
        got.sort();
        assert_eq!(got, want, "{q}");
        assert!(
            !want.is_empty() || q.contains("auditID"),
            "{q} matches something"
        );
    }
    // Limits keep the newest.
    let found = reader
        .search(
            &parse("*").unwrap(),
            &SearchOptions {
                limit: 3,
                newest_first: true,
                ..SearchOptions::default()
            },
        )
        .unwrap();
    assert_eq!(
        found.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [999, 998, 997]
    );
    assert!(found.truncated);
}

#[test]
fn unindexed_records_are_found_by_scanning() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path(), StoreOptions::default()).unwrap();
    s.append_batch(batch(0, 100)).unwrap();
    s.commit_index().unwrap();
    s.append_batch(batch(100, 100)).unwrap();
    // No commit: the second batch is durable in the journal but not in the index.
    let reader = Reader::open(dir.path()).unwrap();
    let found = reader
        .search(
            &parse("user.name:alice").unwrap(),
            &SearchOptions::default(),
        )
        .unwrap();
    assert_eq!(found.events.len(), 50);
    assert_eq!(found.scanned_unindexed, 100);
    drop(s);
}

#[test]
fn a_torn_or_unsigned_tail_is_never_served_and_cut_on_open() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 2, 100, StoreOptions::default());
    let seg = dir.path().join("journal/k8s.audit/2026-11-20/000001.seg");
    let good = std::fs::read(&seg).unwrap();
    // A whole block written but never signed (crash between the fsyncs): copy the last block.
    let last_block_start = {
        let r = Reader::open(dir.path()).unwrap();
        r.parts[0].blocks.last().unwrap().offset as usize
    };
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&good[last_block_start..]).unwrap();
    // And half of another.
    f.write_all(&good[last_block_start..last_block_start + 100])
        .unwrap();
    drop(f);
    let reader = Reader::open(dir.path()).unwrap();
    assert_eq!(all(&reader).len(), 200);
    let report = verify(dir.path(), None).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
    s.close().unwrap();
    assert_eq!(
        std::fs::read(&seg).unwrap(),
        good,
        "cut back to what was signed"
    );
    assert!(verify(dir.path(), None).unwrap().problems.is_empty());
}

/// Fails every write once `budget` bytes have been written, after writing part of it.
fn disk_of(budget: usize) -> vigil_store::Fault {
    let used = Arc::new(AtomicUsize::new(0));
    Arc::new(move |_path, len| {
        let before = used.fetch_add(len, Ordering::SeqCst);
        if before + len > budget {
            let room = budget.saturating_sub(before);
            Some((room, std::io::Error::from_raw_os_error(28)))
        } else {
            None
        }
    })
}

#[test]
fn disk_full_stops_cleanly_and_keeps_what_was_acknowledged() {
    for budget in [3_000usize, 9_000, 20_000, 40_000] {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(
            dir.path(),
            StoreOptions {
                fault: Some(disk_of(budget)),
                segment_bytes: 8192,
                ..StoreOptions::default()
            },
        )
        .unwrap();
        let mut acked = 0u64;
        let err = loop {
            match s.append_batch(batch(acked, 100)) {
                Ok(ack) => acked += ack.stored,
                Err(e) => break e,
            }
            assert!(acked < 100_000, "the disk never filled");
        };
        assert!(matches!(err, StoreError::DiskFull { .. }), "{err}");
        assert!(err.to_string().contains("disk full"), "{err}");
        assert!(matches!(
            s.append_batch(batch(acked, 1)),
            Err(StoreError::Failed(_))
        ));
        drop(s);
        let reader = Reader::open(dir.path()).unwrap();
        let events = all(&reader);
        assert_eq!(events.len() as u64, acked, "budget {budget}");
        let report = verify(dir.path(), None).unwrap();
        assert!(
            report.problems.is_empty(),
            "budget {budget}: {:?}",
            report.problems
        );
        // With room again, ingest goes on.
        let mut s = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let ack = s.append_batch(batch(0, acked + 50)).unwrap();
        assert_eq!((ack.stored, ack.duplicates), (50, acked));
        s.close().unwrap();
        assert!(verify(dir.path(), None).unwrap().problems.is_empty());
    }
}

#[test]
fn retention_removes_old_days_and_logs_it() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 1, 50, StoreOptions::default());
    let mut s = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let old = prepare::k8s_event(
        &event_text(7, "ResponseComplete").replace("2026-11-20T", "2020-01-01T"),
        "old.log",
        0,
    )
    .unwrap();
    s.append_batch(vec![old]).unwrap();
    let policy = Retention::parse("default: 400d\nlinux.auth: 1d").unwrap();
    let now = prepare::parse_time_micros("2026-11-27T00:00:00Z").unwrap();
    let gone = s.apply_retention(&policy, now).unwrap();
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].partition, "k8s.audit/2020-01-01");
    s.close().unwrap();
    let log = std::fs::read_to_string(dir.path().join("deletions.log")).unwrap();
    assert!(log.contains("k8s.audit/2020-01-01") && log.contains("retention 400d"));
    let report = verify(dir.path(), None).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.deletions, 1);
    let reader = Reader::open(dir.path()).unwrap();
    let found = reader
        .search(
            &parse("*").unwrap(),
            &SearchOptions {
                kinds: Kinds::Both,
                ..SearchOptions::default()
            },
        )
        .unwrap();
    assert_eq!(found.events.len(), 50);
}

#[test]
fn one_writer_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let err = Store::open(dir.path(), StoreOptions::default())
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::Locked(_)), "{err}");
    drop(s);
    Store::open(dir.path(), StoreOptions::default()).unwrap();
}

#[test]
fn alerts_are_stored_with_stable_ids() {
    let a = common::alert("r1", "Exec into pod", 2, "id-00000001");
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let ev = event(1);
    let rec = prepare::alert(&a, Some(ev.doc()), 0);
    s.append_batch(vec![ev.clone()]).unwrap();
    s.append_batch(vec![rec.clone(), rec]).unwrap();
    s.close().unwrap();
    let reader = Reader::open(dir.path()).unwrap();
    let opts = SearchOptions {
        kinds: Kinds::Both,
        ..SearchOptions::default()
    };
    let found = reader
        .search(&parse("user.name:bob").unwrap(), &opts)
        .unwrap();
    assert_eq!(found.events.len(), 2, "the event and its alert");
    let alert = found.events.iter().find(|e| e.is_alert()).unwrap();
    let id = prepare::alert_id(&a);
    assert_eq!(alert.original()["id"], id.as_str());
    assert_eq!(alert.original()["rule"]["title"], "Exec into pod");
    let by_id = reader
        .search(&parse(&format!("event.id:{id}")).unwrap(), &opts)
        .unwrap();
    assert_eq!(by_id.events.len(), 1);
}

/// Stored Kubernetes documents are a delta on the normalizer's output (`FLAG_K8S_V1`): its
/// output must not change silently. If this fails because `vigil_normalize::k8s::normalize`
/// changed on purpose, records already stored would read back differently: keep the old
/// behaviour under FLAG_K8S_V1 and give the new one a new flag.
#[test]
fn the_k8s_normalizer_stored_documents_depend_on_is_pinned() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let raw = std::fs::read_to_string(format!("{dir}/tests/fixtures/k8s-event.json")).unwrap();
    let want: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{dir}/tests/fixtures/k8s-normalized-v1.json")).unwrap(),
    )
    .unwrap();
    let rec = prepare::k8s_event(raw.trim(), "x", 0).unwrap();
    assert_eq!(rec.doc(), &want);
    let back = prepare::materialize(
        vigil_store::segment::FLAG_K8S_V1,
        raw.trim().as_bytes(),
        b"",
    );
    assert_eq!(back, want);
}
