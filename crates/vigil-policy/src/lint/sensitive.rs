//! `sensitive-data-logged`: rules that write Secret, ConfigMap or token payloads to the log.

use vigil_model::Level;

use super::{codes, shape, Cx};
use crate::{GroupResources, PolicyRule, Severity};

const WHY_SENSITIVE: &str = "At Request level kube-apiserver writes the request body into the audit event, and at RequestResponse the response body as well. For Secrets and ConfigMaps that body is the data itself (base64 is an encoding, not encryption); a TokenReview's request carries the bearer token being checked; a TokenRequest's (serviceaccounts/token) response is a freshly issued service-account token. Audit logs are shipped to log stores, SIEMs and vendors whose readers far outnumber those allowed to read Secrets, so this turns the audit trail into a credential leak. Log these resources at Metadata: who, what, when and the outcome are kept, the payload is not.";

impl Cx<'_> {
    pub(super) fn sensitive(&mut self) {
        let policy = self.policy;
        for (i, rule) in policy.rules.iter().enumerate() {
            if rule.level < Level::Request || shape::kind(rule) == shape::Kind::NonResource {
                continue;
            }
            let mut leaks: Vec<String> = Vec::new();
            for t in SENSITIVE {
                let leaking: &[&str] = if rule.level == Level::Request {
                    t.request_verbs
                } else {
                    t.response_verbs
                };
                let verbs: Vec<String> = leaking
                    .iter()
                    .filter(|v| rule.verbs.is_empty() || rule.verbs.iter().any(|rv| rv == *v))
                    .map(|v| v.to_string())
                    .collect();
                if verbs.is_empty() {
                    continue;
                }
                // The part of this rule that reaches the target, as a rule of its own.
                let Some(names) = reach(&rule.resources, t) else {
                    continue;
                };
                let combined = if t.subresource.is_empty() {
                    t.resource.to_string()
                } else {
                    format!("{}/{}", t.resource, t.subresource)
                };
                let part = PolicyRule {
                    users: rule.users.clone(),
                    user_groups: rule.user_groups.clone(),
                    verbs: verbs.clone(),
                    namespaces: rule.namespaces.clone(),
                    resources: vec![GroupResources {
                        group: t.group.to_string(),
                        resources: vec![combined],
                        resource_names: names,
                    }],
                    ..Default::default()
                };
                if policy.rules[..i]
                    .iter()
                    .any(|earlier| shape::subsumes(earlier, &part))
                {
                    continue;
                }
                leaks.push(format!("{} ({})", t.label, verbs.join(", ")));
            }
            if !leaks.is_empty() {
                let what = if rule.level == Level::Request {
                    "request bodies"
                } else {
                    "request and response bodies"
                };
                let msg = format!(
                    "{} logs {what} (level {}) of {}",
                    self.name(i),
                    rule.level,
                    leaks.join("; ")
                );
                self.at(
                    Some(i),
                    Severity::Error,
                    codes::SENSITIVE_DATA_LOGGED,
                    msg,
                    WHY_SENSITIVE,
                );
            }
        }
    }
}

/// A resource whose bodies hold secrets, and which verbs put them in the log at each level.
struct Sensitive {
    label: &'static str,
    group: &'static str,
    resource: &'static str,
    subresource: &'static str,
    /// Verbs whose request body holds the secret (logged at Request and above).
    request_verbs: &'static [&'static str],
    /// Verbs whose request or response body holds it (logged at RequestResponse).
    response_verbs: &'static [&'static str],
}

const DATA_WRITE: &[&str] = &["create", "update", "patch"];
const DATA_ALL: &[&str] = &[
    "get",
    "list",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

const SENSITIVE: &[Sensitive] = &[
    Sensitive {
        label: "secrets",
        group: "",
        resource: "secrets",
        subresource: "",
        request_verbs: DATA_WRITE,
        response_verbs: DATA_ALL,
    },
    Sensitive {
        label: "configmaps",
        group: "",
        resource: "configmaps",
        subresource: "",
        request_verbs: DATA_WRITE,
        response_verbs: DATA_ALL,
    },
    Sensitive {
        label: "authentication.k8s.io/tokenreviews",
        group: "authentication.k8s.io",
        resource: "tokenreviews",
        subresource: "",
        request_verbs: &["create"],
        response_verbs: &["create"],
    },
    // A TokenRequest's body holds only audiences and an expiry; the token is in the response.
    Sensitive {
        label: "serviceaccounts/token",
        group: "",
        resource: "serviceaccounts",
        subresource: "token",
        request_verbs: &[],
        response_verbs: &["create"],
    },
];

/// Whether `resources` reaches the target; `Some(names)` gives the resourceNames restriction
/// (empty: any name).
fn reach(resources: &[GroupResources], t: &Sensitive) -> Option<Vec<String>> {
    if resources.is_empty() {
        return Some(Vec::new());
    }
    let hits: Vec<&GroupResources> = resources
        .iter()
        .filter(|gr| shape::entry_reaches(gr, t.group, t.resource, t.subresource))
        .collect();
    if hits.is_empty() {
        return None;
    }
    if hits
        .iter()
        .any(|gr| gr.resources.is_empty() || gr.resource_names.is_empty())
    {
        return Some(Vec::new());
    }
    let mut names: Vec<String> = hits
        .iter()
        .flat_map(|gr| gr.resource_names.iter().cloned())
        .collect();
    names.sort();
    names.dedup();
    Some(names)
}
