//! A writer killed (SIGKILL) mid-batch: everything it acknowledged survives, nothing half
//! written is served, and the next writer cuts the tail so that `verify` passes.
//!
//! The writer is this test binary itself, run again as a child with `VIGIL_CRASH_CHILD` set.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use vigil_store::verify::verify;
use vigil_store::{Reader, Store, StoreOptions};

const PER: u64 = 1500;

/// The child: appends batches forever, printing the total acknowledged after each.
#[test]
fn crash_child_writer() {
    let Some(dir) = std::env::var_os("VIGIL_CRASH_CHILD") else {
        return;
    };
    let mut s = Store::open(
        std::path::Path::new(&dir),
        StoreOptions {
            segment_bytes: 64 << 10,
            index_commit_docs: 5000,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let mut total = 0u64;
    let mut out = std::io::stdout();
    loop {
        let ack = s.append_batch(batch(total, PER)).unwrap();
        total += ack.stored;
        writeln!(out, "acked {total}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn what_was_acknowledged_survives_a_kill() {
    let exe = std::env::current_exe().unwrap();
    for (round, delay_ms) in [(0, 3u64), (1, 17), (2, 41), (3, 90)] {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("VIGIL_CRASH_CHILD", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut acked = 0u64;
        // Let a few batches land, then kill at a point inside a later one.
        while acked < PER * (2 + round) {
            let line = lines.next().expect("child output").unwrap();
            if let Some(n) = line.strip_prefix("acked ") {
                acked = n.parse().unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        // Acks printed before the kill count too.
        for line in lines.map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("acked ") {
                acked = n.parse().unwrap();
            }
        }
        child.wait().unwrap();

        // A reader right after the crash: every acknowledged record, each exactly as written,
        // and nothing that is not whole and signed.
        let reader = Reader::open(dir.path()).unwrap();
        let mut n = 0u64;
        for p in &reader.parts {
            reader
                .scan_partition(p, 0, &mut |ev| {
                    assert_eq!(ev.seq, n);
                    assert_eq!(ev.record.raw, event(n).raw().as_bytes(), "record {n}");
                    n += 1;
                    Ok(true)
                })
                .unwrap();
        }
        assert!(
            n >= acked,
            "round {round}: {n} records served, {acked} acknowledged"
        );
        assert!(
            n < acked + PER + 1,
            "round {round}: more than one batch beyond the acks"
        );
        let found = reader
            .search(
                &vigil_store::query::parse("*").unwrap(),
                &Default::default(),
            )
            .unwrap();
        assert_eq!(
            found.events.len() as u64,
            n,
            "round {round}: search serves the same"
        );

        // The next writer recovers; then the store verifies and takes the rest.
        let mut s = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let ack = s.append_batch(batch(0, n + 10)).unwrap();
        assert_eq!((ack.stored, ack.duplicates), (10, n));
        s.close().unwrap();
        let report = verify(dir.path(), None).unwrap();
        assert!(
            report.problems.is_empty(),
            "round {round}: {:?}",
            report.problems
        );
        assert_eq!(report.records, n + 10);
    }
}
