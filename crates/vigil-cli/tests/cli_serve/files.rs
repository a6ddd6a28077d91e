//! File sources: files followed across rename rotation and copytruncate, through `kill -9`,
//! new files picked up, and a file rotated outside the globs while the service was down;
//! every line stored exactly once.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::events::stored;
use crate::server::{local_config, Server};

fn auth_line(i: usize) -> String {
    format!("Nov 27 02:00:00 host1 sshd[{}]: Failed password for invalid user u{i} from 203.0.113.5 port {} ssh2\n", 1000 + i % 7, 40000 + i)
}

fn append(path: &Path, from: usize, to: usize) {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in from..to {
        f.write_all(auth_line(i).as_bytes()).unwrap();
    }
}

/// Lines read from the files, by number: how many times each was stored.
fn auth_counts(dir: &Path) -> BTreeMap<usize, usize> {
    let mut m = BTreeMap::new();
    for raw in stored(dir, "linux.auth") {
        if let Some(i) = raw
            .split("invalid user u")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse::<usize>().ok())
        {
            *m.entry(i).or_default() += 1;
        }
    }
    m
}

/// How many distinct lines of `auth_line` are stored once there are `n`, or 30 s passed.
fn wait_auth_lines(data: &Path, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let have = auth_counts(data).len();
        if have >= n || Instant::now() > deadline {
            return have;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Files followed across rename rotation (during a kill -9) and copytruncate; new files picked
/// up; restart resumes exactly.
#[test]
fn file_tailing_survives_kill9_and_rotation_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    fs::create_dir_all(&logs).unwrap();
    let (cfg, api) = local_config(
        dir.path(),
        &format!(
            "  - type: file\n    name: logs\n    paths: [\"{}/app.log*\", \"{}/other-*.log\"]\n    format: linux.auth\n    poll_interval: 20ms\n",
            logs.display(),
            logs.display()
        ),
        false,
    );
    let app = logs.join("app.log");
    let data = dir.path().join("data");
    let wait_lines = |n: usize| wait_auth_lines(&data, n);
    append(&app, 0, 200);
    let mut server = Server::start(&cfg, api);
    // Writes going on while the server is killed.
    for k in 0..15 {
        append(&app, 200 + k * 100, 300 + k * 100);
        std::thread::sleep(Duration::from_millis(7));
    }
    server.kill9();
    append(&app, 1700, 2000);
    // Rotation by rename while the server is down.
    fs::rename(&app, logs.join("app.log.1")).unwrap();
    append(&app, 2000, 2500);
    server.spawn();
    append(&app, 2500, 3000);
    append(&logs.join("other-1.log"), 5000, 5100);
    assert_eq!(wait_lines(3100), 3100);
    // copytruncate: copy, then truncate in place, then more lines; a kill -9 right after.
    fs::copy(&app, logs.join("app.log.2")).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&app)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&app, 3000, 3200);
    std::thread::sleep(Duration::from_millis(150));
    server.kill9();
    server.spawn();
    append(&app, 3200, 3300);
    assert_eq!(wait_lines(3400), 3400);
    // Nothing more comes (nothing read twice later on).
    std::thread::sleep(Duration::from_millis(300));
    assert!(server.term().success());
    let counts = auth_counts(&data);
    let missing: Vec<usize> = (0..3300)
        .chain(5000..5100)
        .filter(|i| !counts.contains_key(i))
        .collect();
    let twice: Vec<(&usize, &usize)> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        missing.is_empty(),
        "lines lost: {} (first {:?})",
        missing.len(),
        missing.first()
    );
    assert!(
        twice.is_empty(),
        "lines stored more than once: {} (first {:?})",
        twice.len(),
        twice.first()
    );
    assert_eq!(counts.len(), 3400);
}

/// `paths: [".../auth.log"]` (the example): rotated by rename to auth.log.1 while the
/// service is down, outside the globs; its unread tail is still read after the restart, found
/// by inode, and the new auth.log from its start.
#[test]
fn file_rotated_outside_the_globs_while_down() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    fs::create_dir_all(&logs).unwrap();
    let log = logs.join("auth.log");
    let (cfg, api) = local_config(
        dir.path(),
        &format!(
            "  - type: file\n    name: auth\n    paths: [\"{}\"]\n    poll_interval: 20ms\n",
            log.display()
        ),
        false,
    );
    let data = dir.path().join("data");
    let wait_lines = |n: usize| wait_auth_lines(&data, n);
    append(&log, 0, 500);
    let mut server = Server::start(&cfg, api);
    assert_eq!(wait_lines(500), 500);
    server.kill9();
    append(&log, 500, 800);
    fs::rename(&log, logs.join("auth.log.1")).unwrap();
    append(&log, 800, 1000);
    server.spawn();
    assert_eq!(wait_lines(1000), 1000);
    assert!(server.term().success());
    let counts = auth_counts(&data);
    assert!(
        counts.values().all(|n| *n == 1),
        "read twice: {:?}",
        counts.iter().find(|(_, n)| **n != 1)
    );
    assert_eq!(counts.len(), 1000);
}
