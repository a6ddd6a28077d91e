//! Timeline rows (`rows.bin`): what `Reader::search_rows` serves from them must be exactly what
//! the records give, whether the rows are there, missing, cut short or damaged; the writer
//! rebuilds what is missing; `verify` catches an edited or forged frame.

mod common;

use std::path::{Path, PathBuf};

use vigil_store::prepare::{self, Record};
use vigil_store::query::parse;
use vigil_store::reader::{Kinds, SearchOptions};
use vigil_store::rows::ROWS_FILE;
use vigil_store::{Reader, Store, StoreOptions, TimelineRow};

use common::{event, event_text};

fn opts() -> StoreOptions {
    StoreOptions {
        frame_rows: 100,
        ..common::small_segments()
    }
}

fn alert_for(i: u64) -> Record {
    let ev = event(i);
    let a = common::alert(
        &format!("r{}", i % 3),
        &format!("Rule {}", i % 3),
        i as usize,
        &format!("id-{i:08}"),
    );
    prepare::alert(&a, Some(ev.doc()), 0)
}

/// 3,000 events over three days (times shuffled against the journal order) and an alert for
/// every 10th, in batches of 250.
fn fill(dir: &Path) {
    let n = 3000u64;
    let mut s = Store::open(dir, opts()).unwrap();
    for b in 0..n / 250 {
        let mut batch: Vec<Record> = Vec::new();
        for k in b * 250..(b + 1) * 250 {
            let i = (k * 7919) % n * 97;
            batch.push(
                prepare::k8s_event(&event_text(i, "ResponseComplete"), "gen.log", 0).unwrap(),
            );
            if k.is_multiple_of(10) {
                batch.push(alert_for(i));
            }
        }
        s.append_batch(batch).unwrap();
    }
    s.close().unwrap();
}

const QUERIES: [&str; 5] = [
    "*",
    "user.name:bob",
    "user.name:\"system:serviceaccount:shop:web\" OR source.ip:10.0.1.0/24",
    "objectRef.name:p3",
    "kubectl",
];

/// `search_rows` against the rows made from every record, for every query, order and limit.
fn assert_rows_match_records(dir: &Path) {
    let reader = Reader::open(dir).unwrap();
    for q in QUERIES {
        let parsed = parse(q).unwrap();
        for newest_first in [false, true] {
            for limit in [0, 7, 1000] {
                let o = SearchOptions {
                    limit,
                    newest_first,
                    kinds: Kinds::Both,
                    ..SearchOptions::default()
                };
                let want = reader
                    .search_map(&parsed, &o, &|ev| TimelineRow::of(&ev))
                    .unwrap();
                let got = reader.search_rows(&parsed, &o).unwrap();
                assert!(!want.items.is_empty(), "{q}");
                assert_eq!(got.truncated, want.truncated, "{q} limit {limit}");
                assert_eq!(got.items.len(), want.items.len(), "{q} limit {limit}");
                for (g, w) in got.items.iter().zip(&want.items) {
                    assert_eq!(g, w, "{q} limit {limit} newest_first {newest_first}");
                }
            }
        }
    }
}

fn rows_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for ds in std::fs::read_dir(dir.join("journal")).unwrap().flatten() {
        for day in std::fs::read_dir(ds.path()).unwrap().flatten() {
            let p = day.path().join(ROWS_FILE);
            if p.exists() {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Records covered by rows frames, over all partitions.
fn covered(dir: &Path) -> u64 {
    let reader = Reader::open(dir).unwrap();
    reader
        .parts
        .iter()
        .map(|p| p.rows.last().map_or(0, |f| f.end()))
        .sum()
}

fn total(dir: &Path) -> u64 {
    Reader::open(dir)
        .unwrap()
        .parts
        .iter()
        .map(|p| p.count)
        .sum()
}

/// Rewrites the first rows frame of `part` (`bytes`: the file as it was) with the first row's
/// `who` changed, signed with `key`.
fn rewrite_first_frame(
    part: &vigil_store::reader::PartInfo,
    bytes: &[u8],
    who: &str,
    key: &ed25519_dalek::SigningKey,
) {
    let f = &part.rows[0];
    let end = (f.payload_offset() + u64::from(f.len)) as usize;
    let payload = &bytes[f.payload_offset() as usize..end];
    let mut rows: Vec<_> = vigil_store::rows::decode_frame(f, payload, None)
        .unwrap()
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    rows[0].who = who.into();
    let mut out = vigil_store::rows::encode_frame(&part.name, 0, &rows, 3, key).unwrap();
    out.extend_from_slice(&bytes[end..]);
    std::fs::write(part.dir.join(ROWS_FILE), &out).unwrap();
}

#[test]
fn rows_from_frames_equal_rows_from_records() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path());
    assert_eq!(
        covered(dir.path()),
        total(dir.path()),
        "every record has its row"
    );
    let reader = Reader::open(dir.path()).unwrap();
    assert!(
        reader.parts.iter().any(|p| p.rows.len() > 3),
        "several frames per partition"
    );
    assert!(reader.parts.iter().any(|p| p.dataset == "vigil.alert"));
    assert_rows_match_records(dir.path());

    // The rows do come from the frames: a frame rewritten with the store's own key shows.
    let part = &reader.parts[0];
    let file = part.dir.join(ROWS_FILE);
    let bytes = std::fs::read(&file).unwrap();
    let key = vigil_store::chain::load_or_create_key(dir.path()).unwrap();
    rewrite_first_frame(part, &bytes, "someone else", &key);
    let reader = Reader::open(dir.path()).unwrap();
    let everything = SearchOptions {
        kinds: Kinds::Both,
        ..SearchOptions::default()
    };
    let got = reader
        .search_rows(&parse("*").unwrap(), &everything)
        .unwrap();
    assert_eq!(
        got.items
            .iter()
            .filter(|r| r.row.who == "someone else")
            .count(),
        1
    );
}

#[test]
fn missing_cut_or_damaged_rows_fall_back_to_the_journal_and_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path());
    let files = rows_files(dir.path());
    assert!(files.len() >= 3, "{files:?}");
    // One file gone, one cut inside a frame, one with a byte flipped in a frame.
    std::fs::remove_file(&files[0]).unwrap();
    let len = std::fs::metadata(&files[1]).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&files[1])
        .unwrap();
    f.set_len(len * 2 / 3).unwrap();
    let mut bytes = std::fs::read(&files[2]).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(&files[2], &bytes).unwrap();
    assert!(covered(dir.path()) < total(dir.path()));
    assert_rows_match_records(dir.path());

    // The writer rebuilds them when it opens the store.
    Store::open(dir.path(), opts()).unwrap().close().unwrap();
    assert_eq!(covered(dir.path()), total(dir.path()));
    let report = vigil_store::verify::verify(dir.path(), None).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.row_frames > 0);
    assert_rows_match_records(dir.path());
}

#[test]
fn rows_not_yet_in_a_frame_are_read_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path());
    // Appended while the writer stays open: durable, not yet in a frame nor in the index.
    let mut s = Store::open(dir.path(), opts()).unwrap();
    s.append_batch((5000..5040).map(event).collect()).unwrap();
    assert!(covered(dir.path()) < total(dir.path()));
    assert_rows_match_records(dir.path());
    drop(s);
}

#[test]
fn verify_catches_an_edited_or_forged_rows_frame() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path());
    let file = rows_files(dir.path()).remove(0);
    let good = std::fs::read(&file).unwrap();

    // A byte of a payload changed: the checksum no longer matches.
    let mut edited = good.clone();
    let last = edited.len() - 1;
    edited[last] ^= 1;
    std::fs::write(&file, &edited).unwrap();
    let report = vigil_store::verify::verify(dir.path(), None).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0].message.contains("rows.bin frame")
            && report.problems[0].message.contains("checksum"),
        "{}",
        report.problems[0]
    );

    // Rows rewritten with a matching checksum but without the store's key.
    let reader = Reader::open(dir.path()).unwrap();
    let part = reader
        .parts
        .iter()
        .find(|p| p.dir.join(ROWS_FILE) == file)
        .unwrap();
    let other_key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    rewrite_first_frame(part, &good, "nobody (127.0.0.1)", &other_key);
    let report = vigil_store::verify::verify(dir.path(), None).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.message.contains("frame 1") && p.message.contains("bad signature")),
        "{:?}",
        report.problems
    );
}
