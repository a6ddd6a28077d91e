//! `vigil incident scope|runbook|report|export|verify` as a responder runs them, on the
//! multi-source attack of `examples/scenario/` (SSH brute force, a CI service account that
//! enumerates secrets, execs into pods and binds itself cluster-admin).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vigil_incident::model::{Action, Entity, EntityKind, Phase};
use vigil_incident::Book;
use vigil_store::reader::{Kinds, SearchOptions};

fn vigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("VIGIL_DATA_DIR")
        .output()
        .expect("run vigil")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(args: &[&str]) -> String {
    let out = vigil(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
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

fn ent(kind: EntityKind, value: &str) -> Entity {
    Entity {
        kind,
        value: value.into(),
    }
}

/// Opens an incident the way `vigil incident open` records one: the entities, every alert
/// about them, and the timeline of their events and alerts.
fn open_incident(dir: &Path, title: &str, entities: Vec<Entity>) -> String {
    let reader = vigil_store::Reader::open(dir).unwrap();
    let q = vigil_incident::entities::query_any(&entities).unwrap();
    let found = reader
        .search(
            &q,
            &SearchOptions {
                kinds: Kinds::Both,
                ..Default::default()
            },
        )
        .unwrap();
    let timeline: Vec<u64> = found.events.iter().map(|e| e.loc).collect();
    let alerts: Vec<String> = found
        .events
        .iter()
        .filter(|e| e.is_alert())
        .filter_map(|e| e.original()["id"].as_str().map(String::from))
        .collect();
    let since = found.events.first().map_or(0, |e| e.record.event_time);
    let until = found.events.last().map_or(0, |e| e.record.event_time + 1);
    let mut book = Book::open(dir).unwrap();
    book.append(
        "",
        "responder",
        Action::Opened {
            title: title.into(),
            alerts,
            related: vec![],
            entities,
            window_secs: 3600,
            since,
            until,
            timeline,
        },
    )
    .unwrap()
    .incident
}

fn note(dir: &Path, id: &str, action: Action) {
    Book::open(dir)
        .unwrap()
        .append(id, "responder", action)
        .unwrap();
}

fn phase(dir: &Path, id: &str, from: Phase, to: Phase, text: &str) {
    note(
        dir,
        id,
        Action::Phase {
            from,
            to,
            note: Some(text.into()),
        },
    );
}

/// The scenario ingested, with INC-0001 about the CI service account and the brute-forcing
/// address, moved to containment and then lessons learned with notes.
fn incident() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    ingest(dir.path(), &scenario());
    let id = open_incident(
        dir.path(),
        "CI service account escalation",
        vec![
            ent(
                EntityKind::ServiceAccount,
                "system:serviceaccount:ci:deployer",
            ),
            ent(EntityKind::Ip, "203.0.113.77"),
        ],
    );
    note(
        dir.path(),
        &id,
        Action::Note {
            text: "deployer token found in a CI log".into(),
        },
    );
    phase(
        dir.path(),
        &id,
        Phase::Detection,
        Phase::Containment,
        "scoped",
    );
    note(
        dir.path(),
        &id,
        Action::Note {
            text: "node-debug quarantined".into(),
        },
    );
    phase(
        dir.path(),
        &id,
        Phase::Containment,
        Phase::LessonsLearned,
        "contained",
    );
    note(
        dir.path(),
        &id,
        Action::Note {
            text: "CI tokens must not be long-lived".into(),
        },
    );
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
    // The time to contain runs from the scenario's alert to the test's own phase change.
    if let Some(i) = out.find("Time to contain: ") {
        let i = i + "Time to contain: ".len();
        if let Some(n) = out[i..].find(" (") {
            out.replace_range(i..i + n, "<DURATION>");
        }
    }
    out
}

fn d(dir: &Path) -> &str {
    dir.to_str().unwrap()
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
    // The scenario is in the past: since containment, nothing of the entities happened.
    let checks: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("vigil search"))
        .collect();
    assert_eq!(checks.len(), 2, "{out}");
    let since = chrono::Utc::now().to_rfc3339();
    let until_before = "2026-11-20T10:00:00Z";
    for check in checks {
        let q = check.rsplit_once(" \"$CONTAINED_AT\" ").unwrap().1;
        let q = q.trim_matches('\'');
        assert_eq!(
            ok(&["search", "--data-dir", d(dir.path()), "--since", &since, q]),
            ""
        );
        // And the same query finds the activity before containment.
        assert!(!ok(&[
            "search",
            "--data-dir",
            d(dir.path()),
            "--since",
            until_before,
            q
        ])
        .is_empty());
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
    assert!(out.contains("Time to detect:"), "{out}");
    assert!(
        out.contains("CI tokens must not be long\\-lived")
            || out.contains("CI tokens must not be long-lived")
    );
    insta::assert_snapshot!("report_md", stable(&out, dir.path()));
}
