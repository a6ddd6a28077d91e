//! Zeek baselines and the audit2rbac Kubernetes audit log.
mod common;

use common::*;
use serde_json::Value;
use vigil_normalize::{Dataset, YearHint};

#[test]
fn zeek_baselines() {
    let Some(dir) = samples("zeek_baselines") else {
        return;
    };
    let mut rows_total = 0;
    for path in files(&dir.join("zeek"), ".log") {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = read(&path);
        let run = run(&text, YearHint::Year(2020), |_| true);
        assert_eq!(run.dataset, Dataset::ZeekConn, "{name}");
        // Rows are the non-header lines; headers are consumed, not events.
        let rows = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .count();
        let fields_line = text.lines().find(|l| l.starts_with("#fields")).unwrap();
        let columns = fields_line.split('\t').count() - 1;
        let path_name = text
            .lines()
            .find_map(|l| l.strip_prefix("#path\t"))
            .unwrap_or("conn");
        eprintln!(
            "zeek/{name}: {} lines, {rows} rows, {} events, {} rejected (#path {path_name}, {columns} columns)",
            run.lines_in, run.events.len(), run.rejects.len()
        );
        assert!(run.rejects.is_empty(), "{name}: {:#?}", run.rejects);
        assert_eq!(run.events.len(), rows, "{name}");
        rows_total += rows;
        for doc in &run.events {
            assert_eq!(get_str(doc, "event.dataset"), format!("zeek.{path_name}"));
            // Every column is kept unless unset ("-").
            let m = doc.as_object().unwrap();
            assert!(m.contains_key("uid"), "{name}: {doc}");
            // ECS addresses mirror Zeek's id.* fields.
            let orig = doc["id.orig_h"].as_str().unwrap();
            let ip = get_str(doc, "source.ip");
            let canon = vigil_normalize::ecs::parse_ip(orig).unwrap().to_string();
            assert_eq!(ip, canon, "{name}");
            assert_eq!(get(doc, "source.port"), doc.get("id.orig_p"), "{name}");
            assert_eq!(get(doc, "destination.port"), doc.get("id.resp_p"), "{name}");
            if path_name == "conn" {
                let proto = doc["proto"].as_str().unwrap();
                assert_eq!(get_str(doc, "network.transport"), proto);
                // Sets: `(empty)` → [], else split on the set separator.
                if let Some(tp) = doc.get("tunnel_parents") {
                    assert!(tp.is_array(), "{name}: {tp}");
                }
            }
            // The baselines mask times (XXXXXXXXXX.XXXXXX): no @timestamp then.
            let ts = doc.get("ts").and_then(Value::as_str).unwrap_or("");
            assert_eq!(doc.get("@timestamp").is_some(), !ts.contains('X'), "{name}");
        }
    }
    assert!(rows_total > 150, "{rows_total}");
}

#[test]
fn audit2rbac_k8s_audit() {
    let Some(dir) = samples("audit2rbac_k8s_audit") else {
        return;
    };
    let text = read(&dir.join("k8s/audit2rbac-demo.log"));
    let run = run(&text, YearHint::Year(2020), |_| true);
    assert_eq!(run.dataset, Dataset::K8sAudit);
    let forbidden = run
        .events
        .iter()
        .filter(|d| get_str(d, "event.outcome") == "failure")
        .count();
    let impersonated = run
        .events
        .iter()
        .filter(|d| get(d, "user.effective.name").is_some())
        .count();
    eprintln!(
        "k8s/audit2rbac-demo.log: {} lines, {} events, {} rejected; {forbidden} failures, {impersonated} impersonated",
        run.lines_in, run.events.len(), run.rejects.len()
    );
    assert!(run.rejects.is_empty());
    assert_eq!(run.events.len(), run.lines_in);
    let raw_403 = text.lines().filter(|l| l.contains("\"code\":403")).count();
    assert_eq!(forbidden, raw_403);
    for d in &run.events {
        assert_eq!(
            get_str(d, "user.name"),
            d["user"]["username"].as_str().unwrap()
        );
        assert_eq!(get_str(d, "event.action"), d["verb"].as_str().unwrap());
        assert!(
            d.get("@timestamp").is_some(),
            "older events carry only `timestamp`: {d}"
        );
        assert_eq!(get_str(d, "source.ip"), "::1");
    }
}
