//! `vigil serve` end to end, with real clients: the webhook over TLS (mTLS and bearer tokens),
//! kube-apiserver's own webhook backend (interop/k8s-webhook-client, when built), `logger` to
//! the syslog source, files followed across rotation, sinks that are down, and `kill -9` in the
//! middle of it all. Certificates are made at test time (rcgen). Loopback only.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use serde_json::{json, Value};
use vigil_server::client::Client;

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

struct Certs {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    /// A client certificate from another CA (must be refused).
    rogue_cert: PathBuf,
    rogue_key: PathBuf,
}

fn make_ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    let k = KeyPair::generate().unwrap();
    let c = p.self_signed(&k).unwrap();
    (c, k)
}

fn certs(dir: &Path) -> Certs {
    let (ca, ca_key) = make_ca("vigil test CA");
    let mut sp =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    sp.distinguished_name.push(DnType::CommonName, "vigil");
    let sk = KeyPair::generate().unwrap();
    let sc = sp.signed_by(&sk, &ca, &ca_key).unwrap();
    let client = |ca: &rcgen::Certificate, ca_key: &KeyPair| {
        let mut cp = CertificateParams::new(Vec::<String>::new()).unwrap();
        cp.distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        cp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let ck = KeyPair::generate().unwrap();
        let cc = cp.signed_by(&ck, ca, ca_key).unwrap();
        (cc, ck)
    };
    let (cc, ck) = client(&ca, &ca_key);
    let (rca, rca_key) = make_ca("rogue CA");
    let (rc, rk) = client(&rca, &rca_key);
    let w = |name: &str, text: String| {
        let p = dir.join(name);
        fs::write(&p, text).unwrap();
        p
    };
    Certs {
        ca: w("ca.crt", ca.pem()),
        server_cert: w("server.crt", sc.pem()),
        server_key: w("server.key", sk.serialize_pem()),
        client_cert: w("client.crt", cc.pem()),
        client_key: w("client.key", ck.serialize_pem()),
        rogue_cert: w("rogue.crt", rc.pem()),
        rogue_key: w("rogue.key", rk.serialize_pem()),
    }
}

/// A port for a server of a test. Handed out from 20000-29999 (below the kernel's ephemeral
/// range, so the clients' own sockets never take one while a server restarts), once per process
/// run, checked free for TCP and UDP.
fn free_port() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let base = 20_000 + (std::process::id() as usize % 400) * 25;
    loop {
        let p = (base + NEXT.fetch_add(1, Ordering::SeqCst)) % 10_000 + 20_000;
        let p = p as u16;
        if TcpListener::bind(("127.0.0.1", p)).is_ok() && UdpSocket::bind(("127.0.0.1", p)).is_ok()
        {
            return p;
        }
    }
}

fn free_udp_tcp_port() -> u16 {
    free_port()
}

struct Server {
    child: Option<Child>,
    config: PathBuf,
    api: u16,
    log: PathBuf,
    starts: usize,
}

impl Server {
    fn start(config: &Path, api: u16) -> Server {
        Server::start_env(config, api, &[])
    }

    fn start_env(config: &Path, api: u16, env: &[(&str, &str)]) -> Server {
        let mut s = Server {
            child: None,
            config: config.to_path_buf(),
            api,
            log: config.with_extension("log"),
            starts: 0,
        };
        s.spawn_env(env);
        s
    }

    fn spawn(&mut self) {
        self.spawn_env(&[]);
    }

    fn spawn_env(&mut self, env: &[(&str, &str)]) {
        self.starts += 1;
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let out = self.config.with_extension(format!("stdout{}", self.starts));
        let child = Command::new(VIGIL)
            .args(["serve", "--config"])
            .arg(&self.config)
            .stdout(fs::File::create(out).unwrap())
            .stderr(log)
            .envs(env.iter().copied())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.get("/readyz") {
                if r.0 == 200 {
                    return;
                }
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "vigil serve exited ({st}): {}",
                    fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "vigil serve not ready: {}",
                fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn get(&self, path: &str) -> Result<(u16, String), String> {
        let mut c = Client::new(
            &format!("http://127.0.0.1:{}{path}", self.api),
            None,
            Duration::from_secs(5),
        )?;
        let r = c.request("GET", &[], b"")?;
        Ok((r.status, String::from_utf8_lossy(&r.body).into_owned()))
    }

    /// A counter or gauge from /metrics (sum over series starting with `series`).
    fn metric(&self, series: &str) -> f64 {
        let text = self.get("/metrics").map(|r| r.1).unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with(series))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    fn wait_metric(&self, series: &str, want: f64, secs: u64) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.metric(series);
            if v >= want || Instant::now() > deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM; the exit status.
    fn term(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().unwrap();
        unsafe_kill(c.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "vigil serve did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            unsafe_kill(c.id(), sig);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn unsafe_kill(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

fn webhook_client(port: u16, c: &Certs, with_cert: bool) -> Client {
    let tls = vigil_server::tls::client_config(
        Some(&c.ca),
        with_cert.then_some((c.client_cert.as_path(), c.client_key.as_path())),
    )
    .unwrap();
    Client::new(
        &format!("https://127.0.0.1:{port}/audit"),
        Some(tls),
        Duration::from_secs(30),
    )
    .unwrap()
}

fn event(id: &str, stage: &str) -> Value {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    json!({"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":id,"stage":stage,
        "requestURI":"/api/v1/namespaces/default/configmaps","verb":"list",
        "user":{"username":"system:serviceaccount:default:app","groups":["system:authenticated"]},
        "sourceIPs":["127.0.0.1"],"userAgent":"test","objectRef":{"resource":"configmaps","namespace":"default","apiVersion":"v1"},
        "responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":now,"stageTimestamp":now})
}

fn event_list(items: Vec<Value>) -> Vec<u8> {
    json!({"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":items})
        .to_string()
        .into_bytes()
}

fn post(c: &mut Client, body: &[u8]) -> Result<(u16, Value), String> {
    let r = c.request("POST", &[("Content-Type", "application/json")], body)?;
    Ok((
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    ))
}

/// Every stored record of `dataset`, as text. Read while a server may be writing (a partition
/// being created is not readable yet): tried again a few times.
fn stored(dir: &Path, dataset: &str) -> Vec<String> {
    let mut tries = 0;
    loop {
        match try_stored(dir, dataset) {
            Ok(v) => return v,
            Err(e) if tries < 20 => {
                let _ = e;
                tries += 1;
                std::thread::sleep(Duration::from_millis(25));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

fn try_stored(dir: &Path, dataset: &str) -> Result<Vec<String>, vigil_store::StoreError> {
    let r = vigil_store::Reader::open(dir)?;
    let mut out = Vec::new();
    for p in r.parts.iter().filter(|p| p.dataset == dataset) {
        r.scan_partition(p, 0, &mut |e| {
            out.push(String::from_utf8_lossy(&e.record.raw).into_owned());
            Ok(true)
        })?;
    }
    Ok(out)
}

/// (auditID, stage) -> how many times stored.
fn audit_counts(dir: &Path) -> HashMap<(String, String), usize> {
    let mut m = HashMap::new();
    for raw in stored(dir, "k8s.audit") {
        let v: Value = serde_json::from_str(&raw).unwrap();
        let key = (
            v["auditID"].as_str().unwrap_or("").to_string(),
            v["stage"].as_str().unwrap_or("").to_string(),
        );
        *m.entry(key).or_default() += 1;
    }
    m
}

fn webhook_config(dir: &Path, c: &Certs, port: u16, api: u16, extra: &str) -> PathBuf {
    fs::write(
        dir.join("tokens.txt"),
        "# tokens\ns3cret-token,kube-apiserver,1\n",
    )
    .unwrap();
    let cfg = format!(
        r#"data_dir: {data}
sources:
  - type: k8s_audit_webhook
    name: apiserver
    listen: 127.0.0.1:{port}
    path: /audit
    tls: {{ cert: {cert}, key: {key}, client_ca: {ca} }}
    bearer_tokens_file: tokens.txt
    max_event_bytes: 65536
    max_batch_bytes: 1048576
{extra}api:
  listen: 127.0.0.1:{api}
detection:
  allowed_lateness: 200ms
  checkpoint_interval: 500ms
"#,
        data = dir.join("data").display(),
        cert = c.server_cert.display(),
        key = c.server_key.display(),
        ca = c.ca.display(),
    );
    let p = dir.join("vigil.yaml");
    fs::write(&p, cfg).unwrap();
    p
}

/// A server with a webhook source (`webhook_config` and `extra`) in `dir`, started with `env`:
/// the certificates, the webhook's port and the server.
fn start_webhook(dir: &Path, extra: &str, env: &[(&str, &str)]) -> (Certs, u16, Server) {
    let c = certs(dir);
    let (port, api) = (free_port(), free_port());
    let cfg = webhook_config(dir, &c, port, api, extra);
    let server = Server::start_env(&cfg, api, env);
    (c, port, server)
}

/// `dir/vigil.yaml` with `sources` (YAML list items), data in `dir/data` and the operations
/// API on a free port, which is returned with the path. The server is not started: the tests
/// write logs before it starts.
fn local_config(dir: &Path, sources: &str, detection: bool) -> (PathBuf, u16) {
    let api = free_port();
    let off = if detection {
        ""
    } else {
        "detection:\n  enabled: false\n"
    };
    let cfg = dir.join("vigil.yaml");
    fs::write(
        &cfg,
        format!(
            "data_dir: {}\nsources:\n{sources}api:\n  listen: 127.0.0.1:{api}\n{off}",
            dir.join("data").display()
        ),
    )
    .unwrap();
    (cfg, api)
}

/// `vigil verify` passes over the data directory.
fn assert_verifies(data: &Path) {
    let verify = Command::new(VIGIL)
        .args(["verify", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

fn have_logger() -> bool {
    Command::new("logger")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `vigil config check` of `yaml` written to `path`: the exit code and stderr.
fn config_check(path: &Path, yaml: &str) -> (Option<i32>, String) {
    fs::write(path, yaml).unwrap();
    let out = Command::new(VIGIL)
        .args(["config", "check"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_check_names_the_line_of_each_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.yaml");
    let (code, err) = config_check(
        &p,
        "data_dir: ./data\nsources:\n  - type: syslog\n    listen: sctp://127.0.0.1:514\n  - type: file\n    paths: [\"/var/log/*.log\"]\n    format: nope\nsinks:\n  - type: webhook\n    url: ${VIGIL_TEST_UNSET_HOOK}\n",
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("bad.yaml:10: environment variable VIGIL_TEST_UNSET_HOOK is not set"),
        "{err}"
    );
    let (code, err) = config_check(
        &p,
        "data_dir: ./data\nsources:\n  - type: syslog\n    listen: sctp://127.0.0.1:514\n  - type: file\n    paths: [\"/var/log/*.log\"]\n    format: nope\n",
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("bad.yaml:4: sources[0].listen: unknown transport \"sctp\""),
        "{err}"
    );
    assert!(
        err.contains("bad.yaml:7: sources[1].format: unknown format \"nope\""),
        "{err}"
    );
    let (code, err) = config_check(
        &p,
        "data_dir: ./data\nsources:\n  - type: syslog\n    listen: udp://127.0.0.1:5514\n",
    );
    assert_eq!(code, Some(0), "{err}");
    // The shipped example passes (its certificates are not in the repository: only the syntax).
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/serve/vigil.yaml");
    let text = fs::read_to_string(&example).unwrap();
    vigil_server::config::parse(&text, Path::new("/etc/vigil"), &|_| Some("x".into()))
        .unwrap_or_else(|e| panic!("{e:?}"));
}

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

#[test]
fn syslog_from_logger_udp_tcp_and_tls() {
    let dir = tempfile::tempdir().unwrap();
    let c = certs(dir.path());
    let (udp, tcp, tls_port) = (free_udp_tcp_port(), free_port(), free_port());
    let (cfg, api) = local_config(
        dir.path(),
        &format!(
            "  - type: syslog\n    name: udp\n    listen: udp://127.0.0.1:{udp}\n  - type: syslog\n    name: tcp\n    listen: tcp://127.0.0.1:{tcp}\n  - type: syslog\n    name: tls\n    listen: tls://127.0.0.1:{tls_port}\n    tls: {{ cert: {}, key: {} }}\n",
            c.server_cert.display(),
            c.server_key.display()
        ),
        true,
    );
    let mut server = Server::start(&cfg, api);
    let mut expected = 0;
    let have_logger = have_logger();
    if have_logger {
        for (args, tag) in [
            (vec!["--udp", "--port", &udp.to_string()], "udp3164"),
            (
                vec!["--udp", "--rfc5424", "--port", &udp.to_string()],
                "udp5424",
            ),
            (vec!["--tcp", "--port", &tcp.to_string()], "tcpnl"),
            (
                vec![
                    "--tcp",
                    "--octet-count",
                    "--rfc5424",
                    "--port",
                    &tcp.to_string(),
                ],
                "tcpoctet",
            ),
        ] {
            let st = Command::new("logger")
                .args(["--server", "127.0.0.1", "-t", "sshd", "-p", "auth.info"])
                .args(&args)
                .arg(format!(
                    "Failed password for invalid user {tag} from 203.0.113.7 port 4242 ssh2"
                ))
                .status()
                .unwrap();
            assert!(st.success());
            expected += 1;
        }
    } else {
        eprintln!("skipping the logger part: util-linux logger not installed");
    }
    // TLS, octet counting and newline framing on one connection (what rsyslog's omfwd sends).
    {
        use std::net::TcpStream;
        use vigil_server::tls::rustls::pki_types::ServerName;
        use vigil_server::tls::rustls::{ClientConnection, StreamOwned};
        let cfg = vigil_server::tls::client_config(Some(&c.ca), None).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let conn = ClientConnection::new(cfg, name).unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", tls_port)).unwrap();
        let mut s = StreamOwned::new(conn, tcp);
        let m1 = "<38>1 2026-11-27T02:00:00.000Z host2 sshd 77 - - Accepted publickey for alice from 198.51.100.4 port 5555 ssh2";
        let m2 = "<38>Nov 27 02:00:01 host2 sshd[78]: Failed password for root from 198.51.100.4 port 5556 ssh2";
        writeln!(s, "{} {m1}{m2}", m1.len()).unwrap();
        s.flush().unwrap();
        expected += 2;
        std::thread::sleep(Duration::from_millis(300));
    }
    let got = server.wait_metric("vigil_events_stored_total", expected as f64, 20);
    assert_eq!(got as usize, expected);
    assert!(server.term().success());
    let texts = stored(&dir.path().join("data"), "linux.auth");
    if have_logger {
        for tag in ["udp3164", "udp5424", "tcpnl", "tcpoctet"] {
            assert_eq!(
                texts
                    .iter()
                    .filter(|t| t.contains(&format!("user {tag} ")))
                    .count(),
                1,
                "{tag}: {texts:?}"
            );
        }
    }
    assert!(texts
        .iter()
        .any(|t| t.contains("Accepted publickey for alice")));
    assert!(texts.iter().any(|t| t.contains("Failed password for root")));
}

/// A tiny HTTP receiver for the webhook sink: every body, by path.
fn receiver(port: u16) -> Arc<Mutex<Vec<(String, String)>>> {
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
    let hook_bodies = |got: &Arc<Mutex<Vec<(String, String)>>>| -> Vec<Value> {
        got.lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == "/hook")
            .map(|(_, b)| serde_json::from_str(b).unwrap())
            .collect()
    };
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
    let slack = |got: &Arc<Mutex<Vec<(String, String)>>>| -> Vec<Value> {
        got.lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == "/slack")
            .map(|(_, b)| serde_json::from_str(b).unwrap())
            .collect()
    };
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

/// rsyslog forwarding to the syslog source: omfwd over TCP with octet-counted RFC 5424
/// frames, and over UDP in the traditional forward format. Skips without rsyslogd.
#[test]
fn rsyslog_forwarding() {
    let rsyslogd = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let (Some(rsyslogd), true) = (rsyslogd, have_logger()) else {
        eprintln!("skipping: rsyslogd or logger not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (udp, tcp, input) = (free_udp_tcp_port(), free_port(), free_udp_tcp_port());
    let (cfg, api) = local_config(
        dir.path(),
        &format!(
            "  - type: syslog\n    name: udp\n    listen: udp://127.0.0.1:{udp}\n  - type: syslog\n    name: tcp\n    listen: tcp://127.0.0.1:{tcp}\n"
        ),
        false,
    );
    let mut server = Server::start(&cfg, api);
    let work = dir.path().join("rsyslog");
    fs::create_dir_all(&work).unwrap();
    let conf = dir.path().join("rsyslog.conf");
    fs::write(
        &conf,
        format!(
            "global(workDirectory=\"{w}\")\nmodule(load=\"imudp\")\ninput(type=\"imudp\" address=\"127.0.0.1\" port=\"{input}\")\naction(type=\"omfwd\" target=\"127.0.0.1\" port=\"{tcp}\" protocol=\"tcp\" TCP_Framing=\"octet-counted\" template=\"RSYSLOG_SyslogProtocol23Format\")\naction(type=\"omfwd\" target=\"127.0.0.1\" port=\"{udp}\" protocol=\"udp\" template=\"RSYSLOG_ForwardFormat\")\n",
            w = work.display()
        ),
    )
    .unwrap();
    let mut rs = Command::new(rsyslogd)
        .args(["-n", "-f"])
        .arg(&conf)
        .arg("-i")
        .arg(dir.path().join("rsyslog.pid"))
        .stderr(fs::File::create(dir.path().join("rsyslog.err")).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    for i in 0..5 {
        let st = Command::new("logger")
            .args([
                "--server",
                "127.0.0.1",
                "--udp",
                "--port",
                &input.to_string(),
                "-t",
                "sshd",
                "-p",
                "auth.info",
            ])
            .arg(format!(
                "Failed password for invalid user rs{i} from 192.0.2.9 port 22 ssh2"
            ))
            .status()
            .unwrap();
        assert!(st.success());
    }
    let got = server.wait_metric("vigil_events_stored_total", 10.0, 20);
    let _ = rs.kill();
    let _ = rs.wait();
    assert_eq!(
        got,
        10.0,
        "{}",
        fs::read_to_string(dir.path().join("rsyslog.err")).unwrap_or_default()
    );
    assert!(server.term().success());
    let texts = stored(&dir.path().join("data"), "linux.auth");
    for i in 0..5 {
        assert_eq!(
            texts
                .iter()
                .filter(|t| t.contains(&format!("user rs{i} ")))
                .count(),
            2,
            "{texts:?}"
        );
    }
}

/// `paths: [".../auth.log"]` (the issue's example): rotated by rename to auth.log.1 while the
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
