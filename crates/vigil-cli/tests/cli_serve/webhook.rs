//! The kube-apiserver audit webhook source: mTLS and bearer tokens (reloaded on SIGHUP),
//! limits, malformed events, duplicates, metrics and SIGTERM, `kill -9` in the middle of a
//! stream, kube-apiserver's own webhook backend, and a full disk.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use vigil_server::client::Client;

use crate::events::{
    assert_verifies, audit_counts, event, event_list, post, stored, webhook_client,
};
use crate::server::{start_webhook, Server};

#[test]
fn webhook_auth_limits_malformed_duplicates_metrics_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let sinks = format!(
        "sinks:\n  - type: file\n    name: alerts\n    path: {}\n",
        dir.path().join("alerts.jsonl").display()
    );
    let (c, port, mut server) = start_webhook(dir.path(), &sinks, &[]);

    // mTLS.
    let mut mtls = webhook_client(port, &c, true);
    let batch: Vec<Value> = (0..50)
        .map(|i| event(&format!("a-{i}"), "ResponseComplete"))
        .collect();
    let (st, body) = post(&mut mtls, &event_list(batch.clone())).unwrap();
    assert_eq!((st, body["stored"].as_u64()), (200, Some(50)), "{body}");
    // The same batch again (an apiserver retry): collapsed.
    let (st, body) = post(&mut mtls, &event_list(batch)).unwrap();
    assert_eq!(
        (st, body["duplicates"].as_u64(), body["stored"].as_u64()),
        (200, Some(50), Some(0))
    );
    // Bearer token, no certificate.
    let mut bearer = webhook_client(port, &c, false);
    let r = bearer
        .request(
            "POST",
            &[("Authorization", "Bearer s3cret-token")],
            &event_list(vec![
                event("b-1", "RequestReceived"),
                event("b-1", "ResponseComplete"),
            ]),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // Nothing, a wrong token, a certificate from another CA: 401.
    assert_eq!(
        post(
            &mut bearer,
            &event_list(vec![event("x", "ResponseComplete")])
        )
        .unwrap()
        .0,
        401
    );
    let r = bearer
        .request("POST", &[("Authorization", "Bearer wrong")], b"{}")
        .unwrap();
    assert_eq!(r.status, 401);
    let rogue_tls = vigil_server::tls::client_config(
        Some(&c.ca),
        Some((c.rogue_cert.as_path(), c.rogue_key.as_path())),
    )
    .unwrap();
    let mut rogue = Client::new(
        &format!("https://127.0.0.1:{port}/audit"),
        Some(rogue_tls),
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(post(&mut rogue, &event_list(vec![]))
        .map(|r| r.0 != 200)
        .unwrap_or(true));
    // A malformed event inside a batch: rejected alone, named.
    let mut items = vec![
        event("m-1", "ResponseComplete"),
        json!(42),
        json!({"kind":"Event"}),
        event("m-2", "ResponseComplete"),
    ];
    items.push(json!({"kind":"Event","auditID":"big","stage":"ResponseComplete","requestObject":{"pad":"x".repeat(70_000)}}));
    let (st, body) = post(&mut mtls, &event_list(items)).unwrap();
    assert_eq!(
        st, 413,
        "an oversize event is a 413 (the rest is stored first): {body}"
    );
    assert_eq!(body["stored"], 2);
    assert_eq!(body["rejected"].as_array().unwrap().len(), 2, "{body}");
    assert_eq!(body["rejected"][0]["index"], 1);
    assert!(
        body["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .contains("not a JSON object"),
        "{body}"
    );
    assert_eq!(body["oversize"][0]["index"], 4);
    // An oversize batch.
    let huge: Vec<Value> = (0..40)
        .map(|i| {
            let mut e = event(&format!("h-{i}"), "ResponseComplete");
            e["annotations"] = json!({"pad": "y".repeat(30_000)});
            e
        })
        .collect();
    let (st, _) = post(&mut mtls, &event_list(huge)).unwrap();
    assert_eq!(st, 413);
    // Not an EventList.
    assert_eq!(post(&mut mtls, b"{\"items\": 3}").unwrap().0, 400);
    // An attack: a secret read by a service account from outside the cluster + exec.
    let attack: Vec<Value> = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/k8s-audit.jsonl"),
    )
    .unwrap()
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    let n_attack = attack.len();
    let (st, body) = post(&mut mtls, &event_list(attack)).unwrap();
    assert_eq!(
        (st, body["stored"].as_u64()),
        (200, Some(n_attack as u64)),
        "{body}"
    );

    let alerts = server.wait_metric("vigil_sink_delivered_total", 10.0, 20);
    assert!(
        alerts >= 10.0,
        "alerts delivered to the file sink: {alerts}"
    );
    assert_eq!(
        server.metric("vigil_events_stored_total{source=\"apiserver\"}"),
        (50 + 2 + 2 + n_attack) as f64
    );
    assert_eq!(
        server.metric("vigil_events_deduplicated_total{source=\"apiserver\"}"),
        50.0
    );
    assert_eq!(
        server.metric("vigil_events_rejected_total{source=\"apiserver\",reason=\"malformed\"}"),
        3.0
    );
    assert_eq!(
        server.metric("vigil_oversize_total{source=\"apiserver\",kind=\"event\"}"),
        1.0
    );
    // (A client that is cut off while still sending may try again: at least once.)
    assert!(server.metric("vigil_oversize_total{source=\"apiserver\",kind=\"batch\"}") >= 1.0);
    assert_eq!(server.metric("vigil_events_dropped_total"), 0.0);
    assert!(server.metric("vigil_requests_total{source=\"apiserver\",code=\"401\"}") >= 2.0);
    assert!(server.metric("vigil_ingest_to_alert_seconds_count") >= 10.0);
    let (st, healthz) = server.get("/healthz").unwrap();
    assert_eq!((st, healthz.trim()), (200, "ok"));

    let st = server.term();
    assert!(st.success(), "SIGTERM: clean exit: {st}");
    let counts = audit_counts(&dir.path().join("data"));
    assert!(counts.values().all(|n| *n == 1), "each event once");
    assert_eq!(counts.len(), 50 + 2 + 2 + n_attack);
    assert!(!counts.contains_key(&("big".into(), "ResponseComplete".into())));
    // Alerts: stored, in the sink, with the detect contract.
    let lines = fs::read_to_string(dir.path().join("alerts.jsonl")).unwrap();
    let first: Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    for k in ["id", "rule", "time", "group", "events", "matched"] {
        assert!(first.get(k).is_some(), "{k} in {first}");
    }
    assert_eq!(
        stored(&dir.path().join("data"), "vigil.alert").len(),
        lines.lines().count()
    );
    assert_verifies(&dir.path().join("data"));
}

/// The status of one POST with `Authorization: Bearer TOKEN` (and no client certificate).
fn post_with_token(c: &mut Client, token: &str) -> u16 {
    let auth = format!("Bearer {token}");
    let body = event_list(vec![event(&format!("t-{token}"), "ResponseComplete")]);
    c.request("POST", &[("Authorization", auth.as_str())], &body)
        .unwrap()
        .status
}

/// SIGHUP, then the first token reload of the webhook source `apiserver` with `result`.
fn hup_and_wait_token_reload(server: &Server, result: &str) {
    server.signal("HUP");
    let series = format!("vigil_token_reloads_total{{source=\"apiserver\",result=\"{result}\"}}");
    assert_eq!(server.wait_metric(&series, 1.0, 20), 1.0, "{series}");
}

/// SIGHUP reads `bearer_tokens_file` again: the new token gets in, the old one gets 401; a
/// token file that went bad keeps the tokens in use, and the log names the file but never a
/// token.
#[test]
fn sighup_reloads_bearer_tokens_and_keeps_them_on_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let (c, port, mut server) = start_webhook(dir.path(), "", &[]);
    let tokens = dir.path().join("tokens.txt");
    let mut client = webhook_client(port, &c, false);
    // (accepted, refused): one request each, with no client certificate.
    let mut statuses = |accepted: &str, refused: &str| {
        (
            post_with_token(&mut client, accepted),
            post_with_token(&mut client, refused),
        )
    };
    assert_eq!(statuses("s3cret-token", "rotated-token"), (200, 401));

    fs::write(&tokens, "rotated-token,kube-apiserver,1\n").unwrap();
    hup_and_wait_token_reload(&server, "ok");
    assert_eq!(statuses("rotated-token", "s3cret-token"), (200, 401));

    // A bad file on reload: the tokens in use stay.
    fs::remove_file(&tokens).unwrap();
    hup_and_wait_token_reload(&server, "error");
    assert_eq!(statuses("rotated-token", "s3cret-token"), (200, 401));

    assert!(server.term().success());
    let log = fs::read_to_string(&server.log).unwrap();
    assert!(
        log.contains("bearer tokens reloaded from") && log.contains("1 added, 1 removed, 1 in use"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "bearer tokens not reloaded, the old ones stay in use: {}",
            tokens.display()
        )),
        "{log}"
    );
    assert!(
        !log.contains("rotated-token") && !log.contains("s3cret-token"),
        "a token in the log: {log}"
    );
}

/// Batches are sent; the server is killed (-9) mid-stream; it restarts; what was not
/// acknowledged is sent again. Every acknowledged event must be stored exactly once.
#[test]
fn webhook_kill9_mid_stream_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (c, port, mut server) = start_webhook(dir.path(), "", &[]);
    const BATCHES: usize = 400;
    const PER: usize = 25;
    let batch = |b: usize| {
        event_list(
            (0..PER)
                .map(|i| {
                    event(
                        &format!("k-{b:04}-{i:02}"),
                        if i % 2 == 0 {
                            "ResponseComplete"
                        } else {
                            "RequestReceived"
                        },
                    )
                })
                .collect(),
        )
    };
    let acked = Arc::new(Mutex::new(Vec::new()));
    let progress = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..2)
        .map(|t| {
            let (acked, progress) = (acked.clone(), progress.clone());
            let mut client = webhook_client(port, &c, true);
            std::thread::spawn(move || {
                let mut failed = Vec::new();
                for b in (t..BATCHES).step_by(2) {
                    if !failed.is_empty() {
                        failed.push(b);
                        continue;
                    }
                    match post(&mut client, &batch(b)) {
                        Ok((200, _)) => {
                            acked.lock().unwrap().push(b);
                            progress.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => failed.push(b),
                    }
                }
                failed
            })
        })
        .collect();
    while progress.load(Ordering::SeqCst) < 60 {
        std::thread::sleep(Duration::from_millis(2));
    }
    server.kill9();
    let mut unacked: Vec<usize> = senders
        .into_iter()
        .flat_map(|s| s.join().unwrap())
        .collect();
    unacked.sort();
    let acked_before: Vec<usize> = acked.lock().unwrap().clone();
    assert!(
        acked_before.len() >= 60 && !unacked.is_empty(),
        "{} acked, {} not",
        acked_before.len(),
        unacked.len()
    );
    server.spawn();
    let mut client = webhook_client(port, &c, true);
    for b in &unacked {
        let (st, body) = post(&mut client, &batch(*b)).unwrap();
        assert_eq!(st, 200, "{body}");
    }
    // And a retry of batches that were acknowledged (the apiserver does not know we got them).
    for b in acked_before.iter().take(3) {
        let (st, body) = post(&mut client, &batch(*b)).unwrap();
        assert_eq!((st, body["duplicates"].as_u64()), (200, Some(PER as u64)));
    }
    assert!(server.term().success());
    let counts = audit_counts(&dir.path().join("data"));
    for b in 0..BATCHES {
        for i in 0..PER {
            let key = (
                format!("k-{b:04}-{i:02}"),
                if i % 2 == 0 {
                    "ResponseComplete"
                } else {
                    "RequestReceived"
                }
                .to_string(),
            );
            assert_eq!(
                counts.get(&key),
                Some(&1),
                "{key:?} (batch acknowledged before the kill: {})",
                acked_before.contains(&b)
            );
        }
    }
    assert_eq!(counts.len(), BATCHES * PER);
    assert_verifies(&dir.path().join("data"));
}

/// kube-apiserver's own audit webhook backend (k8s.io/apiserver's buffered + webhook plugins,
/// configured from a kubeconfig with client certificates, or a bearer token) against
/// `vigil serve`: every event arrives, stored once.
#[test]
fn interop_kube_apiserver_webhook_backend() {
    let Some(bin) = std::env::var_os("VIGIL_WEBHOOK_CLIENT") else {
        eprintln!("skipping: set VIGIL_WEBHOOK_CLIENT to the built interop/k8s-webhook-client (scripts/test does)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (c, port, mut server) = start_webhook(dir.path(), "", &[]);
    let kubeconfig = |user: &str| {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n  - name: vigil\n    cluster:\n      server: https://127.0.0.1:{port}/audit\n      certificate-authority: {ca}\nusers:\n  - name: kube-apiserver\n    user:\n{user}contexts:\n  - name: vigil\n    context: {{cluster: vigil, user: kube-apiserver}}\ncurrent-context: vigil\n",
            ca = c.ca.display()
        )
    };
    let mtls = dir.path().join("mtls.kubeconfig");
    fs::write(
        &mtls,
        kubeconfig(&format!(
            "      client-certificate: {}\n      client-key: {}\n",
            c.client_cert.display(),
            c.client_key.display()
        )),
    )
    .unwrap();
    let token = dir.path().join("token.kubeconfig");
    fs::write(&token, kubeconfig("      token: s3cret-token\n")).unwrap();
    let run = |kc: &Path, args: &[&str]| {
        let out = Command::new(&bin)
            .arg("-kubeconfig")
            .arg(kc)
            .args(["-batch-max-wait", "200ms", "-initial-backoff", "1s"])
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(v["failed"], 0, "{v}");
    };
    // Batch mode with the apiserver's defaults (400 per batch, throttled), events with bodies.
    run(
        &mtls,
        &[
            "-events",
            "6000",
            "-prefix",
            "batch",
            "-object-bytes",
            "300",
        ],
    );
    // Blocking mode: one POST per event.
    run(
        &mtls,
        &["-events", "150", "-mode", "blocking", "-prefix", "blocking"],
    );
    // A bearer token instead of a client certificate.
    run(&token, &["-events", "1000", "-prefix", "token"]);
    assert!(server.term().success());
    let counts = audit_counts(&dir.path().join("data"));
    for (prefix, n) in [("batch", 6000), ("blocking", 150), ("token", 1000)] {
        for i in 0..n {
            let key = (format!("{prefix}-{i:08}"), "ResponseComplete".to_string());
            assert_eq!(counts.get(&key), Some(&1), "{key:?}");
        }
    }
    assert_eq!(counts.len(), 7150);
}

/// A full disk: 503 (the apiserver retries), /readyz says so, nothing acknowledged is lost;
/// once there is room again what was refused is taken.
#[test]
fn disk_full_is_503_and_nothing_acknowledged_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (c, port, mut server) =
        start_webhook(dir.path(), "", &[("VIGIL_TEST_DISK_BYTES", "120000")]);
    let mut client = webhook_client(port, &c, true);
    let batch = |b: usize| {
        event_list(
            (0..20)
                .map(|i| event(&format!("d-{b}-{i}"), "ResponseComplete"))
                .collect(),
        )
    };
    let (mut acked, mut refused) = (Vec::new(), Vec::new());
    for b in 0..200 {
        match post(&mut client, &batch(b)).unwrap() {
            (200, _) => acked.push(b),
            (503, body) => {
                assert!(
                    body["error"].as_str().unwrap().contains("disk full")
                        || body["error"].as_str().unwrap().contains("not writable"),
                    "{body}"
                );
                refused.push(b)
            }
            (st, body) => panic!("{st} {body}"),
        }
    }
    assert!(
        !acked.is_empty() && !refused.is_empty(),
        "{} acked, {} refused",
        acked.len(),
        refused.len()
    );
    assert_eq!(server.get("/readyz").unwrap().0, 503);
    assert!(server.metric("vigil_store_errors_total") >= 1.0);
    assert!(server.term().success());
    // Room again.
    server.spawn();
    for b in &refused {
        assert_eq!(post(&mut client, &batch(*b)).unwrap().0, 200);
    }
    assert!(server.term().success());
    let counts = audit_counts(&dir.path().join("data"));
    assert_eq!(counts.len(), 200 * 20);
    assert!(counts.values().all(|n| *n == 1));
}
