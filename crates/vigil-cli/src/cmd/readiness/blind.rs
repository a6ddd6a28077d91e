//! Which built-in Kubernetes detections a policy leaves blind.
//!
//! For every built-in rule over `kubernetes/audit`, from its YAML: the fields its selections read
//! (`requestObject.*` needs level Request, `responseObject.*` RequestResponse, `responseStatus.*`
//! the ResponseComplete stage) and the requests its selections pin (resource, subresource, API
//! group, verb, namespace; `|expand` placeholders resolved with the pack's defaults). Selections
//! named `filter*` only narrow a rule, so they are not counted. Each pinned request is then
//! evaluated through the policy checker, as kube-apiserver would, as the users or groups the
//! rule pins, else as two callers (a person and a workload service account): a request logged
//! at None, with every stage it emits omitted, or at a level below what the rule reads, is a
//! blind spot.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use vigil_model::yaml::{parse_documents, Node};
use vigil_model::{Level, Stage};
use vigil_policy::{Attributes, Policy, User};

use super::{Finding, Sev};

/// One request a rule looks for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Probe {
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub verb: String,
    pub namespace: String,
}

impl Probe {
    fn resource_label(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
    pub fn label(&self) -> String {
        let g = if self.group.is_empty() {
            String::new()
        } else {
            format!("{}/", self.group)
        };
        let ns = if self.namespace.is_empty() || self.namespace == "default" {
            String::new()
        } else {
            format!(" in {}", self.namespace)
        };
        format!("{} {g}{}{ns}", self.verb, self.resource_label())
    }
}

/// What a built-in rule needs from the audit log.
#[derive(Debug, Clone)]
pub struct RuleNeeds {
    /// `builtin:<path>` or the rule file.
    pub origin: String,
    pub id: String,
    pub title: String,
    pub level: String,
    /// The first body field it reads (requestObject.*, responseObject.*).
    pub body_field: Option<String>,
    pub reads_status: bool,
    /// Exact user names and groups its selections require (probed as these callers).
    pub users: Vec<String>,
    pub groups: Vec<String>,
    /// The requests it looks for, each with the level its fields need.
    pub probes: Vec<(Probe, Level)>,
}

fn group_of(resource: &str) -> &'static str {
    match resource {
        "deployments" | "daemonsets" | "statefulsets" | "replicasets" | "controllerrevisions" => {
            "apps"
        }
        "jobs" | "cronjobs" => "batch",
        "roles" | "rolebindings" | "clusterroles" | "clusterrolebindings" => {
            "rbac.authorization.k8s.io"
        }
        "validatingwebhookconfigurations"
        | "mutatingwebhookconfigurations"
        | "validatingadmissionpolicies"
        | "validatingadmissionpolicybindings" => "admissionregistration.k8s.io",
        "certificatesigningrequests" => "certificates.k8s.io",
        "ingresses" | "networkpolicies" => "networking.k8s.io",
        "tokenreviews" => "authentication.k8s.io",
        "subjectaccessreviews"
        | "selfsubjectrulesreviews"
        | "selfsubjectaccessreviews"
        | "localsubjectaccessreviews" => "authorization.k8s.io",
        "leases" => "coordination.k8s.io",
        "customresourcedefinitions" => "apiextensions.k8s.io",
        "podsecuritypolicies" => "policy",
        _ => "",
    }
}

fn cluster_scoped(resource: &str) -> bool {
    matches!(
        resource,
        "namespaces"
            | "nodes"
            | "persistentvolumes"
            | "clusterroles"
            | "clusterrolebindings"
            | "validatingwebhookconfigurations"
            | "mutatingwebhookconfigurations"
            | "validatingadmissionpolicies"
            | "validatingadmissionpolicybindings"
            | "certificatesigningrequests"
            | "tokenreviews"
            | "subjectaccessreviews"
            | "selfsubjectrulesreviews"
            | "selfsubjectaccessreviews"
            | "customresourcedefinitions"
            | "podsecuritypolicies"
    )
}

/// The values of a field: a scalar or a list of scalars; `|expand` placeholders resolved.
fn values(v: &Node, mods: &[&str], ph: &HashMap<String, Vec<String>>) -> Vec<String> {
    let raw: Vec<String> = match (v.as_seq(), v.as_scalar()) {
        (Some(items), _) => items
            .iter()
            .filter_map(|i| i.as_scalar().map(|s| s.text.clone()))
            .collect(),
        (_, Some(s)) if !s.is_null() => vec![s.text.clone()],
        _ => vec![],
    };
    if mods.contains(&"expand") {
        raw.iter()
            .flat_map(|r| {
                ph.get(r.trim_matches('%'))
                    .cloned()
                    .unwrap_or_else(|| vec![r.clone()])
            })
            .collect()
    } else {
        raw
    }
}

/// One mapping of a selection (its fields are ANDed).
#[derive(Default)]
struct Pins {
    resources: Vec<String>,
    subresources: Option<Vec<String>>,
    groups: Vec<String>,
    verbs: Vec<String>,
    namespaces: Vec<String>,
    /// A body field read in this same mapping, and the level it needs.
    body: Option<(Level, String)>,
    user_names: Vec<String>,
    user_groups: Vec<String>,
}

struct Reads {
    status: bool,
    maps: Vec<Pins>,
}

fn walk(n: &Node, ph: &HashMap<String, Vec<String>>, out: &mut Reads) {
    if let Some(items) = n.as_seq() {
        for i in items {
            walk(i, ph, out);
        }
        return;
    }
    let Some(entries) = n.as_map() else { return };
    let mut pins = Pins::default();
    for (k, v) in entries {
        let Some(key) = k.as_scalar().map(|s| s.text.clone()) else {
            continue;
        };
        let mut parts = key.split('|');
        let field = parts.next().unwrap_or("");
        let mods: Vec<&str> = parts.collect();
        let level = if field.starts_with("responseObject") {
            Some(Level::RequestResponse)
        } else if field.starts_with("requestObject") {
            Some(Level::Request)
        } else {
            None
        };
        if let Some(l) = level {
            if pins.body.as_ref().is_none_or(|(have, _)| l > *have) {
                pins.body = Some((l, field.to_string()));
            }
        }
        if field.starts_with("responseStatus") {
            out.status = true;
        }
        let exists_false =
            mods.contains(&"exists") && v.as_scalar().and_then(|s| s.as_bool()) == Some(false);
        let exists = mods.contains(&"exists");
        match field {
            "objectRef.resource" if !exists => pins.resources.extend(values(v, &mods, ph)),
            "objectRef.subresource" if exists_false => {
                pins.subresources = Some(vec![String::new()])
            }
            "objectRef.subresource" if !exists => {
                pins.subresources = Some(values(v, &mods, ph));
            }
            "objectRef.apiGroup" if exists_false => pins.groups.push(String::new()),
            "objectRef.apiGroup" if !exists => pins.groups.extend(values(v, &mods, ph)),
            "verb" if !exists => pins.verbs.extend(values(v, &mods, ph)),
            "user.username" if mods.is_empty() => pins.user_names.extend(values(v, &mods, ph)),
            "user.groups" if mods.is_empty() => pins.user_groups.extend(values(v, &mods, ph)),
            "objectRef.namespace" if !exists && mods.iter().all(|m| *m == "expand") => {
                pins.namespaces.extend(values(v, &mods, ph))
            }
            _ => {}
        }
    }
    out.maps.push(pins);
}

/// Folds to the first of the highest levels.
fn first_max(acc: Option<(Level, String)>, b: (Level, String)) -> Option<(Level, String)> {
    match acc {
        Some(a) if a.0 >= b.0 => Some(a),
        _ => Some(b),
    }
}

/// Plain values only (a wildcard or regex cannot be probed with one request).
fn literal(s: &str) -> bool {
    !s.contains(['*', '?']) && !s.is_empty()
}

/// What one rule document needs; `None` for documents that are not Kubernetes audit rules.
fn needs_of(doc: &Node, ph: &HashMap<String, Vec<String>>) -> Option<RuleNeeds> {
    let ls = doc.get("logsource")?;
    if ls.get("product").and_then(Node::as_str) != Some("kubernetes") {
        return None;
    }
    let det = doc.get("detection")?.as_map()?;
    let mut reads = Reads {
        status: false,
        maps: Vec::new(),
    };
    for (k, v) in det {
        let Some(name) = k.as_scalar().map(|s| s.text.as_str()) else {
            continue;
        };
        if name == "condition" || name == "timeframe" || name.starts_with("filter") {
            continue;
        }
        walk(v, ph, &mut reads);
    }
    // Rule-wide values fill in what a mapping leaves open.
    let all_verbs: BTreeSet<String> = reads.maps.iter().flat_map(|m| m.verbs.clone()).collect();
    let all_groups: BTreeSet<String> = reads.maps.iter().flat_map(|m| m.groups.clone()).collect();
    let all_ns: BTreeSet<String> = reads
        .maps
        .iter()
        .flat_map(|m| m.namespaces.clone())
        .collect();
    let free_body = reads
        .maps
        .iter()
        .filter(|m| m.resources.is_empty())
        .filter_map(|m| m.body.clone())
        .fold(None, first_max);
    let mut probes: BTreeMap<Probe, Option<(Level, String)>> = BTreeMap::new();
    for m in reads.maps.iter().filter(|m| !m.resources.is_empty()) {
        let verbs: Vec<String> = if !m.verbs.is_empty() {
            m.verbs.clone()
        } else if !all_verbs.is_empty() {
            all_verbs.iter().cloned().collect()
        } else {
            vec!["get".into()]
        };
        let subs = m
            .subresources
            .clone()
            .unwrap_or_else(|| vec![String::new()]);
        let namespaces: Vec<String> = if !m.namespaces.is_empty() {
            m.namespaces.clone()
        } else {
            all_ns.iter().cloned().collect()
        };
        for r in m.resources.iter().filter(|r| literal(r)) {
            let known = group_of(r);
            let group = match m.groups.first() {
                Some(g) => g.clone(),
                None if !known.is_empty() => known.to_string(),
                None => all_groups.iter().next().cloned().unwrap_or_default(),
            };
            // A body field in this mapping, else one read by a mapping that pins no request.
            let need = m.body.clone().or_else(|| free_body.clone());
            for s in &subs {
                for v in verbs.iter().filter(|v| literal(v)) {
                    let nss: Vec<String> = if cluster_scoped(r) {
                        vec![String::new()]
                    } else if namespaces.is_empty() {
                        vec!["default".into()]
                    } else {
                        namespaces.iter().filter(|n| literal(n)).cloned().collect()
                    };
                    for ns in nss {
                        let p = Probe {
                            group: group.clone(),
                            resource: r.to_lowercase(),
                            subresource: s.clone(),
                            verb: v.to_lowercase(),
                            namespace: ns,
                        };
                        let e = probes.entry(p).or_insert(None);
                        if need.as_ref().map(|n| n.0) > e.as_ref().map(|n: &(Level, String)| n.0) {
                            *e = need.clone();
                        }
                    }
                }
            }
        }
    }
    if probes.is_empty() {
        // Not about one kind of request: probe a representative one.
        let verb = all_verbs
            .iter()
            .find(|v| literal(v))
            .cloned()
            .unwrap_or_else(|| "get".into());
        probes.insert(
            Probe {
                group: String::new(),
                resource: "pods".into(),
                subresource: String::new(),
                verb,
                namespace: "default".into(),
            },
            free_body.clone(),
        );
    }
    let body = probes.values().flatten().cloned().fold(None, first_max);
    let body_field = body.map(|b| b.1);
    Some(RuleNeeds {
        origin: String::new(),
        id: doc
            .get("id")
            .and_then(Node::as_str)
            .unwrap_or("")
            .to_string(),
        title: doc
            .get("title")
            .and_then(Node::as_str)
            .unwrap_or("")
            .to_string(),
        level: doc
            .get("level")
            .and_then(Node::as_str)
            .unwrap_or("medium")
            .to_string(),
        body_field,
        reads_status: reads.status,
        users: reads
            .maps
            .iter()
            .flat_map(|m| m.user_names.iter().filter(|u| literal(u)).cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        groups: reads
            .maps
            .iter()
            .flat_map(|m| m.user_groups.iter().filter(|g| literal(g)).cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        probes: probes
            .into_iter()
            .map(|(p, n)| (p, n.map_or(Level::Metadata, |n| n.0)))
            .collect(),
    })
}

/// The built-in Kubernetes audit rules and what each needs.
pub fn builtin_needs() -> Vec<RuleNeeds> {
    let texts: Vec<(String, String)> = vigil_detect::builtin::rule_files()
        .iter()
        .map(|(path, text)| (format!("builtin:{path}"), text.to_string()))
        .collect();
    needs_of_files(&texts, &vigil_detect::builtin::placeholders())
}

/// What the Kubernetes audit rules of these files (origin, YAML text) need; `placeholders`
/// resolve `|expand`.
pub fn needs_of_files(
    files: &[(String, String)],
    placeholders: &HashMap<String, Vec<String>>,
) -> Vec<RuleNeeds> {
    let mut out = Vec::new();
    for (origin, text) in files {
        let Ok(docs) = parse_documents(text) else {
            continue;
        };
        for d in docs {
            if let Some(mut n) = needs_of(&d.root, placeholders) {
                n.origin = origin.clone();
                out.push(n);
            }
        }
    }
    out
}

struct Caller {
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
fn callers(r: &RuleNeeds) -> Vec<Caller> {
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

/// Resources whose bodies must not be logged (secret values): a rule reading them stays blind
/// by design.
fn sensitive(p: &Probe) -> bool {
    (p.group.is_empty() && matches!(p.resource.as_str(), "secrets" | "configmaps"))
        || matches!(p.resource.as_str(), "tokenreviews")
        || p.subresource == "token"
}

/// A policy rule (one YAML line, flow style) that logs what the gaps miss.
fn suggested_rule(level: Level, gaps: &[&Gap]) -> String {
    let verbs: BTreeSet<&str> = gaps.iter().map(|g| g.probe.verb.as_str()).collect();
    let mut by_group: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for g in gaps {
        by_group
            .entry(g.probe.group.as_str())
            .or_default()
            .insert(g.probe.resource_label());
    }
    let resources: Vec<String> = by_group
        .iter()
        .map(|(g, rs)| {
            format!(
                "{{group: \"{g}\", resources: [{}]}}",
                rs.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    format!(
        "- {{level: {}, verbs: [{}], resources: [{}]}}",
        level_name(level),
        verbs.into_iter().collect::<Vec<_>>().join(", "),
        resources.join(", ")
    )
}

/// "the rule at line 5" / "no rule (level None)".
fn decider(policy: &Policy, rule: Option<usize>) -> String {
    match rule {
        Some(i) => match policy.rule_lines.get(i) {
            Some(l) if *l > 0 => format!("the rule at line {l}"),
            _ => format!("rule {i}"),
        },
        None => "no rule".to_string(),
    }
}

fn list(items: &[String], max: usize) -> String {
    if items.len() <= max {
        items.join(", ")
    } else {
        format!("{} and {} more", items[..max].join(", "), items.len() - max)
    }
}

/// Requests blind for the same reason, and the callers concerned.
type Group<'a> = (Vec<String>, BTreeSet<&'a str>);

/// One finding per built-in rule the policy leaves (partly) blind.
pub fn findings(policy: &Policy, rules: &[RuleNeeds]) -> Vec<Finding> {
    let mut out = Vec::new();
    for r in rules {
        let gs = gaps(policy, r);
        if gs.is_empty() {
            continue;
        }
        let blind_probes: BTreeSet<&Probe> = gs.iter().map(|g| &g.probe).collect();
        let n_callers = callers(r).len();
        let all = blind_probes.len() == r.probes.len();
        // Grouped by (why, which policy rule decided).
        let mut groups: BTreeMap<(String, Option<usize>), Group> = BTreeMap::new();
        for g in &gs {
            let e = groups.entry((g.reason.clone(), g.rule)).or_default();
            let label = g.probe.label();
            if !e.0.contains(&label) {
                e.0.push(label);
            }
            e.1.extend(g.callers.iter().map(String::as_str));
        }
        let parts: Vec<String> = groups
            .iter()
            .map(|((reason, rule), (labels, callers))| {
                let who = if callers.len() == n_callers {
                    String::new()
                } else {
                    format!(
                        ", when made by {}",
                        callers.iter().copied().collect::<Vec<_>>().join(" or ")
                    )
                };
                match rule {
                    Some(_) => format!(
                        "{}: {reason} by {}{who}",
                        list(labels, 4),
                        decider(policy, *rule)
                    ),
                    None => format!("{}: not logged, no rule matches{who}", list(labels, 4)),
                }
            })
            .collect();
        let need = gs.iter().map(|g| g.need).max().unwrap_or(Level::Metadata);
        let reads = match (&r.body_field, need > Level::Metadata) {
            (Some(f), true) => format!("; it reads {f}, which needs level {}", level_name(need)),
            _ => String::new(),
        };
        let yours = if r.origin.starts_with("builtin:") {
            String::new()
        } else {
            format!(" ({})", r.origin)
        };
        let what = format!(
            "{} rule \"{}\"{yours} is {}: {}{reads}",
            r.level,
            r.title,
            if all { "blind" } else { "partly blind" },
            parts.join("; ")
        );
        // Too low a level (or none), and stages omitted: each has its own fix.
        let (stage_gaps, level_gaps): (Vec<&Gap>, Vec<&Gap>) = gs
            .iter()
            .partition(|g| g.reason.starts_with("ResponseComplete") || g.reason.contains("stage"));
        let all_sensitive = !level_gaps.is_empty()
            && stage_gaps.is_empty()
            && level_gaps.iter().all(|g| sensitive(&g.probe))
            && need >= Level::Request;
        let first_rule = gs.iter().filter_map(|g| g.rule).min();
        let mut fixes = Vec::new();
        if !level_gaps.is_empty() {
            let level_need = level_gaps
                .iter()
                .map(|g| g.need)
                .max()
                .unwrap_or(Level::Metadata);
            let fix_level = level_need.max(Level::Metadata);
            let place = match level_gaps
                .iter()
                .filter_map(|g| g.rule)
                .min()
                .and_then(|i| policy.rule_lines.get(i))
            {
                Some(l) if *l > 0 => format!("above the rule at line {l}"),
                _ => "before the final catch-all".to_string(),
            };
            fixes.push(format!(
                "log them at {}: add `{}` {place}",
                level_name(fix_level),
                suggested_rule(fix_level, &level_gaps)
            ));
        }
        if !stage_gaps.is_empty() {
            let policy_wide = policy.omit_stages.contains(&Stage::ResponseComplete);
            let rules: BTreeSet<String> = stage_gaps
                .iter()
                .filter(|g| g.rule.is_some())
                .map(|g| decider(policy, g.rule))
                .collect();
            fixes.push(if policy_wide {
                "keep the ResponseComplete stage (it carries the response code the rule tests): remove it from the policy-level omitStages".to_string()
            } else {
                format!(
                    "keep the ResponseComplete stage (it carries the response code the rule tests): remove it from omitStages of {}",
                    rules.into_iter().collect::<Vec<_>>().join(" and ")
                )
            });
        }
        let (sev, fix) = if all_sensitive {
            (
                Sev::Info,
                format!(
                    "accept it: logging the bodies of {} at {} would write secret values into the audit log (lint: sensitive-data-logged); cover it with admission control instead",
                    level_gaps[0].probe.resource_label(),
                    level_name(need)
                ),
            )
        } else {
            let sev = match (all, r.level.as_str()) {
                (true, "high" | "critical") => Sev::Error,
                (_, "informational") => Sev::Info,
                _ => Sev::Warning,
            };
            (sev, fixes.join("; and "))
        };
        out.push(Finding {
            id: "blind-detection".into(),
            severity: sev,
            what,
            fix,
            rule: Some(r.id.clone()),
            line: first_rule
                .and_then(|i| policy.rule_lines.get(i).copied())
                .filter(|l| *l > 0),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs(title: &str) -> RuleNeeds {
        builtin_needs()
            .into_iter()
            .find(|r| r.title == title)
            .unwrap_or_else(|| panic!("no rule {title}"))
    }

    #[test]
    fn privileged_pod_rule_needs_request_bodies_of_pod_writes() {
        let r = needs("Privileged Container Created");
        assert!(r
            .probes
            .iter()
            .any(|(p, l)| p.label() == "create pods" && *l == Level::Request));
        assert!(r.probes.iter().all(|(_, l)| *l == Level::Request));
        assert!(r.body_field.unwrap().starts_with("requestObject.spec"));
        assert!(r.reads_status);
        let labels: Vec<String> = r.probes.iter().map(|p| p.0.label()).collect();
        assert!(labels.contains(&"create pods".to_string()), "{labels:?}");
        assert!(labels.contains(&"patch pods/ephemeralcontainers".to_string()));
        assert!(labels.contains(&"create apps/deployments".to_string()));
        assert!(labels.contains(&"update batch/cronjobs".to_string()));
    }

    #[test]
    fn exec_rule_needs_metadata_only() {
        let r = needs("Command Executed in or Attached to a Pod Container");
        assert!(r.probes.iter().all(|(_, l)| *l == Level::Metadata));
        assert!(r
            .probes
            .iter()
            .any(|(p, _)| p.subresource == "exec" && p.resource == "pods"));
    }

    fn policy(yaml: &str) -> Policy {
        vigil_policy::load_policy(yaml).unwrap().policy
    }

    #[test]
    fn metadata_policy_blinds_body_rules_only() {
        let p = policy("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n");
        assert!(!gaps(&p, &needs("Privileged Container Created")).is_empty());
        assert!(gaps(
            &p,
            &needs("Command Executed in or Attached to a Pod Container")
        )
        .is_empty());
        let p = policy(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  resources: [{group: \"\", resources: [pods/exec]}]\n- level: Request\n",
        );
        assert!(gaps(&p, &needs("Privileged Container Created")).is_empty());
        let g = gaps(
            &p,
            &needs("Command Executed in or Attached to a Pod Container"),
        );
        assert!(g[0].reason.contains("level None"), "{g:?}");
    }

    #[test]
    fn omitted_response_complete_blinds_rules_that_test_the_response_code() {
        let p = policy(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [ResponseComplete]\nrules:\n- level: Request\n",
        );
        let f = findings(&p, &builtin_needs());
        let priv_pod = f
            .iter()
            .find(|f| f.what.contains("\"Privileged Container Created\""))
            .expect("blind");
        assert_eq!(priv_pod.severity, Sev::Error);
        assert!(
            priv_pod.what.contains("ResponseComplete omitted"),
            "{}",
            priv_pod.what
        );
        assert!(!priv_pod.fix.contains("log them at"), "{}", priv_pod.fix);
        assert!(priv_pod
            .fix
            .contains("remove it from the policy-level omitStages"));
    }
}
