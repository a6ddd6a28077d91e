//! The gaps of a rule turned into one finding: what is blind and why, grouped by the policy
//! rule that decided, and the fix (a policy rule to add, stages to keep), or acceptance where
//! the fix would log secret values.

use std::collections::{BTreeMap, BTreeSet};

use vigil_model::{Level, Stage};
use vigil_policy::Policy;

use super::probe::{callers, gaps, level_name, Gap};
use super::{Probe, RuleNeeds};
use crate::cmd::readiness::{Finding, Sev};

/// Resources whose bodies must not be logged (secret values): a rule reading them stays blind
/// by design.
fn sensitive(p: &Probe) -> bool {
    (p.group.is_empty() && matches!(p.resource.as_str(), "secrets" | "configmaps"))
        || matches!(p.resource.as_str(), "tokenreviews")
        || p.subresource == "token"
}

/// A policy rule (one YAML line, flow style) that logs what the gaps miss.
fn suggested_rule(level: Level, gaps: &[&Gap]) -> String {
    let verbs: BTreeSet<&str> = gaps.iter().map(|g| g.probe.verb.as_str()).collect();
    let mut by_group: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for g in gaps {
        by_group
            .entry(g.probe.group.as_str())
            .or_default()
            .insert(g.probe.resource_label());
    }
    let resources: Vec<String> = by_group
        .iter()
        .map(|(g, rs)| {
            format!(
                "{{group: \"{g}\", resources: [{}]}}",
                rs.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    format!(
        "- {{level: {}, verbs: [{}], resources: [{}]}}",
        level_name(level),
        verbs.into_iter().collect::<Vec<_>>().join(", "),
        resources.join(", ")
    )
}

/// "the rule at line 5" / "no rule (level None)".
fn decider(policy: &Policy, rule: Option<usize>) -> String {
    match rule {
        Some(i) => match policy.rule_lines.get(i) {
            Some(l) if *l > 0 => format!("the rule at line {l}"),
            _ => format!("rule {i}"),
        },
        None => "no rule".to_string(),
    }
}

fn list(items: &[String], max: usize) -> String {
    if items.len() <= max {
        items.join(", ")
    } else {
        format!("{} and {} more", items[..max].join(", "), items.len() - max)
    }
}

/// Requests blind for the same reason, and the callers concerned.
type Group<'a> = (Vec<String>, BTreeSet<&'a str>);

/// One finding per built-in rule the policy leaves (partly) blind.
pub fn findings(policy: &Policy, rules: &[RuleNeeds]) -> Vec<Finding> {
    let mut out = Vec::new();
    for r in rules {
        let gs = gaps(policy, r);
        if gs.is_empty() {
            continue;
        }
        let blind_probes: BTreeSet<&Probe> = gs.iter().map(|g| &g.probe).collect();
        let n_callers = callers(r).len();
        let all = blind_probes.len() == r.probes.len();
        // Grouped by (why, which policy rule decided).
        let mut groups: BTreeMap<(String, Option<usize>), Group> = BTreeMap::new();
        for g in &gs {
            let e = groups.entry((g.reason.clone(), g.rule)).or_default();
            let label = g.probe.label();
            if !e.0.contains(&label) {
                e.0.push(label);
            }
            e.1.extend(g.callers.iter().map(String::as_str));
        }
        let parts: Vec<String> = groups
            .iter()
            .map(|((reason, rule), (labels, callers))| {
                let who = if callers.len() == n_callers {
                    String::new()
                } else {
                    format!(
                        ", when made by {}",
                        callers.iter().copied().collect::<Vec<_>>().join(" or ")
                    )
                };
                match rule {
                    Some(_) => format!(
                        "{}: {reason} by {}{who}",
                        list(labels, 4),
                        decider(policy, *rule)
                    ),
                    None => format!("{}: not logged, no rule matches{who}", list(labels, 4)),
                }
            })
            .collect();
        let need = gs.iter().map(|g| g.need).max().unwrap_or(Level::Metadata);
        let reads = match (&r.body_field, need > Level::Metadata) {
            (Some(f), true) => format!("; it reads {f}, which needs level {}", level_name(need)),
            _ => String::new(),
        };
        let yours = if r.origin.starts_with("builtin:") {
            String::new()
        } else {
            format!(" ({})", r.origin)
        };
        let what = format!(
            "{} rule \"{}\"{yours} is {}: {}{reads}",
            r.level,
            r.title,
            if all { "blind" } else { "partly blind" },
            parts.join("; ")
        );
        // Too low a level (or none), and stages omitted: each has its own fix.
        let (stage_gaps, level_gaps): (Vec<&Gap>, Vec<&Gap>) = gs
            .iter()
            .partition(|g| g.reason.starts_with("ResponseComplete") || g.reason.contains("stage"));
        let all_sensitive = !level_gaps.is_empty()
            && stage_gaps.is_empty()
            && level_gaps.iter().all(|g| sensitive(&g.probe))
            && need >= Level::Request;
        let first_rule = gs.iter().filter_map(|g| g.rule).min();
        let mut fixes = Vec::new();
        if !level_gaps.is_empty() {
            let level_need = level_gaps
                .iter()
                .map(|g| g.need)
                .max()
                .unwrap_or(Level::Metadata);
            let fix_level = level_need.max(Level::Metadata);
            let place = match level_gaps
                .iter()
                .filter_map(|g| g.rule)
                .min()
                .and_then(|i| policy.rule_lines.get(i))
            {
                Some(l) if *l > 0 => format!("above the rule at line {l}"),
                _ => "before the final catch-all".to_string(),
            };
            fixes.push(format!(
                "log them at {}: add `{}` {place}",
                level_name(fix_level),
                suggested_rule(fix_level, &level_gaps)
            ));
        }
        if !stage_gaps.is_empty() {
            let policy_wide = policy.omit_stages.contains(&Stage::ResponseComplete);
            let rules: BTreeSet<String> = stage_gaps
                .iter()
                .filter(|g| g.rule.is_some())
                .map(|g| decider(policy, g.rule))
                .collect();
            fixes.push(if policy_wide {
                "keep the ResponseComplete stage (it carries the response code the rule tests): remove it from the policy-level omitStages".to_string()
            } else {
                format!(
                    "keep the ResponseComplete stage (it carries the response code the rule tests): remove it from omitStages of {}",
                    rules.into_iter().collect::<Vec<_>>().join(" and ")
                )
            });
        }
        let (sev, fix) = if all_sensitive {
            (
                Sev::Info,
                format!(
                    "accept it: logging the bodies of {} at {} would write secret values into the audit log (lint: sensitive-data-logged); cover it with admission control instead",
                    level_gaps[0].probe.resource_label(),
                    level_name(need)
                ),
            )
        } else {
            let sev = match (all, r.level.as_str()) {
                (true, "high" | "critical") => Sev::Error,
                (_, "informational") => Sev::Info,
                _ => Sev::Warning,
            };
            (sev, fixes.join("; and "))
        };
        out.push(Finding {
            id: "blind-detection".into(),
            severity: sev,
            what,
            fix,
            rule: Some(r.id.clone()),
            line: first_rule
                .and_then(|i| policy.rule_lines.get(i).copied())
                .filter(|l| *l > 0),
        });
    }
    out
}
