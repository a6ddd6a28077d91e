//! Compiling one selection (search identifier) of a detection rule for one dataset: its YAML
//! values, the dataset's value rewrites and field mappings, and `value::compile`'s matchers
//! become a [`SelNode`] tree. Apart from the driver because this is the step that reads the
//! rule's values and the dataset's field names; `correlation::build` maps its fields with the
//! same `map_paths`.

use std::collections::HashMap;

use vigil_model::yaml::{Node, Value as Y};

use super::{Item, SelNode};
use crate::error::{Problem, RejectKind};
use crate::event::FieldPath;
use crate::mapping::DatasetSpec;
use crate::value::{self, Matcher, RawValue};

/// What compiling for one dataset needs besides the rule.
pub(super) struct Ctx<'a> {
    pub(super) spec: &'a DatasetSpec,
    pub(super) placeholders: &'a HashMap<String, Vec<String>>,
}

fn raw_value(n: &Node) -> Result<RawValue, Problem> {
    let Some(s) = n.as_scalar() else {
        return Err(Problem::invalid(
            n.line,
            format!("a value must be a scalar, not {}", n.kind_name()),
        ));
    };
    if s.quoted || s.tag.is_some() {
        return Ok(RawValue::Str(s.text.clone()));
    }
    if s.is_null() {
        return Ok(RawValue::Null);
    }
    if let Some(b) = s.as_bool() {
        return Ok(RawValue::Bool(b));
    }
    if let Some(i) = s.as_i64() {
        return Ok(RawValue::Num(i as f64, s.text.clone()));
    }
    if let Some(f) = s.as_f64() {
        if f.is_finite() {
            return Ok(RawValue::Num(f, s.text.clone()));
        }
    }
    Ok(RawValue::Str(s.text.clone()))
}

fn values_of(n: &Node) -> Result<Vec<RawValue>, Problem> {
    match &n.value {
        Y::Seq(items) => {
            if items.is_empty() {
                return Err(Problem::invalid(n.line, "an empty list of values"));
            }
            items.iter().map(raw_value).collect()
        }
        Y::Map(_) => Err(Problem::invalid(
            n.line,
            "a field's value cannot be a mapping",
        )),
        Y::Scalar(_) => Ok(vec![raw_value(n)?]),
    }
}

fn value_problem(line: usize, e: String) -> Problem {
    match e.strip_prefix("placeholder:") {
        Some(rest) => Problem::new(line, RejectKind::UndefinedPlaceholder, rest),
        None => Problem::invalid(line, e),
    }
}

pub(crate) fn map_paths(spec: &DatasetSpec, field: &str) -> Vec<FieldPath> {
    match spec.fields.get(field) {
        Some(ps) => ps.iter().map(|p| FieldPath::new(p)).collect(),
        None => vec![FieldPath::new(field)],
    }
}

fn compile_item(key: &str, val: &Node, cx: &Ctx, line: usize) -> Result<SelNode, Problem> {
    let mut parts = key.split('|');
    let field = parts.next().unwrap_or("").to_string();
    let mods: Vec<String> = parts.map(|m| m.trim().to_ascii_lowercase()).collect();
    let values = values_of(val)?;
    let keyword = field.is_empty();
    // Value rewrites of the dataset (a value that means another field).
    let mut rewritten = Vec::new();
    let mut kept = Vec::new();
    for v in values {
        let text = match &v {
            RawValue::Str(s) => Some(s.as_str()),
            RawValue::Num(_, t) => Some(t.as_str()),
            _ => None,
        };
        let rw = text.and_then(|t| {
            cx.spec
                .values
                .iter()
                .find(|r| r.field == field && r.value.eq_ignore_ascii_case(t))
        });
        match rw {
            Some(r) => rewritten.push((r.to_field.clone(), RawValue::Str(r.to_value.clone()))),
            None => kept.push(v),
        }
    }
    let all = mods.iter().any(|m| m == "all");
    let build = |field: &str, values: &[RawValue]| -> Result<Item, Problem> {
        let c = value::compile(&mods, values, keyword, cx.placeholders)
            .map_err(|e| value_problem(line, e))?;
        let mut matchers = c.matchers;
        for m in &mut matchers {
            if let Matcher::FieldRef { name, paths, .. } = m {
                *paths = map_paths(cx.spec, name);
            }
        }
        Ok(Item {
            key: key.to_string(),
            field: field.to_string(),
            paths: if keyword {
                vec![]
            } else {
                map_paths(cx.spec, field)
            },
            path_ids: vec![],
            exists: c.exists,
            all: c.all,
            negate: c.negate,
            matchers,
        })
    };
    if rewritten.is_empty() {
        return Ok(SelNode::Item(build(&field, &kept)?));
    }
    let mut nodes = Vec::new();
    if !kept.is_empty() {
        nodes.push(SelNode::Item(build(&field, &kept)?));
    }
    for (f, v) in rewritten {
        let mut item = build(&f, &[v])?;
        item.key = format!("{key} (as {f})");
        nodes.push(SelNode::Item(item));
    }
    Ok(if nodes.len() == 1 {
        nodes.pop().expect("one node")
    } else if all {
        SelNode::And(nodes)
    } else {
        SelNode::Or(nodes)
    })
}

fn compile_map(entries: &[(Node, Node)], cx: &Ctx, line: usize) -> Result<SelNode, Problem> {
    if entries.is_empty() {
        return Err(Problem::invalid(line, "an empty selection"));
    }
    let mut items = Vec::new();
    for (k, v) in entries {
        let key = k
            .as_scalar()
            .map(|s| s.text.clone())
            .ok_or_else(|| Problem::invalid(k.line, "a field name must be a string"))?;
        items.push(compile_item(&key, v, cx, k.line)?);
    }
    Ok(if items.len() == 1 {
        items.pop().expect("one item")
    } else {
        SelNode::And(items)
    })
}

pub(super) fn compile_selection(n: &Node, cx: &Ctx) -> Result<SelNode, Problem> {
    match &n.value {
        Y::Map(entries) => compile_map(entries, cx, n.line),
        Y::Seq(items) => {
            if items.is_empty() {
                return Err(Problem::invalid(n.line, "an empty selection"));
            }
            let mut alts = Vec::new();
            let scalars: Vec<&Node> = items.iter().filter(|i| i.as_scalar().is_some()).collect();
            if !scalars.is_empty() {
                let seq = Node {
                    value: Y::Seq(scalars.into_iter().cloned().collect()),
                    line: n.line,
                    col: n.col,
                };
                alts.push(compile_item("", &seq, cx, n.line)?);
            }
            for i in items {
                match &i.value {
                    Y::Map(entries) => alts.push(compile_map(entries, cx, i.line)?),
                    Y::Seq(_) => {
                        return Err(Problem::invalid(
                            i.line,
                            "a selection list cannot hold lists",
                        ))
                    }
                    Y::Scalar(_) => {}
                }
            }
            Ok(if alts.len() == 1 {
                alts.pop().expect("one")
            } else {
                SelNode::Or(alts)
            })
        }
        Y::Scalar(s) if !s.is_null() => compile_item("", n, cx, n.line),
        Y::Scalar(_) => Err(Problem::invalid(n.line, "an empty selection")),
    }
}
