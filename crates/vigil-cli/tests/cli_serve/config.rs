//! `vigil config check`: every error named with its line, and the shipped example accepted.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::server::VIGIL;

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
