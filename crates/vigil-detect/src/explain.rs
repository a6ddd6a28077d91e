//! Why a rule did or did not match an event (`vigil explain`).

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::compile::{CompiledRule, Cond, Item, RuleSet, SelNode};
use crate::eval::Cx;
use crate::event::Event;

/// The full account of one rule on one event.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub rule: usize,
    pub title: String,
    pub dataset: String,
    /// False when the rule does not read the event's dataset (nothing else is evaluated).
    pub applies: bool,
    /// Whether the raw-text prefilter would have skipped this rule (None: no prefilter ran).
    pub prefilter_skips: Option<bool>,
    /// The condition as written.
    pub condition_text: String,
    pub matched: bool,
    pub selections: Vec<SelectionExplanation>,
    pub condition: CondExplanation,
    /// A note when nothing could be evaluated (unparseable event ...).
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SelectionExplanation {
    pub name: String,
    pub result: bool,
    pub node: NodeExplanation,
}

/// A selection's AND/OR structure, down to field items.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeExplanation {
    All {
        result: bool,
        of: Vec<NodeExplanation>,
    },
    Any {
        result: bool,
        of: Vec<NodeExplanation>,
    },
    Item(ItemExplanation),
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemExplanation {
    /// The key as written (`CommandLine|contains|all`), or `keywords`.
    pub key: String,
    /// The event paths searched.
    pub paths: Vec<String>,
    /// The rule values (rendered).
    pub expected: Vec<String>,
    /// The event's values at those paths (at most 8).
    pub found: Vec<Value>,
    pub result: bool,
    /// Why, in words.
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CondExplanation {
    pub text: String,
    pub result: bool,
    pub children: Vec<CondExplanation>,
}

impl NodeExplanation {
    fn result(&self) -> bool {
        match self {
            NodeExplanation::All { result, .. } | NodeExplanation::Any { result, .. } => *result,
            NodeExplanation::Item(i) => i.result,
        }
    }
}

fn explain_item(i: &Item, cx: &Cx) -> ItemExplanation {
    let doc = cx.doc;
    let mut found = Vec::new();
    if !i.paths.is_empty() {
        for p in &i.paths {
            p.any(doc, &mut |v| {
                found.push(v.clone());
                found.len() >= 8
            });
        }
    }
    let result = i.eval(cx);
    let positive = i.eval_positive(cx);
    let expected: Vec<String> = match i.exists {
        Some(b) => vec![format!("exists: {b}")],
        None => i.matchers.iter().map(|m| m.describe()).collect(),
    };
    let link = if i.all { "all of" } else { "any of" };
    let what = if i.paths.is_empty() {
        "some value of the event".to_string()
    } else if found.is_empty() {
        "the field (absent)".to_string()
    } else {
        "the field's value".to_string()
    };
    let reason = match (i.exists, positive) {
        (Some(true), true) => "the field exists".to_string(),
        (Some(true), false) => "the field does not exist".to_string(),
        (Some(false), true) => "the field does not exist, as required".to_string(),
        (Some(false), false) => "the field exists, but must not".to_string(),
        (None, true) => format!("{what} matches {link} the values"),
        (None, false) => format!(
            "{what} matches {} the values",
            if i.all { "not all of" } else { "none of" }
        ),
    };
    let reason = if i.negate {
        format!("{reason}; `neq` negates it")
    } else {
        reason
    };
    ItemExplanation {
        key: if i.key.is_empty() {
            "keywords".into()
        } else {
            i.key.clone()
        },
        paths: i.paths.iter().map(|p| p.text.clone()).collect(),
        expected,
        found,
        result,
        reason,
    }
}

fn explain_node(n: &SelNode, cx: &Cx) -> NodeExplanation {
    match n {
        SelNode::Item(i) => NodeExplanation::Item(explain_item(i, cx)),
        SelNode::And(xs) => {
            let of: Vec<_> = xs.iter().map(|x| explain_node(x, cx)).collect();
            NodeExplanation::All {
                result: of.iter().all(NodeExplanation::result),
                of,
            }
        }
        SelNode::Or(xs) => {
            let of: Vec<_> = xs.iter().map(|x| explain_node(x, cx)).collect();
            NodeExplanation::Any {
                result: of.iter().any(NodeExplanation::result),
                of,
            }
        }
    }
}

fn explain_cond(r: &CompiledRule, c: &Cond, cx: &Cx) -> CondExplanation {
    let result = r.eval_cond(c, cx);
    match c {
        Cond::Sel(i) => CondExplanation {
            text: r.selections[*i].name.clone(),
            result,
            children: vec![],
        },
        Cond::Not(e) => {
            let inner = explain_cond(r, e, cx);
            // `not` binds tighter than `and`/`or`: without parentheses `not (a and b)` would
            // read as `(not a) and b`.
            let text = if matches!(**e, Cond::And(_) | Cond::Or(_)) {
                format!("not ({})", inner.text)
            } else {
                format!("not {}", inner.text)
            };
            CondExplanation {
                text,
                result,
                children: vec![inner],
            }
        }
        Cond::And(xs) | Cond::Or(xs) => {
            let children: Vec<_> = xs.iter().map(|x| explain_cond(r, x, cx)).collect();
            let op = if matches!(c, Cond::And(_)) {
                " and "
            } else {
                " or "
            };
            CondExplanation {
                text: children
                    .iter()
                    .map(|c| {
                        if c.children.len() > 1 {
                            format!("({})", c.text)
                        } else {
                            c.text.clone()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(op),
                result,
                children,
            }
        }
        Cond::Of { sels, text, .. } => CondExplanation {
            text: text.clone(),
            result,
            children: sels
                .iter()
                .map(|&s| CondExplanation {
                    text: r.selections[s].name.clone(),
                    result: r.selections[s].node.eval(cx),
                    children: vec![],
                })
                .collect(),
        },
    }
}

impl RuleSet {
    /// Explains rule `rule` (an index into [`RuleSet::rules`]) on `ev`: per selection and per
    /// condition node, true or false and why. `None` for an unknown index or a correlation rule.
    pub fn explain(&self, rule: usize, ev: &Event) -> Option<Explanation> {
        let info = self.rules.get(rule)?;
        if info.kind != crate::RuleKind::Detection {
            return None;
        }
        let di = self.dataset_index(ev.dataset());
        let cr = di.and_then(|d| {
            self.datasets[d]
                .rules
                .iter()
                .find(|r| r.rule == rule)
                .map(|r| (d, r))
        });
        let empty = |note: &str| Explanation {
            rule,
            title: info.title.clone(),
            dataset: ev.dataset().to_string(),
            applies: false,
            prefilter_skips: None,
            condition_text: String::new(),
            matched: false,
            selections: vec![],
            condition: CondExplanation {
                text: String::new(),
                result: false,
                children: vec![],
            },
            note: Some(note.to_string()),
        };
        let Some((d, cr)) = cr else {
            return Some(empty(&format!(
                "the rule reads {}, not {}",
                info.datasets.join(", "),
                ev.dataset()
            )));
        };
        let prefilter_skips = match (&self.datasets[d].prefilter, ev.raw()) {
            (Some(p), Some(raw)) => Some(!p.scan(raw).may_match(&cr.required)),
            _ => None,
        };
        let Some(doc) = ev.doc() else {
            let mut e = empty("the event is not a JSON object");
            e.applies = true;
            return Some(e);
        };
        let cx = Cx::new(doc, 0);
        let selections = cr
            .selections
            .iter()
            .map(|s| {
                let node = explain_node(&s.node, &cx);
                SelectionExplanation {
                    name: s.name.clone(),
                    result: node.result(),
                    node,
                }
            })
            .collect();
        let condition = explain_cond(cr, &cr.condition, &cx);
        Some(Explanation {
            rule,
            title: info.title.clone(),
            dataset: ev.dataset().to_string(),
            applies: true,
            prefilter_skips,
            condition_text: cr.condition_text.clone(),
            matched: condition.result,
            selections,
            condition,
            note: None,
        })
    }
}

fn mark(b: bool) -> &'static str {
    if b {
        "true "
    } else {
        "false"
    }
}

fn write_node(f: &mut fmt::Formatter<'_>, n: &NodeExplanation, depth: usize) -> fmt::Result {
    let pad = "  ".repeat(depth);
    match n {
        NodeExplanation::All { result, of } | NodeExplanation::Any { result, of } => {
            let word = if matches!(n, NodeExplanation::All { .. }) {
                "all of"
            } else {
                "any of"
            };
            writeln!(f, "{pad}[{}] {word}:", mark(*result))?;
            for c in of {
                write_node(f, c, depth + 1)?;
            }
            Ok(())
        }
        NodeExplanation::Item(i) => {
            writeln!(
                f,
                "{pad}[{}] {}: {} — {}",
                mark(i.result),
                i.key,
                i.expected.join(", "),
                i.reason
            )?;
            if !i.paths.is_empty() {
                let found: Vec<String> = i.found.iter().map(|v| v.to_string()).collect();
                writeln!(
                    f,
                    "{pad}        at {}: {}",
                    i.paths.join(" | "),
                    if found.is_empty() {
                        "(absent)".to_string()
                    } else {
                        found.join(", ")
                    }
                )?;
            }
            Ok(())
        }
    }
}

fn write_cond(f: &mut fmt::Formatter<'_>, c: &CondExplanation, depth: usize) -> fmt::Result {
    writeln!(f, "{}[{}] {}", "  ".repeat(depth), mark(c.result), c.text)?;
    if c.children.len() > 1 || c.text.starts_with("not ") {
        for ch in &c.children {
            write_cond(f, ch, depth + 1)?;
        }
    }
    Ok(())
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "rule {} \"{}\" on {}: {}",
            self.rule,
            self.title,
            self.dataset,
            if self.matched { "MATCH" } else { "no match" }
        )?;
        if let Some(n) = &self.note {
            writeln!(f, "  {n}")?;
        }
        if !self.applies {
            return Ok(());
        }
        if let Some(true) = self.prefilter_skips {
            writeln!(
                f,
                "  (the prefilter skips this rule: a literal it needs is not in the event text)"
            )?;
        }
        writeln!(f, "condition: {}", self.condition_text)?;
        write_cond(f, &self.condition, 1)?;
        for s in &self.selections {
            writeln!(f, "selection {}: {}", s.name, s.result)?;
            write_node(f, &s.node, 1)?;
        }
        Ok(())
    }
}
