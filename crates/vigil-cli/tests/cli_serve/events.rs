//! What the tests send and what they read back: audit events and EventLists posted to the
//! webhook, the records the store holds afterwards, and `vigil verify` over it. Apart from
//! `server` because these speak of data, not of the process.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use vigil_server::client::Client;

use crate::server::{Certs, VIGIL};

pub(crate) fn webhook_client(port: u16, c: &Certs, with_cert: bool) -> Client {
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

pub(crate) fn event(id: &str, stage: &str) -> Value {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    json!({"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":id,"stage":stage,
        "requestURI":"/api/v1/namespaces/default/configmaps","verb":"list",
        "user":{"username":"system:serviceaccount:default:app","groups":["system:authenticated"]},
        "sourceIPs":["127.0.0.1"],"userAgent":"test","objectRef":{"resource":"configmaps","namespace":"default","apiVersion":"v1"},
        "responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":now,"stageTimestamp":now})
}

pub(crate) fn event_list(items: Vec<Value>) -> Vec<u8> {
    json!({"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":items})
        .to_string()
        .into_bytes()
}

pub(crate) fn post(c: &mut Client, body: &[u8]) -> Result<(u16, Value), String> {
    let r = c.request("POST", &[("Content-Type", "application/json")], body)?;
    Ok((
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    ))
}

/// Every stored record of `dataset`, as text. Read while a server may be writing (a partition
/// being created is not readable yet): tried again a few times.
pub(crate) fn stored(dir: &Path, dataset: &str) -> Vec<String> {
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
pub(crate) fn audit_counts(dir: &Path) -> HashMap<(String, String), usize> {
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

/// `vigil verify` passes over the data directory.
pub(crate) fn assert_verifies(data: &Path) {
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
