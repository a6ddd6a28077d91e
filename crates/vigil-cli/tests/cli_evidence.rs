//! `vigil incident scope|runbook|report|export|verify` as a responder runs them, on the
//! multi-source attack of `examples/scenario/` (SSH brute force, a CI service account that
//! enumerates secrets, execs into pods and binds itself cluster-admin).

mod common;

use common::{ok, text, vigil};
use std::path::{Path, PathBuf};
use std::process::Command;

fn d(dir: &Path) -> &str {
    dir.to_str().unwrap()
}

fn scenario() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/scenario");
    ["k8s-audit.jsonl", "auth.log", "audit.log", "conn.log"]
        .iter()
        .map(|f| root.join(f).display().to_string())
        .collect()
}

fn ingest(dir: &Path, files: &[String]) {
    let d = dir.to_str().unwrap();
    let mut args = vec!["ingest", "--data-dir", d, "--year", "2026"];
    args.extend(files.iter().map(String::as_str));
    let out = vigil(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// The id of the stored alert of rule `title`.
fn alert_id(dir: &Path, title: &str) -> String {
    ok(&["alerts", "--data-dir", d(dir), "--format", "jsonl"])
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|a| a["rule"]["title"] == title)
        .unwrap_or_else(|| panic!("no alert {title:?}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn incident_cmd(dir: &Path, args: &[&str]) -> String {
    let mut a = vec![
        "incident",
        args[0],
        "--data-dir",
        d(dir),
        "--actor",
        "responder",
    ];
    a.extend(&args[1..]);
    ok(&a)
}

/// The scenario ingested; INC-0001 opened (`vigil incident open`) from the cluster-admin
/// binding and the SSH login after the brute force, with notes, moved to containment and then
/// to lessons learned.
fn incident() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    ingest(p, &scenario());
    let binding = alert_id(p, "Binding to a Cluster-Admin Role Created or Changed");
    let login = alert_id(
        p,
        "SSH Login Succeeds After a Brute Force From the Same Address",
    );
    let id = incident_cmd(
        p,
        &[
            "open",
            "--alert",
            &binding,
            "--alert",
            &login,
            "--title",
            "CI service account escalation",
        ],
    )
    .trim()
    .to_string();
    incident_cmd(p, &["note", &id, "deployer token found in a CI log"]);
    incident_cmd(p, &["phase", &id, "containment", "--note", "scoped"]);
    incident_cmd(p, &["note", &id, "node-debug quarantined"]);
    incident_cmd(p, &["phase", &id, "lessons_learned", "--note", "contained"]);
    incident_cmd(p, &["note", &id, "CI tokens must not be long-lived"]);
    (dir, id)
}

/// Replaces what varies between runs (the data directory, wall-clock times of the
/// responder's actions) with placeholders.
fn stable(s: &str, dir: &Path) -> String {
    let mut out = s.replace(dir.to_str().unwrap(), "<DIR>");
    let today = chrono::Utc::now().format("%Y-%m-%dT").to_string();
    while let Some(i) = out.find(&today) {
        let end = out[i..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || ":-.".contains(c)))
            .map_or(out.len(), |n| i + n);
        out.replace_range(i..end, "<NOW>");
    }
    // The scenario's alerts are raised when the test ingests it.
    if let Some(i) = out.find(" after the event: the logs arrived late") {
        if let Some(start) = out[..i].rfind(" (") {
            out.replace_range(start + 2..i, "<DURATION>");
        }
    }
    // The time to contain runs from the scenario's alert to the test's own phase change.
    if let Some(i) = out.find("Time to contain: ") {
        let i = i + "Time to contain: ".len();
        let line = &out[i..out[i..].find('\n').map_or(out.len(), |n| i + n)];
        if let Some(n) = line.find(" (").filter(|_| !line.starts_with("not ")) {
            out.replace_range(i..i + n, "<DURATION>");
        }
    }
    out
}

#[test]
fn scope_names_what_the_service_account_touched() {
    let (dir, id) = incident();
    let out = ok(&["incident", "scope", "--data-dir", d(dir.path()), &id]);
    assert!(out.contains("RBAC changes (1)"), "{out}");
    assert!(
        out.contains("clusterrolebindings ci-deployer-admin"),
        "{out}"
    );
    assert!(out.contains("exec sessions (3)"), "{out}");
    assert!(out.contains("secrets read (3)"), "{out}");
    insta::assert_snapshot!("scope_text", stable(&out, dir.path()));
    let json: serde_json::Value = serde_json::from_str(&ok(&[
        "incident",
        "scope",
        "--data-dir",
        d(dir.path()),
        &id,
        "--format",
        "json",
    ]))
    .unwrap();
    assert_eq!(json["entities"][0]["rbac_changes"][0]["verb"], "create");
}

#[test]
fn runbook_orders_capture_first_and_its_policy_parses() {
    let (dir, id) = incident();
    let out = ok(&["incident", "runbook", "--data-dir", d(dir.path()), &id]);
    let capture = out
        .find("kubectl get pod node-debug -n ci -o yaml")
        .unwrap();
    let label = out.find("kubectl label pod node-debug").unwrap();
    let delete = out.find("kubectl delete pod node-debug -n ci").unwrap();
    assert!(capture < label && label < delete, "{out}");
    assert!(out.contains(
        "kubectl delete clusterrolebindings.rbac.authorization.k8s.io ci-deployer-admin"
    ));
    assert!(out.contains("sudo iptables -I INPUT -s 203.0.113.77 -j DROP"));
    // Every YAML block is a valid deny-all NetworkPolicy.
    let mut n = 0;
    for block in out.split("```yaml\n").skip(1) {
        let yaml = &block[..block.find("```").unwrap()];
        // (serde_norway checks the same YAML in vigil-incident's unit tests.)
        let v = vigil_model::yaml::parse_document(yaml).unwrap().unwrap();
        let at = |path: &[&str]| {
            let mut n = &v;
            for p in path {
                n = match p.parse::<usize>() {
                    Ok(i) => &n.as_seq().unwrap()[i],
                    Err(_) => n.get(p).unwrap(),
                };
            }
            n.as_str().map(String::from)
        };
        assert_eq!(at(&["kind"]).as_deref(), Some("NetworkPolicy"));
        assert_eq!(at(&["spec", "policyTypes", "1"]).as_deref(), Some("Egress"));
        assert_eq!(
            at(&["spec", "podSelector", "matchLabels", "vigil.io/quarantine"]),
            Some(id.clone())
        );
        n += 1;
    }
    assert!(
        n >= 3,
        "a policy per namespace with a quarantined pod: {out}"
    );
    insta::assert_snapshot!("runbook", stable(&out, dir.path()));
}

#[test]
fn recovery_checks_print_nothing_once_contained() {
    let (dir, id) = incident();
    let out = ok(&["incident", "runbook", "--data-dir", d(dir.path()), &id]);
    let since = out
        .lines()
        .find_map(|l| l.strip_prefix("CONTAINED_AT="))
        .expect("the containment time is set")
        .to_string();
    assert!(since.starts_with("20"), "{since}");
    let checks: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("vigil search"))
        .collect();
    assert_eq!(checks.len(), 3, "one per entity: {out}");
    for check in checks {
        let q = check.rsplit_once(" \"$CONTAINED_AT\" ").unwrap().1;
        let q = q.trim_matches('\'');
        // Nothing since containment (the scenario is in the past) ...
        assert_eq!(
            ok(&["search", "--data-dir", d(dir.path()), "--since", &since, q]),
            ""
        );
        // ... and the same query finds the activity before it.
        let before = ok(&[
            "search",
            "--data-dir",
            d(dir.path()),
            "--since",
            "2026-11-20",
            q,
        ]);
        assert!(!before.is_empty(), "{q}");
    }
}

fn export(dir: &Path, id: &str) -> PathBuf {
    let out = dir.join("evidence.tar.gz");
    ok(&[
        "incident",
        "export",
        "--data-dir",
        d(dir),
        id,
        "--out",
        out.to_str().unwrap(),
    ]);
    out
}

#[test]
fn export_verifies_and_names_what_was_altered() {
    let (dir, id) = incident();
    let file = export(dir.path(), &id);
    let f = file.to_str().unwrap();
    let key = ok(&["verify", "--data-dir", d(dir.path()), "--export-public-key"]);
    let out = ok(&["incident", "verify", f, "--public-key", key.trim()]);
    assert!(out.starts_with(&format!("intact: incident {id}")), "{out}");
    // Another key: the signatures do not verify.
    let other = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    let bad = vigil(&["incident", "verify", f, "--public-key", other]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stdout).contains("manifest.sig: bad signature"));
}

#[test]
fn export_tamper_cases() {
    let (dir, id) = incident();
    let file = export(dir.path(), &id);
    let files = vigil_incident_archive(&file);
    for (case, expect) in [
        ("edit", "FAIL events.jsonl: edited"),
        ("remove", "FAIL runbook.md: missing"),
        ("add", "FAIL extra.txt: added"),
        ("manifest", "FAIL manifest.sig: bad signature"),
    ] {
        let mut fs = files.clone();
        match case {
            "edit" => {
                let e = fs.iter_mut().find(|f| f.0 == "events.jsonl").unwrap();
                e.1 = text(&e.1).replacen("deployer", "deploy3r", 1).into_bytes();
            }
            "remove" => fs.retain(|f| f.0 != "runbook.md"),
            "add" => fs.insert(0, ("extra.txt".into(), b"x".to_vec())),
            _ => {
                let m = fs.iter_mut().find(|f| f.0 == "manifest.json").unwrap();
                m.1 = text(&m.1)
                    .replacen("\"bytes\"", "\"bytes\" ", 1)
                    .into_bytes();
            }
        }
        let out = dir.path().join(format!("{case}.tar.gz"));
        std::fs::write(&out, vigil_incident::export::archive(&fs, 0).unwrap()).unwrap();
        let r = vigil(&["incident", "verify", out.to_str().unwrap()]);
        assert_eq!(r.status.code(), Some(1), "{case}");
        assert!(
            text(&r.stdout).contains(expect),
            "{case}: {}",
            text(&r.stdout)
        );
    }
}

/// The files of an archive, through the system's tar (also checks that it reads ours).
fn vigil_incident_archive(file: &Path) -> Vec<(String, Vec<u8>)> {
    let x = tempfile::tempdir().unwrap();
    let st = Command::new("tar")
        .args([
            "xzf",
            file.to_str().unwrap(),
            "-C",
            x.path().to_str().unwrap(),
        ])
        .status()
        .expect("tar");
    assert!(st.success());
    let list = Command::new("tar")
        .args(["tzf", file.to_str().unwrap()])
        .output()
        .unwrap();
    text(&list.stdout)
        .lines()
        .map(|n| (n.to_string(), std::fs::read(x.path().join(n)).unwrap()))
        .collect()
}

#[test]
fn report_markdown() {
    let (dir, id) = incident();
    let out = ok(&["incident", "report", "--data-dir", d(dir.path()), &id]);
    assert!(
        out.contains("Time to detect: 5s (first malicious event"),
        "{out}"
    );
    // Containment came after the alerts were raised (at ingest): a short, positive time.
    let ttc = out
        .lines()
        .find(|l| l.contains("Time to contain:"))
        .unwrap();
    let took = &ttc[ttc.find("contain: ").unwrap() + 9..ttc.find(" (").unwrap()];
    assert!(
        !took.starts_with('-') && !took.contains('h') && !took.contains('d'),
        "{ttc}"
    );
    assert!(
        out.contains("CI tokens must not be long\\-lived")
            || out.contains("CI tokens must not be long-lived")
    );
    insta::assert_snapshot!("report_md", stable(&out, dir.path()));
}

const FIXTURE: &str = "tests/fixtures/evidence/audit.jsonl";
const POLICY: &str = "tests/fixtures/evidence/policy.yaml";

/// The fixture: a user named `<script>alert(1)</script>` reads a bootstrap token, plants a pod
/// in kube-system (logged at Metadata: its spec is not in the log), execs into it, patches
/// CoreDNS and binds itself cluster-admin. INC-0001 opened from the binding's alert.
fn script_incident() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    ingest(p, &[FIXTURE.to_string()]);
    let binding = alert_id(p, "Binding to a Cluster-Admin Role Created or Changed");
    let id = incident_cmd(p, &["open", "--alert", &binding])
        .trim()
        .to_string();
    incident_cmd(
        p,
        &[
            "note",
            &id,
            "<b>not bold</b> & <img src=x onerror=alert(2)>",
        ],
    );
    (dir, id)
}

#[test]
fn html_report_is_self_contained_and_escapes_event_text() {
    let (dir, id) = script_incident();
    let html = ok(&[
        "incident",
        "report",
        "--data-dir",
        d(dir.path()),
        &id,
        "--format",
        "html",
        "--policy",
        POLICY,
    ]);
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script"), "unescaped event text: {html}");
    assert!(!html.contains("<img"), "unescaped note text: {html}");
    assert!(!html.contains("<b>"), "{html}");
    for external in [
        "http://", "https://", "<link", "<img", "<iframe", "<object", "url(",
    ] {
        assert!(
            !html.contains(external),
            "not self-contained ({external}): {html}"
        );
    }
    insta::assert_snapshot!("report_html", stable(&html, dir.path()));
}

#[test]
fn report_names_the_policy_rule_that_hid_the_pod_spec() {
    let (dir, id) = script_incident();
    let md = ok(&[
        "incident",
        "report",
        "--data-dir",
        d(dir.path()),
        &id,
        "--policy",
        POLICY,
    ]);
    let gaps = &md[md.find("## Detection and logging gaps").unwrap()..];
    let gaps = &gaps[..gaps.find("## Lessons learned").unwrap()];
    assert!(
        gaps.contains(
            "create pods kube-system/kube-proxy-x1: logged at Metadata (policy rule 1 at line 6 \
             sets level Metadata), so requestObject.spec could not be read"
        ),
        "{gaps}"
    );
    assert!(
        gaps.contains("Privileged Container Created (high)"),
        "{gaps}"
    );
    // Markdown escapes the user name too.
    assert!(md.contains("\\<script\\>alert(1)\\</script\\>"), "{md}");
    assert!(!md.contains("<script>"), "{md}");
    insta::assert_snapshot!("report_gaps_md", gaps);
    // Without the policy the gap is still named, without the policy rule.
    let md = ok(&["incident", "report", "--data-dir", d(dir.path()), &id]);
    assert!(
        md.contains("logged at Metadata, so requestObject.spec"),
        "{md}"
    );
}

#[test]
fn verify_names_a_bad_checkpoint_and_takes_the_key_from_a_file() {
    let (dir, id) = script_incident();
    let file = export(dir.path(), &id);
    let key = ok(&["verify", "--data-dir", d(dir.path()), "--export-public-key"]);
    let key_file = dir.path().join("store.pub");
    std::fs::write(&key_file, &key).unwrap();
    let out = ok(&[
        "incident",
        "verify",
        file.to_str().unwrap(),
        "--public-key",
        key_file.to_str().unwrap(),
    ]);
    assert!(
        out.contains("events covered by 2 signed checkpoint(s)"),
        "{out}"
    );
    // A checkpoint claiming more records than were signed.
    let mut fs = vigil_incident_archive(&file);
    let c = fs.iter_mut().find(|f| f.0 == "checkpoints.jsonl").unwrap();
    let lines = text(&c.1);
    let (first, rest) = lines.split_once('\n').unwrap();
    let mut v: serde_json::Value = serde_json::from_str(first).unwrap();
    v["records"] = serde_json::json!(v["records"].as_u64().unwrap() + 1);
    c.1 = format!("{v}\n{rest}").into_bytes();
    let bad = dir.path().join("bad.tar.gz");
    std::fs::write(&bad, vigil_incident::export::archive(&fs, 0).unwrap()).unwrap();
    let r = vigil(&["incident", "verify", bad.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(1));
    let out = text(&r.stdout);
    assert!(out.contains("FAIL checkpoints.jsonl: edited"), "{out}");
    assert!(
        out.contains("FAIL checkpoints.jsonl line 1: bad checkpoint signature"),
        "{out}"
    );
}
