//! Loading a policy file exactly as kube-apiserver's `--audit-policy-file` reader accepts or
//! rejects it, while reporting what it silently changes.
//!
//! The apiserver: converts YAML to JSON (YAML 1.1 scalars, see [`crate::gojson`]); sniffs
//! `apiVersion`/`kind` (case-insensitively, and a missing kind defaults to Policy); decodes
//! strictly, and if that fails only because of unknown or duplicate fields, decodes again
//! leniently and drops them with a log line nobody reads; validates; refuses 0 rules.
//! Vigil accepts and rejects the same files, and turns each silent drop into a [`Warning`]
//! naming the line and the consequence.
//!
//! [`Warning`]: Severity::Warning

use std::fmt;

use serde::Serialize;
use vigil_model::yaml::parse_documents;
use vigil_model::{Level, Stage};

use crate::decode::{Decoder, RawPolicy};
use crate::escapes;
use crate::gojson::{self, GNode, GVal};
use crate::prescan;
use crate::types::{GroupResources, Policy, PolicyRule};
use crate::validate::validate_raw;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Severity {
    Info,
    Warning,
    Error,
}

/// One finding about a policy file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    /// 1-based line in the file (0 when there is no file, e.g. a policy built in code).
    pub line: usize,
    /// Path of the field, e.g. `rules[2].resources[0].group`; empty for the whole file.
    pub field: String,
    pub severity: Severity,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// A policy the apiserver would accept, and what it would silently drop or assume.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub policy: Policy,
    pub warnings: Vec<Diagnostic>,
}

/// A policy the apiserver would refuse to start with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct LoadError {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "invalid audit policy ({n} error{})",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            write!(f, "\n{e}")?;
        }
        Ok(())
    }
}

const API_VERSION: &str = "audit.k8s.io/v1";

fn diag(line: usize, field: &str, severity: Severity, message: impl Into<String>) -> Diagnostic {
    Diagnostic {
        line,
        field: field.to_string(),
        severity,
        message: message.into(),
    }
}

/// Go's encoding/json matches struct fields case-insensitively with Unicode simple folding;
/// besides ASCII, `ſ` folds to `s` and the Kelvin sign to `k`.
fn fold_eq(key: &str, name: &str) -> bool {
    let fold = |c: char| match c {
        '\u{17F}' => 's',
        '\u{212A}' => 'k',
        c => c.to_ascii_lowercase(),
    };
    key.chars().map(fold).eq(name.chars().map(fold))
}

/// The apiserver finds the type with plain encoding/json before decoding: keys match
/// case-insensitively, every matching key is decoded (so any of them with a non-string value
/// fails the load) and the last one wins. After YAML-to-JSON the keys are sorted, so for YAML
/// input "last" is the greatest key; for JSON input it is the last in the file.
fn sniff<'a>(root: &'a GNode, name: &str, json_mode: bool) -> Vec<(&'a GNode, usize)> {
    let Some(entries) = root.entries() else {
        return Vec::new();
    };
    let mut matching: Vec<_> = entries.iter().filter(|e| fold_eq(&e.key, name)).collect();
    if !json_mode {
        matching.sort_by(|a, b| a.key.cmp(&b.key));
    }
    let mut values = Vec::new();
    for e in matching {
        // JSON input keeps replaced duplicates for the decoder to see; YAML input does not.
        if json_mode {
            values.extend(e.earlier.iter().map(|v| (v, e.line)));
        }
        values.push((&e.value, e.line));
    }
    values
}

/// Checks `apiVersion` and `kind` the way the apiserver's type sniffing does.
fn check_type(
    root: &GNode,
    json_mode: bool,
    errors: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
) {
    if !matches!(root.v, GVal::Map(_) | GVal::Null) {
        errors.push(diag(
            root.line,
            "",
            Severity::Error,
            format!(
                "expected a Policy mapping (apiVersion: {API_VERSION}, kind: Policy, rules: [...]), found {}",
                root.kind_name()
            ),
        ));
        return;
    }
    let text = |name: &str, errors: &mut Vec<Diagnostic>| -> (String, usize, bool) {
        let mut found = (String::new(), root.line, false);
        for (v, line) in sniff(root, name, json_mode) {
            found = match &v.v {
                GVal::Str(s) => (s.clone(), line, true),
                GVal::Null => (String::new(), line, true),
                _ => {
                    errors.push(diag(
                        v.line,
                        name,
                        Severity::Error,
                        format!(
                            "expected a string, found {} (the apiserver reads every key spelled {name:?} in any case to find the type)",
                            v.kind_name()
                        ),
                    ));
                    (String::new(), line, true)
                }
            };
        }
        found
    };
    let (api_version, av_line, _) = text("apiVersion", errors);
    let (kind, kind_line, kind_present) = text("kind", errors);
    if api_version.is_empty() {
        errors.push(diag(
            av_line,
            "apiVersion",
            Severity::Error,
            format!("apiVersion is missing: expected {API_VERSION}"),
        ));
    } else if api_version != API_VERSION {
        let mut msg = format!("unsupported apiVersion {api_version:?}: expected {API_VERSION}");
        if api_version.starts_with("audit.k8s.io/") {
            msg.push_str(" (v1alpha1 and v1beta1 are no longer served)");
        }
        errors.push(diag(av_line, "apiVersion", Severity::Error, msg));
    }
    if kind.is_empty() {
        // The decoder fills a missing kind in from the target type, so the file still loads.
        let how = if kind_present { "empty" } else { "missing" };
        warnings.push(diag(
            kind_line,
            "kind",
            Severity::Warning,
            format!("kind is {how}: the apiserver assumes Policy; write `kind: Policy`"),
        ));
    } else if kind != "Policy" {
        errors.push(diag(
            kind_line,
            "kind",
            Severity::Error,
            format!("unsupported kind {kind:?}: expected Policy (a PolicyList is not accepted)"),
        ));
    }
}

/// True when the apiserver would read the file as JSON: its first non-space character is `{`.
fn is_json(text: &str) -> bool {
    text.trim_start().starts_with('{')
}

/// Parses, decodes and validates a policy file with kube-apiserver's semantics.
pub fn load_policy(text: &str) -> Result<Loaded, LoadError> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let fail = |errors, warnings| Err(LoadError { errors, warnings });

    // go-yaml skips a UTF-8 byte-order mark; the apiserver's JSON sniffing does not look past
    // one, so such a file is always read as YAML.
    let (text, bom) = match text.strip_prefix('\u{feff}') {
        Some(rest) => (rest, true),
        None => (text, false),
    };
    let json_mode = !bom && is_json(text);
    if json_mode {
        // Such a file goes to the JSON decoder, which is stricter than YAML flow syntax.
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
            let msg = format!("the file starts with '{{', so the apiserver reads it as JSON, but it is not valid JSON: {e}");
            return fail(vec![diag(e.line(), "", Severity::Error, msg)], warnings);
        }
    }
    if let Some(line) = prescan::too_deep(text) {
        let msg = format!(
            "the YAML nests deeper than {} levels; Vigil refuses such a file rather than risk its stack",
            prescan::MAX_BLOCK_DEPTH
        );
        return fail(vec![diag(line, "", Severity::Error, msg)], warnings);
    }
    let docs = match parse_documents(text) {
        Ok(docs) => docs,
        Err(e) => {
            // A broken later document does not matter: go-yaml never reads past the first.
            let first = prescan::first_document(text)
                .filter(|first| e.line > first.lines().count())
                .and_then(|first| parse_documents(first).ok());
            match first {
                Some(docs) => {
                    warnings.push(diag(
                        e.line,
                        "",
                        Severity::Warning,
                        format!(
                            "a later YAML document is invalid (column {}: {}); the apiserver reads only the first document, so it is ignored",
                            e.col, e.message
                        ),
                    ));
                    docs
                }
                None => {
                    let msg = format!("invalid YAML at column {}: {}", e.col, e.message);
                    return fail(vec![diag(e.line, "", Severity::Error, msg)], warnings);
                }
            }
        }
    };
    let Some(first) = docs.first() else {
        let msg =
            "the policy file is empty: the apiserver refuses to start without a policy with rules";
        return fail(vec![diag(1, "", Severity::Error, msg)], warnings);
    };
    for doc in &docs[1..] {
        warnings.push(diag(
            doc.line,
            "",
            Severity::Warning,
            "the apiserver reads only the first YAML document of a policy file; this document is ignored",
        ));
    }
    if !json_mode {
        let bad = escapes::yaml11_escape_errors(text, &first.root);
        if !bad.is_empty() {
            errors.extend(
                bad.into_iter()
                    .map(|(line, m)| diag(line, "", Severity::Error, m)),
            );
            return fail(errors, warnings);
        }
    }
    let converted = match gojson::convert(&first.root, json_mode) {
        Ok(c) => c,
        Err(errs) => {
            errors.extend(
                errs.into_iter()
                    .map(|e| diag(e.line, "", Severity::Error, e.message)),
            );
            return fail(errors, warnings);
        }
    };
    for d in converted.duplicates {
        warnings.push(diag(
            d.line,
            &d.path,
            Severity::Warning,
            format!(
                "duplicate key {:?} (first set on line {}): the apiserver keeps only this last value",
                d.key, d.first_line
            ),
        ));
    }
    let root = converted.root;
    check_type(&root, json_mode, &mut errors, &mut warnings);
    if !errors.is_empty() {
        return fail(errors, warnings);
    }

    let mut decoder = Decoder::new(json_mode);
    let raw = decoder.policy(&root);
    warnings.extend(decoder.warnings);
    // The apiserver stops at the first failing phase; Vigil goes on to validate what did
    // decode, so one run shows every problem, leaving out what only echoes a decode error
    // (a level of the wrong type is also, to validation, a missing level).
    let decode_failed = |field: &str| decoder.errors.iter().any(|e| overlaps(&e.field, field));
    let validation: Vec<Diagnostic> = validate_raw(&raw)
        .into_iter()
        .filter(|v| {
            // "resourceNames without resources" also follows from a sibling `resources` that
            // failed to decode.
            let entry = v.field.strip_suffix(".resourceNames").unwrap_or(&v.field);
            !decode_failed(entry)
        })
        .collect();
    errors.extend(decoder.errors.iter().cloned());
    errors.extend(validation);
    if raw.rules.is_empty() && !decode_failed("rules") {
        errors.push(diag(
            raw.rules_line,
            "rules",
            Severity::Error,
            "the policy has no rules: the apiserver refuses a policy with 0 rules (end with a catch-all such as `- level: Metadata`)",
        ));
    }
    warnings.sort_by_key(|w| w.line);
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.line);
        return fail(errors, warnings);
    }
    Ok(Loaded {
        policy: build(&raw),
        warnings,
    })
}

/// Whether two field paths are the same field or one contains the other.
fn overlaps(a: &str, b: &str) -> bool {
    let within = |inner: &str, outer: &str| {
        inner
            .strip_prefix(outer)
            .is_some_and(|rest| outer.is_empty() || rest.is_empty() || rest.starts_with(['.', '[']))
    };
    within(a, b) || within(b, a)
}

/// The typed policy from a validated raw one (levels and stages are known to parse).
fn build(raw: &RawPolicy) -> Policy {
    let stages = |l: &crate::decode::StrList| -> Vec<Stage> {
        l.items
            .iter()
            .filter_map(|s| s.value.parse().ok())
            .collect()
    };
    Policy {
        rules: raw
            .rules
            .iter()
            .map(|r| PolicyRule {
                level: r.level.value.parse().unwrap_or(Level::None),
                users: r.users.values(),
                user_groups: r.user_groups.values(),
                verbs: r.verbs.values(),
                resources: r
                    .resources
                    .iter()
                    .map(|g| GroupResources {
                        group: g.group.value.clone(),
                        resources: g.resources.values(),
                        resource_names: g.resource_names.values(),
                    })
                    .collect(),
                namespaces: r.namespaces.values(),
                non_resource_urls: r.non_resource_urls.values(),
                omit_stages: stages(&r.omit_stages),
                omit_managed_fields: r.omit_managed_fields,
            })
            .collect(),
        omit_stages: stages(&raw.omit_stages),
        omit_managed_fields: raw.omit_managed_fields,
        rule_lines: raw.rules.iter().map(|r| r.line).collect(),
    }
}
