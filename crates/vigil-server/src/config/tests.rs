//! Tests of configuration loading: the documented example, error lines, durations.

use std::path::Path;

use super::*;

fn env(k: &str) -> Option<String> {
    match k {
        "TOKENS" => Some("/etc/tokens.txt".into()),
        _ => None,
    }
}

const GOOD: &str = r#"data_dir: /var/lib/vigil
sources:
  - type: k8s_audit_webhook
    listen: 0.0.0.0:8443
    path: /audit
    tls: { cert: server.crt, key: server.key, client_ca: ca.crt }
    bearer_tokens_file: ${TOKENS}
    max_event_bytes: 1048576
    max_batch_bytes: 10485760
  - type: file
    paths: ["/var/log/kubernetes/audit/*.log", "/var/log/auth.log"]
    format: auto
  - type: syslog
    listen: udp://0.0.0.0:514
rules: ["/etc/vigil/rules"]
sinks:
  - type: file
    path: /var/lib/vigil/alerts.jsonl
  - type: webhook
    url: https://hooks.example.com/vigil
    min_level: high
api:
  listen: 127.0.0.1:9090
"#;

#[test]
fn the_issue_example_loads() {
    let c = parse(GOOD, Path::new("/etc/vigil"), &env).unwrap();
    assert_eq!(c.sources.len(), 3);
    let SourceKind::Webhook(w) = &c.sources[0].kind else {
        panic!()
    };
    assert_eq!(
        w.bearer_tokens_file.as_deref(),
        Some(Path::new("/etc/tokens.txt"))
    );
    assert_eq!(w.tls.cert, Path::new("/etc/vigil/server.crt"));
    assert_eq!(c.sinks[1].min_level, 4);
    assert_eq!(c.api, Some("127.0.0.1:9090".parse().unwrap()));
}

#[test]
fn errors_name_their_line() {
    let bad = GOOD.replace("udp://0.0.0.0:514", "sctp://0.0.0.0:514");
    let e = parse(&bad, Path::new("/"), &env).unwrap_err();
    assert_eq!(e[0].line, 14, "{e:?}");
    let bad = GOOD.replace("min_level: high", "min_level: severe");
    let e = parse(&bad, Path::new("/"), &env).unwrap_err();
    assert_eq!(e[0].line, 21, "{e:?}");
    let bad = GOOD.replace("    format: auto", "    formt: auto");
    let e = parse(&bad, Path::new("/"), &env).unwrap_err();
    assert_eq!(e[0].line, 12, "{e:?}");
    assert!(e[0].message.contains("formt"), "{e:?}");
    let bad = GOOD.replace("${TOKENS}", "${NOPE}");
    let e = parse(&bad, Path::new("/"), &env).unwrap_err();
    assert_eq!(
        (e[0].line, e[0].message.as_str()),
        (7, "environment variable NOPE is not set")
    );
    let bad = GOOD.replace("max_event_bytes: 1048576", "max_event_bytes: lots");
    let e = parse(&bad, Path::new("/"), &env).unwrap_err();
    assert_eq!(e[0].line, 8, "{e:?}");
}

#[test]
fn durations() {
    assert_eq!(Dur::parse("250ms").unwrap().0, Duration::from_millis(250));
    assert_eq!(Dur::parse("5m").unwrap().0, Duration::from_secs(300));
    assert!(Dur::parse("5 fortnights").is_err());
}
