//! What every CLI test needs: run the `vigil` binary as a user would (from the crate's folder,
//! without the caller's `VIGIL_DATA_DIR`) and read its output.
// Each test file is its own crate and uses only some of these.
#![allow(dead_code)]

use std::process::{Command, Output};

/// The recorded audit log shipped in the repo (paths are relative to the crate's folder, where
/// [`vigil`] runs).
pub const EXAMPLE: &str = "../../examples/k8s-audit.jsonl";

/// The committed multi-source scenario's four logs.
pub const SCENARIO: [&str; 4] = [
    "../../examples/scenario/auth.log",
    "../../examples/scenario/audit.log",
    "../../examples/scenario/conn.log",
    "../../examples/scenario/k8s-audit.jsonl",
];

pub fn vigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("VIGIL_DATA_DIR")
        .output()
        .expect("run vigil")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `vigil args`, asserts exit 0 (showing stderr otherwise) and returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = vigil(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}
