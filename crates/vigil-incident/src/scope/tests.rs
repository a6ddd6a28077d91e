use serde_json::json;

use super::*;
use crate::runbook::tests::{ev, incident};

#[test]
fn classifies_what_an_identity_touched() {
    let sa = "system:serviceaccount:ci:deployer";
    let k = |loc, verb: &str, obj: serde_json::Value, code: i64, user: &str, ip: &str| {
        ev(
            loc,
            json!({"user": {"name": user}, "verb": verb, "objectRef": obj,
                   "source": {"ip": ip}, "http": {"response": {"status_code": code}}}),
        )
    };
    let evs = vec![
        k(
            1,
            "list",
            json!({"resource": "secrets", "namespace": "a"}),
            200,
            sa,
            "10.0.0.5",
        ),
        k(
            2,
            "get",
            json!({"resource": "secrets", "namespace": "b", "name": "x"}),
            403,
            sa,
            "10.0.0.5",
        ),
        k(
            3,
            "create",
            json!({"resource": "pods", "namespace": "a", "name": "p",
                              "subresource": "exec"}),
            101,
            sa,
            "10.0.0.5",
        ),
        k(
            4,
            "create",
            json!({"resource": "clusterrolebindings", "name": "b"}),
            201,
            sa,
            "10.0.0.5",
        ),
        k(
            5,
            "delete",
            json!({"resource": "configmaps", "namespace": "a", "name": "c"}),
            200,
            sa,
            "10.0.0.5",
        ),
        k(
            6,
            "create",
            json!({"resource": "selfsubjectrulesreviews"}),
            201,
            sa,
            "10.0.0.5",
        ),
        k(
            7,
            "get",
            json!({"resource": "pods", "namespace": "a"}),
            200,
            "alice",
            "10.0.0.5",
        ),
        k(
            8,
            "get",
            json!({"resource": "pods", "namespace": "a"}),
            200,
            "bob",
            "10.9.9.9",
        ),
        ev(
            9,
            json!({"user": {"name": sa}, "event": {"action": "ssh_login", "outcome": "success"},
                     "host": {"name": "bastion"}, "source": {"ip": "10.0.0.5"}}),
        ),
    ];
    let inc = incident(vec![Entity {
        kind: EntityKind::ServiceAccount,
        value: sa.into(),
    }]);
    let s = &scope(&inc, &evs).entities[0];
    assert_eq!(s.events, 7);
    assert_eq!(s.denied, 1);
    assert_eq!(s.secrets_read.len(), 1);
    assert_eq!(s.secrets_read[0].target, "secrets a/*");
    assert_eq!(s.exec_sessions[0].target, "pods/exec a/p");
    assert_eq!(s.rbac_changes[0].target, "clusterrolebindings b");
    assert_eq!(s.objects_deleted[0].target, "configmaps a/c");
    assert!(s.objects_created.is_empty(), "reviews are not objects");
    assert_eq!(s.hosts_reached[0].target, "bastion (ssh)");
    assert_eq!(s.hosts_reached[0].user.as_deref(), Some(sa));
    assert_eq!(
        s.other_identities.get("10.0.0.5").map(Vec::as_slice),
        Some(&["alice".to_string()][..])
    );
    assert!(!s.other_identities.contains_key("10.9.9.9"));
}

#[test]
fn logins_to_a_host() {
    let login = |loc, user: &str, outcome: &str| {
        ev(
            loc,
            json!({"user": {"name": user}, "source": {"ip": "203.0.113.7"},
                   "event": {"action": "ssh_login", "outcome": outcome},
                   "host": {"name": "bastion"}}),
        )
    };
    let evs = vec![login(1, "root", "failure"), login(2, "ubuntu", "success")];
    let inc = incident(vec![Entity {
        kind: EntityKind::Host,
        value: "bastion".into(),
    }]);
    let s = &scope(&inc, &evs).entities[0];
    assert_eq!(s.denied, 1);
    assert_eq!(s.logins.len(), 1);
    assert_eq!(s.logins[0].target, "ubuntu from 203.0.113.7");
    let rb = crate::runbook::runbook(&inc, &scope(&inc, &evs), "d");
    assert!(
        rb.contains("ssh bastion sudo usermod --lock --expiredate 1 ubuntu"),
        "{rb}"
    );
    assert!(
        !rb.contains("--expiredate 1 root"),
        "a failed login is no account to disable"
    );
}
