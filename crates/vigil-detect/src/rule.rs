//! Reading Sigma documents (rules, correlations, filters) from positioned YAML.
//!
//! This module holds what is read (the document types), the whole-file reading with the
//! `action` multi-document convention, and the scalar helpers every section uses; `detection`
//! reads the `detection` and `filter` sections, `correlation` the `correlation` section.

use vigil_model::yaml::{self, Node, Value as Y};

use crate::error::Problem;
use crate::mapping::LogSource;

mod correlation;
mod detection;

use correlation::correlation;
use detection::{detection, filter};

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
    // A missing title (mandatory in Sigma) does not stop a rule from running.
    let body = body.unwrap_or_else(Body::Broken);
    Doc {
        origin: origin.to_string(),
        line,
        meta: m,
        body,
    }
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
