//! Synthetic requests, evaluated through [`Policy::evaluate`], for the checks that are about what
//! a policy *does* to a kind of request rather than about a rule's shape.

use vigil_model::{Level, Stage};

use crate::{Attributes, Policy, User};

/// A caller to impersonate in a probe.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Who {
    pub name: &'static str,
    pub groups: &'static [&'static str],
}

pub(crate) const HUMAN: Who = Who {
    name: "jane@example.com",
    groups: &["developers", "system:authenticated"],
};
pub(crate) const ADMIN: Who = Who {
    name: "kubernetes-admin",
    groups: &["system:masters", "system:authenticated"],
};
pub(crate) const WORKLOAD: Who = Who {
    name: "system:serviceaccount:default:app",
    groups: &[
        "system:serviceaccounts",
        "system:serviceaccounts:default",
        "system:authenticated",
    ],
};
pub(crate) const ANONYMOUS: Who = Who {
    name: "system:anonymous",
    groups: &["system:unauthenticated"],
};
pub(crate) const PROMETHEUS: Who = Who {
    name: "system:serviceaccount:monitoring:prometheus",
    groups: &[
        "system:serviceaccounts",
        "system:serviceaccounts:monitoring",
        "system:authenticated",
    ],
};
pub(crate) const NODE: Who = Who {
    name: "system:node:node-1",
    groups: &["system:nodes", "system:authenticated"],
};
pub(crate) const KUBE_PROXY: Who = Who {
    name: "system:kube-proxy",
    groups: &["system:authenticated"],
};
pub(crate) const SCHEDULER: Who = Who {
    name: "system:kube-scheduler",
    groups: &["system:authenticated"],
};
pub(crate) const CONTROLLER_MANAGER: Who = Who {
    name: "system:kube-controller-manager",
    groups: &["system:authenticated"],
};

/// A resource request to probe with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Res {
    pub group: &'static str,
    pub version: &'static str,
    pub resource: &'static str,
    pub subresource: &'static str,
    /// `""` for cluster-scoped resources.
    pub namespace: &'static str,
    /// Object name for verbs that address one object.
    pub name: &'static str,
}

impl Res {
    pub(crate) fn label(&self) -> String {
        let mut s = String::new();
        if !self.group.is_empty() {
            s.push_str(self.group);
            s.push('/');
        }
        s.push_str(self.resource);
        if !self.subresource.is_empty() {
            s.push('/');
            s.push_str(self.subresource);
        }
        s
    }
}

/// Verbs whose request names no object in its URL: the policy sees no name.
fn unnamed(verb: &str) -> bool {
    matches!(verb, "create" | "list" | "watch" | "deletecollection")
}

pub(crate) fn resource_attrs(who: Who, verb: &str, r: &Res) -> Attributes {
    let name = if unnamed(verb) && r.subresource.is_empty() {
        ""
    } else {
        r.name
    };
    // A Namespace object's own requests carry namespace = its name.
    let namespace = if r.group.is_empty() && r.resource == "namespaces" {
        name
    } else {
        r.namespace
    };
    let prefix = if r.group.is_empty() {
        "/api".to_string()
    } else {
        format!("/apis/{}", r.group)
    };
    let mut path = format!("{prefix}/{}", r.version);
    if !namespace.is_empty() && r.resource != "namespaces" {
        path.push_str(&format!("/namespaces/{namespace}"));
    }
    path.push('/');
    path.push_str(r.resource);
    if !name.is_empty() {
        path.push('/');
        path.push_str(name);
    }
    if !r.subresource.is_empty() {
        path.push('/');
        path.push_str(r.subresource);
    }
    Attributes {
        user: Some(user(who)),
        verb: verb.to_string(),
        namespace: namespace.to_string(),
        api_group: r.group.to_string(),
        api_version: r.version.to_string(),
        resource: r.resource.to_string(),
        subresource: r.subresource.to_string(),
        name: name.to_string(),
        resource_request: true,
        path,
    }
}

pub(crate) fn non_resource_attrs(who: Who, verb: &str, path: &str) -> Attributes {
    Attributes {
        user: Some(user(who)),
        verb: verb.to_string(),
        namespace: String::new(),
        api_group: String::new(),
        api_version: String::new(),
        resource: String::new(),
        subresource: String::new(),
        name: String::new(),
        resource_request: false,
        path: path.to_string(),
    }
}

fn user(who: Who) -> User {
    User {
        name: who.name.to_string(),
        groups: who.groups.iter().map(|g| g.to_string()).collect(),
    }
}

/// kube-apiserver's long-running requests: they also emit ResponseStarted.
fn long_running(a: &Attributes) -> bool {
    matches!(a.verb.as_str(), "watch" | "proxy")
        || matches!(
            a.subresource.as_str(),
            "attach" | "exec" | "proxy" | "log" | "portforward"
        )
}

/// The outcome of one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub level: Level,
    pub rule: Option<usize>,
    /// Some event for this request is actually written: level above None, and not every stage
    /// it emits is omitted.
    pub recorded: bool,
}

pub(crate) fn run(policy: &Policy, attrs: &Attributes) -> Outcome {
    let d = policy.evaluate(attrs);
    let omitted = |s: Stage| d.omit_stages.contains(&s);
    let all_stages_omitted = omitted(Stage::RequestReceived)
        && omitted(Stage::ResponseComplete)
        && (!long_running(attrs) || omitted(Stage::ResponseStarted));
    Outcome {
        level: d.level,
        rule: d.rule,
        recorded: d.level != Level::None && !all_stages_omitted,
    }
}
