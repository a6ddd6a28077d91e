//! `vigil policy lint`: what a security engineer would tell you about an audit policy.
//!
//! [`lint`] works on a loaded [`Policy`] (it never needs the YAML). Two kinds of reasoning:
//! - *structural* (`shape`, `sensitive`): what a rule can match, and whether an earlier rule
//!   already matches all of it. Sound: it never claims a rule is unreachable unless that is
//!   certain; for `sensitive-data-logged` a rule counts as shielded only when a single earlier
//!   rule covers everything it would log.
//! - *behavioural* (`probe`, `behaviour`): synthetic requests (exec into a pod, read a secret, a
//!   kubelet listing pods, a load balancer hitting /healthz, ...) evaluated through
//!   [`Policy::evaluate`], exactly as kube-apiserver would. Probes use a fixed set of callers
//!   and namespaces, so a rule aimed at one specific user or namespace can escape them.
//!
//! Every finding has a stable kebab-case [`Finding::code`] (see [`codes`]) and a `why` that
//! explains the risk. The CLI exits 1 when any finding is [`Severity::Error`].

mod behaviour;
mod probe;
mod sensitive;
mod shape;

use serde::Serialize;
use vigil_model::{Level, Stage};

use crate::{Policy, PolicyRule, Severity};

/// One lint result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// 0-based index of the rule the finding is about; `None` for the policy as a whole.
    pub rule: Option<usize>,
    /// 1-based YAML line: the rule's line, else 1 for the policy (0 when the policy carries no
    /// line information, e.g. built in code).
    pub line: usize,
    pub severity: Severity,
    /// Stable kebab-case identifier, one of [`codes::ALL`].
    pub code: &'static str,
    /// What is wrong, specifically (names rules, lines, resources, users).
    pub message: String,
    /// Why it matters.
    pub why: String,
}

/// The stable finding codes.
pub mod codes {
    /// Secret, ConfigMap, TokenReview or TokenRequest payloads written to the audit log. Error.
    pub const SENSITIVE_DATA_LOGGED: &str = "sensitive-data-logged";
    /// An earlier rule matches every request this one could. Warning.
    pub const UNREACHABLE_RULE: &str = "unreachable-rule";
    /// Some requests match no rule and are not logged. Warning.
    pub const NO_CATCH_ALL: &str = "no-catch-all";
    /// The rule that catches everything left over logs nothing. Warning.
    pub const CATCH_ALL_NONE: &str = "catch-all-none";
    /// RequestReceived is logged, doubling volume. Warning.
    pub const REQUEST_RECEIVED_NOT_OMITTED: &str = "request-received-not-omitted";
    /// ResponseComplete, the stage carrying the outcome, is omitted. Warning.
    pub const RESPONSE_COMPLETE_OMITTED: &str = "response-complete-omitted";
    /// /healthz, /livez, /readyz, /metrics (Warning) or /version (Info) are logged.
    pub const HEALTH_ENDPOINTS_LOGGED: &str = "health-endpoints-logged";
    /// Routine control-plane traffic logged at Request or above. Warning.
    pub const NOISY_SYSTEM_TRAFFIC: &str = "noisy-system-traffic";
    /// A request CIS 3.2.2 or PCI DSS 10.2 expects in the audit trail is not logged. Warning.
    pub const COVERAGE_GAP: &str = "coverage-gap";
    /// API discovery by authenticated callers is dropped. Info.
    pub const DISCOVERY_NOT_LOGGED: &str = "discovery-not-logged";
    /// managedFields are kept in logged bodies. Info.
    pub const MANAGED_FIELDS_LOGGED: &str = "managed-fields-logged";
    /// A verb no request ever carries. Warning.
    pub const UNKNOWN_VERB: &str = "unknown-verb";
    /// A resource item or namespace that can never equal a request's. Warning.
    pub const MATCHES_NOTHING: &str = "matches-nothing";

    pub const ALL: &[&str] = &[
        SENSITIVE_DATA_LOGGED,
        UNREACHABLE_RULE,
        NO_CATCH_ALL,
        CATCH_ALL_NONE,
        REQUEST_RECEIVED_NOT_OMITTED,
        RESPONSE_COMPLETE_OMITTED,
        HEALTH_ENDPOINTS_LOGGED,
        NOISY_SYSTEM_TRAFFIC,
        COVERAGE_GAP,
        DISCOVERY_NOT_LOGGED,
        MANAGED_FIELDS_LOGGED,
        UNKNOWN_VERB,
        MATCHES_NOTHING,
    ];
}

const WHY_UNREACHABLE: &str = "kube-apiserver applies the first rule that matches a request. Every request this rule could match is already matched by the earlier rule named in the message, so this rule never applies: whatever it was meant to do (log more, or drop noise) silently does not happen. Remove it, or move it above the broader rule if it was meant to take precedence.";
const WHY_NO_CATCH_ALL: &str = "A request that matches no rule gets level None and produces no audit event at all. Anything the rules did not foresee (new resources, CRDs, aggregated APIs, unusual verbs, the non-resource URLs an attacker probes) then leaves no trace. End the policy with `- level: Metadata` so that every request is at least recorded.";
const WHY_CATCH_ALL_NONE: &str = "The first rule that matches everything left over sets level None, so every request no earlier rule selects is unaudited, including kinds of request nobody thought of when the policy was written. A final `- level: Metadata` costs little and keeps a record of everything else.";
const WHY_REQUEST_RECEIVED: &str = "Every request then produces a RequestReceived event in addition to its ResponseComplete event, which repeats the same metadata and adds the outcome (response code, authorization decision). That roughly doubles audit volume, ingestion and storage cost for no extra information; long-running requests (watch, exec, port-forward) also emit ResponseStarted when they begin. Add `omitStages: [RequestReceived]` at the policy level.";
const WHY_RESPONSE_COMPLETE: &str = "ResponseComplete is the only stage of an ordinary request that carries its outcome: the response code, and with it whether authorization allowed or forbade it. Without it denied attempts are indistinguishable from successful ones, and requests that are not long-running are left with at most their RequestReceived event.";
const WHY_MANAGED_FIELDS: &str = "metadata.managedFields is server-side-apply bookkeeping that records the owner of every field; it is often a third or more of an object's JSON and has no security value. With `omitManagedFields: true` kube-apiserver strips it from logged request and response bodies (single objects and list items; patches are left alone).";
const WHY_UNKNOWN_VERB: &str = "Policy verbs are compared exactly with the request's verb: the lower-case Kubernetes verbs (get, list, watch, create, update, patch, delete, deletecollection, proxy) for resource requests, the lower-case HTTP method for non-resource URLs. Anything else (a capitalised verb, a typo, or an RBAC-only verb such as impersonate, escalate, bind, approve, sign or use, which name authorization checks and are never a request's verb) matches nothing, so the rule silently applies to fewer requests than intended.";
const WHY_MATCHES_NOTHING: &str = "kube-apiserver compares these values literally: resource items must be `resource`, `resource/subresource`, `*`, `*/subresource` or `resource/*` with lower-case plural resource names, and namespaces must be namespace names. An item such as `*/*`, an empty string, a kind (`Pod`) or a malformed namespace never equals a request's value, so it matches nothing and the rule covers less than it appears to. Validation accepts all of these without a word.";

/// Lints a policy. Findings are sorted by rule (policy-wide first), then most severe first.
pub fn lint(policy: &Policy) -> Vec<Finding> {
    let mut cx = Cx {
        policy,
        out: Vec::new(),
    };
    cx.verbs_and_items();
    cx.unreachable();
    cx.sensitive();
    cx.catch_all();
    cx.stages();
    cx.managed_fields();
    cx.health();
    cx.noisy();
    cx.coverage();
    cx.discovery();
    let mut out = cx.out;
    out.sort_by(|a, b| {
        (a.rule, std::cmp::Reverse(a.severity), a.code, &a.message).cmp(&(
            b.rule,
            std::cmp::Reverse(b.severity),
            b.code,
            &b.message,
        ))
    });
    out
}

struct Cx<'a> {
    policy: &'a Policy,
    out: Vec<Finding>,
}

impl Cx<'_> {
    fn line(&self, rule: usize) -> usize {
        self.policy.rule_lines.get(rule).copied().unwrap_or(0)
    }

    /// "the rule at line 12" (or "rule index 3" without line information).
    fn name(&self, rule: usize) -> String {
        match self.line(rule) {
            0 => format!("rule index {rule}"),
            l => format!("the rule at line {l}"),
        }
    }

    fn at(
        &mut self,
        rule: Option<usize>,
        severity: Severity,
        code: &'static str,
        message: String,
        why: &str,
    ) {
        let line = match rule {
            Some(i) => self.line(i),
            None => usize::from(!self.policy.rule_lines.is_empty()),
        };
        self.at_line(rule, line, severity, code, message, why);
    }

    fn at_line(
        &mut self,
        rule: Option<usize>,
        line: usize,
        severity: Severity,
        code: &'static str,
        message: String,
        why: &str,
    ) {
        self.out.push(Finding {
            rule,
            line,
            severity,
            code,
            message,
            why: why.to_string(),
        });
    }

    fn rules(&self) -> impl Iterator<Item = (usize, &PolicyRule)> {
        self.policy.rules.iter().enumerate()
    }

    fn effective_omits(&self, rule: &PolicyRule, stage: Stage) -> bool {
        self.policy.omit_stages.contains(&stage) || rule.omit_stages.contains(&stage)
    }

    fn verbs_and_items(&mut self) {
        let policy = self.policy;
        for (i, rule) in policy.rules.iter().enumerate() {
            let bad: Vec<String> = rule
                .verbs
                .iter()
                .filter_map(|v| verb_problem(v).map(|p| format!("`{v}` ({p})")))
                .collect();
            if !bad.is_empty() {
                let msg = format!(
                    "{} lists verbs no request carries: {}",
                    self.name(i),
                    bad.join(", ")
                );
                self.at(
                    Some(i),
                    Severity::Warning,
                    codes::UNKNOWN_VERB,
                    msg,
                    WHY_UNKNOWN_VERB,
                );
            }
            let mut nothing: Vec<String> = Vec::new();
            for gr in &rule.resources {
                for item in &gr.resources {
                    if let Some(p) = item_problem(item) {
                        nothing.push(format!("resource `{item}` ({p})"));
                    }
                }
            }
            for ns in &rule.namespaces {
                if !ns.is_empty() && !is_dns_label(ns) {
                    nothing.push(format!("namespace `{ns}` (not a valid namespace name)"));
                }
            }
            if !nothing.is_empty() {
                let mut msg = format!(
                    "{} has values that never match: {}",
                    self.name(i),
                    nothing.join(", ")
                );
                let dead_resources = !rule.resources.is_empty()
                    && rule.resources.iter().all(|gr| {
                        !gr.resources.is_empty()
                            && gr.resources.iter().all(|r| item_problem(r).is_some())
                    });
                let dead_namespaces = !rule.namespaces.is_empty()
                    && rule
                        .namespaces
                        .iter()
                        .all(|ns| !ns.is_empty() && !is_dns_label(ns));
                if dead_resources || dead_namespaces {
                    msg.push_str("; the rule as a whole matches no request");
                }
                self.at(
                    Some(i),
                    Severity::Warning,
                    codes::MATCHES_NOTHING,
                    msg,
                    WHY_MATCHES_NOTHING,
                );
            }
        }
    }

    fn unreachable(&mut self) {
        let policy = self.policy;
        for (i, later) in policy.rules.iter().enumerate() {
            if shape::resources_match_nothing(&later.resources) {
                continue; // reported as matches-nothing; "unreachable" would only confuse
            }
            if let Some(j) = policy.rules[..i]
                .iter()
                .position(|earlier| shape::subsumes(earlier, later))
            {
                let earlier = &policy.rules[j];
                let effect = if earlier.level == later.level {
                    format!("both are {}, so it is redundant", later.level)
                } else {
                    format!(
                        "its level {} never applies; those requests get {}",
                        later.level, earlier.level
                    )
                };
                let msg = format!(
                    "{} is unreachable: {} (earlier) matches every request it could match; {effect}",
                    self.name(i),
                    self.name(j),
                );
                self.at(
                    Some(i),
                    Severity::Warning,
                    codes::UNREACHABLE_RULE,
                    msg,
                    WHY_UNREACHABLE,
                );
            }
        }
    }

    fn catch_all(&mut self) {
        let resource = self
            .rules()
            .find(|(_, r)| shape::all_resource_requests(r))
            .map(|(i, _)| i);
        let non_resource = self
            .rules()
            .find(|(_, r)| shape::all_non_resource_requests(r))
            .map(|(i, _)| i);
        let missing = match (resource, non_resource) {
            (None, None) => Some("the policy has no catch-all rule"),
            (None, Some(_)) => Some("no rule matches every resource request"),
            (Some(_), None) => {
                Some("no rule matches every non-resource request (/api, /apis, /logs, /debug/pprof, ...)")
            }
            (Some(_), Some(_)) => None,
        };
        if let Some(what) = missing {
            let msg = if self.policy.rules.is_empty() {
                "the policy has no rules: nothing is logged".to_string()
            } else {
                format!("{what}: requests that match no rule are not logged; end the policy with `- level: Metadata`")
            };
            // Point at the last rule: the catch-all belongs after it.
            let line = self.policy.rule_lines.last().copied().unwrap_or(0);
            self.at_line(
                None,
                line,
                Severity::Warning,
                codes::NO_CATCH_ALL,
                msg,
                WHY_NO_CATCH_ALL,
            );
        }
        let mut seen = Vec::new();
        for i in [resource, non_resource].into_iter().flatten() {
            if self.policy.rules[i].level == Level::None && !seen.contains(&i) {
                seen.push(i);
                let msg = format!(
                    "{} matches everything left over at level None: requests no earlier rule selects are not logged",
                    self.name(i)
                );
                self.at(
                    Some(i),
                    Severity::Warning,
                    codes::CATCH_ALL_NONE,
                    msg,
                    WHY_CATCH_ALL_NONE,
                );
            }
        }
    }

    fn stages(&mut self) {
        let policy = self.policy;
        let logging: Vec<usize> = self
            .rules()
            .filter(|(_, r)| r.level != Level::None)
            .map(|(i, _)| i)
            .collect();
        if logging.is_empty() {
            return;
        }
        for (stage, code, why, fix) in [
            (
                Stage::RequestReceived,
                codes::REQUEST_RECEIVED_NOT_OMITTED,
                WHY_REQUEST_RECEIVED,
                false,
            ),
            (
                Stage::ResponseComplete,
                codes::RESPONSE_COMPLETE_OMITTED,
                WHY_RESPONSE_COMPLETE,
                true,
            ),
        ] {
            // fix == true: omitting the stage is the problem; false: keeping it is.
            let offending: Vec<usize> = logging
                .iter()
                .copied()
                .filter(|&i| self.effective_omits(&policy.rules[i], stage) == fix)
                .collect();
            let policy_level = policy.omit_stages.contains(&stage) == fix;
            if offending.is_empty() {
                continue;
            }
            if fix && policy_level {
                let msg = format!("the policy-level omitStages drops {stage} for every rule");
                self.at(None, Severity::Warning, code, msg, why);
            } else if !fix && offending.len() == logging.len() {
                let msg =
                    format!("{stage} is not omitted: no policy-level or rule omitStages drops it");
                self.at(None, Severity::Warning, code, msg, why);
            } else {
                for i in offending {
                    let msg = if fix {
                        format!(
                            "{} omits {stage} at level {}",
                            self.name(i),
                            policy.rules[i].level
                        )
                    } else {
                        format!(
                            "{} logs {stage} events (level {})",
                            self.name(i),
                            policy.rules[i].level
                        )
                    };
                    self.at(Some(i), Severity::Warning, code, msg, why);
                }
            }
        }
    }

    fn managed_fields(&mut self) {
        let policy = self.policy;
        let keeps: Vec<usize> = self
            .rules()
            .filter(|(_, r)| {
                r.level >= Level::Request
                    && !r.omit_managed_fields.unwrap_or(policy.omit_managed_fields)
            })
            .map(|(i, _)| i)
            .collect();
        if keeps.is_empty() {
            return;
        }
        if !policy.omit_managed_fields {
            let msg = "omitManagedFields is not set: logged request and response bodies keep metadata.managedFields".to_string();
            self.at(
                None,
                Severity::Info,
                codes::MANAGED_FIELDS_LOGGED,
                msg,
                WHY_MANAGED_FIELDS,
            );
        } else {
            for i in keeps {
                let msg = format!(
                    "{} sets omitManagedFields: false at level {}",
                    self.name(i),
                    policy.rules[i].level
                );
                self.at(
                    Some(i),
                    Severity::Info,
                    codes::MANAGED_FIELDS_LOGGED,
                    msg,
                    WHY_MANAGED_FIELDS,
                );
            }
        }
    }
}

/// Why a verb never matches a request, if it does not.
fn verb_problem(verb: &str) -> Option<&'static str> {
    const REQUEST_VERBS: &[&str] = &[
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
        "proxy",
        // non-resource requests: lower-case HTTP methods
        "post",
        "put",
        "head",
        "options",
        "connect",
        "trace",
    ];
    const RBAC_ONLY: &[&str] = &[
        "impersonate",
        "escalate",
        "bind",
        "approve",
        "sign",
        "use",
        "attest",
    ];
    if REQUEST_VERBS.contains(&verb) {
        None
    } else if verb == "*" {
        Some("policy verbs have no wildcard; omit `verbs` to match every verb")
    } else if RBAC_ONLY.contains(&verb) {
        Some("an RBAC authorization verb, never a request's verb")
    } else if REQUEST_VERBS.contains(&verb.to_ascii_lowercase().as_str()) {
        Some("verbs are case-sensitive and lower-case")
    } else {
        Some("not a Kubernetes verb or HTTP method")
    }
}

/// Why a resources item never matches a real request, if it does not.
fn item_problem(item: &str) -> Option<&'static str> {
    if item == "*/*" {
        Some("matches nothing; `*` matches every resource and subresource")
    } else if item.is_empty() {
        Some("empty")
    } else if item.chars().any(|c| c.is_ascii_uppercase()) {
        Some("resources are lower-case plurals, e.g. `pods`, not `Pod`")
    } else if item.chars().any(|c| c.is_whitespace()) {
        Some("contains whitespace")
    } else if item.starts_with('/') || item.ends_with('/') || item.matches('/').count() > 1 {
        Some("expected `resource` or `resource/subresource`")
    } else {
        None
    }
}

fn is_dns_label(s: &str) -> bool {
    s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}
