//! The syslog source over UDP, TCP and TLS: `logger` in each framing, a TLS connection as
//! rsyslog's omfwd sends, and rsyslog itself forwarding (each skipped where the tool is not
//! installed).

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::events::stored;
use crate::server::{certs, free_port, free_udp_tcp_port, local_config, Server};

fn have_logger() -> bool {
    Command::new("logger")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
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
