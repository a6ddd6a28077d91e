//! Containment steps per entity: RBAC the identity created or changed, token rotation,
//! credentials that cannot be revoked, host sessions and accounts, addresses to block.

use std::collections::BTreeSet;

use super::{file_name, kobj, sh, Book};
use crate::model::EntityKind;
use crate::scope::EntityScope;

/// `system:serviceaccount:NS:NAME` → (NS, NAME).
pub(super) fn sa_parts(v: &str) -> Option<(&str, &str)> {
    v.strip_prefix("system:serviceaccount:")?.split_once(':')
}

pub(super) fn containment(b: &mut Book, kind: EntityKind, value: &str, s: &EntityScope) {
    let ent = format!("{} {value}", kind.as_str());
    // RBAC the identity created or changed.
    let mut rbac = Vec::new();
    let mut seen = BTreeSet::new();
    for t in &s.rbac_changes {
        let Some(o) = t.object.as_ref().filter(|o| !o.name.is_empty()) else {
            continue;
        };
        if !seen.insert(o.clone()) {
            continue;
        }
        rbac.push(match t.verb.as_str() {
            "create" => format!("kubectl delete {}", kobj(o)),
            "delete" | "deletecollection" => format!(
                "# {} was deleted at {}: recreate it from your source of truth",
                o, t.time
            ),
            _ => format!(
                "kubectl apply -f <last known good {}>   # changed at {}; restore",
                file_name(o),
                t.time
            ),
        });
    }
    if !rbac.is_empty() {
        b.step(
            &format!("Remove the RBAC objects `{ent}` created or changed (from the audit log)."),
            &rbac,
        );
    }
    match kind {
        EntityKind::ServiceAccount => {
            let Some((ns, name)) = sa_parts(value) else {
                return;
            };
            let (n, a) = (sh(ns), sh(name));
            b.step(
                &format!(
                    "Rotate the tokens of service account `{ns}/{name}`: delete its legacy token \
                     Secrets and recreate the account (bound tokens name the account's UID, so \
                     a new UID invalidates every token issued before), then restart its workloads."
                ),
                &[
                    format!(
                        "kubectl get secrets -n {n} --field-selector type=kubernetes.io/service-account-token -o name"
                    ),
                    format!(
                        "kubectl get secrets -n {n} --field-selector type=kubernetes.io/service-account-token -o json | jq -r --arg sa {a} '.items[] | select(.metadata.annotations[\"kubernetes.io/service-account.name\"] == $sa) | .metadata.name' | xargs -r kubectl delete secret -n {n}"
                    ),
                    format!("kubectl get serviceaccount {a} -n {n} -o yaml > sa.yaml"),
                    format!("kubectl delete serviceaccount {a} -n {n} && kubectl create serviceaccount {a} -n {n}"),
                    format!("kubectl auth can-i --list --as {}", sh(value)),
                ],
            );
        }
        EntityKind::User => {
            b.step(
                &format!(
                    "Credentials of `{value}`: Kubernetes cannot revoke a client certificate. \
                     Remove every RoleBinding and ClusterRoleBinding naming the user or its \
                     groups (check with `can-i`), disable it at the identity provider (OIDC) \
                     or on the hosts, and if a certificate signed by the cluster CA was \
                     issued, plan a CA rotation: it stays valid until it expires."
                ),
                &[
                    format!("kubectl auth can-i --list --as {}", sh(value)),
                    format!(
                        "kubectl get clusterrolebindings,rolebindings -A -o json | jq -r --arg u {} '.items[] | select(any(.subjects[]?; .name == $u)) | \"\\(.kind) \\(.metadata.namespace // \"-\") \\(.metadata.name)\"'",
                        sh(value)
                    ),
                    format!("kubectl get csr -o wide | grep -F -- {}", sh(value)),
                ],
            );
            host_sessions(b, s);
            block_addresses(b, &ent, &s.addresses);
        }
        EntityKind::Ip => {
            host_sessions(b, s);
            block_addresses(b, &ent, &[value.to_string()]);
        }
        EntityKind::Node => b.step(
            &format!("Cordon node `{value}` (no new pods) until it is rebuilt."),
            &[format!("kubectl cordon {}", sh(value))],
        ),
        EntityKind::Host => {
            b.step(
                &format!("On host `{value}`: list the sessions and kill the attacker's."),
                &[
                    format!("ssh {} 'who; loginctl list-sessions'", sh(value)),
                    format!(
                        "ssh {} sudo loginctl terminate-session <SESSION>",
                        sh(value)
                    ),
                ],
            );
            let mut seen = BTreeSet::new();
            for t in &s.logins {
                let Some(user) = t.user.as_deref() else {
                    continue;
                };
                if !seen.insert(user) {
                    continue;
                }
                let (h, u) = (sh(value), sh(user));
                b.step(
                    &format!(
                        "On host `{value}`: `{}` logged in at {}. If that was not its owner, \
                         kill its sessions and disable the account.",
                        t.target, t.time
                    ),
                    &[
                        format!("ssh {h} sudo loginctl terminate-user {u}"),
                        format!("ssh {h} sudo usermod --lock --expiredate 1 {u}"),
                    ],
                );
            }
        }
        EntityKind::Pod => {}
    }
}

/// The accounts that logged in to hosts (from the scope's SSH logins): kill their sessions and
/// disable them.
fn host_sessions(b: &mut Book, s: &EntityScope) {
    let mut seen = BTreeSet::new();
    for t in &s.hosts_reached {
        let (Some(host), Some(user)) = (t.target.strip_suffix(" (ssh)"), t.user.as_deref()) else {
            continue;
        };
        if !seen.insert((host, user)) {
            continue;
        }
        let (h, u) = (sh(host), sh(user));
        b.step(
            &format!(
                "On host `{host}`: kill the sessions of `{user}` (logged in at {}) and disable \
                 the account (locked password and expired, which also stops key logins).",
                t.time
            ),
            &[
                format!("ssh {h} sudo loginctl terminate-user {u}"),
                format!("ssh {h} sudo pkill -KILL -u {u}"),
                format!("ssh {h} sudo usermod --lock --expiredate 1 {u}"),
                format!("ssh {h} sudo last -F -w {u}"),
            ],
        );
    }
}

fn block_addresses(b: &mut Book, ent: &str, addrs: &[String]) {
    let addrs: Vec<&String> = addrs
        .iter()
        .filter(|a| a.parse::<std::net::IpAddr>().is_ok())
        .collect();
    if addrs.is_empty() {
        return;
    }
    let mut cmds = Vec::new();
    for a in &addrs {
        let ipt = if a.contains(':') {
            "ip6tables"
        } else {
            "iptables"
        };
        cmds.push(format!("sudo {ipt} -I INPUT -s {a} -j DROP"));
        cmds.push(format!("sudo {ipt} -I FORWARD -s {a} -j DROP"));
    }
    let internal = addrs.iter().any(|a| match a.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v)) => v.is_private() || v.is_loopback(),
        Ok(std::net::IpAddr::V6(v)) => v.is_loopback() || (v.segments()[0] & 0xfe00) == 0xfc00,
        Err(_) => false,
    });
    b.step(
        &format!(
            "Block the addresses `{ent}` came from (on the hosts and at the perimeter; remove \
             the rule when the address is no longer attacker-controlled).{}",
            if internal {
                " An internal address is a compromised host of yours: isolate that host too \
                 and handle it as an entity of the incident."
            } else {
                ""
            }
        ),
        &cmds,
    );
}
