//! The built-in rule pack, embedded at build time from `rules/` (see `build.rs`).

use std::collections::HashMap;

use vigil_model::yaml::parse_document;

use crate::{CorrelationState, Event, RuleKind, RuleSet, RuleSource};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/builtin_rules.rs"));
}

/// Every built-in rule file, as `(path under rules/, YAML text)`.
pub fn rule_files() -> &'static [(&'static str, &'static str)] {
    embedded::RULES
}

/// The built-in rules, ready for [`crate::RuleSet::compile`]; origins read `builtin:<path>`.
pub fn rules() -> Vec<RuleSource> {
    embedded::RULES
        .iter()
        .map(|(path, text)| RuleSource::new(format!("builtin:{path}"), *text))
        .collect()
}

/// Fixtures of the built-in rules: `(rule file under rules/, fixture file name, JSON text)`.
/// A fixture named `match-*` must fire its rule, `nomatch-*` must not. A `*.json` fixture is
/// one event; a `*.jsonl` fixture is a sequence of events, one per line (for correlations).
pub fn fixtures() -> &'static [(&'static str, &'static str, &'static str)] {
    embedded::FIXTURES
}

/// The rule that the fixtures of rule file `origin` test: the file's reporting correlation
/// when it has one (a correlation file may also hold the rules it references), else its first
/// rule.
pub fn fixture_target(set: &RuleSet, origin: &str) -> Option<usize> {
    let from_file = || {
        set.rules()
            .iter()
            .enumerate()
            .filter(move |(_, r)| r.origin == origin)
    };
    from_file()
        .find(|(_, r)| r.kind == RuleKind::Correlation && r.alerts)
        .or_else(|| from_file().next())
        .map(|(i, _)| i)
}

/// Whether rule `idx` fires on a fixture. A `*.json` fixture is one event of the rule's first
/// dataset. A `*.jsonl` fixture is a sequence of events, one JSON document per line, each read
/// as the dataset its `event.dataset` names (normalized documents carry it), as `k8s.audit`
/// when its `apiVersion` is `audit.k8s.io/...`, or else as the rule's first dataset; the stream is ended after the last line, so every correlation window is
/// judged. Errors name a line that is not a JSON object.
pub fn fixture_fires(set: &RuleSet, idx: usize, name: &str, text: &str) -> Result<bool, String> {
    let info = &set.rules()[idx];
    let default_ds = info.datasets.first().map_or("k8s.audit", String::as_str);
    let single = !name.ends_with(".jsonl") && info.kind == RuleKind::Detection;
    if single {
        let ev = Event::from_raw(default_ds, text.trim());
        if ev.doc().is_none() {
            return Err(format!("{name}: not a JSON object"));
        }
        if info.alerts {
            let mut out = Vec::new();
            set.evaluate(&ev, &mut out);
            return Ok(out.iter().any(|m| m.rule == idx));
        }
        // A rule that only feeds correlations does not report on its own: ask it directly.
        return Ok(set.explain(idx, &ev).is_some_and(|e| e.matched));
    }
    let mut st = CorrelationState::new();
    let (mut out, mut alerts) = (Vec::new(), Vec::new());
    let mut fired = false;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let doc: serde_json::Value = serde_json::from_str(line)
            .ok()
            .filter(serde_json::Value::is_object)
            .ok_or_else(|| format!("{name}:{}: not a JSON object", n + 1))?;
        let audit = doc
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .is_some_and(|v| v.starts_with("audit.k8s.io/"));
        let ds = match doc.pointer("/event/dataset").and_then(|v| v.as_str()) {
            Some(ds) => ds,
            None if audit => "k8s.audit",
            None => default_ds,
        };
        out.clear();
        set.process(
            &Event::with_raw(ds, &doc, line),
            &mut st,
            &mut out,
            &mut alerts,
        );
        fired |= out.iter().any(|m| m.rule == idx);
    }
    set.flush(&mut st, i64::MAX, &mut alerts);
    Ok(fired || alerts.iter().any(|a| a.rule == idx))
}

/// The default values of the pack's `|expand` placeholders (`rules/placeholders.yaml`).
pub fn placeholders() -> HashMap<String, Vec<String>> {
    parse_placeholders(embedded::PLACEHOLDERS).expect("built-in placeholders.yaml is valid")
}

/// Parses a placeholders file: a mapping of name to a list of strings (or a single string).
pub fn parse_placeholders(text: &str) -> Result<HashMap<String, Vec<String>>, String> {
    let doc = parse_document(text).map_err(|e| e.to_string())?;
    let mut out = HashMap::new();
    let Some(doc) = doc else { return Ok(out) };
    let entries = doc.as_map().ok_or_else(|| {
        format!(
            "line {}: expected a mapping of placeholder name to a list of values",
            doc.line
        )
    })?;
    for (key, value) in entries {
        let name = key
            .as_scalar()
            .map(|s| s.text.clone())
            .ok_or_else(|| format!("line {}: a placeholder name must be a string", key.line))?;
        let values = match (value.as_seq(), value.as_scalar()) {
            (Some(items), _) => items
                .iter()
                .map(|i| {
                    i.as_scalar().map(|s| s.text.clone()).ok_or_else(|| {
                        format!(
                            "line {}: placeholder {name}: expected a string, found {}",
                            i.line,
                            i.kind_name()
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            (None, Some(s)) if s.is_null() => Vec::new(),
            (None, Some(s)) => vec![s.text.clone()],
            _ => {
                return Err(format!(
                    "line {}: placeholder {name}: expected a list of strings",
                    value.line
                ))
            }
        };
        out.insert(name, values);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    /// Every built-in rule compiles; every rule file has fixtures; the rule each file's
    /// fixtures test fires on every `match-*` fixture and on no `nomatch-*` one (with and
    /// without the prefilter). Fixtures are read as their rule's dataset; correlation fixtures
    /// are event sequences.
    #[test]
    fn builtin_pack_compiles_and_passes_its_fixtures() {
        for prefilter in [true, false] {
            let cfg = Config {
                placeholders: placeholders(),
                prefilter,
                ..Config::default()
            };
            let (set, errors) = RuleSet::compile(&rules(), &cfg);
            assert!(errors.is_empty(), "{errors:#?}");
            assert!(set.rules().len() >= 60);
            let mut with_fixtures = std::collections::HashSet::new();
            for (rule_file, name, json) in fixtures() {
                let origin = format!("builtin:{rule_file}");
                let idx = fixture_target(&set, &origin)
                    .unwrap_or_else(|| panic!("fixture {name} names unknown rule {rule_file}"));
                with_fixtures.insert(origin);
                let fired = fixture_fires(&set, idx, name, json).unwrap();
                assert_eq!(
                    fired,
                    name.starts_with("match"),
                    "{rule_file}: fixture {name} (prefilter {prefilter})"
                );
            }
            for r in set.rules() {
                assert!(
                    with_fixtures.contains(&r.origin),
                    "{} has no fixtures",
                    r.origin
                );
            }
        }
    }

    #[test]
    fn placeholder_files_are_checked() {
        assert!(parse_placeholders("a: [x, y]\nb: z\nc:\n").is_ok());
        let err = parse_placeholders("a: [x, {y: 1}]").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
    }
}
