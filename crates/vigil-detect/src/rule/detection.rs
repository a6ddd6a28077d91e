//! Reading a rule's `detection` section (and a filter's `filter` section, which has the same
//! search identifiers and a condition): its logsource, search identifiers and conditions, kept
//! as YAML with lines for `compile` to read. Apart from the document-level reading because
//! each section has its own shape and errors.

use vigil_model::yaml::{Node, Value as Y};

use super::{key_line, text, Detection, FilterDef};
use crate::error::Problem;
use crate::mapping::LogSource;

pub(super) fn detection(root: &Node, det: &Node, line: usize) -> Result<Detection, Problem> {
    if det.as_map().is_none() {
        return Err(Problem::invalid(
            det.line,
            format!("`detection` must be a mapping, not {}", det.kind_name()),
        ));
    }
    let (logsource, logsource_line) = logsource(root, line)?;
    let cond = det.get("condition").ok_or_else(|| {
        Problem::invalid(
            key_line(root, "detection").unwrap_or(det.line),
            "`detection` has no `condition`",
        )
    })?;
    let conditions = conditions(cond)?;
    let timeframe = det
        .get("timeframe")
        .or_else(|| root.get("timeframe"))
        .and_then(|n| text(n).map(|t| (t, n.line)));
    let selections = selections(det, &["condition", "timeframe"]);
    if selections.is_empty() {
        return Err(Problem::invalid(
            det.line,
            "`detection` has no search identifiers",
        ));
    }
    Ok(Detection {
        logsource,
        logsource_line,
        selections,
        conditions,
        timeframe,
    })
}

pub(super) fn filter(root: &Node, f: &Node, line: usize) -> Result<FilterDef, Problem> {
    let (logsource, _) = logsource(root, line)?;
    let rules_node = f.get("rules").ok_or_else(|| {
        Problem::invalid(f.line, "a filter needs `rules` (ids or names, or `any`)")
    })?;
    let rules = match &rules_node.value {
        Y::Scalar(s) if matches!(s.text.to_lowercase().as_str(), "any" | "all") => None,
        Y::Scalar(s) if !s.is_null() => Some(vec![(s.text.clone(), rules_node.line)]),
        Y::Seq(items) if items.is_empty() => None,
        Y::Seq(items) => Some(
            items
                .iter()
                .filter_map(|i| text(i).map(|t| (t, i.line)))
                .collect(),
        ),
        _ => {
            return Err(Problem::invalid(
                rules_node.line,
                "filter `rules` must be `any`, a rule id or name, or a list of them",
            ))
        }
    };
    let cond = f
        .get("condition")
        .ok_or_else(|| Problem::invalid(f.line, "a filter needs a `condition`"))?;
    let condition = match cond.as_scalar() {
        Some(s) if !s.is_null() => (s.text.clone(), cond.line),
        _ => {
            return Err(Problem::invalid(
                cond.line,
                "a filter condition must be a string",
            ))
        }
    };
    Ok(FilterDef {
        logsource,
        rules,
        selections: selections(f, &["condition", "rules"]),
        condition,
    })
}

fn logsource(root: &Node, line: usize) -> Result<(LogSource, usize), Problem> {
    let Some(ls) = root.get("logsource") else {
        return Err(Problem::invalid(line, "missing `logsource`"));
    };
    if ls.as_map().is_none() {
        return Err(Problem::invalid(
            ls.line,
            format!("`logsource` must be a mapping, not {}", ls.kind_name()),
        ));
    }
    let g = |k: &str| ls.get(k).and_then(text).map(|s| s.to_lowercase());
    Ok((
        LogSource {
            product: g("product"),
            service: g("service"),
            category: g("category"),
        },
        ls.line,
    ))
}

fn selections(det: &Node, skip: &[&str]) -> Vec<(String, Node)> {
    det.as_map()
        .unwrap_or(&[])
        .iter()
        .filter_map(|(k, v)| {
            let name = k.as_scalar()?.text.clone();
            (!skip.contains(&name.as_str())).then(|| (name, v.clone()))
        })
        .collect()
}

fn conditions(n: &Node) -> Result<Vec<(String, usize)>, Problem> {
    match &n.value {
        Y::Scalar(s) if !s.is_null() => Ok(vec![(s.text.clone(), n.line)]),
        Y::Seq(items) if !items.is_empty() => items
            .iter()
            .map(|i| {
                i.as_scalar()
                    .filter(|s| !s.is_null())
                    .map(|s| (s.text.clone(), i.line))
                    .ok_or_else(|| Problem::invalid(i.line, "a condition must be a string"))
            })
            .collect(),
        _ => Err(Problem::invalid(
            n.line,
            "`condition` must be a string or a list of strings",
        )),
    }
}
