//! The checks that run synthetic requests through [`Policy::evaluate`](crate::Policy::evaluate):
//! health endpoints, control-plane noise, CIS/PCI coverage, API discovery.

use std::collections::BTreeMap;

use vigil_model::Level;

use super::probe::{self, Res, Who};
use super::{codes, Cx};
use crate::Severity;

const WHY_HEALTH: &str = "Load balancers, kubelet probes and Prometheus hit these endpoints every few seconds on every API server; they are typically the largest share of non-resource audit events and carry no security signal (the answers hold health and build information, no data). Exclude them with a `level: None` rule on nonResourceURLs placed before any rule that would log them.";
const WHY_NOISY: &str = "Kubelets, kube-proxy, the scheduler and the controller-manager get, list and watch the same objects continuously, renew leases every few seconds and write events. At Request level the write bodies are stored and at RequestResponse whole list responses: this routine control-plane traffic then dominates audit volume and cost and buries the human and workload activity detections look for. Drop these system requests (level None) or keep them at Metadata, above the rules that log bodies.";
const WHY_COVERAGE: &str = "CIS Kubernetes Benchmark 3.2.2 expects the audit policy to cover key security concerns: access to Secrets, exec/attach/port-forward into pods, and proxying to pods, services and nodes (the kubelet API). PCI DSS 10.2 requires audit records of access to sensitive data (10.2.1.1), actions taken with administrative privileges (10.2.1.2), changes to credentials and privileges (10.2.1.5) and the creation and deletion of system-level objects (10.2.1.7). At level None these actions leave no record, so an incident involving them cannot be reconstructed and the control fails an audit.";
const WHY_DISCOVERY: &str = "API discovery (/api, /apis, /openapi) is what tools, and attackers holding a stolen credential, do first to learn which resources exist. It is noisy, so dropping it is a defensible trade-off, but reconnaissance is then visible only through the resource requests that follow it.";

impl Cx<'_> {
    pub(super) fn health(&mut self) {
        const PATHS: &[&str] = &[
            "/healthz",
            "/healthz/etcd",
            "/livez",
            "/livez/ping",
            "/readyz",
            "/readyz/informer-sync",
            "/metrics",
            "/version",
        ];
        let mut by_rule: BTreeMap<usize, (Level, Vec<&str>)> = BTreeMap::new();
        for path in PATHS {
            for who in [probe::ANONYMOUS, probe::PROMETHEUS] {
                let o = probe::run(self.policy, &probe::non_resource_attrs(who, "get", path));
                if let (true, Some(rule)) = (o.recorded, o.rule) {
                    let e = by_rule.entry(rule).or_insert((o.level, Vec::new()));
                    if !e.1.contains(path) {
                        e.1.push(path);
                    }
                }
            }
        }
        for (rule, (level, paths)) in by_rule {
            let severity = if paths.iter().all(|p| *p == "/version") {
                Severity::Info
            } else {
                Severity::Warning
            };
            let msg = format!(
                "{} logs {} at level {level}",
                self.name(rule),
                paths.join(", ")
            );
            self.at(
                Some(rule),
                severity,
                codes::HEALTH_ENDPOINTS_LOGGED,
                msg,
                WHY_HEALTH,
            );
        }
    }

    pub(super) fn noisy(&mut self) {
        let mut by_rule: BTreeMap<usize, (Level, Vec<String>)> = BTreeMap::new();
        for (who, verbs, res) in noisy_probes() {
            for verb in verbs {
                let o = probe::run(self.policy, &probe::resource_attrs(who, verb, &res));
                if let (true, true, Some(rule)) = (o.recorded, o.level >= Level::Request, o.rule) {
                    let e = by_rule.entry(rule).or_insert((o.level, Vec::new()));
                    let label = format!("{} {verb} {}", who.name, res.label());
                    if !e.1.contains(&label) {
                        e.1.push(label);
                    }
                }
            }
        }
        for (rule, (level, what)) in by_rule {
            let msg = format!(
                "{} logs routine control-plane traffic at level {level}: {}",
                self.name(rule),
                sample(&what, 4)
            );
            self.at(
                Some(rule),
                Severity::Warning,
                codes::NOISY_SYSTEM_TRAFFIC,
                msg,
                WHY_NOISY,
            );
        }
    }

    pub(super) fn coverage(&mut self) {
        // (requirement, target, verbs, who) -> rule that drops it
        let mut gaps: BTreeMap<(Option<usize>, usize), Gap> = BTreeMap::new();
        for (k, req) in COVERAGE.iter().enumerate() {
            for res in req.targets() {
                for verb in req.verbs {
                    for who in [
                        probe::HUMAN,
                        probe::ADMIN,
                        probe::WORKLOAD,
                        probe::ANONYMOUS,
                    ] {
                        let o = probe::run(self.policy, &probe::resource_attrs(who, verb, &res));
                        if !o.recorded {
                            let e = gaps.entry((o.rule, k)).or_default();
                            if !e.0.contains(verb) {
                                e.0.push(verb);
                            }
                            if !e.1.contains(&who.name) {
                                e.1.push(who.name);
                            }
                        }
                    }
                }
            }
        }
        for ((rule, k), (verbs, whos)) in gaps {
            let req = &COVERAGE[k];
            let by = match rule {
                None => "no rule matches it".to_string(),
                Some(i) if self.policy.rules[i].level == Level::None => {
                    format!("{} sets level None", self.name(i))
                }
                Some(i) => format!("{} omits every stage it emits", self.name(i)),
            };
            let msg = format!(
                "{} ({}) by {} is not audited: {by} [{}]",
                req.what,
                verbs.join(", "),
                whos.join(", "),
                req.requirement
            );
            self.at(
                rule,
                Severity::Warning,
                codes::COVERAGE_GAP,
                msg,
                WHY_COVERAGE,
            );
        }
    }

    pub(super) fn discovery(&mut self) {
        let mut by_rule: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
        for path in ["/api", "/apis", "/apis/apps/v1", "/openapi/v2"] {
            for who in [probe::HUMAN, probe::WORKLOAD] {
                let o = probe::run(self.policy, &probe::non_resource_attrs(who, "get", path));
                if let (false, Some(rule)) = (o.recorded, o.rule) {
                    let e = by_rule.entry(rule).or_default();
                    if !e.contains(&path) {
                        e.push(path);
                    }
                }
            }
        }
        for (rule, paths) in by_rule {
            let msg = format!(
                "{} drops API discovery by authenticated callers: {}",
                self.name(rule),
                paths.join(", ")
            );
            self.at(
                Some(rule),
                Severity::Info,
                codes::DISCOVERY_NOT_LOGGED,
                msg,
                WHY_DISCOVERY,
            );
        }
    }
}

/// The verbs and callers of one coverage gap.
type Gap = (Vec<&'static str>, Vec<&'static str>);

fn sample(items: &[String], n: usize) -> String {
    if items.len() <= n {
        items.join(", ")
    } else {
        format!("{}, and {} more", items[..n].join(", "), items.len() - n)
    }
}

fn noisy_probes() -> Vec<(Who, &'static [&'static str], Res)> {
    const READ: &[&str] = &["get", "list", "watch"];
    const RENEW: &[&str] = &["get", "update"];
    const EMIT: &[&str] = &["create", "patch"];
    let r = |group, version, resource, namespace, name| Res {
        group,
        version,
        resource,
        subresource: "",
        namespace,
        name,
    };
    let pods = r("", "v1", "pods", "default", "web-0");
    let nodes = r("", "v1", "nodes", "", "node-1");
    let services = r("", "v1", "services", "default", "web");
    let endpoints = r("", "v1", "endpoints", "default", "web");
    let slices = r(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "default",
        "web-abcde",
    );
    let events = r("", "v1", "events", "default", "web-0.17f");
    let new_events = r("events.k8s.io", "v1", "events", "default", "web-0.17f");
    let node_lease = r(
        "coordination.k8s.io",
        "v1",
        "leases",
        "kube-node-lease",
        "node-1",
    );
    let sched_lease = r(
        "coordination.k8s.io",
        "v1",
        "leases",
        "kube-system",
        "kube-scheduler",
    );
    let kcm_lease = r(
        "coordination.k8s.io",
        "v1",
        "leases",
        "kube-system",
        "kube-controller-manager",
    );
    let mut v = Vec::new();
    for res in [pods, nodes, services, endpoints, slices, events] {
        v.push((probe::NODE, READ, res));
    }
    for res in [services, endpoints, slices, nodes] {
        v.push((probe::KUBE_PROXY, READ, res));
    }
    for who in [probe::SCHEDULER, probe::CONTROLLER_MANAGER] {
        for res in [pods, nodes, services, endpoints, slices, events] {
            v.push((who, READ, res));
        }
        v.push((who, EMIT, events));
        v.push((who, EMIT, new_events));
    }
    v.push((probe::NODE, RENEW, node_lease));
    v.push((probe::NODE, EMIT, events));
    v.push((probe::SCHEDULER, RENEW, sched_lease));
    v.push((probe::CONTROLLER_MANAGER, RENEW, kcm_lease));
    v
}

/// One thing CIS 3.2.2 / PCI DSS 10.2 expect in the audit trail.
struct Requirement {
    what: &'static str,
    requirement: &'static str,
    group: &'static str,
    resources: &'static [&'static str],
    subresource: &'static str,
    namespaced: bool,
    verbs: &'static [&'static str],
}

impl Requirement {
    fn targets(&self) -> Vec<Res> {
        let namespaces: &[&str] = if self.namespaced {
            &["default", "kube-system"]
        } else {
            &[""]
        };
        let version = "v1";
        let mut out = Vec::new();
        for resource in self.resources {
            for namespace in namespaces {
                out.push(Res {
                    group: self.group,
                    version,
                    resource,
                    subresource: self.subresource,
                    namespace,
                    name: "target-1",
                });
            }
        }
        out
    }
}

const CIS: &str = "CIS Kubernetes Benchmark 3.2.2";
const PCI_PRIV: &str = "PCI DSS 10.2.1.5 (changes to privileges), 10.2.1.2";
const PCI_CRED: &str = "PCI DSS 10.2.1.5 (credential issuance)";
const PCI_DATA: &str =
    "CIS Kubernetes Benchmark 3.2.2, PCI DSS 10.2.1.1 (access to sensitive data)";
const PCI_SYS: &str = "PCI DSS 10.2.1.7 (system-level objects)";
const CHANGE: &[&str] = &["create", "update", "patch", "delete"];

const COVERAGE: &[Requirement] = &[
    Requirement {
        what: "pods/exec",
        requirement: CIS,
        group: "",
        resources: &["pods"],
        subresource: "exec",
        namespaced: true,
        verbs: &["create", "get"],
    },
    Requirement {
        what: "pods/attach",
        requirement: CIS,
        group: "",
        resources: &["pods"],
        subresource: "attach",
        namespaced: true,
        verbs: &["create", "get"],
    },
    Requirement {
        what: "pods/portforward",
        requirement: CIS,
        group: "",
        resources: &["pods"],
        subresource: "portforward",
        namespaced: true,
        verbs: &["create", "get"],
    },
    Requirement {
        what: "pods/proxy",
        requirement: CIS,
        group: "",
        resources: &["pods"],
        subresource: "proxy",
        namespaced: true,
        verbs: &["get", "create"],
    },
    Requirement {
        what: "services/proxy",
        requirement: CIS,
        group: "",
        resources: &["services"],
        subresource: "proxy",
        namespaced: true,
        verbs: &["get", "create"],
    },
    Requirement {
        what: "nodes/proxy (kubelet API)",
        requirement: CIS,
        group: "",
        resources: &["nodes"],
        subresource: "proxy",
        namespaced: false,
        verbs: &["get", "create"],
    },
    Requirement {
        what: "roles and rolebindings changes",
        requirement: PCI_PRIV,
        group: "rbac.authorization.k8s.io",
        resources: &["roles", "rolebindings"],
        subresource: "",
        namespaced: true,
        verbs: CHANGE,
    },
    Requirement {
        what: "clusterroles and clusterrolebindings changes",
        requirement: PCI_PRIV,
        group: "rbac.authorization.k8s.io",
        resources: &["clusterroles", "clusterrolebindings"],
        subresource: "",
        namespaced: false,
        verbs: CHANGE,
    },
    Requirement {
        what: "serviceaccounts/token (token issuance)",
        requirement: PCI_CRED,
        group: "",
        resources: &["serviceaccounts"],
        subresource: "token",
        namespaced: true,
        verbs: &["create"],
    },
    Requirement {
        what: "secrets reads",
        requirement: PCI_DATA,
        group: "",
        resources: &["secrets"],
        subresource: "",
        namespaced: true,
        verbs: &["get", "list"],
    },
    Requirement {
        what: "nodes changes",
        requirement: PCI_SYS,
        group: "",
        resources: &["nodes"],
        subresource: "",
        namespaced: false,
        verbs: &["create", "update", "patch", "delete"],
    },
    Requirement {
        what: "namespaces changes",
        requirement: PCI_SYS,
        group: "",
        resources: &["namespaces"],
        subresource: "",
        namespaced: false,
        verbs: &["create", "update", "patch", "delete"],
    },
];
