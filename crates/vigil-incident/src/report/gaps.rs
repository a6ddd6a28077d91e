//! Detection and logging gaps: Kubernetes events of the incident recorded at a level without
//! request bodies (`Metadata`, `None`) that a built-in rule needs the body of. Such a rule could
//! not fire on them; had the body been logged, it would have been checked at that event's time.
//! With an audit policy, the policy rule that chose the level is named.
//!
//! A rule "needs the body" when one of its selections (not a `filter*`) can only be true with a
//! `requestObject`/`responseObject` field; it "applies" to an event when one of its other
//! selections constrains `objectRef.resource` (and `verb`, `objectRef.subresource`) to values
//! the event has. This reads the rule texts (not the engine): it is a screen, not a proof.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use serde_norway::Value as Y;
use vigil_policy::Policy;

use crate::scope::{Ev, ObjectRef};

/// One event logged without what some rules need.
#[derive(Debug, Clone, Serialize)]
pub struct Gap {
    pub time: String,
    pub what: String,
    /// The level it was logged at.
    pub level: String,
    pub loc: u64,
    /// The rules that could not be checked on it: `Title (level)`.
    pub rules: Vec<String>,
    /// What they read, to two path steps (`requestObject.spec`).
    pub needs: Vec<String>,
    /// With a policy: which of its rules chose the level.
    pub policy: Option<String>,
}

struct Gate {
    resources: Vec<String>,
    verbs: Vec<String>,
    /// None: not constrained; Some(""): must be absent.
    subresource: Option<Vec<String>>,
}

struct BodyRule {
    title: String,
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
    for (_, text) in vigil_detect::builtin::rule_files() {
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

/// The gaps among `events` (the incident's actors' Kubernetes events), in their order.
pub fn gaps(events: &[&Ev], policy: Option<&Policy>) -> Vec<Gap> {
    let rules = body_rules();
    let mut out = Vec::new();
    for e in events {
        let level = e.str("level").unwrap_or("");
        if !matches!(level, "Metadata" | "None") {
            continue;
        }
        let Some(o) = ObjectRef::of(e) else { continue };
        let verb = e.str("verb").unwrap_or("");
        let hit: Vec<&BodyRule> = rules
            .iter()
            .filter(|r| r.gates.iter().any(|g| applies(g, &o, verb)))
            .collect();
        if hit.is_empty() {
            continue;
        }
        let mut needs = BTreeSet::new();
        for r in &hit {
            for n in &r.needs {
                needs.insert(n.split('.').take(2).collect::<Vec<_>>().join("."));
            }
        }
        out.push(Gap {
            time: e.time_rfc3339(),
            what: e.what(),
            level: level.to_string(),
            loc: e.loc,
            rules: hit
                .iter()
                .map(|r| format!("{} ({})", r.title, r.level))
                .collect(),
            needs: needs.into_iter().collect(),
            policy: policy.map(|p| policy_says(p, e)),
        });
    }
    out
}

/// Which rule of `policy` decides the level of the request of `e`.
fn policy_says(p: &Policy, e: &Ev) -> String {
    let text = serde_json::to_string(&e.raw).unwrap_or_default();
    let Some(Ok(d)) = vigil_model::decode::decode_document(&text, 1)
        .into_iter()
        .next()
    else {
        return "not a decodable audit event".to_string();
    };
    let attrs = vigil_policy::Attributes::from_event(&d.event);
    let dec = p.evaluate(&attrs);
    match dec.rule {
        Some(i) => format!(
            "policy rule {} at line {} sets level {}",
            i + 1,
            p.rule_lines.get(i).copied().unwrap_or(0),
            dec.level.as_str()
        ),
        None => "no policy rule matches (level None: not logged at all)".to_string(),
    }
}
