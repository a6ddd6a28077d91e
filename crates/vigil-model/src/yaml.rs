//! A YAML tree that remembers where every node came from.
//!
//! Policy files and Sigma rules are configuration written by people; when one is wrong, the error
//! must name the line. serde-based YAML loaders lose positions once a value is built, so Vigil's
//! loaders decode from this tree instead. Scalars keep their exact source text and whether they
//! were quoted, and are resolved (null, bool, number) only when a loader asks: Sigma, for one,
//! needs `42` and `"42"` to stay distinguishable from `42.0`.

use std::collections::HashMap;
use std::fmt;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// One YAML node and its position (1-based line and column).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(Scalar),
    Seq(Vec<Node>),
    /// Entries in file order; duplicates are kept so loaders can report them.
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    pub text: String,
    /// Quoted or block scalars are always strings; plain ones may resolve to null, bool, number.
    pub quoted: bool,
    /// An explicit tag such as `!!str`, with its handle.
    pub tag: Option<String>,
}

impl Scalar {
    fn is_plain(&self) -> bool {
        !self.quoted && self.tag.is_none()
    }
    pub fn is_null(&self) -> bool {
        self.is_plain() && matches!(self.text.as_str(), "" | "~" | "null" | "Null" | "NULL")
    }
    pub fn as_bool(&self) -> Option<bool> {
        if !self.is_plain() {
            return None;
        }
        match self.text.as_str() {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        if !self.is_plain() {
            return None;
        }
        let t = self.text.as_str();
        if let Some(hex) = t.strip_prefix("0x") {
            return i64::from_str_radix(hex, 16).ok();
        }
        if let Some(oct) = t.strip_prefix("0o") {
            return i64::from_str_radix(oct, 8).ok();
        }
        t.parse().ok()
    }
    pub fn as_f64(&self) -> Option<f64> {
        if !self.is_plain() {
            return None;
        }
        match self.text.as_str() {
            ".inf" | ".Inf" | ".INF" | "+.inf" => Some(f64::INFINITY),
            "-.inf" | "-.Inf" | "-.INF" => Some(f64::NEG_INFINITY),
            ".nan" | ".NaN" | ".NAN" => Some(f64::NAN),
            t if t.chars().any(|c| c.is_ascii_digit()) => t.parse().ok(),
            _ => None,
        }
    }
    /// True when the scalar is a string in YAML's core schema (not null, bool or number).
    pub fn is_string(&self) -> bool {
        !self.is_plain()
            || (!self.is_null()
                && self.as_bool().is_none()
                && self.as_i64().is_none()
                && self.as_f64().is_none())
    }
}

impl Node {
    pub fn as_scalar(&self) -> Option<&Scalar> {
        match &self.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }
    /// The scalar's text when it is a string (quoted, or plain and not null/bool/number).
    pub fn as_str(&self) -> Option<&str> {
        self.as_scalar()
            .filter(|s| s.is_string())
            .map(|s| s.text.as_str())
    }
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }
    pub fn is_null(&self) -> bool {
        self.as_scalar().is_some_and(Scalar::is_null)
    }
    /// The last value for `key` in a mapping (YAML loaders keep the last of duplicates).
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .rev()
            .find(|(k, _)| k.as_scalar().is_some_and(|s| s.text == key))
            .map(|(_, v)| v)
    }
    /// A short name of the node's kind, for error messages ("a mapping", "a string" ...).
    pub fn kind_name(&self) -> &'static str {
        match &self.value {
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
            Value::Scalar(s) if s.is_null() => "null",
            Value::Scalar(s) if s.as_bool().is_some() => "a boolean",
            Value::Scalar(s) if s.as_i64().is_some() || s.as_f64().is_some() => "a number",
            Value::Scalar(_) => "a string",
        }
    }
}

/// One document of a (possibly multi-document) YAML stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub root: Node,
    /// Line of the document's first content.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}, column {col}: {message}")]
pub struct YamlError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// Parses every document in `text`. An empty stream gives no documents.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, YamlError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    // Driven event by event: the parser's own `load` recurses once per nesting level, which a
    // hostile file can turn into a stack overflow before our depth limit is consulted.
    loop {
        let (ev, mark) = parser.next_token().map_err(|e| YamlError {
            line: e.marker().line(),
            col: e.marker().col() + 1,
            message: e.info().to_string(),
        })?;
        if ev == Event::StreamEnd {
            break;
        }
        builder.on_event(ev, mark);
        if let Some(err) = builder.error.take() {
            return Err(err);
        }
    }
    Ok(builder.documents)
}

/// Parses a single-document stream; an empty stream is `None`.
pub fn parse_document(text: &str) -> Result<Option<Node>, YamlError> {
    let mut docs = parse_documents(text)?;
    match docs.len() {
        0 => Ok(None),
        1 => Ok(docs.pop().map(|d| d.root)),
        _ => Err(YamlError {
            line: docs[1].line,
            col: 1,
            message: "expected one YAML document, found several (separated by ---)".into(),
        }),
    }
}

enum Open {
    Seq(Node),
    Map(Node, Option<Node>),
}

/// Deeper nesting than this is refused: no real policy or rule needs it, and it keeps
/// recursive walks of the tree (drop, display, loaders) far from the stack's end.
pub const MAX_DEPTH: usize = 256;
/// Nodes a document may have, aliases expanded: a "billion laughs" file is refused, not built.
pub const MAX_NODES: usize = 1_000_000;

#[derive(Default)]
struct Builder {
    documents: Vec<Document>,
    stack: Vec<(Open, usize)>,
    /// Each anchored node with its size in nodes.
    anchors: HashMap<usize, (Node, usize)>,
    /// Nodes built so far in the current stream (aliases count their whole size).
    nodes: usize,
    error: Option<YamlError>,
}

fn size(node: &Node) -> usize {
    1 + match &node.value {
        Value::Scalar(_) => 0,
        Value::Seq(items) => items.iter().map(size).sum(),
        Value::Map(entries) => entries.iter().map(|(k, v)| size(k) + size(v)).sum(),
    }
}

impl Builder {
    fn fail(&mut self, line: usize, col: usize, message: String) {
        self.error.get_or_insert(YamlError { line, col, message });
    }

    fn push(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            let n = size(&node);
            self.anchors.insert(anchor, (node.clone(), n));
        }
        match self.stack.last_mut() {
            None => {
                let line = node.line;
                self.documents.push(Document { root: node, line });
            }
            Some((Open::Seq(seq), _)) => {
                if let Value::Seq(items) = &mut seq.value {
                    items.push(node);
                }
            }
            Some((Open::Map(map, pending), _)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => {
                    if let Value::Map(entries) = &mut map.value {
                        entries.push((key, node));
                    }
                }
            },
        }
    }
}

fn tag_text(tag: Option<Tag>) -> Option<String> {
    tag.map(|t| format!("{}{}", t.handle, t.suffix))
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let (line, col) = (mark.line(), mark.col() + 1);
        if self.error.is_some() {
            return;
        }
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return self.fail(
                line,
                col,
                format!("more than {MAX_NODES} nodes (aliases expanded): refusing to build it"),
            );
        }
        if matches!(ev, Event::SequenceStart(..) | Event::MappingStart(..))
            && self.stack.len() >= MAX_DEPTH
        {
            return self.fail(line, col, format!("nested deeper than {MAX_DEPTH} levels"));
        }
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let quoted = !matches!(style, TScalarStyle::Plain);
                let tag = tag_text(tag);
                let node = Node {
                    value: Value::Scalar(Scalar { text, quoted, tag }),
                    line,
                    col,
                };
                self.push(node, anchor);
            }
            Event::SequenceStart(anchor, _) => {
                let node = Node {
                    value: Value::Seq(Vec::new()),
                    line,
                    col,
                };
                self.stack.push((Open::Seq(node), anchor));
            }
            Event::MappingStart(anchor, _) => {
                let node = Node {
                    value: Value::Map(Vec::new()),
                    line,
                    col,
                };
                self.stack.push((Open::Map(node, None), anchor));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((open, anchor)) = self.stack.pop() {
                    let node = match open {
                        Open::Seq(n) | Open::Map(n, _) => n,
                    };
                    self.push(node, anchor);
                }
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some((_, n)) if self.nodes + n > MAX_NODES => self.fail(
                    line,
                    col,
                    format!(
                        "more than {MAX_NODES} nodes once aliases are expanded (an alias bomb?)"
                    ),
                ),
                Some((node, n)) => {
                    let node = node.clone();
                    self.nodes += n;
                    self.push(node, 0)
                }
                None => self.fail(line, col, "alias to an unknown anchor".into()),
            },
            _ => {}
        }
    }
}

impl fmt::Display for Node {
    /// Renders the node compactly (flow style), for messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Value::Scalar(s) if s.quoted => write!(f, "{:?}", s.text),
            Value::Scalar(s) => f.write_str(&s.text),
            Value::Seq(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Value::Map(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_lines() {
        let doc = parse_document("a: 1\nb:\n  - x\n  - 'y'\n")
            .unwrap()
            .unwrap();
        let b = doc.get("b").unwrap();
        let items = b.as_seq().unwrap();
        assert_eq!(items[0].line, 3);
        assert_eq!(items[1].line, 4);
        assert!(items[1].as_scalar().unwrap().quoted);
        assert_eq!(doc.get("a").unwrap().as_scalar().unwrap().as_i64(), Some(1));
    }

    #[test]
    fn multi_documents_and_anchors() {
        let docs = parse_documents("x: &a [1, 2]\ny: *a\n---\nz: null\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].line, 4);
        assert_eq!(docs[0].root.get("y").unwrap().as_seq().unwrap().len(), 2);
        assert!(docs[1].root.get("z").unwrap().is_null());
    }

    #[test]
    fn scalar_resolution_respects_quotes() {
        let doc = parse_document("a: '42'\nb: 42\nc: true\nd: ~\ne: 1.5\nf: text")
            .unwrap()
            .unwrap();
        assert_eq!(doc.get("a").unwrap().as_str(), Some("42"));
        assert_eq!(doc.get("b").unwrap().as_str(), None);
        assert_eq!(doc.get("c").unwrap().kind_name(), "a boolean");
        assert_eq!(doc.get("d").unwrap().kind_name(), "null");
        assert_eq!(doc.get("e").unwrap().kind_name(), "a number");
        assert_eq!(doc.get("f").unwrap().as_str(), Some("text"));
    }

    #[test]
    fn alias_bombs_and_deep_nesting_are_refused() {
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            bomb.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        let err = parse_documents(&bomb).unwrap_err();
        assert!(err.message.contains("aliases"), "{err}");
        let deep = "[".repeat(5000) + &"]".repeat(5000);
        let err = parse_documents(&deep).unwrap_err();
        assert!(
            err.message.contains("deeper") || err.message.contains("recursion"),
            "{err}"
        );
        let block: String = (0..3000)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        let err = parse_documents(&block).unwrap_err();
        assert!(err.message.contains("deeper"), "{err}");
    }

    #[test]
    fn syntax_errors_carry_the_line() {
        let err = parse_documents("a: [1, 2\nb: c\n").unwrap_err();
        assert!(err.line >= 2, "{err}");
    }
}
