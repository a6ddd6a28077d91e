//! Alerts leaving the server: sinks that are down (retried, kept across `kill -9`),
//! suppression, per-sink levels, rules reloaded on SIGHUP, silent-source alerts, and
//! correlation state that outlives restarts.

use std::fs;
use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::events::{event, event_list, post, stored, webhook_client};
use crate::server::{free_port, start_webhook};

/// A tiny HTTP receiver for the webhook sink: every body, by path.
fn receiver(port: u16) -> Received {
    let got = Arc::new(Mutex::new(Vec::new()));
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let g = got.clone();
    std::thread::spawn(move || {
        use std::io::{BufRead, BufReader, Read};
        for stream in listener.incoming().flatten() {
            let mut r = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split(' ').nth(1).unwrap_or("").to_string();
            let mut len = 0;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            g.lock()
                .unwrap()
                .push((path, String::from_utf8_lossy(&body).into_owned()));
            let mut w = stream;
            let _ =
                w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    got
}

const RULE_A: &str = "title: Test configmaps listed\nid: test-cm-list\nstatus: test\nlogsource: {product: kubernetes, service: audit}\ndetection:\n  selection:\n    verb: list\n    objectRef.resource: configmaps\n  condition: selection\nlevel: high\n";
const RULE_B: &str = "title: Test configmaps listed (critical)\nid: test-cm-list-critical\nstatus: test\nlogsource: {product: kubernetes, service: audit}\ndetection:\n  selection:\n    verb: list\n    objectRef.resource: configmaps\n    user.username: reloaded\n  condition: selection\nlevel: critical\n";

/// A sink that is down gets everything once it is up, even across a kill -9; suppression;
/// per-sink levels; SIGHUP reloads rules; a silent source raises an alert.
#[test]
fn sinks_retry_while_down_suppression_sighup_and_silent_source() {
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let rules = dir.path().join("rules");
    fs::create_dir_all(&rules).unwrap();
    fs::write(rules.join("a.yml"), RULE_A).unwrap();
    let syslog_sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    syslog_sink
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let syslog_port = syslog_sink.local_addr().unwrap().port();
    let quiet = dir.path().join("quiet");
    fs::create_dir_all(&quiet).unwrap();
    let extra = format!(
        "  - type: file\n    name: quiet\n    paths: [\"{q}/*.log\"]\n    silent_after: 1s\nrules: [\"{rules}\"]\nbuiltin_rules: false\nsinks:\n  - type: webhook\n    name: hook\n    url: http://127.0.0.1:{hook}/hook\n    max_backoff: 300ms\n  - type: webhook\n    name: slack\n    url: http://127.0.0.1:{hook}/slack\n    format: slack\n    min_level: critical\n    max_backoff: 300ms\n  - type: file\n    name: file\n    path: {alerts}\n  - type: syslog\n    name: siem\n    url: udp://127.0.0.1:{syslog_port}\n    min_level: critical\nsuppress:\n  - rule: test-cm-list\n    group_by: [user.username]\n    window: 1h\n",
        q = quiet.display(),
        rules = rules.display(),
        alerts = dir.path().join("alerts.jsonl").display(),
    );
    let (c, port, mut server) = start_webhook(dir.path(), &extra, &[]);
    let mut client = webhook_client(port, &c, true);
    let events: Vec<Value> = (0..20)
        .map(|i| event(&format!("s-{i}"), "ResponseComplete"))
        .collect();
    assert_eq!(post(&mut client, &event_list(events)).unwrap().0, 200);
    assert_eq!(
        server.wait_metric(
            "vigil_alerts_suppressed_total{rule=\"test-cm-list\"}",
            19.0,
            20
        ),
        19.0
    );
    assert!(server.wait_metric("vigil_alerts_total{rule=\"vigil-source-silent\"}", 1.0, 20) >= 1.0);
    assert!(server.wait_metric("vigil_sink_failures_total{sink=\"hook\"}", 2.0, 20) >= 2.0);
    // Down, and now killed: the queue is on disk.
    server.kill9();
    server.spawn();
    let got = receiver(hook);
    let deadline = Instant::now() + Duration::from_secs(30);
    let hook_bodies = |got: &Received| bodies(got, "/hook");
    while Instant::now() < deadline {
        let b = hook_bodies(&got);
        if b.iter().any(|v| v["rule"]["id"] == "test-cm-list")
            && b.iter().any(|v| v["rule"]["id"] == "vigil-source-silent")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let b = hook_bodies(&got);
    assert_eq!(
        b.iter()
            .filter(|v| v["rule"]["id"] == "test-cm-list")
            .count(),
        1,
        "suppressed to one: {b:?}"
    );
    assert!(
        b.iter().any(|v| v["rule"]["id"] == "vigil-source-silent"),
        "{b:?}"
    );
    // SIGHUP: a new rule.
    fs::write(rules.join("b.yml"), RULE_B).unwrap();
    server.signal("HUP");
    assert_eq!(
        server.wait_metric("vigil_rule_reloads_total{result=\"ok\"}", 1.0, 20),
        1.0
    );
    let mut e = event("r-1", "ResponseComplete");
    e["user"]["username"] = json!("reloaded");
    assert_eq!(post(&mut client, &event_list(vec![e])).unwrap().0, 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    let slack = |got: &Received| bodies(got, "/slack");
    while slack(&got).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = slack(&got);
    assert_eq!(
        s.len(),
        1,
        "only the critical alert goes to the slack sink: {s:?}"
    );
    assert!(s[0]["text"].as_str().unwrap().contains("CRITICAL"), "{s:?}");
    // The syslog sink: RFC 5424, facility auth, severity crit (2) for a critical alert.
    let mut buf = [0u8; 65536];
    let n = syslog_sink.recv(&mut buf).unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]);
    assert!(msg.starts_with("<34>1 "), "{msg}");
    assert!(
        msg.contains(" vigil - alert - {") && msg.contains("test-cm-list-critical"),
        "{msg}"
    );
    assert!(server.term().success());
    let file_alerts = fs::read_to_string(dir.path().join("alerts.jsonl")).unwrap();
    assert!(file_alerts.contains("test-cm-list-critical"));
}

const CORRELATION: &str = "title: Configmap deleted (test)\nid: test-cm-delete\nlogsource: {product: kubernetes, service: audit}\ndetection:\n  selection:\n    verb: delete\n    objectRef.resource: configmaps\n  condition: selection\nlevel: low\n---\ntitle: Three configmaps deleted by one user (test)\nid: test-cm-delete-burst\ncorrelation:\n  type: event_count\n  rules: [test-cm-delete]\n  group-by: [user.username]\n  timespan: 1h\n  condition:\n    gte: 3\nlevel: high\n";

/// Correlation state outlives restarts: one event before a checkpoint and a kill -9, one stored
/// but not yet checkpointed when killed (replayed from the journal), the third fires.
#[test]
fn correlation_state_survives_kill9() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    fs::create_dir_all(&rules).unwrap();
    fs::write(rules.join("corr.yml"), CORRELATION).unwrap();
    let extra = format!(
        "rules: [\"{}\"]\nbuiltin_rules: false\nsinks:\n  - type: file\n    path: {}\n",
        rules.display(),
        dir.path().join("alerts.jsonl").display()
    );
    let (c, port, mut server) = start_webhook(dir.path(), &extra, &[]);
    let delete = |i: usize| {
        let mut e = event(&format!("del-{i}"), "ResponseComplete");
        e["verb"] = json!("delete");
        e["objectRef"]["name"] = json!(format!("cm-{i}"));
        event_list(vec![e])
    };
    let mut client = webhook_client(port, &c, true);
    assert_eq!(post(&mut client, &delete(1)).unwrap().0, 200);
    std::thread::sleep(Duration::from_millis(1200));
    server.kill9();
    server.spawn();
    assert_eq!(post(&mut client, &delete(2)).unwrap().0, 200);
    server.kill9();
    server.spawn();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(post(&mut client, &delete(3)).unwrap().0, 200);
    let fired = server.wait_metric("vigil_alerts_total{rule=\"test-cm-delete-burst\"}", 1.0, 10);
    assert_eq!(
        fired,
        1.0,
        "{}",
        fs::read_to_string(dir.path().join("vigil.log")).unwrap_or_default()
    );
    let log = fs::read_to_string(dir.path().join("vigil.log")).unwrap();
    assert!(
        log.contains("1 stored events after the last checkpoint are evaluated again"),
        "{log}"
    );
    assert!(server.term().success());
    let alerts = stored(&dir.path().join("data"), "vigil.alert");
    assert_eq!(
        alerts
            .iter()
            .filter(|a| a.contains("test-cm-delete-burst"))
            .count(),
        1
    );
}

/// What a receiver got: (path, body) per request.
type Received = Arc<Mutex<Vec<(String, String)>>>;

/// The JSON bodies a receiver got at `path`.
fn bodies(got: &Received, path: &str) -> Vec<Value> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p == path)
        .map(|(_, b)| serde_json::from_str(b).unwrap())
        .collect()
}
