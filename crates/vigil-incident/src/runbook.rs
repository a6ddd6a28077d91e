//! `vigil incident runbook ID`: the response steps for this incident's entities, in order —
//! evidence capture first, then containment, eradication and recovery checks.
//!
//! Pure: built from the incident and its [`Scope`]. Every value that comes from an event (user
//! names, object names, addresses) is shell-quoted in commands and YAML-quoted in manifests: an
//! attacker chooses some of them.

use std::collections::BTreeSet;

use crate::model::{Entity, EntityKind, Incident, Phase};
use vigil_store::query::{Query, Val};

use crate::scope::{EntityScope, ObjectRef, Scope};

mod contain;
#[cfg(test)]
pub(crate) mod tests;

use contain::{containment, sa_parts};

/// The quarantine label put on pods (its value is the incident id).
pub const QUARANTINE_LABEL: &str = "vigil.io/quarantine";

/// A value as one shell word.
pub fn sh(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@=,+%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r#"'\''"#))
    }
}

/// A value as a YAML double-quoted scalar.
pub fn yq(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

/// Kubernetes label values: at most 63 of `[A-Za-z0-9._-]`.
pub(crate) fn label_value(s: &str) -> String {
    let v: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    v.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// The deny-all NetworkPolicy isolating the quarantined pods of `namespace`.
pub fn deny_all_policy(incident: &str, namespace: &str) -> String {
    let label = label_value(incident);
    format!(
        "apiVersion: networking.k8s.io/v1\n\
         kind: NetworkPolicy\n\
         metadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    {QUARANTINE_LABEL}: {l}\n\
         spec:\n  podSelector:\n    matchLabels:\n      {QUARANTINE_LABEL}: {l}\n\
         \x20 policyTypes:\n  - Ingress\n  - Egress\n  ingress: []\n  egress: []\n",
        name = yq(&format!("vigil-quarantine-{}", label.to_ascii_lowercase())),
        ns = yq(namespace),
        l = yq(&label),
    )
}

/// `kubectl` arguments naming an object: `RESOURCE[.GROUP] NAME [-n NS]`.
pub(crate) fn kobj(o: &ObjectRef) -> String {
    let kind = if o.api_group.is_empty() {
        o.resource.clone()
    } else {
        format!("{}.{}", o.resource, o.api_group)
    };
    let mut s = format!("{} {}", sh(&kind), sh(&o.name));
    if !o.namespace.is_empty() {
        s.push_str(&format!(" -n {}", sh(&o.namespace)));
    }
    s
}

pub(crate) fn file_name(o: &ObjectRef) -> String {
    [&o.resource, &o.namespace, &o.name]
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| label_value(p))
        .collect::<Vec<_>>()
        .join("-")
}

pub(crate) struct Book {
    out: String,
    step: usize,
    /// Commands already given: an object two entities touched is handled once.
    done: BTreeSet<String>,
    /// The step count when the current section started.
    section_start: Option<usize>,
}

impl Book {
    /// Starts a section; says so when the previous one got no step.
    fn section(&mut self, title: &str) {
        if self.section_start == Some(self.step) {
            self.out
                .push_str("\nNothing recorded for this incident's entities.\n");
        }
        self.section_start = Some(self.step);
        self.out.push_str(&format!("\n## {title}\n"));
    }
    pub(crate) fn step(&mut self, text: &str, commands: &[String]) {
        let given = commands.len();
        let commands: Vec<&String> = commands
            .iter()
            .filter(|c| c.starts_with('#') || self.done.insert(c.to_string()))
            .collect();
        if given > 0 && commands.is_empty() {
            return;
        }
        self.step += 1;
        self.out.push_str(&format!("\n{}. {text}\n", self.step));
        if !commands.is_empty() {
            self.out.push_str("\n```sh\n");
            for c in commands {
                self.out.push_str(c);
                self.out.push('\n');
            }
            self.out.push_str("```\n");
        }
    }
    fn yaml(&mut self, text: &str) {
        self.out.push_str("\n```yaml\n");
        self.out.push_str(text);
        self.out.push_str("```\n");
    }
}

/// Pods the incident is about: pod entities, pods created, and pods exec'd into.
fn pods(inc: &Incident, scope: &Scope) -> Vec<(String, String)> {
    let mut out = BTreeSet::new();
    for e in &inc.entities {
        if e.kind == EntityKind::Pod {
            if let Some((ns, name)) = e.value.split_once('/') {
                out.insert((ns.to_string(), name.to_string()));
            }
        }
    }
    for s in &scope.entities {
        for t in s.objects_created.iter().chain(&s.exec_sessions) {
            if let Some(o) = t.object.as_ref().filter(|o| o.resource == "pods") {
                if !o.name.is_empty() {
                    out.insert((o.namespace.clone(), o.name.clone()));
                }
            }
        }
    }
    out.into_iter().collect()
}

/// Objects an entity created or changed (not pods, handled as pods; not RBAC, handled per
/// identity), without duplicates.
fn objects(s: &EntityScope) -> Vec<(&'static str, ObjectRef)> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (how, list) in [
        ("created", &s.objects_created),
        ("changed", &s.objects_changed),
        ("deleted", &s.objects_deleted),
    ] {
        for t in list {
            let Some(o) = &t.object else { continue };
            if o.resource == "pods" || o.name.is_empty() || !seen.insert((how, o.clone())) {
                continue;
            }
            out.push((how, o.clone()));
        }
    }
    out
}

fn is(field: &str, value: &str) -> Query {
    Query::Match {
        field: Some(field.to_string()),
        value: Val::Term(value.to_string()),
    }
}

/// The query that shows what an entity does (`vigil search` syntax): narrower than
/// `entities::query` (everything about it), so that the responders' own actions on it
/// (relabelling a pod, recreating a service account) do not show as activity.
pub fn activity_query(e: &Entity) -> String {
    let v = e.value.as_str();
    let q = match e.kind {
        EntityKind::User | EntityKind::ServiceAccount => {
            Query::Or(vec![is("user.name", v), is("user.effective.name", v)])
        }
        EntityKind::Ip => is("source.ip", v),
        EntityKind::Pod => {
            let (ns, name) = v.split_once('/').unwrap_or(("", v));
            Query::And(vec![
                is("objectRef.resource", "pods"),
                is("objectRef.namespace", ns),
                is("objectRef.name", name),
                Query::Or(
                    ["exec", "attach", "portforward"]
                        .iter()
                        .map(|s| is("objectRef.subresource", s))
                        .collect(),
                ),
            ])
        }
        EntityKind::Node | EntityKind::Host => Query::And(vec![
            is("host.name", v),
            Query::Or(vec![
                is("event.action", "ssh_login"),
                is("event.action", "sudo"),
            ]),
        ]),
    };
    q.to_string()
}

/// The runbook (Markdown). `data_dir` is printed in the recovery checks.
pub fn runbook(inc: &Incident, scope: &Scope, data_dir: &str) -> String {
    let mut b = Book {
        out: format!("# Runbook for {}: {}\n", inc.id, inc.title),
        step: 0,
        done: BTreeSet::new(),
        section_start: None,
    };
    b.out.push_str(&format!(
        "\nEntities: {}. Run the steps in order; capture evidence before changing anything.\n",
        if inc.entities.is_empty() {
            "none".to_string()
        } else {
            inc.entities
                .iter()
                .map(|e| format!("`{e}`"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    let id = sh(&inc.id);
    let dir = format!("evidence-{}", label_value(&inc.id));
    let pods = pods(inc, scope);

    // 1. Evidence capture.
    b.section("1. Evidence capture (first)");
    b.step(
        "Export the stored evidence with its signed checkpoint (chain of custody).",
        &[
            format!("mkdir -p {dir}"),
            format!(
                "vigil incident export {id} --data-dir {} --out {dir}/{}.tar.gz",
                sh(data_dir),
                label_value(&inc.id)
            ),
        ],
    );
    for (ns, name) in &pods {
        let (n, p) = (sh(ns), sh(name));
        let f = format!("{dir}/pod-{}-{}", label_value(ns), label_value(name));
        b.step(
            &format!("Capture pod `{ns}/{name}`: manifest, logs, description, its node."),
            &[
                format!("kubectl get pod {p} -n {n} -o yaml > {f}.yaml"),
                format!("kubectl logs {p} -n {n} --all-containers --timestamps > {f}.log"),
                format!(
                    "kubectl logs {p} -n {n} --all-containers --timestamps --previous > {f}.previous.log || true"
                ),
                format!("kubectl describe pod {p} -n {n} > {f}.describe.txt"),
                format!("NODE=$(kubectl get pod {p} -n {n} -o jsonpath='{{.spec.nodeName}}')"),
                format!("kubectl get node \"$NODE\" -o yaml > {f}.node.yaml"),
                format!("kubectl describe node \"$NODE\" > {f}.node.describe.txt"),
            ],
        );
    }
    for s in &scope.entities {
        let Some(ent) = &s.entity else { continue };
        let mut cmds = Vec::new();
        for t in &s.rbac_changes {
            if let Some(o) = t.object.as_ref().filter(|o| !o.name.is_empty()) {
                cmds.push(format!(
                    "kubectl get {} -o yaml > {dir}/{}.yaml",
                    kobj(o),
                    file_name(o)
                ));
            }
        }
        for (_, o) in objects(s) {
            cmds.push(format!(
                "kubectl get {} -o yaml > {dir}/{}.yaml",
                kobj(&o),
                file_name(&o)
            ));
        }
        if let Some((ns, name)) = sa_parts(&ent.value).filter(|_| ent.kind != EntityKind::Ip) {
            cmds.push(format!(
                "kubectl get serviceaccount {} -n {} -o yaml > {dir}/serviceaccount-{}-{}.yaml",
                sh(name),
                sh(ns),
                label_value(ns),
                label_value(name)
            ));
        }
        if matches!(ent.kind, EntityKind::Node | EntityKind::Host) {
            cmds.push(format!(
                "ssh {} 'who; last -F | head -50; ps auxwwf; ss -tanp' > {dir}/host-{}.txt",
                sh(&ent.value),
                label_value(&ent.value)
            ));
        }
        if !cmds.is_empty() {
            b.step(
                &format!("Capture what `{ent}` created or changed, before removing it."),
                &cmds,
            );
        }
    }
    b.step(
        "Capture the current RBAC state (to compare after eradication).",
        &[
            format!("kubectl get clusterrolebindings -o yaml > {dir}/clusterrolebindings.yaml"),
            format!("kubectl get rolebindings -A -o yaml > {dir}/rolebindings.yaml"),
        ],
    );

    // 2. Containment.
    b.section("2. Containment");
    let label = label_value(&inc.id);
    let mut namespaces = BTreeSet::new();
    for (ns, name) in &pods {
        namespaces.insert(ns.clone());
        b.step(
            &format!("Quarantine pod `{ns}/{name}` (label) and cordon its node."),
            &[
                format!(
                    "kubectl label pod {} -n {} {QUARANTINE_LABEL}={label} --overwrite",
                    sh(name),
                    sh(ns)
                ),
                format!(
                    "kubectl cordon \"$(kubectl get pod {} -n {} -o jsonpath='{{.spec.nodeName}}')\"",
                    sh(name),
                    sh(ns)
                ),
            ],
        );
    }
    for ns in &namespaces {
        b.step(
            &format!(
                "Isolate the quarantined pods of namespace `{ns}`: a deny-all NetworkPolicy \
                 (ingress and egress). Save it as `{dir}/quarantine-{}.yaml` and apply it with \
                 `kubectl apply -f {dir}/quarantine-{}.yaml`.",
                label_value(ns),
                label_value(ns)
            ),
            &[],
        );
        b.yaml(&deny_all_policy(&inc.id, ns));
    }
    for s in &scope.entities {
        let Some(ent) = &s.entity else { continue };
        containment(&mut b, ent.kind.clone(), &ent.value, s);
    }

    // 3. Eradication.
    b.section("3. Eradication (after capture)");
    for (ns, name) in &pods {
        b.step(
            &format!("Delete pod `{ns}/{name}` (only after its capture above)."),
            &[format!("kubectl delete pod {} -n {}", sh(name), sh(ns))],
        );
    }
    for s in &scope.entities {
        let Some(ent) = &s.entity else { continue };
        let objs = objects(s);
        if objs.is_empty() {
            continue;
        }
        let mut cmds = Vec::new();
        for (how, o) in &objs {
            cmds.push(match *how {
                "created" => format!("kubectl delete {}", kobj(o)),
                "changed" => format!(
                    "kubectl apply -f <last known good {}>   # changed by the attacker; restore",
                    file_name(o)
                ),
                _ => format!(
                    "kubectl apply -f <backup of {}>   # deleted by the attacker; restore",
                    file_name(o)
                ),
            });
        }
        b.step(
            &format!(
                "Objects `{ent}` created, changed or deleted: {}.",
                objs.iter()
                    .map(|(how, o)| format!("{o} ({how})"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            &cmds,
        );
    }
    secrets_exposed(&mut b, scope);

    // 4. Recovery checks.
    b.section("4. Recovery checks (rerun until they print nothing)");
    let since = inc
        .entered(Phase::Containment)
        .map(str::to_string)
        .unwrap_or_else(|| "<containment time>".to_string());
    b.out.push_str(&format!(
        "\nEach search shows what the entity did since containment ({since}): requests by the \
         identity, connections and logins from the address, exec/attach into the pod, logins and \
         sudo on the host. An empty result means it stopped.\n"
    ));
    let mut cmds = vec![format!("CONTAINED_AT={}", sh(&since))];
    for e in &inc.entities {
        cmds.push(format!(
            "vigil search --data-dir {} --since \"$CONTAINED_AT\" {}",
            sh(data_dir),
            sh(&activity_query(e))
        ));
    }
    if inc.entities.is_empty() {
        b.out
            .push_str("\nThe incident has no entities: there is no activity to check.\n");
    } else {
        b.step("Check that the activity stopped.", &cmds);
    }
    b.out
}

/// Secrets the entities read: their values are known to the attacker, so they are rotated at
/// their source (a new credential issued, the old one revoked), not only edited.
fn secrets_exposed(b: &mut Book, scope: &Scope) {
    let mut named = BTreeSet::new();
    let mut listed = BTreeSet::new();
    for s in &scope.entities {
        for t in &s.secrets_read {
            let Some(o) = &t.object else { continue };
            if o.name.is_empty() {
                listed.insert(o.namespace.clone());
            } else {
                named.insert((o.namespace.clone(), o.name.clone()));
            }
        }
    }
    if named.is_empty() && listed.is_empty() {
        return;
    }
    let columns = "-o custom-columns=NAME:.metadata.name,TYPE:.type";
    let mut cmds = Vec::new();
    let mut what = Vec::new();
    for ns in &listed {
        if ns.is_empty() {
            what.push("all Secrets of the cluster (listed)".to_string());
            cmds.push(format!("kubectl get secrets -A {columns}"));
        } else {
            what.push(format!("all Secrets of namespace `{ns}` (listed)"));
            cmds.push(format!("kubectl get secrets -n {} {columns}", sh(ns)));
        }
    }
    for (ns, name) in &named {
        what.push(format!("`{ns}/{name}`"));
        let mut c = format!("kubectl get secret {} {columns}", sh(name));
        if !ns.is_empty() {
            c.push_str(&format!(" -n {}", sh(ns)));
        }
        cmds.push(c);
    }
    b.step(
        &format!(
            "Rotate the secrets that were read: {}. Their values are exposed: issue new \
             credentials at their source (database passwords, API keys, TLS keys, tokens), \
             revoke the old ones, then update the Secrets and restart what uses them.",
            what.join(", ")
        ),
        &cmds,
    );
}
