//! Reading Sigma documents (rules, correlations, filters) from positioned YAML.

use vigil_model::yaml::{self, Node, Scalar, Value as Y};

use crate::error::Problem;
use crate::mapping::LogSource;

/// Metadata shared by every kind of document.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    pub title: Option<String>,
    pub id: Option<String>,
    pub name: Option<String>,
    pub status: Option<String>,
    pub level: Option<String>,
    pub description: Option<String>,
    pub author: Option<String>,
    pub tags: Vec<String>,
    pub references: Vec<String>,
    pub falsepositives: Vec<String>,
    pub fields: Vec<String>,
}

/// One Sigma document, classified.
#[derive(Debug, Clone)]
pub struct Doc {
    pub origin: String,
    pub line: usize,
    pub meta: Meta,
    pub body: Body,
}

#[derive(Debug, Clone)]
pub enum Body {
    Detection(Detection),
    Correlation(CorrelationDef),
    Filter(FilterDef),
    /// A document that could not be read; the problem says why.
    Broken(Problem),
}

#[derive(Debug, Clone)]
pub struct Detection {
    pub logsource: LogSource,
    pub logsource_line: usize,
    /// Search identifiers in file order (name, definition node).
    pub selections: Vec<(String, Node)>,
    pub conditions: Vec<(String, usize)>,
    pub timeframe: Option<(String, usize)>,
}

#[derive(Debug, Clone)]
pub struct FilterDef {
    pub logsource: LogSource,
    /// None: `any`/`all` (every rule of the logsource).
    pub rules: Option<Vec<(String, usize)>>,
    pub selections: Vec<(String, Node)>,
    pub condition: (String, usize),
}

#[derive(Debug, Clone)]
pub struct CorrelationDef {
    pub kind: String,
    pub kind_line: usize,
    /// Referenced rules (id or name) with their lines; may be empty when an extended temporal
    /// condition names them.
    pub rules: Vec<(String, usize)>,
    pub rules_line: usize,
    pub group_by: Vec<String>,
    pub timespan: Option<(String, usize)>,
    pub condition: CorrCondition,
    pub condition_line: usize,
    pub generate: bool,
    pub aliases: Vec<AliasDef>,
}

/// A correlation's `condition`.
#[derive(Debug, Clone, Default)]
pub enum CorrCondition {
    /// No condition (temporal types default to "every referenced rule").
    #[default]
    None,
    /// A mapping: comparison bounds (ANDed), `field` (one name or a list) and `percentile`.
    Bounds {
        bounds: Vec<(crate::correlation::Op, f64)>,
        field: Vec<String>,
        percentile: Option<f64>,
    },
    /// An extended temporal condition: a boolean expression over rule names (`a and not b`).
    Expr(String),
}

/// `aliases: {alias: {rule: field}}`.
#[derive(Debug, Clone)]
pub struct AliasDef {
    pub name: String,
    pub line: usize,
    /// (rule id or name, field in that rule's events, line)
    pub fields: Vec<(String, String, usize)>,
}

fn text(n: &Node) -> Option<String> {
    n.as_scalar()
        .filter(|s| !s.is_null())
        .map(|s| s.text.clone())
}

fn list(n: Option<&Node>) -> Vec<String> {
    match n {
        None => vec![],
        Some(n) => match n.as_seq() {
            Some(items) => items.iter().filter_map(text).collect(),
            None => text(n).into_iter().collect(),
        },
    }
}

/// The line of `key` itself in a mapping (the value's line may be the next one).
fn key_line(map: &Node, key: &str) -> Option<usize> {
    map.as_map()?
        .iter()
        .rev()
        .find(|(k, _)| k.as_scalar().is_some_and(|s| s.text == key))
        .map(|(k, _)| k.line)
}

fn meta(root: &Node) -> Meta {
    let s = |k: &str| root.get(k).and_then(text);
    Meta {
        title: s("title"),
        id: s("id"),
        name: s("name"),
        status: s("status"),
        level: s("level"),
        description: s("description"),
        author: s("author"),
        tags: list(root.get("tags")),
        references: list(root.get("references")),
        falsepositives: list(root.get("falsepositives")),
        fields: list(root.get("fields")),
    }
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

/// Deep-merges `over` onto `base` (mappings merge key by key; anything else is replaced).
fn merge(base: &Node, over: &Node) -> Node {
    match (&base.value, &over.value) {
        (Y::Map(b), Y::Map(o)) => {
            let mut entries: Vec<(Node, Node)> = b.clone();
            for (ok, ov) in o {
                let key = ok.as_scalar().map(|s| s.text.as_str());
                match entries
                    .iter_mut()
                    .find(|(bk, _)| bk.as_scalar().map(|s| s.text.as_str()) == key)
                {
                    Some((_, bv)) => *bv = merge(bv, ov),
                    None => entries.push((ok.clone(), ov.clone())),
                }
            }
            Node {
                value: Y::Map(entries),
                line: over.line,
                col: over.col,
            }
        }
        _ => over.clone(),
    }
}

fn without_action(n: &Node) -> Node {
    match &n.value {
        Y::Map(entries) => Node {
            value: Y::Map(
                entries
                    .iter()
                    .filter(|(k, _)| k.as_scalar().is_none_or(|s| s.text != "action"))
                    .cloned()
                    .collect(),
            ),
            line: n.line,
            col: n.col,
        },
        _ => n.clone(),
    }
}

/// Reads every document of one file, applying the legacy `action: global / reset / repeat`
/// multi-document convention.
pub fn read_file(origin: &str, source: &str) -> Vec<Doc> {
    let docs = match yaml::parse_documents(source) {
        Ok(d) => d,
        Err(e) => {
            return vec![Doc {
                origin: origin.to_string(),
                line: e.line.max(1),
                meta: Meta::default(),
                body: Body::Broken(Problem::invalid(
                    e.line.max(1),
                    format!("YAML: {}", e.message),
                )),
            }]
        }
    };
    let mut out = Vec::new();
    let mut global: Option<Node> = None;
    let mut previous: Option<Node> = None;
    for d in docs {
        let root = d.root;
        if root.as_map().is_none() {
            if root.is_null() {
                continue;
            }
            out.push(Doc {
                origin: origin.to_string(),
                line: d.line,
                meta: Meta::default(),
                body: Body::Broken(Problem::invalid(
                    d.line,
                    format!(
                        "a Sigma document must be a mapping, not {}",
                        root.kind_name()
                    ),
                )),
            });
            continue;
        }
        let action = root.get("action").and_then(text);
        let effective = match action.as_deref() {
            Some("global") => {
                global = Some(without_action(&root));
                continue;
            }
            Some("reset") => {
                global = None;
                continue;
            }
            Some("repeat") => match &previous {
                Some(p) => merge(p, &without_action(&root)),
                None => {
                    out.push(Doc {
                        origin: origin.to_string(),
                        line: d.line,
                        meta: meta(&root),
                        body: Body::Broken(Problem::invalid(
                            d.line,
                            "`action: repeat` with no previous document",
                        )),
                    });
                    continue;
                }
            },
            Some(other) => {
                out.push(Doc {
                    origin: origin.to_string(),
                    line: d.line,
                    meta: meta(&root),
                    body: Body::Broken(Problem::invalid(
                        root.get("action").map_or(d.line, |n| n.line),
                        format!("unknown `action: {other}` (global, reset and repeat exist)"),
                    )),
                });
                continue;
            }
            None => match &global {
                Some(g) => merge(g, &root),
                None => root,
            },
        };
        previous = Some(effective.clone());
        out.push(classify(origin, d.line, &effective));
    }
    out
}

fn classify(origin: &str, line: usize, root: &Node) -> Doc {
    let m = meta(root);
    let body = if let Some(c) = root.get("correlation") {
        correlation(c).map(Body::Correlation)
    } else if let Some(det) = root.get("detection") {
        detection(root, det, line).map(Body::Detection)
    } else if let Some(f) = root.get("filter") {
        filter(root, f, line).map(Body::Filter)
    } else {
        Err(Problem::invalid(
            line,
            "not a Sigma rule: no `detection`, `correlation` or `filter`",
        ))
    };
    let body = body.unwrap_or_else(Body::Broken);
    if m.title.is_none() {
        if let Body::Detection(_) | Body::Correlation(_) = body {
            // The title is mandatory, but a missing one does not stop detection; keep going.
        }
    }
    Doc {
        origin: origin.to_string(),
        line,
        meta: m,
        body,
    }
}

fn detection(root: &Node, det: &Node, line: usize) -> Result<Detection, Problem> {
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

fn filter(root: &Node, f: &Node, line: usize) -> Result<FilterDef, Problem> {
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

fn correlation(c: &Node) -> Result<CorrelationDef, Problem> {
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

/// Parses a Sigma time span (`30s`, `5m`, `1h`, `7d`; also `1w`, `1M`, `1y`) to milliseconds.
pub fn parse_timespan(s: &str) -> Option<i64> {
    let s = s.trim();
    let unit = s.chars().last()?;
    let n: i64 = s[..s.len() - unit.len_utf8()].trim().parse().ok()?;
    let mul = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        'w' => 7 * 86_400_000,
        'M' => 30 * 86_400_000,
        'y' => 365 * 86_400_000,
        _ => return None,
    };
    (n > 0).then_some(n * mul)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_action_merges_into_following_documents() {
        let text = "action: global\ntitle: T\nlogsource:\n  product: linux\ndetection:\n  condition: sel\n---\nid: a\ndetection:\n  sel:\n    x: 1\n---\nid: b\ndetection:\n  sel:\n    y: 2\n";
        let docs = read_file("f.yml", text);
        assert_eq!(docs.len(), 2);
        for d in &docs {
            assert_eq!(d.meta.title.as_deref(), Some("T"));
            let Body::Detection(det) = &d.body else {
                panic!("{:?}", d.body)
            };
            assert_eq!(det.conditions[0].0, "sel");
            assert_eq!(det.logsource.product.as_deref(), Some("linux"));
        }
        assert_eq!(docs[1].meta.id.as_deref(), Some("b"));
        assert_eq!(docs[1].line, 13);
    }

    #[test]
    fn broken_documents_name_the_line() {
        let docs = read_file(
            "f.yml",
            "title: x\nlogsource: {}\ndetection:\n  sel: {a: 1}\n",
        );
        let Body::Broken(p) = &docs[0].body else {
            panic!()
        };
        assert_eq!(p.line, 3);
        let docs = read_file("f.yml", "title: [\n");
        assert!(matches!(docs[0].body, Body::Broken(_)));
    }

    #[test]
    fn timespans() {
        assert_eq!(parse_timespan("30s"), Some(30_000));
        assert_eq!(parse_timespan("5m"), Some(300_000));
        assert_eq!(parse_timespan("24h"), Some(86_400_000));
        assert_eq!(parse_timespan("1d"), Some(86_400_000));
        assert_eq!(parse_timespan("x"), None);
        assert_eq!(parse_timespan("0s"), None);
    }
}
