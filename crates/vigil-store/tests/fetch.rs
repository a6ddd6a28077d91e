//! Large result sets (a timeline) are read block by block and in parallel: the results must be
//! exactly those of reading every record alone, in the same order.

mod common;

use vigil_store::prepare;
use vigil_store::query::{self, parse};
use vigil_store::reader::{Kinds, SearchOptions};
use vigil_store::{Reader, Store, StoredEvent};

use common::{event_text, small_segments};

/// 4,000 events whose times are shuffled against the journal order and spread over five days
/// (five partitions), appended in batches of 250 into small segments.
fn shuffled_store(dir: &std::path::Path) {
    let n = 4000u64;
    let mut s = Store::open(dir, small_segments()).unwrap();
    for b in 0..n / 250 {
        let batch = (b * 250..(b + 1) * 250)
            .map(|k| {
                let i = (k * 7919) % n * 97;
                prepare::k8s_event(
                    &event_text(i, "ResponseComplete"),
                    "gen.log",
                    1_800_000_000_000_000,
                )
                .unwrap()
            })
            .collect();
        s.append_batch(batch).unwrap();
    }
    s.close().unwrap();
}

fn everything(reader: &Reader) -> Vec<StoredEvent> {
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

fn same(a: &StoredEvent, b: &StoredEvent) -> bool {
    a.loc == b.loc
        && a.partition == b.partition
        && a.dataset == b.dataset
        && a.seq == b.seq
        && a.record == b.record
        && a.doc == b.doc
}

#[test]
fn many_results_equal_one_by_one_reads() {
    let dir = tempfile::tempdir().unwrap();
    shuffled_store(dir.path());
    let reader = Reader::open(dir.path()).unwrap();
    assert!(reader.parts.len() >= 4, "{} partitions", reader.parts.len());
    let all = everything(&reader);
    assert_eq!(all.len(), 4000);
    let queries = [
        "*",
        "user.name:\"system:serviceaccount:shop:web\"",
        "objectRef.name:p?",
        "kubectl",
    ];
    for q in queries {
        let parsed = parse(q).unwrap();
        for newest_first in [false, true] {
            let mut want: Vec<&StoredEvent> = all
                .iter()
                .filter(|e| query::matches(&parsed, &e.doc))
                .collect();
            want.sort_by_key(|e| (e.record.event_time, e.loc));
            if newest_first {
                want.reverse();
            }
            assert!(want.len() > 300, "{q}: {} results", want.len());
            for limit in [0, 1, 257, want.len(), want.len() + 1] {
                let found = reader
                    .search(
                        &parsed,
                        &SearchOptions {
                            limit,
                            newest_first,
                            kinds: Kinds::Both,
                            ..SearchOptions::default()
                        },
                    )
                    .unwrap();
                let n = if limit == 0 {
                    want.len()
                } else {
                    limit.min(want.len())
                };
                let ctx = format!("{q} limit {limit} newest_first {newest_first}");
                assert_eq!(found.events.len(), n, "{ctx}");
                assert_eq!(found.truncated, n < want.len(), "{ctx}");
                for (got, want) in found.events.iter().zip(&want) {
                    assert!(same(got, want), "{ctx}: {} vs {}", got.loc, want.loc);
                }
                if limit == 0 && !newest_first {
                    for got in &found.events {
                        let alone = reader.get(got.loc).unwrap().unwrap();
                        assert!(same(got, &alone), "{ctx}: {}", got.loc);
                    }
                }
                // The mapped form gives the same, in the same order.
                let mapped = reader
                    .search_map(
                        &parsed,
                        &SearchOptions {
                            limit,
                            newest_first,
                            kinds: Kinds::Both,
                            ..SearchOptions::default()
                        },
                        &|ev| (ev.loc, ev.time_rfc3339()),
                    )
                    .unwrap();
                assert_eq!(
                    mapped.items,
                    found
                        .events
                        .iter()
                        .map(|e| (e.loc, e.time_rfc3339()))
                        .collect::<Vec<_>>(),
                    "{ctx}"
                );
                assert_eq!(mapped.truncated, found.truncated, "{ctx}");
            }
        }
    }
}

#[test]
fn a_time_window_over_shuffled_partitions() {
    let dir = tempfile::tempdir().unwrap();
    shuffled_store(dir.path());
    let reader = Reader::open(dir.path()).unwrap();
    let all = everything(&reader);
    let since = 1_795_165_200_000_000 + 30 * 3_600_000_000;
    let until = since + 48 * 3_600_000_000;
    let mut want: Vec<&StoredEvent> = all
        .iter()
        .filter(|e| e.record.event_time >= since && e.record.event_time < until)
        .collect();
    want.sort_by_key(|e| (e.record.event_time, e.loc));
    let found = reader
        .search(
            &parse("*").unwrap(),
            &SearchOptions {
                since: Some(since),
                until: Some(until),
                kinds: Kinds::Both,
                ..SearchOptions::default()
            },
        )
        .unwrap();
    assert!(want.len() > 1000);
    assert_eq!(found.events.len(), want.len());
    for (got, want) in found.events.iter().zip(&want) {
        assert!(same(got, want), "{} vs {}", got.loc, want.loc);
    }
}
