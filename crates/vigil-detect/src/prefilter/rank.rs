//! Selectivity ranking: a rough chance that an event contains a literal (words, keys and
//! values known to be frequent count as poor filters), used to order a condition's clauses and
//! to drop clauses found in nearly every event. Only a speed hint: never affects soundness.

use super::cnf::{Cnf, Lit};

/// Words found in most events of some dataset: poor literals to filter on. Only a speed hint.
const COMMON: &[&str] = &[
    "get", "list", "watch", "create", "update", "patch", "delete", "pods", "apps", "allow", "true",
    "false", "null", "v1", "event", "events", "user", "root", "tcp", "udp",
];

/// Fields nearly every event of some dataset has (Kubernetes audit, ECS documents), lowercase:
/// their keys say little. Only a speed hint.
pub(super) const COMMON_PATHS: &[&str] = &[
    "kind",
    "apiversion",
    "level",
    "auditid",
    "stage",
    "requesturi",
    "verb",
    "user.username",
    "user.uid",
    "user.groups",
    "sourceips",
    "useragent",
    "objectref.resource",
    "objectref.namespace",
    "objectref.name",
    "objectref.apigroup",
    "objectref.apiversion",
    "responsestatus.code",
    "responsestatus.metadata",
    "requestreceivedtimestamp",
    "stagetimestamp",
    "annotations.authorization.k8s.io/decision",
    "annotations.authorization.k8s.io/reason",
    "@timestamp",
    "message",
    "event.kind",
    "event.category",
    "event.type",
    "event.action",
    "event.outcome",
    "event.dataset",
    "event.module",
    "host.name",
    "host.hostname",
    "source.ip",
    "source.port",
    "destination.ip",
    "destination.port",
    "user.name",
    "process.name",
    "process.pid",
];

/// Keys found in most events of some dataset (Kubernetes audit, ECS documents): their key
/// literals say little. Only a speed hint.
const COMMON_KEYS: &[&str] = &[
    "kind",
    "apiversion",
    "level",
    "auditid",
    "stage",
    "requesturi",
    "verb",
    "user",
    "username",
    "uid",
    "groups",
    "sourceips",
    "useragent",
    "objectref",
    "resource",
    "namespace",
    "name",
    "apigroup",
    "responsestatus",
    "code",
    "metadata",
    "requestreceivedtimestamp",
    "stagetimestamp",
    "annotations",
    "authorization.k8s.io/decision",
    "decision",
    "authorization.k8s.io/reason",
    "reason",
    "@timestamp",
    "message",
    "host",
    "hostname",
    "event",
    "dataset",
    "action",
    "outcome",
    "source",
    "ip",
    "type",
    "spec",
    "status",
];

/// Values found in many Kubernetes audit events (control-plane namespaces, node and lease
/// traffic). Only a speed hint.
const FREQUENT_VALUES: &[&str] = &[
    "kube-system",
    "kube-node-lease",
    "default",
    "nodes",
    "leases",
];

/// Keys of request and response bodies: found in many events.
const FREQUENT_KEYS: &[&str] = &[
    "subresource",
    "requestobject",
    "responseobject",
    "containers",
    "securitycontext",
    "image",
    "template",
    "labels",
    "volumes",
    "data",
    "rules",
    "subjects",
    "value",
    "path",
    "op",
];

/// A rough chance that an event contains the literal (lower is more selective).
pub(super) fn weight(l: &Lit) -> f64 {
    if l.common {
        return 1.0;
    }
    let t = l.text.trim_matches('"');
    let quoted = t.len() != l.text.len();
    if COMMON_KEYS.contains(&t) {
        return 1.0;
    }
    if COMMON.contains(&t) {
        return if quoted { 0.3 } else { 1.0 };
    }
    if FREQUENT_KEYS.contains(&t) || FREQUENT_VALUES.contains(&t) {
        return 0.3;
    }
    if l.digits {
        return if l.text.len() >= 3 { 0.1 } else { 1.0 };
    }
    match l.text.len() {
        0..=2 => 1.0,
        3 => 0.5,
        4 => 0.25,
        5 => 0.12,
        6 | 7 => 0.06,
        _ => 0.03,
    }
}

/// A clause's rough chance of holding: the sum over its literals.
fn clause_weight(c: &[Lit]) -> f64 {
    c.iter().map(weight).sum::<f64>().min(1.0)
}

/// Clauses with a literal found in (nearly) every event are dropped: harmless, and cheaper to
/// search without.
fn useful(c: &[Lit]) -> bool {
    !c.is_empty() && c.iter().all(|l| weight(l) < 1.0)
}

pub(super) fn sort_clauses(cnf: &mut Cnf) {
    cnf.retain(|c| useful(c));
    // Each clause weighed once, not at every comparison (the same stable order).
    let mut keyed: Vec<(f64, Vec<Lit>)> = std::mem::take(cnf)
        .into_iter()
        .map(|c| (clause_weight(&c), c))
        .collect();
    keyed.sort_by(|(wa, a), (wb, b)| wa.total_cmp(wb).then(a.len().cmp(&b.len())));
    cnf.extend(keyed.into_iter().map(|(_, c)| c));
}
