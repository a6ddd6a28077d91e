//! Detection and logging gaps: Kubernetes events of the incident recorded at a level without
//! request bodies (`Metadata`, `None`) that a built-in rule needs the body of. Such a rule could
//! not fire on them; had the body been logged, it would have been checked at that event's time.
//! With an audit policy, the policy rule that chose the level is named.
//!
//! A rule "needs the body" when one of its selections (not a `filter*`) can only be true with a
//! `requestObject`/`responseObject` field; it "applies" to an event when one of its other
//! selections constrains `objectRef.resource` (and `verb`, `objectRef.subresource`) to values
//! the event has. This reads the rule texts (not the engine): it is a screen, not a proof.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_norway::Value as Y;
use vigil_policy::Policy;

use crate::scope::{Ev, ObjectRef};

#[derive(Debug, Clone, Serialize)]
pub struct Gap {
    /// The detection rule's title and file.
    pub rule: String,
    pub rule_file: String,
    pub level: String,
    /// `requestObject` or `responseObject` fields the rule reads.
    pub needs: Vec<String>,
    /// Events hidden: time, what, recorded level, store location.
    pub events: Vec<(String, String, String, u64)>,
    /// With a policy: `rule N (line L) sets level X`, per event.
    pub policy: Vec<String>,
}

struct Gate {
    resources: Vec<String>,
    verbs: Vec<String>,
    /// None: not constrained; Some(""): must be absent.
    subresource: Option<Vec<String>>,
}

struct BodyRule {
    title: String,
    file: String,
    level: String,
    needs: Vec<String>,
    gates: Vec<Gate>,
}

fn strs(v: &Y, ph: &HashMap<String, Vec<String>>, expand: bool) -> Vec<String> {
    let one = |s: &str| -> Vec<String> {
        if expand {
            let k = s.trim_matches('%');
            ph.get(k).cloned().unwrap_or_default()
        } else {
            vec![s.to_string()]
        }
    };
    match v {
        Y::String(s) => one(s),
        Y::Sequence(items) => items.iter().filter_map(Y::as_str).flat_map(one).collect(),
        _ => Vec::new(),
    }
}

fn is_body(key: &str) -> bool {
    key.starts_with("requestObject") || key.starts_with("responseObject")
}

/// Fields of a map selection, or of each alternative of a list selection.
fn alternatives(v: &Y) -> Vec<&serde_norway::Mapping> {
    match v {
        Y::Mapping(m) => vec![m],
        Y::Sequence(items) => items.iter().filter_map(Y::as_mapping).collect(),
        _ => Vec::new(),
    }
}

fn body_rules() -> Vec<BodyRule> {
    let ph = vigil_detect::builtin::placeholders();
    let mut out = Vec::new();
    for (file, text) in vigil_detect::builtin::rule_files() {
        let Ok(doc) = serde_norway::from_str::<Y>(text) else {
            continue;
        };
        let Some(det) = doc.get("detection").and_then(Y::as_mapping) else {
            continue;
        };
        let mut needs = Vec::new();
        let mut gates = Vec::new();
        for (name, sel) in det {
            let name = name.as_str().unwrap_or("");
            if name == "condition" || name.starts_with("filter") {
                continue;
            }
            let alts = alternatives(sel);
            let all_body = !alts.is_empty()
                && alts.iter().all(|m| {
                    m.keys()
                        .filter_map(Y::as_str)
                        .any(|k| is_body(k.split('|').next().unwrap_or("")))
                });
            if all_body {
                for m in &alts {
                    for k in m.keys().filter_map(Y::as_str) {
                        let f = k.split('|').next().unwrap_or("").to_string();
                        if is_body(&f) && !needs.contains(&f) {
                            needs.push(f);
                        }
                    }
                }
                continue;
            }
            for m in alts {
                let mut g = Gate {
                    resources: Vec::new(),
                    verbs: Vec::new(),
                    subresource: None,
                };
                for (k, v) in m {
                    let k = k.as_str().unwrap_or("");
                    let mut parts = k.split('|');
                    let field = parts.next().unwrap_or("");
                    let mods: Vec<&str> = parts.collect();
                    let expand = mods.contains(&"expand");
                    match field {
                        "objectRef.resource" => g.resources = strs(v, &ph, expand),
                        "verb" => g.verbs = strs(v, &ph, expand),
                        "objectRef.subresource"
                            if mods.contains(&"exists") && v.as_bool() == Some(false) =>
                        {
                            g.subresource = Some(vec![String::new()]);
                        }
                        "objectRef.subresource" if mods.contains(&"exists") => {}
                        "objectRef.subresource" => g.subresource = Some(strs(v, &ph, expand)),
                        _ => {}
                    }
                }
                if !g.resources.is_empty() {
                    gates.push(g);
                }
            }
        }
        if needs.is_empty() || gates.is_empty() {
            continue;
        }
        let s = |k: &str| doc.get(k).and_then(Y::as_str).unwrap_or("").to_string();
        out.push(BodyRule {
            title: s("title"),
            file: file.to_string(),
            level: s("level"),
            needs,
            gates,
        });
    }
    out
}

fn applies(g: &Gate, o: &ObjectRef, verb: &str) -> bool {
    g.resources.contains(&o.resource)
        && (g.verbs.is_empty() || g.verbs.iter().any(|v| v == verb))
        && g.subresource
            .as_ref()
            .is_none_or(|subs| subs.contains(&o.subresource))
}

/// The gaps among `events` (the incident's actors' Kubernetes events).
pub fn gaps(events: &[&Ev], policy: Option<&Policy>) -> Vec<Gap> {
    let rules = body_rules();
    let mut out: BTreeMap<String, Gap> = BTreeMap::new();
    for e in events {
        let level = e.str("level").unwrap_or("");
        if !matches!(level, "Metadata" | "None") {
            continue;
        }
        let Some(o) = ObjectRef::of(e) else { continue };
        let verb = e.str("verb").unwrap_or("");
        for r in &rules {
            if !r.gates.iter().any(|g| applies(g, &o, verb)) {
                continue;
            }
            let gap = out.entry(r.file.clone()).or_insert_with(|| Gap {
                rule: r.title.clone(),
                rule_file: r.file.clone(),
                level: r.level.clone(),
                needs: r.needs.clone(),
                events: Vec::new(),
                policy: Vec::new(),
            });
            gap.events
                .push((e.time_rfc3339(), e.what(), level.to_string(), e.loc));
            if let Some(p) = policy {
                gap.policy.push(policy_says(p, e));
            }
        }
    }
    out.into_values().collect()
}

/// Which rule of `policy` decides the level of the request of `e`.
fn policy_says(p: &Policy, e: &Ev) -> String {
    let text = serde_json::to_string(&e.raw).unwrap_or_default();
    let Some(Ok(d)) = vigil_model::decode::decode_document(&text, 1)
        .into_iter()
        .next()
    else {
        return format!("{}: not a decodable audit event", e.what());
    };
    let attrs = vigil_policy::Attributes::from_event(&d.event);
    let dec = p.evaluate(&attrs);
    match dec.rule {
        Some(i) => format!(
            "{}: policy rule {} (line {}) sets level {}",
            e.what(),
            i + 1,
            p.rule_lines.get(i).copied().unwrap_or(0),
            dec.level.as_str()
        ),
        None => format!(
            "{}: no policy rule matches (level None: not logged at all)",
            e.what()
        ),
    }
}
