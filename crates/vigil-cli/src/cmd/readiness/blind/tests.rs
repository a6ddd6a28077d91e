use vigil_policy::Policy;

use super::probe::gaps;
use super::*;
use crate::cmd::readiness::Sev;

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
