//! The id file keeps 32 bits of an id's hash: two auditIDs can share a key. Dedup and auditID
//! lookups must still be exact, and a store made with the older 8-byte `ids.bin` must keep
//! working.

mod common;

use std::collections::HashMap;

use vigil_store::ids::{IDS_FILE, LEGACY_IDS_FILE};
use vigil_store::prepare::{self, Record};
use vigil_store::query::parse;
use vigil_store::reader::SearchOptions;
use vigil_store::{Reader, Store, StoreOptions};

use common::event_text;

/// `event_text(i)` with the auditID `id`.
fn event_with_id(i: u64, id: &str) -> Record {
    let text = event_text(i, "ResponseComplete").replace(&format!("id-{i:08}"), id);
    prepare::k8s_event(&text, "gen.log", 0).unwrap()
}

/// Two auditIDs whose keys are the same (found by the birthday bound, ~2^16 tries).
fn clashing_ids() -> (String, String) {
    let mut seen: HashMap<u64, String> = HashMap::new();
    for n in 0u64.. {
        let id = format!("clash-{n}");
        if let Some(other) = seen.insert(prepare::id_hash(&id), id.clone()) {
            return (other, id);
        }
    }
    unreachable!()
}

fn found(dir: &std::path::Path, id: &str) -> Vec<String> {
    let reader = Reader::open(dir).unwrap();
    let q = parse(&format!("auditID:{id}")).unwrap();
    reader
        .search(&q, &SearchOptions::default())
        .unwrap()
        .events
        .iter()
        .map(|e| e.original()["auditID"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn ids_sharing_a_key_are_told_apart() {
    let (a, b) = clashing_ids();
    assert_ne!(a, b);
    assert_eq!(prepare::id_hash(&a), prepare::id_hash(&b));
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let ack = s.append_batch(vec![event_with_id(1, &a)]).unwrap();
    assert_eq!(ack.stored, 1);
    // Same key, another id: stored; then both again: duplicates.
    let ack = s.append_batch(vec![event_with_id(2, &b)]).unwrap();
    assert_eq!((ack.stored, ack.duplicates), (1, 0));
    let ack = s
        .append_batch(vec![event_with_id(2, &b), event_with_id(1, &a)])
        .unwrap();
    assert_eq!((ack.stored, ack.duplicates), (0, 2));
    s.close().unwrap();
    // The same after reopening (the keys come from the file).
    let mut s = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let ack = s
        .append_batch(vec![event_with_id(2, &b), event_with_id(1, &a)])
        .unwrap();
    assert_eq!((ack.stored, ack.duplicates), (0, 2));
    s.close().unwrap();
    assert_eq!(found(dir.path(), &a), vec![a.clone()]);
    assert_eq!(found(dir.path(), &b), vec![b.clone()]);
}

#[test]
fn a_store_with_the_older_8_byte_id_file_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path(), StoreOptions::default()).unwrap();
    s.append_batch(
        (0..50)
            .map(|i| event_with_id(i, &format!("old-{i}")))
            .collect(),
    )
    .unwrap();
    s.close().unwrap();
    // What an older Vigil wrote: the full 64-bit keys (hash of the id with its low byte
    // cleared, then the stage code; 3 = ResponseComplete).
    let part = Reader::open(dir.path()).unwrap().parts[0].dir.clone();
    let mut legacy = Vec::new();
    for i in 0..50u64 {
        let key = xxhash_rust::xxh3::xxh3_64(format!("old-{i}").as_bytes()) & !0xff | 3;
        legacy.extend_from_slice(&key.to_le_bytes());
    }
    std::fs::remove_file(part.join(IDS_FILE)).unwrap();
    std::fs::write(part.join(LEGACY_IDS_FILE), &legacy).unwrap();
    assert_eq!(found(dir.path(), "old-17"), vec!["old-17".to_string()]);
    // The writer replaces it, and still knows what is stored.
    let mut s = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let ack = s
        .append_batch(vec![
            event_with_id(17, "old-17"),
            event_with_id(60, "new-60"),
        ])
        .unwrap();
    assert_eq!((ack.stored, ack.duplicates), (1, 1));
    s.close().unwrap();
    assert!(!part.join(LEGACY_IDS_FILE).exists());
    assert_eq!(
        std::fs::metadata(part.join(IDS_FILE)).unwrap().len(),
        51 * 5
    );
    assert_eq!(found(dir.path(), "old-17"), vec!["old-17".to_string()]);
    assert_eq!(found(dir.path(), "new-60"), vec!["new-60".to_string()]);
}
