//! The server under test: certificates made for it (rcgen), ports handed out to it, its
//! configuration files, and `vigil serve` itself as a child process with its operations API.
//! Every topic starts servers through this module, so how a server is run is said once.

use std::fs;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use vigil_server::client::Client;

pub(crate) const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

pub(crate) struct Certs {
    pub(crate) ca: PathBuf,
    pub(crate) server_cert: PathBuf,
    pub(crate) server_key: PathBuf,
    pub(crate) client_cert: PathBuf,
    pub(crate) client_key: PathBuf,
    /// A client certificate from another CA (must be refused).
    pub(crate) rogue_cert: PathBuf,
    pub(crate) rogue_key: PathBuf,
}

fn make_ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    let k = KeyPair::generate().unwrap();
    let c = p.self_signed(&k).unwrap();
    (c, k)
}

pub(crate) fn certs(dir: &Path) -> Certs {
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
pub(crate) fn free_port() -> u16 {
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

pub(crate) fn free_udp_tcp_port() -> u16 {
    free_port()
}

pub(crate) struct Server {
    child: Option<Child>,
    config: PathBuf,
    api: u16,
    pub(crate) log: PathBuf,
    starts: usize,
}

impl Server {
    pub(crate) fn start(config: &Path, api: u16) -> Server {
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

    pub(crate) fn spawn(&mut self) {
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

    pub(crate) fn get(&self, path: &str) -> Result<(u16, String), String> {
        let mut c = Client::new(
            &format!("http://127.0.0.1:{}{path}", self.api),
            None,
            Duration::from_secs(5),
        )?;
        let r = c.request("GET", &[], b"")?;
        Ok((r.status, String::from_utf8_lossy(&r.body).into_owned()))
    }

    /// A counter or gauge from /metrics (sum over series starting with `series`).
    pub(crate) fn metric(&self, series: &str) -> f64 {
        let text = self.get("/metrics").map(|r| r.1).unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with(series))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub(crate) fn wait_metric(&self, series: &str, want: f64, secs: u64) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.metric(series);
            if v >= want || Instant::now() > deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM; the exit status.
    pub(crate) fn term(&mut self) -> std::process::ExitStatus {
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

    pub(crate) fn signal(&self, sig: &str) {
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
pub(crate) fn start_webhook(dir: &Path, extra: &str, env: &[(&str, &str)]) -> (Certs, u16, Server) {
    let c = certs(dir);
    let (port, api) = (free_port(), free_port());
    let cfg = webhook_config(dir, &c, port, api, extra);
    let server = Server::start_env(&cfg, api, env);
    (c, port, server)
}

/// `dir/vigil.yaml` with `sources` (YAML list items), data in `dir/data` and the operations
/// API on a free port, which is returned with the path. The server is not started: the tests
/// write logs before it starts.
pub(crate) fn local_config(dir: &Path, sources: &str, detection: bool) -> (PathBuf, u16) {
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
