//! Generated, realistic Kubernetes audit traffic for benchmarks (`vigil bench`, `vigil gen`).
//!
//! The mix follows what a busy cluster's audit log looks like: leader-election leases, kubelet
//! status patches, controller watches, probes, a few kubectl users, pod creates with full bodies,
//! and a sprinkle of attacks (secrets enumeration, privileged pods, exec, cluster-admin bindings,
//! anonymous requests) so that detection has something to find. Deterministic for a seed.

use std::fmt::Write;

/// xorshift64*: tiny, fast, deterministic; quality is plenty for traffic mixes.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

pub struct Generator {
    rng: Rng,
    /// Microseconds since the Unix epoch of the next event.
    now_us: i64,
    seq: u64,
}

const NAMESPACES: &[&str] = &["shop", "payments", "default", "monitoring", "data", "ci"];
const USERS: &[&str] = &[
    "alice@example.com",
    "bob@example.com",
    "carol@example.com",
    "deploy-bot",
];
const NODES: &[&str] = &["node-1", "node-2", "node-3", "node-4", "node-5"];

impl Generator {
    pub fn new(seed: u64) -> Self {
        Generator {
            rng: Rng::new(seed),
            // 2026-11-20T09:00:00Z
            now_us: 1_795_165_200_000_000,
            seq: 0,
        }
    }

    fn time(&self, offset_us: i64) -> String {
        let t =
            chrono::DateTime::from_timestamp_micros(self.now_us + offset_us).unwrap_or_default();
        t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }

    fn audit_id(&mut self) -> String {
        self.seq += 1;
        let a = self.rng.next();
        format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            self.seq & 0xfff,
            self.seq
        )
    }

    /// Appends one event (one JSON line, with its newline) to `out`.
    pub fn next_event(&mut self, out: &mut String) {
        self.now_us += 1_000 + self.rng.below(20_000) as i64;
        let id = self.audit_id();
        let r = self.rng.below(1000);
        let latency = 3_000 + self.rng.below(30_000) as i64;
        let (rt, st) = (self.time(0), self.time(latency));
        let head = |out: &mut String,
                    level: &str,
                    verb: &str,
                    uri: &str,
                    user: &str,
                    groups: &str,
                    ip: &str,
                    ua: &str| {
            let _ = write!(
                out,
                r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"{level}","auditID":"{id}","stage":"ResponseComplete","requestURI":"{uri}","verb":"{verb}","user":{{"username":"{user}","groups":[{groups}]}},"sourceIPs":["{ip}"],"userAgent":"{ua}","#
            );
        };
        let tail = |out: &mut String, code: u32, decision: &str| {
            let _ = writeln!(
                out,
                r#""responseStatus":{{"metadata":{{}},"code":{code}}},"requestReceivedTimestamp":"{rt}","stageTimestamp":"{st}","annotations":{{"authorization.k8s.io/decision":"{decision}","authorization.k8s.io/reason":""}}}}"#
            );
        };
        match r {
            0..=299 => {
                let who = self.rng.pick(&[
                    "kube-controller-manager",
                    "kube-scheduler",
                    "cloud-controller-manager",
                ]);
                let verb = self.rng.pick(&["get", "update"]);
                head(
                    out,
                    "Metadata",
                    verb,
                    &format!("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{who}"),
                    &format!("system:{who}"),
                    r#""system:authenticated""#,
                    "10.0.0.10",
                    &format!("{who}/v1.31.2 (linux/amd64) kubernetes/5864a46/leader-election"),
                );
                let _ = write!(
                    out,
                    r#""objectRef":{{"resource":"leases","namespace":"kube-system","name":"{who}","apiGroup":"coordination.k8s.io","apiVersion":"v1"}},"#
                );
                tail(out, 200, "allow");
            }
            300..=499 => {
                let node = self.rng.pick(NODES);
                head(
                    out,
                    "Request",
                    "patch",
                    &format!("/api/v1/nodes/{node}/status?timeout=10s"),
                    &format!("system:node:{node}"),
                    r#""system:nodes","system:authenticated""#,
                    "10.0.1.7",
                    "kubelet/v1.31.2 (linux/amd64) kubernetes/5864a46",
                );
                let _ = write!(
                    out,
                    r#""objectRef":{{"resource":"nodes","name":"{node}","apiVersion":"v1","subresource":"status"}},"requestObject":{{"status":{{"conditions":[{{"type":"Ready","status":"True","lastHeartbeatTime":"{rt}"}}]}}}},"#
                );
                tail(out, 200, "allow");
            }
            500..=619 => {
                let res = self
                    .rng
                    .pick(&["pods", "services", "endpoints", "configmaps", "nodes"]);
                let who = self.rng.pick(&[
                    "system:kube-proxy",
                    "system:serviceaccount:kube-system:coredns",
                    "system:kube-controller-manager",
                ]);
                head(out, "Metadata", "watch", &format!("/api/v1/{res}?allowWatchBookmarks=true&resourceVersion=4242&timeout=7m3s&watch=true"), who, r#""system:authenticated""#, "10.0.1.2", "kube-proxy/v1.31.2");
                let _ = write!(
                    out,
                    r#""objectRef":{{"resource":"{res}","apiVersion":"v1"}},"#
                );
                tail(out, 200, "allow");
            }
            620..=719 => {
                let path =
                    self.rng
                        .pick(&["/healthz", "/livez", "/readyz", "/version", "/openapi/v3"]);
                head(
                    out,
                    "Metadata",
                    "get",
                    path,
                    "system:anonymous",
                    r#""system:unauthenticated""#,
                    "10.0.0.5",
                    "kube-probe/1.31",
                );
                tail(out, 200, "allow");
            }
            720..=899 => {
                let user = self.rng.pick(USERS);
                let ns = self.rng.pick(NAMESPACES);
                let res =
                    self.rng
                        .pick(&["pods", "services", "configmaps", "deployments", "secrets"]);
                let verb = self.rng.pick(&["get", "list", "list", "delete", "update"]);
                let (prefix, group) = if res == "deployments" {
                    ("/apis/apps/v1", r#""apiGroup":"apps","#)
                } else {
                    ("/api/v1", "")
                };
                let name = if verb == "list" {
                    String::new()
                } else {
                    format!("/{res}-{}", self.rng.below(50))
                };
                head(
                    out,
                    "Metadata",
                    verb,
                    &format!("{prefix}/namespaces/{ns}/{res}{name}"),
                    user,
                    r#""developers","system:authenticated""#,
                    "203.0.113.10",
                    "kubectl/v1.31.0 (linux/amd64) kubernetes/9edcffc",
                );
                let name_field = name.trim_start_matches('/').to_string();
                let _ = write!(
                    out,
                    r#""objectRef":{{"resource":"{res}","namespace":"{ns}","name":"{name_field}",{group}"apiVersion":"v1"}},"#
                );
                let code = if self.rng.below(20) == 0 { 403 } else { 200 };
                tail(out, code, if code == 403 { "forbid" } else { "allow" });
            }
            900..=989 => {
                let user = self.rng.pick(&[
                    "system:serviceaccount:kube-system:replicaset-controller",
                    "deploy-bot",
                ]);
                let ns = self.rng.pick(NAMESPACES);
                let pod = format!("web-{:x}", self.rng.below(1 << 24));
                head(
                    out,
                    "RequestResponse",
                    "create",
                    &format!("/api/v1/namespaces/{ns}/pods"),
                    user,
                    r#""system:serviceaccounts","system:authenticated""#,
                    "10.0.0.10",
                    "kube-controller-manager/v1.31.2",
                );
                let _ = write!(
                    out,
                    r#""objectRef":{{"resource":"pods","namespace":"{ns}","name":"{pod}","apiVersion":"v1"}},"requestObject":{{"kind":"Pod","apiVersion":"v1","metadata":{{"name":"{pod}","namespace":"{ns}","labels":{{"app":"web"}}}},"spec":{{"containers":[{{"name":"web","image":"registry.example.com/shop/web:1.4.2","ports":[{{"containerPort":8080}}],"resources":{{"limits":{{"cpu":"500m","memory":"256Mi"}}}},"securityContext":{{"runAsNonRoot":true,"allowPrivilegeEscalation":false}}}}],"serviceAccountName":"web"}}}},"#
                );
                tail(out, 201, "allow");
            }
            _ => self.attack(out, &id, &rt, &st),
        }
    }

    fn attack(&mut self, out: &mut String, id: &str, rt: &str, st: &str) {
        let sa = "system:serviceaccount:shop:web";
        let kind = self.rng.below(5);
        let ns = self.rng.pick(NAMESPACES);
        let (verb, uri, obj, body, code) = match kind {
            0 => ("list", format!("/api/v1/namespaces/{ns}/secrets"), format!(r#"{{"resource":"secrets","namespace":"{ns}","apiVersion":"v1"}}"#), String::new(), 200),
            1 => ("create", format!("/api/v1/namespaces/{ns}/pods"), format!(r#"{{"resource":"pods","namespace":"{ns}","name":"debug","apiVersion":"v1"}}"#),
                  format!(r#""requestObject":{{"kind":"Pod","apiVersion":"v1","metadata":{{"name":"debug","namespace":"{ns}"}},"spec":{{"hostPID":true,"containers":[{{"name":"c","image":"alpine","securityContext":{{"privileged":true}}}}],"volumes":[{{"name":"h","hostPath":{{"path":"/"}}}}]}}}},"#), 201),
            2 => ("create", format!("/api/v1/namespaces/{ns}/pods/web-1/exec?command=sh&stdin=true&tty=true"), format!(r#"{{"resource":"pods","namespace":"{ns}","name":"web-1","subresource":"exec","apiVersion":"v1"}}"#), String::new(), 101),
            3 => ("create", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings".to_string(), r#"{"resource":"clusterrolebindings","name":"pwn","apiGroup":"rbac.authorization.k8s.io","apiVersion":"v1"}"#.to_string(),
                  r#""requestObject":{"kind":"ClusterRoleBinding","metadata":{"name":"pwn"},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"cluster-admin"},"subjects":[{"kind":"ServiceAccount","name":"web","namespace":"shop"}]},"#.to_string(), 201),
            _ => ("get", "/api/v1/namespaces/kube-system/secrets".to_string(), r#"{"resource":"secrets","namespace":"kube-system","apiVersion":"v1"}"#.to_string(), String::new(), 403),
        };
        let (user, groups) = if kind == 4 {
            ("system:anonymous", r#""system:unauthenticated""#)
        } else {
            (sa, r#""system:serviceaccounts","system:authenticated""#)
        };
        let _ = writeln!(
            out,
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request","auditID":"{id}","stage":"ResponseComplete","requestURI":"{uri}","verb":"{verb}","user":{{"username":"{user}","groups":[{groups}]}},"sourceIPs":["198.51.100.23"],"userAgent":"kubectl/v1.30.1","objectRef":{obj},{body}"responseStatus":{{"metadata":{{}},"code":{code}}},"requestReceivedTimestamp":"{rt}","stageTimestamp":"{st}","annotations":{{"authorization.k8s.io/decision":"{}"}}}}"#,
            if code >= 400 { "forbid" } else { "allow" }
        );
    }
}

/// `n` events as JSON lines.
pub fn audit_lines(seed: u64, n: usize) -> String {
    let mut g = Generator::new(seed);
    let mut out = String::with_capacity(n * 700);
    for _ in 0..n {
        g.next_event(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_generated_line_is_a_valid_audit_event() {
        let text = audit_lines(42, 3000);
        for (i, line) in text.lines().enumerate() {
            let decoded = vigil_model::decode::decode_document(line, i + 1);
            assert!(
                decoded[0].is_ok(),
                "line {}: {:?}\n{line}",
                i + 1,
                decoded[0]
            );
        }
        assert_eq!(text.lines().count(), 3000);
    }

    #[test]
    fn generation_is_deterministic() {
        assert_eq!(audit_lines(1, 100), audit_lines(1, 100));
        assert_ne!(audit_lines(1, 100), audit_lines(2, 100));
    }
}
