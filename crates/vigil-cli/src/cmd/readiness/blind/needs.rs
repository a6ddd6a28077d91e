//! From a rule's YAML to what it needs: the requests its selections pin and the fields they
//! read. Read from the rule text rather than the compiled engine, which keeps neither the
//! selection names (`filter*` must not count) nor which field each value came from.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use vigil_model::yaml::{parse_documents, Node};
use vigil_model::Level;

use super::{Probe, RuleNeeds};

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
