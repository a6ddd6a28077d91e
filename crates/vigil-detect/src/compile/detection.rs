//! One detection rule from parsed document to compiled condition: `prepare` routes it and
//! checks its conditions once (before any dataset), `compile_detection` then compiles its
//! selections for one dataset and resolves its conditions, with the Sigma filters that apply
//! to it appended. Apart from the driver so that the driver reads as the order of the steps
//! over the whole set.

use super::selection::{compile_selection, Ctx};
use super::{Cond, Selection};
use crate::condition::{self, AggFunc, CondAst, CondError, OfTarget, Quant};
use crate::error::{Problem, RejectKind};
use crate::mapping::{LogSource, Mappings};
use crate::rule::{Body, Detection, Doc, FilterDef, Meta};

/// A detection rule, parsed and checked, before per-dataset compilation.
pub(super) struct Prepared {
    pub(super) doc_index: usize,
    pub(super) datasets: Vec<usize>,
    conds: Vec<(CondAst, usize)>,
    pub(super) agg: Option<(condition::Aggregation, usize)>,
    pub(super) filters: Vec<usize>,
}

pub(super) fn prepare(
    di: usize,
    det: &Detection,
    mappings: &Mappings,
) -> Result<Prepared, Problem> {
    let datasets = mappings.route(&det.logsource);
    // Conditions first: a removed or unsupported construct is the more useful reason.
    let mut conds = Vec::new();
    let mut agg = None;
    for (text, line) in &det.conditions {
        let p = condition::parse(text).map_err(|e| cond_problem(*line, e))?;
        if let Some(a) = p.agg {
            if det.conditions.len() > 1 {
                return Err(Problem::new(
                    *line,
                    RejectKind::BadAggregation,
                    "an aggregation in a list of several conditions",
                ));
            }
            agg = Some((a, *line));
        }
        conds.push((p.expr, *line));
    }
    if let Some((a, line)) = &agg {
        if !matches!(a.func, AggFunc::Count) && a.field.is_none() {
            return Err(Problem::new(
                *line,
                RejectKind::BadAggregation,
                format!("`{:?}()` needs a field", a.func).to_lowercase(),
            ));
        }
        if det.timeframe.is_none() {
            return Err(Problem::new(
                *line,
                RejectKind::BadAggregation,
                "a count aggregation without `timeframe` has no window",
            ));
        }
    }
    if datasets.is_empty() {
        return Err(Problem::new(
            det.logsource_line,
            RejectKind::NoSource,
            format!(
                "logsource ({}) has no Vigil source (see mappings/logsources.yaml)",
                det.logsource
            ),
        ));
    }
    Ok(Prepared {
        doc_index: di,
        datasets,
        conds,
        agg,
        filters: vec![],
    })
}

pub(super) fn filter_applies(f: &FilterDef, meta: &Meta, ls: &LogSource) -> bool {
    let field_ok = |want: &Option<String>, have: &Option<String>| match want {
        None => true,
        Some(w) => have.as_ref() == Some(w),
    };
    if !(field_ok(&f.logsource.product, &ls.product)
        && field_ok(&f.logsource.service, &ls.service)
        && field_ok(&f.logsource.category, &ls.category))
    {
        return false;
    }
    match &f.rules {
        None => true,
        Some(refs) => refs.iter().any(|(r, _)| {
            meta.id.as_deref() == Some(r.as_str())
                || meta.name.as_deref() == Some(r.as_str())
                || meta.title.as_deref() == Some(r.as_str())
        }),
    }
}

type CompiledDetection = (Vec<Selection>, Cond, String);

pub(super) fn compile_detection(
    det: &Detection,
    p: &Prepared,
    docs: &[Doc],
    cx: &Ctx,
) -> Result<CompiledDetection, Problem> {
    let mut sels = Vec::new();
    let mut names = Vec::new();
    for (name, node) in &det.selections {
        let node_c = compile_selection(node, cx)?;
        names.push(name.clone());
        sels.push(Selection {
            name: name.clone(),
            node: node_c,
        });
    }
    let mut alts = Vec::new();
    for (ast, line) in &p.conds {
        alts.push(resolve_cond(ast, &names, *line)?);
    }
    let mut text = det
        .conditions
        .iter()
        .map(|(t, _)| {
            let t = t.split('|').next().unwrap_or("").trim();
            if det.conditions.len() > 1 {
                format!("({t})")
            } else {
                t.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" or ");
    let mut cond = if alts.len() == 1 {
        alts.pop().expect("one")
    } else {
        Cond::Or(alts)
    };
    for &fi in &p.filters {
        let Body::Filter(f) = &docs[fi].body else {
            continue;
        };
        let label = docs[fi]
            .meta
            .id
            .clone()
            .or_else(|| docs[fi].meta.title.clone())
            .unwrap_or_else(|| "filter".into());
        let mut fnames = Vec::new();
        for (name, node) in &f.selections {
            let full = format!("filter:{label}:{name}");
            let node_c = compile_selection(node, cx)?;
            fnames.push(name.clone());
            names.push(full.clone());
            sels.push(Selection {
                name: full,
                node: node_c,
            });
        }
        let ast = condition::parse(&f.condition.0).map_err(|e| cond_problem(f.condition.1, e))?;
        let base = sels.len() - fnames.len();
        let fc = resolve_cond(&ast.expr, &fnames, f.condition.1)?;
        cond = Cond::And(vec![cond, shift(fc, base)]);
        text = format!("({text}) and ({})", f.condition.0);
    }
    Ok((sels, cond, text))
}

fn resolve_cond(ast: &CondAst, names: &[String], line: usize) -> Result<Cond, Problem> {
    Ok(match ast {
        CondAst::Ident(id) => Cond::Sel(names.iter().position(|n| n == id).ok_or_else(|| {
            Problem::invalid(
                line,
                format!("the condition names `{id}`, which is not defined"),
            )
        })?),
        CondAst::Not(e) => Cond::Not(Box::new(resolve_cond(e, names, line)?)),
        CondAst::And(xs) => Cond::And(
            xs.iter()
                .map(|x| resolve_cond(x, names, line))
                .collect::<Result<_, _>>()?,
        ),
        CondAst::Or(xs) => Cond::Or(
            xs.iter()
                .map(|x| resolve_cond(x, names, line))
                .collect::<Result<_, _>>()?,
        ),
        CondAst::Of { quant, target } => {
            let sels: Vec<usize> = names
                .iter()
                .enumerate()
                .filter(|(_, n)| match target {
                    OfTarget::Them => !n.starts_with('_') && !n.starts_with("filter:"),
                    OfTarget::Pattern(p) => condition::ident_matches(p, n),
                })
                .map(|(i, _)| i)
                .collect();
            if sels.is_empty() {
                return Err(Problem::invalid(
                    line,
                    format!("`{ast}` matches no search identifier"),
                ));
            }
            Cond::Of {
                min: match quant {
                    Quant::All => None,
                    Quant::AtLeast(n) => Some(*n),
                },
                sels,
                text: ast.to_string(),
            }
        }
    })
}

fn shift(c: Cond, by: usize) -> Cond {
    match c {
        Cond::Sel(i) => Cond::Sel(i + by),
        Cond::Not(e) => Cond::Not(Box::new(shift(*e, by))),
        Cond::And(xs) => Cond::And(xs.into_iter().map(|x| shift(x, by)).collect()),
        Cond::Or(xs) => Cond::Or(xs.into_iter().map(|x| shift(x, by)).collect()),
        Cond::Of { min, sels, text } => Cond::Of {
            min,
            sels: sels.into_iter().map(|s| s + by).collect(),
            text,
        },
    }
}

fn cond_problem(line: usize, e: CondError) -> Problem {
    let kind = match e {
        CondError::Near => RejectKind::NearRemoved,
        CondError::Aggregation(_) => RejectKind::BadAggregation,
        CondError::Syntax(_) => RejectKind::Invalid,
    };
    Problem::new(line, kind, e.to_string())
}
