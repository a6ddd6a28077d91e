//! Reading a correlation rule's `correlation` section: its type, referenced rules, group-by,
//! time span, condition (bounds or a temporal expression), `generate` and field aliases.
//! Apart from the detection sections because a correlation shares none of their shape;
//! `crate::correlation::build` gives it meaning.

use vigil_model::yaml::{Node, Scalar};

use super::{key_line, list, text, AliasDef, CorrCondition, CorrelationDef};
use crate::error::Problem;

pub(super) fn correlation(c: &Node) -> Result<CorrelationDef, Problem> {
    use crate::correlation::Op;
    if c.as_map().is_none() {
        return Err(Problem::invalid(c.line, "`correlation` must be a mapping"));
    }
    let kind_node = c
        .get("type")
        .ok_or_else(|| Problem::invalid(c.line, "a correlation needs a `type`"))?;
    let kind = text(kind_node).unwrap_or_default();
    let rules_line = key_line(c, "rules").unwrap_or(c.line);
    let rules: Vec<(String, usize)> = match c.get("rules") {
        Some(n) => match n.as_seq() {
            Some(items) => items
                .iter()
                .map(|i| {
                    text(i).map(|t| (t, i.line)).ok_or_else(|| {
                        Problem::invalid(i.line, "a rule reference must be a string")
                    })
                })
                .collect::<Result<_, _>>()?,
            None => text(n).map(|t| vec![(t, n.line)]).unwrap_or_default(),
        },
        None => vec![],
    };
    let group_by = list(c.get("group-by"));
    let timespan = c
        .get("timespan")
        .or_else(|| c.get("timeframe"))
        .and_then(|n| text(n).map(|t| (t, n.line)));
    let mut condition = CorrCondition::None;
    let mut condition_line = c.line;
    if let Some(cn) = c.get("condition") {
        condition_line = cn.line;
        if let Some(s) = cn.as_scalar().filter(|s| !s.is_null()) {
            condition = CorrCondition::Expr(s.text.clone());
        } else {
            let Some(entries) = cn.as_map() else {
                return Err(Problem::invalid(
                    cn.line,
                    "a correlation condition must be a mapping such as `gte: 10` (or, for temporal types, an expression over rule names)",
                ));
            };
            let mut bounds = vec![];
            let mut field = vec![];
            let mut percentile = None;
            for (k, v) in entries {
                let key = k.as_scalar().map(|s| s.text.as_str()).unwrap_or("");
                let op = match key {
                    "gt" => Op::Gt,
                    "gte" => Op::Gte,
                    "lt" => Op::Lt,
                    "lte" => Op::Lte,
                    "eq" => Op::Eq,
                    "neq" => Op::Neq,
                    "field" => {
                        field = list(Some(v));
                        if field.is_empty() {
                            return Err(Problem::invalid(
                                v.line,
                                "`field` needs a field name or a list of them",
                            ));
                        }
                        continue;
                    }
                    "percentile" => {
                        let p = v.as_scalar().and_then(Scalar::as_f64).filter(|p| {
                            (0.0..=100.0).contains(p)
                        });
                        percentile = Some(p.ok_or_else(|| {
                            Problem::invalid(v.line, "`percentile` needs a number from 0 to 100")
                        })?);
                        continue;
                    }
                    other => {
                        return Err(Problem::invalid(
                            k.line,
                            format!(
                                "unknown correlation condition `{other}` (gt, gte, lt, lte, eq, neq, field, percentile)"
                            ),
                        ))
                    }
                };
                let n = v
                    .as_scalar()
                    .and_then(Scalar::as_f64)
                    .filter(|n| n.is_finite())
                    .ok_or_else(|| Problem::invalid(v.line, format!("`{key}` needs a number")))?;
                bounds.push((op, n));
            }
            condition = CorrCondition::Bounds {
                bounds,
                field,
                percentile,
            };
        }
    }
    let generate = match c.get("generate") {
        None => false,
        Some(n) => n
            .as_scalar()
            .and_then(Scalar::as_bool)
            .ok_or_else(|| Problem::invalid(n.line, "`generate` must be true or false"))?,
    };
    let mut aliases = vec![];
    if let Some(a) = c.get("aliases") {
        let Some(entries) = a.as_map() else {
            return Err(Problem::invalid(
                a.line,
                "`aliases` must map alias names to {rule: field} mappings",
            ));
        };
        for (k, v) in entries {
            let name = k
                .as_scalar()
                .map(|s| s.text.clone())
                .ok_or_else(|| Problem::invalid(k.line, "an alias name must be a string"))?;
            let Some(m) = v.as_map() else {
                return Err(Problem::invalid(
                    v.line,
                    format!("alias `{name}` must map rule names to field names"),
                ));
            };
            let mut fields = vec![];
            for (rk, rv) in m {
                let (Some(r), Some(f)) = (rk.as_scalar().map(|s| s.text.clone()), text(rv)) else {
                    return Err(Problem::invalid(
                        rk.line,
                        format!("alias `{name}`: each entry is `rule: field`"),
                    ));
                };
                fields.push((r, f, rk.line));
            }
            aliases.push(AliasDef {
                name,
                line: k.line,
                fields,
            });
        }
    }
    Ok(CorrelationDef {
        kind,
        kind_line: kind_node.line,
        rules,
        rules_line,
        group_by,
        timespan,
        condition,
        condition_line,
        generate,
        aliases,
    })
}
