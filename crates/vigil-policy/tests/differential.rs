//! Differential test against the real kube-apiserver code.
//!
//! `interop/k8s-oracle` wraps k8s.io/apiserver's policy loader, policy checker and request-info
//! parser behind a JSON-lines protocol. This test generates (deterministically) thousands of
//! policies, requests and request URIs from a small vocabulary, asks both the oracle and Vigil,
//! and requires identical answers.
//!
//! Run: `cd interop/k8s-oracle && go build -o /tmp/k8s-oracle . &&
//!       VIGIL_K8S_ORACLE=/tmp/k8s-oracle cargo test -p vigil-policy --test differential`
//! Without `VIGIL_K8S_ORACLE` the test is skipped (and passes).

mod gen;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{json, Value};
use vigil_policy::{load_policy, try_parse_request_info, Attributes, RequestInfoError};

use gen::Rng;

const EVAL_POLICIES: usize = 2500;
const REQUESTS_PER_POLICY: usize = 6;
const LOAD_CASES: usize = 1500;
const REQUESTINFO_CASES: usize = 4000;
const MAX_REPORTED: usize = 15;

struct Oracle {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Oracle {
    fn spawn(path: &str) -> Oracle {
        let mut child = Command::new(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // klog's lenient-decoding warnings go to stderr; nobody reads them here, and a piped
            // but undrained stderr could block the oracle.
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the oracle {path}: {e}"));
        let stdin = child.stdin.take().expect("oracle stdin");
        let stdout = BufReader::new(child.stdout.take().expect("oracle stdout"));
        Oracle {
            child,
            stdin,
            stdout,
        }
    }

    fn ask(&mut self, query: &Value) -> Value {
        let mut line = query.to_string();
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .expect("write to oracle");
        self.stdin.flush().expect("flush oracle");
        let mut answer = String::new();
        self.stdout
            .read_line(&mut answer)
            .expect("read from oracle");
        assert!(!answer.is_empty(), "the oracle exited early on {query}");
        let v: Value = serde_json::from_str(&answer).expect("oracle answer is JSON");
        if let Some(err) = v["error"].as_str() {
            assert!(
                !err.starts_with("bad input"),
                "the driver sent bad input: {err}\n{query}"
            );
        }
        v
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Collects disagreements and reports the first few in full.
#[derive(Default)]
struct Report {
    cases: usize,
    failures: Vec<String>,
}

impl Report {
    fn check(&mut self, agree: bool, describe: impl FnOnce() -> String) {
        self.cases += 1;
        if !agree {
            self.failures.push(describe());
        }
    }
    fn finish(&self, what: &str) -> usize {
        eprintln!(
            "differential {what}: {} cases, {} disagreements",
            self.cases,
            self.failures.len()
        );
        for f in self.failures.iter().take(MAX_REPORTED) {
            eprintln!("---- {what} disagreement ----\n{f}");
        }
        self.failures.len()
    }
}

fn request_json(a: &Attributes) -> Value {
    json!({
        "user": a.user.as_ref().map(|u| json!({"name": u.name, "groups": u.groups})),
        "verb": a.verb,
        "namespace": a.namespace,
        "apiGroup": a.api_group,
        "apiVersion": a.api_version,
        "resource": a.resource,
        "subresource": a.subresource,
        "name": a.name,
        "resourceRequest": a.resource_request,
        "path": a.path,
    })
}

fn eval_cases(oracle: &mut Oracle, rng: &mut Rng) -> Report {
    let mut report = Report::default();
    let mut no_match = 0;
    for _ in 0..EVAL_POLICIES {
        let json = rng.chance(15);
        rng.plain = !json;
        let policy_yaml = gen::policy(rng).render(json);
        let requests: Vec<Attributes> = (0..REQUESTS_PER_POLICY)
            .map(|_| gen::request(rng))
            .collect();
        let query = json!({
            "op": "eval",
            "policy": policy_yaml,
            "requests": requests.iter().map(request_json).collect::<Vec<_>>(),
        });
        let answer = oracle.ask(&query);
        let loaded = load_policy(&policy_yaml);
        let (true, Ok(loaded)) = (answer["ok"] == true, &loaded) else {
            report.check(false, || {
                format!("policy:\n{policy_yaml}\noracle: {answer}\nvigil: {loaded:?}")
            });
            continue;
        };
        for (i, attrs) in requests.iter().enumerate() {
            let theirs = &answer["results"][i];
            let ours = loaded.policy.evaluate(attrs);
            // The apiserver hands back the policy-level omitStages list as written when no rule
            // matches, duplicates included; as a set (how it is used) it is the same.
            let mut their_stages: Vec<String> = theirs["omitStages"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            their_stages.dedup();
            let our_stages: Vec<String> = ours.omit_stages.iter().map(|s| s.to_string()).collect();
            if ours.rule.is_none() {
                no_match += 1;
            }
            let agree = theirs["level"] == ours.level.as_str()
                && their_stages == our_stages
                && theirs["omitManagedFields"] == ours.omit_managed_fields;
            report.check(agree, || {
                format!(
                    "policy:\n{policy_yaml}\nrequest: {}\noracle: {theirs}\nvigil: {ours:?}",
                    request_json(attrs)
                )
            });
        }
    }
    eprintln!("differential eval: {no_match} requests matched no rule");
    report
}

fn load_cases(oracle: &mut Oracle, rng: &mut Rng) -> Report {
    let mut report = Report::default();
    let (mut accepted, mut warned) = (0, 0);
    for i in 0..LOAD_CASES {
        let text = gen::load_case(rng, i);
        let answer = oracle.ask(&json!({"op": "load", "policy": text}));
        let ours = load_policy(&text);
        if let Ok(l) = &ours {
            accepted += 1;
            warned += usize::from(!l.warnings.is_empty());
        }
        report.check((answer["ok"] == true) == ours.is_ok(), || {
            let vigil = match &ours {
                Ok(l) => format!("accepted, warnings: {:?}", l.warnings),
                Err(e) => format!("rejected: {e}"),
            };
            format!("policy:\n{text}\noracle: {answer}\nvigil: {vigil}")
        });
    }
    eprintln!(
        "differential load: {accepted} accepted ({warned} with warnings), {} rejected",
        LOAD_CASES - accepted
    );
    report
}

fn requestinfo_cases(oracle: &mut Oracle, rng: &mut Rng) -> Report {
    let mut report = Report::default();
    let mut resource = 0;
    for _ in 0..REQUESTINFO_CASES {
        let method = gen::method(rng);
        let uri = gen::uri(rng);
        let answer = oracle.ask(&json!({"op": "requestinfo", "method": method, "uri": uri}));
        let ours = try_parse_request_info(&method, &uri);
        let agree = match (&ours, answer["ok"] == true) {
            (Ok(info), true) => {
                resource += usize::from(info.is_resource_request);
                answer["isResourceRequest"] == info.is_resource_request
                    && answer["path"] == info.path.as_str()
                    && answer["verb"] == info.verb.as_str()
                    && answer["apiPrefix"] == info.api_prefix.as_str()
                    && answer["apiGroup"] == info.api_group.as_str()
                    && answer["apiVersion"] == info.api_version.as_str()
                    && answer["namespace"] == info.namespace.as_str()
                    && answer["resource"] == info.resource.as_str()
                    && answer["subresource"] == info.subresource.as_str()
                    && answer["name"] == info.name.as_str()
                    && answer["parts"] == json!(info.parts)
            }
            (Err(RequestInfoError::NoResource { .. }), false) => true,
            _ => false,
        };
        report.check(agree, || {
            format!("{method} {uri}\noracle: {answer}\nvigil: {ours:?}")
        });
    }
    eprintln!("differential requestinfo: {resource} resource requests");
    report
}

#[test]
fn vigil_agrees_with_kube_apiserver() {
    let Ok(path) = std::env::var("VIGIL_K8S_ORACLE") else {
        eprintln!(
            "skipping the differential test: set VIGIL_K8S_ORACLE to a k8s-oracle binary \
             (cd interop/k8s-oracle && go build -o /tmp/k8s-oracle .)"
        );
        return;
    };
    let mut oracle = Oracle::spawn(&path);
    // Fixed by default so failures reproduce; VIGIL_DIFF_SEED explores other corners.
    let seed = std::env::var("VIGIL_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1e55_c0ff_ee00);
    eprintln!("differential seed: {seed}");
    let mut rng = Rng::new(seed);
    let failures = eval_cases(&mut oracle, &mut rng).finish("eval")
        + load_cases(&mut oracle, &mut rng).finish("load")
        + requestinfo_cases(&mut oracle, &mut rng).finish("requestinfo");
    assert_eq!(
        failures, 0,
        "Vigil disagrees with kube-apiserver (details above)"
    );
}
