//! The entities an event or alert is about, and the store query for "everything about this
//! entity" (`vigil timeline`, incident timelines, scoping).
//!
//! Values are canonical (see `model::EntityKind`) so that the same principal seen by the
//! apiserver, sshd and Zeek is one entity:
//!
//! - users: `user.name`, `user.username`, `user.effective.name` (impersonated),
//!   `user.target.name`, `impersonatedUser.username`, `related.user`. A name of the form
//!   `system:serviceaccount:NS:NAME` is a `ServiceAccount` (kept whole, as the apiserver names
//!   it); `system:node:X` is the `Node` X (the kubelet's identity).
//! - addresses: `source.ip`, `destination.ip`, `related.ip`, `sourceIPs`, printed as
//!   `std::net::IpAddr` prints them (so `::ffff:0:1` and friends compare equal).
//! - pods: `objectRef` with resource `pods` (any subresource: exec, attach, log, ...), the ECS
//!   `orchestrator.resource.*` fields, and `kubernetes.pod.name` + `kubernetes.namespace`; as
//!   `NS/NAME`.
//! - nodes: `objectRef` with resource `nodes`, and `system:node:X` users.
//! - service accounts also from `objectRef` with resource `serviceaccounts` (a token request,
//!   a change to the account).
//! - hosts: `host.name`. A host named by its address (syslog from a host without a resolvable
//!   name) is also that `Ip`, so its network connections join its logs.
//!
//! Noise that is never an entity, because it would pull a whole cluster into every incident:
//! empty values and `-`; loopback and unspecified addresses (`127.0.0.1`, `::1`, `0.0.0.0`);
//! `system:anonymous` and `system:unsecured` (not an identity: every unauthenticated client
//! shares it; `vigil report anonymous` is the tool for those) and the `system:apiserver`
//! loopback client; the host accounts `root` and `nobody`, which exist on every host (following
//! them would join unrelated machines; the host entity already covers that host's root).

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::Value;
use vigil_store::query::{lookup, Query, Val};

pub use crate::model::{Entity, EntityKind};

/// Users that are not a principal worth following.
const NOISE_USERS: &[&str] = &[
    "system:anonymous",
    "system:unsecured",
    "system:apiserver",
    "root",
    "nobody",
];

const USER_FIELDS: &[&str] = &[
    "user.name",
    "user.username",
    "user.effective.name",
    "user.target.name",
    "impersonatedUser.username",
    "related.user",
];

const IP_FIELDS: &[&str] = &["source.ip", "destination.ip", "related.ip", "sourceIPs"];

fn strings<'a>(doc: &'a Value, path: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    lookup(doc, path, &mut out);
    out.into_iter()
        .filter_map(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "-")
        .collect()
}

fn first<'a>(doc: &'a Value, path: &str) -> Option<&'a str> {
    strings(doc, path).into_iter().next()
}

/// A user name as an entity: service account, node, user, or nothing (noise).
pub fn user_entity(name: &str) -> Option<Entity> {
    let name = name.trim();
    if name.is_empty() || name == "-" || NOISE_USERS.contains(&name) {
        return None;
    }
    if let Some(rest) = name.strip_prefix("system:serviceaccount:") {
        // A malformed one (no namespace) is still a user name, kept as given.
        let kind = match rest.split_once(':') {
            Some((ns, sa)) if !ns.is_empty() && !sa.is_empty() => EntityKind::ServiceAccount,
            _ => EntityKind::User,
        };
        return Some(Entity {
            kind,
            value: name.to_string(),
        });
    }
    if let Some(node) = name.strip_prefix("system:node:") {
        if !node.is_empty() {
            return Some(Entity {
                kind: EntityKind::Node,
                value: node.to_string(),
            });
        }
    }
    Some(Entity {
        kind: EntityKind::User,
        value: name.to_string(),
    })
}

/// An address as an entity: canonical text, or nothing for loopback, unspecified and
/// anything that is not an address.
pub fn ip_entity(text: &str) -> Option<Entity> {
    let ip: IpAddr = text.trim().parse().ok()?;
    // An IPv4-mapped IPv6 address is the IPv4 peer.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if ip.is_loopback() || ip.is_unspecified() {
        return None;
    }
    Some(Entity {
        kind: EntityKind::Ip,
        value: ip.to_string(),
    })
}

fn push_host(out: &mut BTreeSet<Entity>, name: &str) {
    let name = name.trim();
    if name.is_empty() || name == "-" || name == "localhost" {
        return;
    }
    if let Some(ip) = ip_entity(name) {
        out.insert(ip);
    } else if name.parse::<IpAddr>().is_ok() {
        // A loopback "host" is no host of interest.
        return;
    }
    out.insert(Entity {
        kind: EntityKind::Host,
        value: name.to_string(),
    });
}

/// `NS/NAME` of a pod when `resource` names pods.
fn pod(resource: Option<&str>, ns: Option<&str>, name: Option<&str>) -> Option<Entity> {
    let resource = resource?;
    let base = resource.split('/').next().unwrap_or(resource);
    if base != "pods" && base != "pod" {
        return None;
    }
    Some(Entity {
        kind: EntityKind::Pod,
        value: format!("{}/{}", ns?, name?),
    })
}

/// Every entity of a normalized event or alert document, sorted and without duplicates.
pub fn entities_of(doc: &Value) -> Vec<Entity> {
    let mut out = BTreeSet::new();
    for f in USER_FIELDS {
        for u in strings(doc, f) {
            out.extend(user_entity(u));
        }
    }
    for f in IP_FIELDS {
        for a in strings(doc, f) {
            out.extend(ip_entity(a));
        }
    }
    for h in strings(doc, "host.name") {
        push_host(&mut out, h);
    }
    let pods = [
        pod(
            first(doc, "objectRef.resource"),
            first(doc, "objectRef.namespace"),
            first(doc, "objectRef.name"),
        ),
        pod(
            first(doc, "orchestrator.resource.type"),
            first(doc, "orchestrator.namespace"),
            first(doc, "orchestrator.resource.name"),
        ),
        pod(
            first(doc, "kubernetes.pod.name").map(|_| "pods"),
            first(doc, "kubernetes.namespace"),
            first(doc, "kubernetes.pod.name"),
        ),
    ];
    out.extend(pods.into_iter().flatten());
    let (resource, ns, name) = (
        first(doc, "objectRef.resource"),
        first(doc, "objectRef.namespace"),
        first(doc, "objectRef.name"),
    );
    match (resource, ns, name) {
        (Some("nodes"), _, Some(n)) => {
            out.insert(Entity {
                kind: EntityKind::Node,
                value: n.to_string(),
            });
        }
        // A token minted for (or a change to) a service account is about that account.
        (Some("serviceaccounts"), Some(ns), Some(n)) => {
            out.insert(Entity {
                kind: EntityKind::ServiceAccount,
                value: format!("system:serviceaccount:{ns}:{n}"),
            });
        }
        _ => {}
    }
    out.into_iter().collect()
}

/// The entities named by a correlation alert's `group` (the group-by fields and their values,
/// e.g. `{"source.ip": "203.0.113.77"}`, `{"host": "10.0.0.5"}`). A correlation alert has no
/// triggering event, so this is all that names what it is about. Values that are addresses are
/// addresses (and hosts when the field says host); otherwise the field name decides.
pub fn entities_of_group(group: &serde_json::Map<String, Value>) -> Vec<Entity> {
    let mut out = BTreeSet::new();
    for (k, v) in group {
        let Some(v) = v.as_str() else { continue };
        let key = k.to_ascii_lowercase();
        let hosty = key.contains("host") || key.contains("hostname");
        if hosty {
            push_host(&mut out, v);
        } else if let Some(ip) = ip_entity(v) {
            out.insert(ip);
        } else if key.contains("user") || key.contains("account") {
            out.extend(user_entity(v));
        } else if key.contains("node") && !v.is_empty() {
            out.insert(Entity {
                kind: EntityKind::Node,
                value: v.to_string(),
            });
        }
    }
    out.into_iter().collect()
}

/// The entities of a stored alert: its document's (the fields copied from the triggering
/// event) and its correlation group's (`raw` is the alert JSON as stored).
pub fn entities_of_alert(doc: &Value, raw: &Value) -> Vec<Entity> {
    let mut out: BTreeSet<Entity> = entities_of(doc).into_iter().collect();
    if let Some(g) = raw.get("group").and_then(Value::as_object) {
        out.extend(entities_of_group(g));
    }
    out.into_iter().collect()
}

fn is(field: &str, value: &str) -> Query {
    Query::Match {
        field: Some(field.to_string()),
        value: Val::Term(value.to_string()),
    }
}

/// The query for "everything about this entity", across sources, events and alerts alike.
/// An `Ip` value may also be a CIDR block (as `vigil timeline --ip` takes); a pod value
/// without `/` matches the pod name in any namespace.
pub fn query(e: &Entity) -> Query {
    let v = e.value.as_str();
    match e.kind {
        EntityKind::User => Query::Or(vec![
            is("user.name", v),
            is("user.effective.name", v),
            is("related.user", v),
        ]),
        // A user name to the apiserver, and the object its tokens are minted from.
        EntityKind::ServiceAccount => {
            let mut any = vec![
                is("user.name", v),
                is("user.effective.name", v),
                is("related.user", v),
            ];
            let parts = v
                .strip_prefix("system:serviceaccount:")
                .and_then(|r| r.split_once(':'));
            if let Some((ns, name)) = parts {
                any.push(Query::And(vec![
                    is("objectRef.resource", "serviceaccounts"),
                    is("objectRef.namespace", ns),
                    is("objectRef.name", name),
                ]));
            }
            Query::Or(any)
        }
        EntityKind::Ip => Query::Or(vec![
            is("related.ip", v),
            is("source.ip", v),
            is("destination.ip", v),
        ]),
        EntityKind::Pod => {
            let mut parts = vec![is("objectRef.resource", "pods")];
            match v.split_once('/') {
                Some((ns, name)) => {
                    parts.push(is("objectRef.namespace", ns));
                    parts.push(is("objectRef.name", name));
                }
                None => parts.push(is("objectRef.name", v)),
            }
            Query::And(parts)
        }
        EntityKind::Node => Query::Or(vec![
            Query::And(vec![
                is("objectRef.resource", "nodes"),
                is("objectRef.name", v),
            ]),
            is("user.name", &format!("system:node:{v}")),
            is("host.name", v),
            is("related.hosts", v),
        ]),
        EntityKind::Host => Query::Or(vec![
            is("host.name", v),
            is("related.hosts", v),
            Query::And(vec![
                is("objectRef.resource", "nodes"),
                is("objectRef.name", v),
            ]),
        ]),
    }
}

/// One query for everything about any of `entities` (`None` when there are none: an empty OR
/// would be a query for nothing, which the query language cannot say).
pub fn query_any(entities: &[Entity]) -> Option<Query> {
    match entities {
        [] => None,
        [one] => Some(query(one)),
        many => Some(Query::Or(many.iter().map(query).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ent(kind: EntityKind, value: &str) -> Entity {
        Entity {
            kind,
            value: value.into(),
        }
    }

    #[test]
    fn kubernetes_event() {
        let doc = json!({
            "user": {"username": "system:serviceaccount:ci:deployer",
                     "name": "system:serviceaccount:ci:deployer"},
            "impersonatedUser": {"username": "alice@example.com"},
            "user.effective": {"name": "alice@example.com"},
            "sourceIPs": ["10.0.0.5", "127.0.0.1"],
            "source": {"ip": "10.0.0.5"},
            "objectRef": {"resource": "pods", "subresource": "exec",
                          "namespace": "shop", "name": "web-1"},
            "orchestrator": {"resource": {"type": "pods/exec", "name": "web-1"},
                             "namespace": "shop"},
        });
        assert_eq!(
            entities_of(&doc),
            [
                ent(EntityKind::User, "alice@example.com"),
                ent(
                    EntityKind::ServiceAccount,
                    "system:serviceaccount:ci:deployer"
                ),
                ent(EntityKind::Ip, "10.0.0.5"),
                ent(EntityKind::Pod, "shop/web-1"),
            ]
        );
    }

    #[test]
    fn nodes_and_noise() {
        let doc = json!({
            "user": {"name": "system:node:node-1"},
            "objectRef": {"resource": "nodes", "name": "node-2"},
            "source": {"ip": "::1"},
            "related": {"ip": ["0.0.0.0", "::ffff:192.0.2.7"],
                        "user": ["system:anonymous", "", "root"]},
        });
        assert_eq!(
            entities_of(&doc),
            [
                ent(EntityKind::Ip, "192.0.2.7"),
                ent(EntityKind::Node, "node-1"),
                ent(EntityKind::Node, "node-2"),
            ]
        );
    }

    #[test]
    fn a_token_request_is_about_the_service_account() {
        let doc = json!({
            "user": {"name": "alice@example.com"},
            "objectRef": {"resource": "serviceaccounts", "subresource": "token",
                          "namespace": "kube-system", "name": "admin"},
        });
        assert_eq!(
            entities_of(&doc),
            [
                ent(EntityKind::User, "alice@example.com"),
                ent(
                    EntityKind::ServiceAccount,
                    "system:serviceaccount:kube-system:admin"
                ),
            ]
        );
    }

    #[test]
    fn host_logs_and_hosts_named_by_address() {
        let doc = json!({"host": {"name": "10.0.0.5"}, "user": {"name": "alice"},
                         "source": {"ip": "198.51.100.10"}});
        assert_eq!(
            entities_of(&doc),
            [
                ent(EntityKind::User, "alice"),
                ent(EntityKind::Ip, "10.0.0.5"),
                ent(EntityKind::Ip, "198.51.100.10"),
                ent(EntityKind::Host, "10.0.0.5"),
            ]
        );
        let named = json!({"host": {"name": "bastion-1"}});
        assert_eq!(entities_of(&named), [ent(EntityKind::Host, "bastion-1")]);
    }

    #[test]
    fn correlation_groups() {
        let raw = json!({"group": {"user.username": "system:serviceaccount:ci:deployer",
                                   "SourceIp": "10.0.0.5", "host": "bastion-1",
                                   "objectRef.namespace": "ci"}});
        assert_eq!(
            entities_of_alert(&json!({}), &raw),
            [
                ent(
                    EntityKind::ServiceAccount,
                    "system:serviceaccount:ci:deployer"
                ),
                ent(EntityKind::Ip, "10.0.0.5"),
                ent(EntityKind::Host, "bastion-1"),
            ]
        );
    }

    #[test]
    fn queries_find_what_extraction_found() {
        let docs = [
            json!({"user": {"name": "system:serviceaccount:ci:deployer"}, "related": {"ip": ["10.0.0.5"]}}),
            json!({"objectRef": {"resource": "pods", "namespace": "shop", "name": "web-1"}}),
            json!({"user": {"name": "system:node:node-1"}}),
            json!({"host": {"name": "bastion-1"}, "related": {"hosts": ["bastion-1"]}}),
            json!({"objectRef": {"resource": "serviceaccounts", "namespace": "ci", "name": "x"}}),
        ];
        for doc in &docs {
            for e in entities_of(doc) {
                assert!(vigil_store::query::matches(&query(&e), doc), "{e} in {doc}");
            }
        }
        let other = json!({"user": {"name": "bob"}});
        let q = query_any(&entities_of(&docs[0])).unwrap();
        assert!(!vigil_store::query::matches(&q, &other));
        assert!(query_any(&[]).is_none());
    }
}
