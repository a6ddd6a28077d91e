//! Deterministic generators for the differential test: policies (valid ones for evaluation,
//! mutated ones for loading), requests, and request lines. Everything is drawn from a small
//! vocabulary so that rules and requests actually meet.

mod load;

pub use load::load_case;

use vigil_policy::{Attributes, User};

/// xorshift64*: small, fast, and the same sequence everywhere.
pub struct Rng {
    state: u64,
    /// Whether generated YAML may use plain (unquoted) scalars; JSON renderings may not.
    pub plain: bool,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng {
            state: seed.max(1),
            plain: true,
        }
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    pub fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len())]
    }
    /// 1..=max distinct-ish items.
    pub fn some<'a>(&mut self, items: &[&'a str], max: usize) -> Vec<&'a str> {
        let n = 1 + self.below(max);
        (0..n).map(|_| self.pick(items)).collect()
    }
}

pub const USERS: &[&str] = &[
    "alice",
    "bob",
    "system:admin",
    "system:serviceaccount:kube-system:default",
];
pub const GROUPS: &[&str] = &[
    "dev",
    "ops",
    "system:authenticated",
    "system:masters",
    "system:nodes",
];
pub const VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "proxy",
    "post",
    "Get",
];
pub const NAMESPACES: &[&str] = &["", "default", "kube-system", "x"];
pub const API_GROUPS: &[&str] = &["", "*", "apps", "rbac.authorization.k8s.io"];
pub const RESOURCES: &[&str] = &[
    "pods",
    "pods/*",
    "*/log",
    "*",
    "*/*",
    "pods/log",
    "pods/status",
    "deployments",
    "deployments/scale",
    "secrets",
    "configmaps",
    "namespaces",
    "namespaces/status",
    "clusterroles",
];
pub const NAMES: &[&str] = &["a", "b", "web", ""];
pub const URLS: &[&str] = &[
    "*",
    "/healthz*",
    "/api*",
    "/healthz",
    "/version",
    "/metrics",
    "/logs/*",
    "/",
    "/apis/apps*",
];
pub const STAGES: &[&str] = &[
    "RequestReceived",
    "ResponseStarted",
    "ResponseComplete",
    "Panic",
];
pub const LEVELS: &[&str] = &["None", "Metadata", "Request", "RequestResponse"];

/// A YAML double-quoted (and JSON) string.
pub fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// A flow list of strings; plain (unquoted) items where that is unambiguous, now and then.
pub fn list(rng: &mut Rng, items: &[&str]) -> String {
    let plain_ok = |s: &str| {
        !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_alphanumeric())
            && s.len() > 1
            && !matches!(s, "no" | "on" | "off" | "yes" | "true" | "false" | "null")
    };
    let plain = rng.plain && rng.chance(30);
    let parts: Vec<String> = items
        .iter()
        .map(|s| {
            if plain && plain_ok(s) {
                s.to_string()
            } else {
                quote(s)
            }
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

/// A policy as ordered key/value pairs whose values are YAML flow text (JSON-compatible unless
/// a mutation made them otherwise), so one structure renders as block YAML or as JSON.
#[derive(Clone, Debug)]
pub struct GenPolicy {
    pub top: Vec<(String, String)>,
    pub rules: Vec<Vec<(String, String)>>,
    /// Replaces the whole `rules` value when set.
    pub rules_override: Option<String>,
}

impl GenPolicy {
    /// Renders as JSON when it was generated without plain scalars, else as block YAML.
    pub fn render(&self, json: bool) -> String {
        if json {
            self.render_json()
        } else {
            self.render_block()
        }
    }

    pub fn render_block(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.top {
            out.push_str(&format!("{k}: {v}\n"));
        }
        match &self.rules_override {
            Some(v) => out.push_str(&format!("rules: {v}\n")),
            None => {
                out.push_str("rules:\n");
                for rule in &self.rules {
                    if rule.is_empty() {
                        out.push_str("- {}\n");
                    }
                    for (i, (k, v)) in rule.iter().enumerate() {
                        let lead = if i == 0 { "- " } else { "  " };
                        out.push_str(&format!("{lead}{k}: {v}\n"));
                    }
                }
            }
        }
        out
    }

    pub fn render_json(&self) -> String {
        let pair = |(k, v): &(String, String)| format!("{}: {v}", quote(k));
        let mut items: Vec<String> = self.top.iter().map(pair).collect();
        let rules = match &self.rules_override {
            Some(v) => v.clone(),
            None => {
                let rs: Vec<String> = self
                    .rules
                    .iter()
                    .map(|r| format!("{{{}}}", r.iter().map(pair).collect::<Vec<_>>().join(", ")))
                    .collect();
                format!("[{}]", rs.join(", "))
            }
        };
        items.push(format!("\"rules\": {rules}"));
        format!("{{{}}}\n", items.join(", "))
    }
}

fn group_resources(rng: &mut Rng) -> String {
    let mut fields = Vec::new();
    if rng.chance(80) {
        fields.push(format!("\"group\": {}", quote(rng.pick(API_GROUPS))));
    }
    if rng.chance(80) {
        let res = rng.some(RESOURCES, 3);
        fields.push(format!("\"resources\": {}", list(rng, &res)));
        if rng.chance(25) {
            let names = rng.some(NAMES, 2);
            fields.push(format!("\"resourceNames\": {}", list(rng, &names)));
        }
    }
    format!("{{{}}}", fields.join(", "))
}

/// A valid rule.
pub fn rule(rng: &mut Rng) -> Vec<(String, String)> {
    let mut r = vec![("level".to_string(), quote(rng.pick(LEVELS)))];
    let mut add = |k: &str, v: String| r.push((k.to_string(), v));
    if rng.chance(25) {
        let v = rng.some(USERS, 2);
        add("users", list(rng, &v));
    }
    if rng.chance(25) {
        let v = rng.some(GROUPS, 2);
        add("userGroups", list(rng, &v));
    }
    if rng.chance(40) {
        let v = rng.some(VERBS, 3);
        add("verbs", list(rng, &v));
    }
    match rng.below(4) {
        0 | 1 => {
            if rng.chance(40) {
                let v = rng.some(NAMESPACES, 2);
                add("namespaces", list(rng, &v));
            }
            if rng.chance(80) {
                let n = 1 + rng.below(2);
                let entries: Vec<String> = (0..n).map(|_| group_resources(rng)).collect();
                add("resources", format!("[{}]", entries.join(", ")));
            }
        }
        2 => {
            let v = rng.some(URLS, 3);
            add("nonResourceURLs", list(rng, &v));
        }
        _ => {}
    }
    if rng.chance(25) {
        let v = rng.some(STAGES, 2);
        add("omitStages", list(rng, &v));
    }
    if rng.chance(30) {
        add(
            "omitManagedFields",
            rng.pick(&["true", "false"]).to_string(),
        );
    }
    r
}

/// A valid policy.
pub fn policy(rng: &mut Rng) -> GenPolicy {
    let mut top = vec![
        ("apiVersion".to_string(), quote("audit.k8s.io/v1")),
        ("kind".to_string(), quote("Policy")),
    ];
    if rng.chance(30) {
        let v = rng.some(STAGES, 2);
        top.push(("omitStages".into(), list(rng, &v)));
    }
    if rng.chance(30) {
        top.push((
            "omitManagedFields".into(),
            rng.pick(&["true", "false"]).to_string(),
        ));
    }
    let n = 1 + rng.below(5);
    let mut rules: Vec<_> = (0..n).map(|_| rule(rng)).collect();
    if rng.chance(30) {
        rules.push(vec![("level".into(), quote(rng.pick(LEVELS)))]);
    }
    GenPolicy {
        top,
        rules,
        rules_override: None,
    }
}

/// A request as the checker sees it.
pub fn request(rng: &mut Rng) -> Attributes {
    let user = rng.chance(90).then(|| User {
        name: rng
            .pick(&["alice", "bob", "system:admin", "carol", ""])
            .to_string(),
        groups: (0..rng.below(4))
            .map(|_| rng.pick(GROUPS).to_string())
            .collect(),
    });
    if rng.chance(65) {
        let api_group = rng
            .pick(&["", "apps", "rbac.authorization.k8s.io", "batch"])
            .to_string();
        let resource = rng
            .pick(&[
                "pods",
                "deployments",
                "secrets",
                "configmaps",
                "namespaces",
                "clusterroles",
                "log",
                "*",
            ])
            .to_string();
        let subresource = if rng.chance(40) {
            rng.pick(&["log", "status", "exec", "scale", "finalize", "*"])
                .to_string()
        } else {
            String::new()
        };
        let namespace = rng.pick(NAMESPACES).to_string();
        let name = if rng.chance(55) {
            rng.pick(NAMES).to_string()
        } else {
            String::new()
        };
        let path = format!("/apis/{api_group}/v1/namespaces/{namespace}/{resource}/{name}");
        Attributes {
            user,
            verb: rng.pick(VERBS).to_string(),
            namespace,
            api_group,
            api_version: rng.pick(&["v1", "v1beta1"]).to_string(),
            resource,
            subresource,
            name,
            resource_request: true,
            path,
        }
    } else {
        Attributes {
            user,
            verb: rng
                .pick(&["get", "post", "put", "delete", "head", "Get"])
                .to_string(),
            path: rng
                .pick(&[
                    "/healthz",
                    "/healthzfoo",
                    "/healthz/etcd",
                    "/api",
                    "/apis",
                    "/apis/apps/v1",
                    "/version",
                    "/version/",
                    "/metrics",
                    "/logs/x.log",
                    "/logs",
                    "/",
                    "",
                    "/openapi/v2",
                    "/api/v1",
                ])
                .to_string(),
            ..Attributes::default()
        }
    }
}

pub fn method(rng: &mut Rng) -> String {
    rng.pick(&[
        "GET", "GET", "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "DELETE", "OPTIONS", "get",
        "CONNECT",
    ])
    .to_string()
}

/// A request-target: mostly API paths, with the corners the parser has to get right.
pub fn uri(rng: &mut Rng) -> String {
    let mut segs: Vec<String> = Vec::new();
    let mut push = |s: &str| segs.push(s.to_string());
    match rng.below(10) {
        0 => push(rng.pick(&["healthz", "version", "metrics", "openapi", "apis2", "logs"])),
        1..=4 => push("api"),
        _ => {
            push("apis");
            if rng.chance(90) {
                push(rng.pick(&["apps", "batch", "rbac.authorization.k8s.io", "extensions"]));
            }
        }
    }
    if rng.chance(92) {
        push(rng.pick(&["v1", "v1beta1", "v2"]));
    }
    if rng.chance(12) {
        push(rng.pick(&["watch", "proxy"]));
    }
    if rng.chance(45) {
        push("namespaces");
        if rng.chance(85) {
            push(rng.pick(&["default", "kube-system", "x", "status"]));
        }
    }
    let n = rng.below(6);
    let vocab = [
        "pods",
        "namespaces",
        "deployments",
        "foo",
        "status",
        "finalize",
        "log",
        "exec",
        "proxy",
        "scale",
        "watch",
        "x",
        "",
        "a%2Fb",
        "b%41",
        "c+d",
    ];
    for _ in 0..n {
        push(vocab[rng.below(vocab.len())]);
    }
    let mut uri = format!("/{}", segs.join("/"));
    if rng.chance(10) {
        uri.push('/');
    }
    if rng.chance(5) {
        uri = format!("/{uri}");
    }
    if rng.chance(55) {
        let params: Vec<&str> = (0..1 + rng.below(3))
            .map(|_| {
                rng.pick(&[
                    "watch=true",
                    "watch=1",
                    "watch=0",
                    "watch=false",
                    "watch=False",
                    "watch=yes",
                    "watch=",
                    "watch",
                    "watch=FALSE",
                    "fieldSelector=metadata.name=x",
                    "fieldSelector=metadata.name%3Dy",
                    "fieldSelector=metadata.name!=x",
                    "fieldSelector=foo=bar",
                    "fieldSelector=metadata.name=a,foo",
                    "fieldSelector=metadata.name==b,x=y",
                    "fieldSelector=metadata.name=a%2Fb",
                    "fieldSelector=metadata.name=..",
                    "fieldSelector=metadata.name=a%5C,b",
                    "fieldSelector=x=1,metadata.name=z",
                    "labelSelector=a=b",
                    "labelSelector=a+in+(x,y)",
                    "labelSelector=bad=(",
                    "labelSelector=a>1",
                    "labelSelector=!a",
                    "labelSelector=a>b",
                    "limit=10",
                    "limit=x",
                    "timeoutSeconds=5",
                    "timeoutSeconds=5s",
                    "a=1;b=2",
                    "",
                    "resourceVersion=0",
                    "fieldSelector=metadata.name=x;y",
                    "fieldSelector=%zz",
                ])
            })
            .collect();
        uri.push('?');
        uri.push_str(&params.join("&"));
    }
    uri
}
