#![allow(dead_code)]

use std::path::Path;

use vigil_store::prepare::{self, Record};
use vigil_store::{Store, StoreOptions};

/// A metadata-level audit event, deterministic in `i`.
pub fn event_text(i: u64, stage: &str) -> String {
    let users = ["alice", "bob", "carol", "system:serviceaccount:shop:web"];
    let user = users[(i % 4) as usize];
    let verbs = ["get", "list", "watch", "create", "delete"];
    let verb = verbs[(i % 5) as usize];
    let secs = 1_795_165_200 + i as i64; // 2026-11-20T09:00:00Z + i s
    let t = chrono::DateTime::from_timestamp(secs, 0).unwrap();
    let ts = t.format("%Y-%m-%dT%H:%M:%S%.6fZ");
    format!(
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"id-{i:08}","stage":"{stage}","requestURI":"/api/v1/namespaces/ns{}/pods/p{}","verb":"{verb}","user":{{"username":"{user}","groups":["system:authenticated"]}},"sourceIPs":["10.0.{}.{}"],"userAgent":"kubectl/v1.31.0","objectRef":{{"resource":"pods","namespace":"ns{}","name":"p{}","apiVersion":"v1"}},"responseStatus":{{"metadata":{{}},"code":{}}},"requestReceivedTimestamp":"{ts}","stageTimestamp":"{ts}"}}"#,
        i % 3,
        i % 7,
        i % 2,
        i % 250,
        i % 3,
        i % 7,
        if i % 10 < 1 { 403 } else { 200 }
    )
}

pub fn event(i: u64) -> Record {
    prepare::k8s_event(
        &event_text(i, "ResponseComplete"),
        "gen.log",
        1_800_000_000_000_000,
    )
    .unwrap()
}

pub fn batch(from: u64, n: u64) -> Vec<Record> {
    (from..from + n).map(event).collect()
}

pub fn small_segments() -> StoreOptions {
    StoreOptions {
        segment_bytes: 4096,
        zstd_level: 3,
        ..StoreOptions::default()
    }
}

/// A store with `batches` batches of `per` events each.
pub fn filled(dir: &Path, batches: u64, per: u64, opts: StoreOptions) {
    let mut s = Store::open(dir, opts).unwrap();
    for b in 0..batches {
        let ack = s.append_batch(batch(b * per, per)).unwrap();
        assert_eq!(ack.stored, per);
    }
    s.close().unwrap();
}

/// A high-level alert of rule `rule_id` ("title") on the Kubernetes event at `line` with
/// auditID `id`.
pub fn alert(rule_id: &str, title: &str, line: usize, id: &str) -> vigil_model::alert::Alert {
    use vigil_model::alert::{Alert, AlertRule, EvidenceRef};
    Alert {
        rule: AlertRule {
            id: rule_id.into(),
            title: title.into(),
            level: "high".into(),
            tags: vec![],
        },
        time: "2026-11-20T09:00:01Z".into(),
        group: Default::default(),
        events: vec![EvidenceRef {
            dataset: "k8s.audit".into(),
            file: "gen.log".into(),
            line,
            id: Some(id.into()),
        }],
        matched: Default::default(),
    }
}
