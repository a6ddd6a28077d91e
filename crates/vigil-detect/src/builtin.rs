//! The built-in rule pack, embedded at build time from `rules/` (see `build.rs`).

use std::collections::HashMap;

use vigil_model::yaml::parse_document;

use crate::RuleSource;

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
/// A fixture named `match-*` must fire its rule, `nomatch-*` must not.
pub fn fixtures() -> &'static [(&'static str, &'static str, &'static str)] {
    embedded::FIXTURES
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
    use crate::{Config, Event, RuleSet};

    /// Every built-in rule compiles, and fires on each of its `match-*` fixtures and on none of
    /// its `nomatch-*` ones (with and without the prefilter).
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
                let idx = set
                    .rules()
                    .iter()
                    .position(|r| r.origin == format!("builtin:{rule_file}"))
                    .unwrap_or_else(|| panic!("fixture {name} names unknown rule {rule_file}"));
                with_fixtures.insert(idx);
                let mut out = Vec::new();
                set.evaluate(&Event::from_raw("k8s.audit", json), &mut out);
                let fired = out.iter().any(|m| m.rule == idx);
                assert_eq!(
                    fired,
                    name.starts_with("match"),
                    "{rule_file}: fixture {name} (prefilter {prefilter})"
                );
            }
            for (i, r) in set.rules().iter().enumerate() {
                assert!(with_fixtures.contains(&i), "{} has no fixtures", r.origin);
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
