//! Each pinned request put through the policy checker as kube-apiserver would see it, as the
//! callers that matter for the rule, and why the decision leaves it blind.

use vigil_model::{Level, Stage};
use vigil_policy::{Attributes, Policy, User};

use super::{Probe, RuleNeeds};

pub(super) struct Caller {
    label: String,
    name: String,
    groups: Vec<String>,
}

fn caller(label: &str, name: &str, groups: &[&str]) -> Caller {
    Caller {
        label: label.into(),
        name: name.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

/// Who to probe as: the users or groups the rule is about, else a person and a workload's
/// service account (who attackers usually are, or hold the credentials of).
pub(super) fn callers(r: &RuleNeeds) -> Vec<Caller> {
    let mut out = Vec::new();
    for u in &r.users {
        let groups: &[&str] = if u == "system:anonymous" {
            &["system:unauthenticated"]
        } else if u.starts_with("system:serviceaccount:") {
            &["system:serviceaccounts", "system:authenticated"]
        } else {
            &["system:authenticated"]
        };
        out.push(caller(u, u, groups));
    }
    for g in &r.groups {
        out.push(caller(
            &format!("a member of {g}"),
            "probe-user",
            &[g.as_str(), "system:authenticated"],
        ));
    }
    if out.is_empty() {
        out.push(caller(
            "a person",
            "jane@example.com",
            &["developers", "system:authenticated"],
        ));
        out.push(caller(
            "a service account",
            "system:serviceaccount:default:app",
            &[
                "system:serviceaccounts",
                "system:serviceaccounts:default",
                "system:authenticated",
            ],
        ));
    }
    out
}

fn attrs(c: &Caller, p: &Probe) -> Attributes {
    let named = !(matches!(
        p.verb.as_str(),
        "create" | "list" | "watch" | "deletecollection"
    ) && p.subresource.is_empty());
    let name = if named { "probe" } else { "" };
    let ns = if p.resource == "namespaces" && p.group.is_empty() {
        name.to_string()
    } else {
        p.namespace.clone()
    };
    let mut path = if p.group.is_empty() {
        "/api/v1".to_string()
    } else {
        format!("/apis/{}/v1", p.group)
    };
    if !ns.is_empty() && p.resource != "namespaces" {
        path.push_str(&format!("/namespaces/{ns}"));
    }
    path.push_str(&format!("/{}", p.resource));
    if !name.is_empty() {
        path.push_str(&format!("/{name}"));
    }
    if !p.subresource.is_empty() {
        path.push_str(&format!("/{}", p.subresource));
    }
    Attributes {
        user: Some(User {
            name: c.name.clone(),
            groups: c.groups.clone(),
        }),
        verb: p.verb.clone(),
        namespace: ns,
        api_group: p.group.clone(),
        api_version: "v1".into(),
        resource: p.resource.clone(),
        subresource: p.subresource.clone(),
        name: name.into(),
        resource_request: true,
        path,
    }
}

fn long_running(p: &Probe) -> bool {
    matches!(p.verb.as_str(), "watch" | "proxy")
        || matches!(
            p.subresource.as_str(),
            "attach" | "exec" | "proxy" | "log" | "portforward"
        )
}

/// Why one probe is blind, if it is.
#[derive(Debug, Clone)]
pub struct Gap {
    pub probe: Probe,
    /// The level the fields the rule reads from this request need.
    pub need: Level,
    pub callers: Vec<String>,
    /// Index of the policy rule that decided, if any.
    pub rule: Option<usize>,
    pub reason: String,
}

/// The probes of `r` the policy leaves blind.
pub fn gaps(policy: &Policy, r: &RuleNeeds) -> Vec<Gap> {
    let mut out: Vec<Gap> = Vec::new();
    let who = callers(r);
    for (p, need) in &r.probes {
        let need = *need;
        for c in &who {
            let d = policy.evaluate(&attrs(c, p));
            let omitted = |s: Stage| d.omit_stages.contains(&s);
            let status_stage_omitted = omitted(Stage::ResponseComplete)
                && (!long_running(p) || omitted(Stage::ResponseStarted));
            let nothing =
                d.level == Level::None || (omitted(Stage::RequestReceived) && status_stage_omitted);
            let reason = if nothing {
                if d.level == Level::None {
                    "not logged (level None)".to_string()
                } else {
                    "not logged (every stage it emits is omitted)".to_string()
                }
            } else if d.level < need {
                format!("logged at {}", level_name(d.level))
            } else if r.reads_status && status_stage_omitted {
                "ResponseComplete omitted (the rule reads responseStatus)".to_string()
            } else {
                continue;
            };
            match out.iter_mut().find(|g| g.probe == *p && g.reason == reason) {
                Some(g) => g.callers.push(c.label.clone()),
                None => out.push(Gap {
                    probe: p.clone(),
                    need,
                    callers: vec![c.label.clone()],
                    rule: d.rule,
                    reason,
                }),
            }
        }
    }
    out
}

pub fn level_name(l: Level) -> &'static str {
    match l {
        Level::None => "None",
        Level::Metadata => "Metadata",
        Level::Request => "Request",
        Level::RequestResponse => "RequestResponse",
    }
}
