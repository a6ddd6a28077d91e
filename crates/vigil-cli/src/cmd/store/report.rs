//! `vigil report KIND`: who-accessed-what reports for audits, over the store.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, ValueEnum};
use serde_json::{json, Map, Value};
use vigil_store::query;
use vigil_store::reader::{micros_rfc3339, Kinds, SearchOptions};
use vigil_store::StoredEvent;

use super::{field, time_arg, DataDirArg};
use crate::output::{finish, stdout, write_json_line, Format, Table};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportKind {
    /// Reads and writes of Secrets, by identity and secret.
    SecretsAccess,
    /// exec, attach and port-forward into pods.
    ExecSessions,
    /// Changes to Roles, ClusterRoles and their bindings.
    RbacChanges,
    /// Requests made while impersonating another user.
    Impersonation,
    /// Anonymous and forbidden requests, grouped.
    Anonymous,
    /// Changes to admission webhooks and policies, audit policy and apiserver configuration.
    AuditConfigChanges,
}

#[derive(Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    #[arg(value_enum)]
    pub kind: ReportKind,
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    #[arg(long, value_name = "T")]
    pub until: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

const WRITES: &str = "verb:(create OR update OR patch OR delete OR deletecollection)";

/// The query behind each report (a plain `vigil search` query: the report is reproducible).
pub fn report_query(kind: ReportKind) -> String {
    let q = match kind {
        ReportKind::SecretsAccess => "objectRef.resource:secrets".into(),
        ReportKind::ExecSessions => {
            "objectRef.resource:pods AND objectRef.subresource:(exec OR attach OR portforward)".into()
        }
        ReportKind::RbacChanges => format!("objectRef.apiGroup:rbac.authorization.k8s.io AND {WRITES}"),
        ReportKind::Impersonation => "user.effective.name:* OR verb:impersonate".into(),
        ReportKind::Anonymous => {
            r#"user.name:"system:anonymous" OR user.groups:"system:unauthenticated" OR code:401 OR code:403"#.into()
        }
        ReportKind::AuditConfigChanges => format!(
            "{WRITES} AND (objectRef.resource:(validatingwebhookconfigurations OR mutatingwebhookconfigurations OR validatingadmissionpolicies OR validatingadmissionpolicybindings OR auditsinks) OR ((objectRef.name:*audit* OR objectRef.name:*apiserver*) AND NOT objectRef.resource:(leases OR events OR endpoints OR endpointslices)))"
        ),
    };
    format!("event.dataset:k8s.audit AND ({q})")
}

fn f(ev: &StoredEvent, paths: &[&str]) -> String {
    field(&ev.doc, paths)
}

fn target(ev: &StoredEvent) -> String {
    let ns = f(ev, &["objectRef.namespace"]);
    let name = f(ev, &["objectRef.name"]);
    match (ns.is_empty(), name.is_empty()) {
        (true, true) => "*".into(),
        (true, false) => name,
        (false, true) => format!("{ns}/*"),
        (false, false) => format!("{ns}/{name}"),
    }
}

fn uri_param(uri: &str, key: &str) -> Vec<String> {
    let Some((_, q)) = uri.split_once('?') else {
        return Vec::new();
    };
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v.replace("%2F", "/").replace('+', " "))
        .collect()
}

/// One row per request (the stages of one auditID merged: first time, last status).
fn per_request(events: Vec<StoredEvent>) -> Vec<StoredEvent> {
    let mut out: Vec<StoredEvent> = Vec::new();
    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    for ev in events {
        let id = f(&ev, &["auditID"]);
        if !id.is_empty() {
            if let Some(&i) = by_id.get(&id) {
                // Keep the first time; take the later stage's document (it has the status).
                let time = out[i].record.event_time.min(ev.record.event_time);
                out[i] = ev;
                out[i].record.event_time = time;
                continue;
            }
            by_id.insert(id, out.len());
        }
        out.push(ev);
    }
    out
}

struct Report {
    header: Vec<&'static str>,
    rows: Vec<Map<String, Value>>,
}

fn row(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// A group's key fields, count, first and last time, source addresses.
type Group = (Vec<(&'static str, String)>, u64, i64, i64, Vec<String>);

/// Grouped rows: count, first, last per key.
fn grouped(
    events: &[StoredEvent],
    key: impl Fn(&StoredEvent) -> Vec<(&'static str, String)>,
) -> Vec<Map<String, Value>> {
    let mut groups: BTreeMap<Vec<String>, Group> = BTreeMap::new();
    for ev in events {
        let k = key(ev);
        let id: Vec<String> = k.iter().map(|(_, v)| v.clone()).collect();
        let t = ev.record.event_time;
        let ip = f(ev, &["source.ip"]);
        let e = groups.entry(id).or_insert((k, 0, t, t, Vec::new()));
        e.1 += 1;
        e.2 = e.2.min(t);
        e.3 = e.3.max(t);
        if !ip.is_empty() && !e.4.contains(&ip) {
            e.4.push(ip);
        }
    }
    groups
        .into_values()
        .map(|(k, n, first, last, ips)| {
            let mut m: Map<String, Value> = k
                .into_iter()
                .map(|(k, v)| (k.to_string(), Value::from(v)))
                .collect();
            m.insert("count".into(), Value::from(n));
            m.insert("first".into(), Value::from(micros_rfc3339(first)));
            m.insert("last".into(), Value::from(micros_rfc3339(last)));
            m.insert("source_ips".into(), Value::from(ips));
            m
        })
        .collect()
}

fn build(kind: ReportKind, events: Vec<StoredEvent>) -> Report {
    let events = per_request(events);
    match kind {
        ReportKind::SecretsAccess => Report {
            header: vec![
                "user",
                "verb",
                "secret",
                "result",
                "count",
                "first",
                "last",
                "source_ips",
            ],
            rows: grouped(&events, |ev| {
                vec![
                    ("user", f(ev, &["user.name"])),
                    ("verb", f(ev, &["verb"])),
                    ("secret", target(ev)),
                    ("result", f(ev, &["http.response.status_code"])),
                ]
            }),
        },
        ReportKind::Anonymous => Report {
            header: vec![
                "user",
                "verb",
                "path",
                "result",
                "decision",
                "count",
                "first",
                "last",
                "source_ips",
            ],
            rows: grouped(&events, |ev| {
                let uri = f(ev, &["requestURI"]);
                let path = uri.split('?').next().unwrap_or("").to_string();
                vec![
                    ("user", f(ev, &["user.name"])),
                    ("verb", f(ev, &["verb"])),
                    ("path", path),
                    ("result", f(ev, &["http.response.status_code"])),
                    (
                        "decision",
                        f(ev, &["annotations.authorization.k8s.io/decision"]),
                    ),
                ]
            }),
        },
        ReportKind::ExecSessions => Report {
            header: vec![
                "time",
                "user",
                "source_ip",
                "action",
                "pod",
                "container",
                "command",
                "result",
                "auditID",
            ],
            rows: events
                .iter()
                .map(|ev| {
                    let uri = f(ev, &["requestURI"]);
                    row(&[
                        ("time", Value::from(ev.time_rfc3339())),
                        ("user", Value::from(f(ev, &["user.name"]))),
                        ("source_ip", Value::from(f(ev, &["source.ip"]))),
                        ("action", Value::from(f(ev, &["objectRef.subresource"]))),
                        ("pod", Value::from(target(ev))),
                        (
                            "container",
                            Value::from(uri_param(&uri, "container").join(",")),
                        ),
                        ("command", Value::from(uri_param(&uri, "command").join(" "))),
                        ("result", Value::from(f(ev, &["http.response.status_code"]))),
                        ("auditID", Value::from(f(ev, &["auditID"]))),
                    ])
                })
                .collect(),
        },
        ReportKind::RbacChanges | ReportKind::AuditConfigChanges => Report {
            header: vec![
                "time", "user", "verb", "resource", "object", "detail", "result", "auditID",
            ],
            rows: events
                .iter()
                .map(|ev| {
                    let body = ev.doc.get("requestObject");
                    let mut detail = Vec::new();
                    if let Some(rr) = body.and_then(|b| b.get("roleRef")) {
                        detail.push(format!(
                            "roleRef={}/{}",
                            rr.get("kind").and_then(Value::as_str).unwrap_or(""),
                            rr.get("name").and_then(Value::as_str).unwrap_or("")
                        ));
                    }
                    if let Some(Value::Array(subjects)) = body.and_then(|b| b.get("subjects")) {
                        let s: Vec<String> = subjects
                            .iter()
                            .map(|s| {
                                let g = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("");
                                if g("namespace").is_empty() {
                                    format!("{}:{}", g("kind"), g("name"))
                                } else {
                                    format!("{}:{}/{}", g("kind"), g("namespace"), g("name"))
                                }
                            })
                            .collect();
                        detail.push(format!("subjects={}", s.join(",")));
                    }
                    row(&[
                        ("time", Value::from(ev.time_rfc3339())),
                        ("user", Value::from(f(ev, &["user.name"]))),
                        ("verb", Value::from(f(ev, &["verb"]))),
                        ("resource", Value::from(f(ev, &["objectRef.resource"]))),
                        ("object", Value::from(target(ev))),
                        ("detail", Value::from(detail.join(" "))),
                        ("result", Value::from(f(ev, &["http.response.status_code"]))),
                        ("auditID", Value::from(f(ev, &["auditID"]))),
                    ])
                })
                .collect(),
        },
        ReportKind::Impersonation => Report {
            header: vec![
                "time", "user", "as", "verb", "resource", "object", "result", "auditID",
            ],
            rows: events
                .iter()
                .map(|ev| {
                    let mut as_ = f(ev, &["user.effective.name"]);
                    if as_.is_empty() {
                        as_ = format!(
                            "{}:{}",
                            f(ev, &["objectRef.resource"]),
                            f(ev, &["objectRef.name"])
                        );
                    }
                    row(&[
                        ("time", Value::from(ev.time_rfc3339())),
                        ("user", Value::from(f(ev, &["user.name"]))),
                        ("as", Value::from(as_)),
                        ("verb", Value::from(f(ev, &["verb"]))),
                        ("resource", Value::from(f(ev, &["objectRef.resource"]))),
                        ("object", Value::from(target(ev))),
                        ("result", Value::from(f(ev, &["http.response.status_code"]))),
                        ("auditID", Value::from(f(ev, &["auditID"]))),
                    ])
                })
                .collect(),
        },
    }
}

pub fn run(args: ReportArgs) -> Result<ExitCode> {
    let q = query::parse(&report_query(args.kind))?;
    let reader = args.dir.reader()?;
    let found = reader.search(
        &q,
        &SearchOptions {
            since: time_arg("--since", &args.since)?,
            until: time_arg("--until", &args.until)?,
            limit: 0,
            newest_first: false,
            kinds: Kinds::Events,
        },
    )?;
    let report = build(args.kind, found.events);
    let mut out = stdout();
    match args.format {
        Format::Jsonl => {
            for r in &report.rows {
                finish(write_json_line(&mut out, &json!(r)))?;
            }
        }
        Format::Table => {
            let mut t = Table::new(report.header.iter().map(|h| h.to_uppercase()));
            for r in &report.rows {
                t.row(report.header.iter().map(|h| {
                    match r.get(*h) {
                        Some(Value::String(s)) => s.clone(),
                        Some(Value::Array(a)) => a
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(","),
                        Some(v) => v.to_string(),
                        None => String::new(),
                    }
                }));
            }
            finish(t.write(&mut out))?;
        }
    }
    finish(out.flush())?;
    Ok(ExitCode::SUCCESS)
}
