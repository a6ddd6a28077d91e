//! Single-core throughput of SigmaHQ's 16 Kubernetes audit rules on generated, realistic audit
//! traffic (lease renewals, watches, controller traffic, kubelet events, kubectl users, pod
//! creates with full bodies, and a sprinkle of attacks).
//!
//!   VIGIL_SHARED=../shared cargo run --release -p vigil-detect --example bench [EVENTS]
//!
//! Figures are events per second of on-CPU time of the one thread (best of BENCH_RUNS runs),
//! so other work on a shared machine does not distort them. BENCH_MODES picks modes (abcdep).
//!
//! Or pass a folder of rules: `... --example bench -- 200000 path/to/rules`, or `builtin` for
//! Vigil's built-in pack (with its default placeholders). BENCH_INPUT=FILE reads the events from
//! a file of JSON lines instead (e.g. `vigil gen audit --events 1000000 > /tmp/a.jsonl`, the
//! traffic `vigil bench detect` measures), taking the first EVENTS lines.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::Value;
use vigil_detect::{Config, Event, RuleSet, RuleSource};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

fn uid(r: &mut Rng) -> String {
    let a = r.next();
    let b = r.next();
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

#[allow(clippy::too_many_arguments)]
fn event(
    r: &mut Rng,
    i: usize,
    verb: &str,
    resource: &str,
    group: Option<&str>,
    ns: Option<&str>,
    name: Option<&str>,
    sub: Option<&str>,
    user: &str,
    ua: &str,
    code: u16,
    body: Option<Value>,
) -> String {
    let mut uri = match group {
        Some(g) => format!("/apis/{g}/v1"),
        None => "/api/v1".to_string(),
    };
    if let Some(n) = ns {
        uri.push_str(&format!("/namespaces/{n}"));
    }
    uri.push('/');
    uri.push_str(resource);
    if let Some(n) = name {
        uri.push('/');
        uri.push_str(n);
    }
    if let Some(s) = sub {
        uri.push('/');
        uri.push_str(s);
    }
    if verb == "watch" {
        uri.push_str("?allowWatchBookmarks=true&resourceVersion=48213&timeout=7m3s&watch=true");
    }
    let mut object_ref = serde_json::json!({"resource": resource, "apiVersion": "v1"});
    if let Some(g) = group {
        object_ref["apiGroup"] = g.into();
    }
    if let Some(n) = ns {
        object_ref["namespace"] = n.into();
    }
    if let Some(n) = name {
        object_ref["name"] = n.into();
    }
    if let Some(s) = sub {
        object_ref["subresource"] = s.into();
    }
    let ts = format!(
        "2026-11-20T{:02}:{:02}:{:02}.{:06}Z",
        (i / 3_600_000) % 24,
        (i / 60_000) % 60,
        (i / 1000) % 60,
        (i % 1000) * 1000 + r.below(1000) as usize
    );
    let mut ev = serde_json::json!({
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": if body.is_some() { "RequestResponse" } else { "Metadata" },
        "auditID": uid(r),
        "stage": "ResponseComplete",
        "requestURI": uri,
        "verb": verb,
        "user": {"username": user, "uid": uid(r), "groups": ["system:authenticated"]},
        "sourceIPs": [format!("10.0.{}.{}", r.below(4), r.below(250))],
        "userAgent": ua,
        "objectRef": object_ref,
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": ts,
        "stageTimestamp": ts,
        "annotations": {
            "authorization.k8s.io/decision": if code == 403 { "forbid" } else { "allow" },
            "authorization.k8s.io/reason": if code == 403 { "" } else { "RBAC: allowed by ClusterRoleBinding \"system:node\" of ClusterRole \"system:node\" to Group \"system:nodes\"" }
        }
    });
    if let Some(b) = body {
        ev["requestObject"] = b.clone();
        ev["responseObject"] = b;
    }
    serde_json::to_string(&ev).unwrap()
}

fn pod_body(r: &mut Rng, name: &str, evil: bool) -> Value {
    let mut c = serde_json::json!({
        "name": "app",
        "image": format!("registry.example.com/shop/{name}:1.{}.{}", r.below(20), r.below(9)),
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
        "volumeMounts": [{"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}],
        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": true},
        "terminationMessagePath": "/dev/termination-log",
        "imagePullPolicy": "IfNotPresent"
    });
    let mut volumes = vec![
        serde_json::json!({"name": "kube-api-access", "projected": {"sources": [{"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}, {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}], "defaultMode": 420}}),
    ];
    if evil {
        c["securityContext"] =
            serde_json::json!({"privileged": true, "capabilities": {"add": ["SYS_ADMIN"]}});
        volumes.push(serde_json::json!({"name": "host", "hostPath": {"path": "/", "type": ""}}));
    }
    serde_json::json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"generateName": format!("{name}-7d9f8c-"), "namespace": "shop",
            "labels": {"app": name, "pod-template-hash": "7d9f8c"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{name}-7d9f8c"), "uid": uid(r), "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"volumes": volumes, "containers": [c], "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst", "serviceAccountName": "default", "securityContext": {}, "schedulerName": "default-scheduler",
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
            "priority": 0, "enableServiceLinks": true, "preemptionPolicy": "PreemptLowerPriority"}
    })
}

fn generate(n: usize) -> Vec<String> {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let nodes = ["node-1", "node-2", "node-3", "node-4", "node-5", "node-6"];
    let apps = [
        "frontend", "cart", "checkout", "payments", "search", "catalog",
    ];
    let nss = ["shop", "default", "monitoring", "ingress-nginx"];
    let kubectl = "kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46";
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let roll = r.below(1000);
        let node = r.pick(&nodes);
        let app = r.pick(&apps);
        let ns = r.pick(&nss);
        let kubelet = format!("system:node:{node}");
        let e = match roll {
            0..=349 => event(&mut r, i, "update", "leases", Some("coordination.k8s.io"), Some("kube-node-lease"), Some(node), None, &kubelet, "kubelet/v1.31.2 (linux/amd64) kubernetes/5864a46", 200, None),
            350..=449 => event(&mut r, i, "get", "leases", Some("coordination.k8s.io"), Some("kube-system"), Some("kube-controller-manager"), None, "system:kube-controller-manager", "kube-controller-manager/v1.31.2 (linux/amd64) kubernetes/5864a46/leader-election", 200, None),
            450..=569 => {
                let res = r.pick(&["pods", "configmaps", "services", "endpointslices", "nodes", "secrets"]);
                let group = if res == "endpointslices" { Some("discovery.k8s.io") } else { None };
                event(&mut r, i, "watch", res, group, None, None, None, "system:kube-scheduler", "kube-scheduler/v1.31.2 (linux/amd64) kubernetes/5864a46/scheduler", 200, None)
            }
            570..=669 => event(&mut r, i, "create", "events", None, Some(ns), None, None, &kubelet, "kubelet/v1.31.2 (linux/amd64) kubernetes/5864a46", 201, Some(serde_json::json!({"kind": "Event", "reason": "Pulled", "message": format!("Container image \"registry.example.com/shop/{app}:1.2.3\" already present on machine")}))),
            670..=719 => event(&mut r, i, "patch", "nodes", None, None, Some(node), Some("status"), &kubelet, "kubelet/v1.31.2 (linux/amd64) kubernetes/5864a46", 200, None),
            720..=789 => event(&mut r, i, "get", "configmaps", None, Some(ns), Some(app), None, &format!("system:serviceaccount:{ns}:{app}"), "Go-http-client/2.0", 200, None),
            790..=829 => event(&mut r, i, "update", "deployments", Some("apps"), Some(ns), Some(app), Some("status"), "system:serviceaccount:kube-system:deployment-controller", "kube-controller-manager/v1.31.2 (linux/amd64) kubernetes/5864a46/system:serviceaccount:kube-system:deployment-controller", 200, None),
            830..=899 => {
                let verb = r.pick(&["get", "list", "list", "get"]);
                let res = r.pick(&["pods", "deployments", "services", "nodes"]);
                let group = if res == "deployments" { Some("apps") } else { None };
                event(&mut r, i, verb, res, group, Some(ns), None, None, "alice@example.com", kubectl, 200, None)
            }
            900..=939 => {
                let body = pod_body(&mut r, app, false);
                event(&mut r, i, "create", "pods", None, Some("shop"), None, None, "system:serviceaccount:kube-system:replicaset-controller", "kube-controller-manager/v1.31.2 (linux/amd64) kubernetes/5864a46/system:serviceaccount:kube-system:replicaset-controller", 201, Some(body))
            }
            940..=959 => event(&mut r, i, "get", "secrets", None, Some(ns), Some(&format!("{app}-tls")), None, &format!("system:serviceaccount:{ns}:{app}"), "Go-http-client/2.0", 200, None),
            960..=979 => event(&mut r, i, "create", "tokenreviews", Some("authentication.k8s.io"), None, None, None, "system:serviceaccount:monitoring:prometheus", "prometheus/2.53", 201, None),
            980..=984 => event(&mut r, i, "patch", "deployments", Some("apps"), Some(ns), Some(app), None, "bob@example.com", kubectl, 200, None),
            985..=988 => event(&mut r, i, "list", "secrets", None, Some("kube-system"), None, None, "system:serviceaccount:shop:default", kubectl, 403, None),
            989..=991 => event(&mut r, i, "create", "pods", None, Some(ns), Some(&format!("{app}-0")), Some("exec"), "mallory@example.com", kubectl, 101, None),
            992..=994 => {
                let body = pod_body(&mut r, "debug", true);
                event(&mut r, i, "create", "pods", None, Some("kube-system"), None, None, "mallory@example.com", kubectl, 201, Some(body))
            }
            995..=997 => event(&mut r, i, "create", "clusterrolebindings", Some("rbac.authorization.k8s.io"), None, Some("pwn"), None, "mallory@example.com", kubectl, 201, None),
            _ => event(&mut r, i, "create", "selfsubjectrulesreviews", Some("authorization.k8s.io"), None, None, None, "mallory@example.com", "access_matrix/0.5", 201, None),
        };
        out.push(e);
    }
    out
}

/// Nanoseconds this thread has spent on a CPU (Linux), so that a busy shared machine does not
/// distort the per-core figure; falls back to wall time elsewhere.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn load(dir: &Path) -> Vec<RuleSource> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| RuleSource::new(p.display().to_string(), std::fs::read_to_string(p).unwrap()))
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let dir = match args.get(2) {
        Some(d) => PathBuf::from(d),
        None => {
            let shared = std::env::var("VIGIL_SHARED").unwrap_or_else(|_| "../shared".into());
            Path::new(&shared).join("reference/sigma/rules/application/kubernetes/audit")
        }
    };
    let builtin = dir.as_os_str() == "builtin";
    let sources = if builtin {
        vigil_detect::builtin::rules()
    } else {
        load(&dir)
    };
    let cfg = Config {
        placeholders: if builtin {
            vigil_detect::builtin::placeholders()
        } else {
            Default::default()
        },
        ..Config::default()
    };
    let (rules, errors) = RuleSet::compile(&sources, &cfg);
    let (rules_npf, _) = RuleSet::compile(
        &sources,
        &Config {
            prefilter: false,
            ..cfg.clone()
        },
    );
    assert!(errors.is_empty(), "{errors:#?}");
    if std::env::var("BENCH_SHOW_LITERALS").is_ok() {
        println!("{:?}", rules.prefilter_literals("k8s.audit"));
        for (title, clauses) in rules.prefilter_report("k8s.audit") {
            let cnf: Vec<String> = clauses.iter().map(|c| c.join(" | ")).collect();
            println!("  {title}: [{}]", cnf.join("] & ["));
        }
    }
    let events = match std::env::var("BENCH_INPUT") {
        Ok(path) => std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .lines()
            .take(n)
            .map(str::to_string)
            .collect(),
        Err(_) => generate(n),
    };
    let n = events.len();
    let bytes: usize = events.iter().map(String::len).sum();
    println!(
        "{} rules, {} events, {:.0} bytes/event on average",
        rules.rules().len(),
        n,
        bytes as f64 / n as f64
    );
    let modes = std::env::var("BENCH_MODES").unwrap_or_else(|_| "abcdep".into());
    // Pre-parsed documents, for the modes that use them.
    let parsed: Vec<Value> = if modes.contains(['c', 'd', 'e']) {
        events
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect()
    } else {
        vec![]
    };
    let mut out = Vec::new();

    // Best of several runs: the machine is shared, so the fastest run is the least disturbed.
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let mut report = |key: char,
                      label: &str,
                      f: &mut dyn FnMut(&mut Vec<vigil_detect::Match>)|
     -> Option<usize> {
        if !modes.contains(key) {
            return None;
        }
        out.clear();
        f(&mut out);
        let mut secs = f64::MAX;
        for _ in 0..runs {
            out.clear();
            let c0 = cpu_ns();
            let t = Instant::now();
            f(&mut out);
            let wall = t.elapsed().as_secs_f64();
            let cpu = match (c0, cpu_ns()) {
                (Some(a), Some(b)) => (b - a) as f64 / 1e9,
                _ => wall,
            };
            secs = secs.min(cpu);
        }
        println!(
            "{label:<58} {:>10.0} events/s  ({} matches)",
            n as f64 / secs,
            out.len()
        );
        Some(out.len())
    };
    let a = report(
        'a',
        "raw JSON lines, prefilter + dispatch, lazy parse (end to end)",
        &mut |out| {
            for e in &events {
                rules.evaluate(&Event::from_raw("k8s.audit", e), out);
            }
        },
    );
    let b = report(
        'b',
        "raw JSON lines, parse every event, no shortcuts",
        &mut |out| {
            for e in &events {
                let v: Value = serde_json::from_str(e).unwrap();
                rules_npf.evaluate(&Event::new("k8s.audit", &v), out);
            }
        },
    );
    let c = report(
        'c',
        "pre-parsed documents, every rule evaluated (no shortcuts)",
        &mut |out| {
            for v in &parsed {
                rules_npf.evaluate(&Event::new("k8s.audit", v), out);
            }
        },
    );
    let d = report(
        'd',
        "pre-parsed documents + raw text, prefilter + dispatch",
        &mut |out| {
            for (v, e) in parsed.iter().zip(&events) {
                rules.evaluate(&Event::with_raw("k8s.audit", v, e), out);
            }
        },
    );
    let e = report(
        'e',
        "pre-parsed documents, field dispatch (no raw text)",
        &mut |out| {
            for v in &parsed {
                rules.evaluate(&Event::new("k8s.audit", v), out);
            }
        },
    );
    let counts: Vec<usize> = [a, b, c, d, e].into_iter().flatten().collect();
    assert!(
        counts.windows(2).all(|w| w[0] == w[1]),
        "every mode finds the same matches"
    );
    // Events some reporting rule is evaluated on (parsed, maybe only in part).
    let alerting: Vec<bool> = {
        let by_title: std::collections::HashMap<&str, bool> = rules
            .rules()
            .iter()
            .map(|r| (r.title.as_str(), r.alerts))
            .collect();
        rules
            .prefilter_report("k8s.audit")
            .iter()
            .map(|(t, _)| by_title.get(t.as_str()).copied().unwrap_or(true))
            .collect()
    };
    let parsed_n = events
        .iter()
        .filter(|e| {
            rules
                .prefilter_pass("k8s.audit", e)
                .iter()
                .zip(&alerting)
                .any(|(p, a)| *p && *a)
        })
        .count();
    let mut out2 = Vec::new();
    println!(
        "the prefilter let {:.1}% of events through to parsing",
        100.0 * parsed_n as f64 / n as f64
    );
    if std::env::var("BENCH_SHOW_RULES").is_ok() {
        // Per rule: how often the prefilter lets an event through, and how often it matches.
        let report = rules.prefilter_report("k8s.audit");
        let mut pass = vec![0usize; report.len()];
        let mut hits = std::collections::HashMap::<String, usize>::new();
        for e in &events {
            for (i, p) in rules.prefilter_pass("k8s.audit", e).into_iter().enumerate() {
                pass[i] += p as usize;
            }
            out2.clear();
            rules.evaluate(&Event::from_raw("k8s.audit", e), &mut out2);
            for m in &out2 {
                *hits.entry(rules.rules()[m.rule].title.clone()).or_default() += 1;
            }
        }
        for ((title, _), p) in report.iter().zip(pass) {
            println!(
                "  {:6.2}% through, {:6.2}% match  {title}",
                100.0 * p as f64 / n as f64,
                100.0 * hits.get(title).copied().unwrap_or(0) as f64 / n as f64
            );
        }
    }
    if !modes.contains('p') {
        return;
    }
    let mut k = 0usize;
    let mut secs = f64::MAX;
    for _ in 0..runs {
        let c0 = cpu_ns();
        let t = Instant::now();
        for e in &events {
            let v: Value = serde_json::from_str(e).unwrap();
            k += v.as_object().map_or(0, |m| m.len());
        }
        let wall = t.elapsed().as_secs_f64();
        secs = secs.min(match (c0, cpu_ns()) {
            (Some(a), Some(b)) => (b - a) as f64 / 1e9,
            _ => wall,
        });
    }
    println!(
        "{:<58} {:>10.0} events/s  (for reference; {k} keys)",
        "serde_json parse alone",
        n as f64 / secs
    );
}
