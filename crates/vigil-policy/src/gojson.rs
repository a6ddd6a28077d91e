//! The JSON value kube-apiserver actually decodes a policy file into.
//!
//! The apiserver never reads YAML directly: sigs.k8s.io/yaml converts it to JSON with go-yaml v2
//! first, and only then is the JSON decoded into the Policy type. That conversion decides what a
//! scalar *is*, and it follows YAML 1.1, not the YAML 1.2 core schema: `yes`, `on`, `y` are
//! booleans, `0x1F` and `017` are numbers, `<<` merges mappings, a null key or a `.nan` anywhere
//! fails the whole file. This module reproduces that conversion on top of the positioned tree so
//! every value keeps its line.

use vigil_model::yaml::{Node, Scalar, Value};

/// A JSON value with the YAML line it came from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GNode {
    pub v: GVal,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum GVal {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<GNode>),
    Map(Vec<GEntry>),
}

/// One key of a JSON object. Duplicate keys are folded into one entry: the last value wins, as in
/// go-yaml and encoding/json; `earlier` keeps the values it replaced.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GEntry {
    pub key: String,
    /// Line of the key that set `value`.
    pub line: usize,
    pub value: GNode,
    pub earlier: Vec<GNode>,
}

impl GNode {
    pub fn kind_name(&self) -> &'static str {
        match &self.v {
            GVal::Null => "null",
            GVal::Bool(_) => "a boolean",
            GVal::Int(_) | GVal::Float(_) => "a number",
            GVal::Str(_) => "a string",
            GVal::Seq(_) => "a list",
            GVal::Map(_) => "a mapping",
        }
    }
    pub fn entries(&self) -> Option<&[GEntry]> {
        match &self.v {
            GVal::Map(e) => Some(e),
            _ => None,
        }
    }
}

/// A key set twice in one mapping: strict decoding rejects it, the lenient fallback keeps the last.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Duplicate {
    pub key: String,
    /// Path of the key, e.g. `rules[2].level`.
    pub path: String,
    pub line: usize,
    pub first_line: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConvError {
    pub line: usize,
    pub message: String,
}

/// Nesting deeper than this is refused instead of risking the stack; real policies nest < 10.
pub(crate) const MAX_DEPTH: usize = 200;

/// A scalar as go-yaml v2 resolves it.
#[derive(Debug, Clone, PartialEq)]
enum Resolved {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str,
}

const YAML_TAG_PREFIX: &str = "tag:yaml.org,2002:";

/// `!!str` and `tag:yaml.org,2002:str` are the same tag; returns `str` for both.
fn core_tag(tag: &str) -> Option<&str> {
    tag.strip_prefix(YAML_TAG_PREFIX)
        .or_else(|| tag.strip_prefix("!!"))
}

/// go-yaml v2's fixed table of special plain scalars.
fn resolve_table(text: &str) -> Option<Resolved> {
    Some(match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            Resolved::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            Resolved::Bool(false)
        }
        "" | "~" | "null" | "Null" | "NULL" => Resolved::Null,
        ".nan" | ".NaN" | ".NAN" => Resolved::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Resolved::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Resolved::Float(f64::NEG_INFINITY),
        _ => return None,
    })
}

/// Go's `strconv.ParseUint(s, 0, 64)` (prefixes 0x, 0o, 0b and a leading 0 for octal).
fn go_parse_uint_base0(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.is_empty() {
        return None;
    }
    let (base, digits) = if b[0] == b'0' {
        match b.get(1).map(u8::to_ascii_lowercase) {
            Some(b'b') if b.len() >= 3 => (2, &s[2..]),
            Some(b'o') if b.len() >= 3 => (8, &s[2..]),
            Some(b'x') if b.len() >= 3 => (16, &s[2..]),
            _ => (8, &s[1..]),
        }
    } else {
        (10, s)
    };
    let mut n: u64 = 0;
    for c in digits.chars() {
        let d = c.to_digit(base)?;
        n = n.checked_mul(u64::from(base))?.checked_add(u64::from(d))?;
    }
    Some(n)
}

/// go-yaml's integer attempt: `ParseInt(s, 0, 64)`, then `ParseUint(s, 0, 64)`.
fn go_parse_int(s: &str) -> Option<i128> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let v = i128::from(go_parse_uint_base0(body)?);
    if neg {
        (v <= 1i128 << 63).then_some(-v)
    } else if s.starts_with('+') {
        (v <= i128::from(i64::MAX)).then_some(v)
    } else {
        Some(v) // ParseUint covers up to u64::MAX
    }
}

/// go-yaml's float syntax: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn yaml_style_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Go's ParseFloat fails on overflow (±Inf with ErrRange), which go-yaml treats as "not a float".
fn finite_float(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Resolves an untagged plain scalar like go-yaml v2's `resolve("", text)`.
fn resolve_plain(text: &str) -> Resolved {
    if let Some(r) = resolve_table(text) {
        return r;
    }
    match text.as_bytes().first() {
        Some(b'.') => match finite_float(text) {
            Some(f) if !text.contains('_') => Resolved::Float(f),
            _ => Resolved::Str,
        },
        Some(b'0'..=b'9' | b'+' | b'-') => {
            // Timestamps would be tried first, but into an untyped value go-yaml keeps them as
            // strings, and nothing timestamp-shaped parses as a number, so they end up as Str.
            let plain = text.replace('_', "");
            if let Some(i) = go_parse_int(&plain) {
                return Resolved::Int(i);
            }
            if yaml_style_float(&plain) {
                if let Some(f) = finite_float(&plain) {
                    return Resolved::Float(f);
                }
            }
            Resolved::Str
        }
        _ => Resolved::Str,
    }
}

fn looks_like_timestamp(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() > 4 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-'
}

/// An unquoted token of a file already checked to be valid JSON: JSON's grammar decides, so
/// `1e400` is a number here although go-yaml would have called it a string.
fn resolve_json_token(text: &str) -> Resolved {
    match text {
        "true" => Resolved::Bool(true),
        "false" => Resolved::Bool(false),
        "null" => Resolved::Null,
        t => match t.parse::<i128>() {
            Ok(i) => Resolved::Int(i),
            // Finite or not, it is a JSON number; its value never matters beyond that.
            Err(_) => Resolved::Float(t.parse::<f64>().unwrap_or(0.0).clamp(f64::MIN, f64::MAX)),
        },
    }
}

/// Resolves any scalar: quoted ones are strings, explicit core tags must agree with the text.
fn resolve(s: &Scalar, json: bool) -> Result<Resolved, String> {
    if json && !s.quoted && s.tag.is_none() {
        return Ok(resolve_json_token(&s.text));
    }
    let Some(tag) = &s.tag else {
        return Ok(if s.quoted {
            Resolved::Str
        } else {
            resolve_plain(&s.text)
        });
    };
    let Some(core) = core_tag(tag) else {
        return Ok(Resolved::Str); // a custom tag: go-yaml keeps the text
    };
    let got = resolve_plain(&s.text);
    let ok = match (core, &got) {
        ("str" | "binary" | "map" | "seq" | "merge", _) => return Ok(Resolved::Str),
        ("timestamp", _) if looks_like_timestamp(&s.text) => return Ok(Resolved::Str),
        ("null", Resolved::Null) | ("bool", Resolved::Bool(_)) | ("int", Resolved::Int(_)) => true,
        ("float", Resolved::Float(_)) => true,
        ("float", Resolved::Int(i)) => return Ok(Resolved::Float(*i as f64)),
        _ => false,
    };
    if ok {
        Ok(got)
    } else {
        Err(format!("cannot decode {:?} as a !!{core}", s.text))
    }
}

fn is_merge_key(node: &Node) -> bool {
    node.as_scalar().is_some_and(|s| {
        s.text == "<<"
            && !s.quoted
            && s.tag
                .as_deref()
                .is_none_or(|t| core_tag(t) == Some("merge"))
    })
}

struct Converter {
    /// The file is JSON (the apiserver decodes it without going through YAML).
    json: bool,
    duplicates: Vec<Duplicate>,
    errors: Vec<ConvError>,
}

impl Converter {
    fn err(&mut self, line: usize, message: String) {
        self.errors.push(ConvError { line, message });
    }

    fn node(&mut self, n: &Node, depth: usize, path: &str) -> GNode {
        let line = n.line;
        if depth > MAX_DEPTH {
            self.err(
                line,
                format!("the YAML nests deeper than {MAX_DEPTH} levels"),
            );
            return GNode {
                v: GVal::Null,
                line,
            };
        }
        let v = match &n.value {
            Value::Scalar(s) => match resolve(s, self.json) {
                Ok(Resolved::Null) => GVal::Null,
                Ok(Resolved::Bool(b)) => GVal::Bool(b),
                Ok(Resolved::Int(i)) => GVal::Int(i),
                Ok(Resolved::Float(f)) if f.is_finite() => GVal::Float(f),
                Ok(Resolved::Float(_)) => {
                    // json.Marshal refuses NaN and ±Inf, so the apiserver fails the whole file.
                    self.err(
                        line,
                        format!("{} cannot be represented in JSON, so the apiserver rejects the file (json: unsupported value); quote it if it is meant as a string", s.text),
                    );
                    GVal::Null
                }
                Ok(Resolved::Str) => GVal::Str(s.text.clone()),
                Err(e) => {
                    self.err(line, e);
                    GVal::Null
                }
            },
            Value::Seq(items) => GVal::Seq(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.node(item, depth + 1, &format!("{path}[{i}]")))
                    .collect(),
            ),
            Value::Map(entries) => {
                let mut out = Vec::new();
                self.mapping(entries, &mut out, depth, path);
                GVal::Map(out)
            }
        };
        GNode { v, line }
    }

    /// Sets each key in order, like go-yaml decoding into a map: a later key overwrites an
    /// earlier one, and a `<<` merge sets the merged mapping's keys at its position.
    fn mapping(
        &mut self,
        entries: &[(Node, Node)],
        out: &mut Vec<GEntry>,
        depth: usize,
        path: &str,
    ) {
        for (k, v) in entries {
            if is_merge_key(k) {
                self.merge(v, out, depth, path);
                continue;
            }
            let Some(key) = self.key(k) else { continue };
            let child = crate::decode::join(path, &key);
            let value = self.node(v, depth + 1, &child);
            self.set(out, key, child, k.line, value);
        }
    }

    fn merge(&mut self, v: &Node, out: &mut Vec<GEntry>, depth: usize, path: &str) {
        if depth > MAX_DEPTH {
            self.err(
                v.line,
                format!("the YAML nests deeper than {MAX_DEPTH} levels"),
            );
            return;
        }
        let want_map = "a `<<` merge needs a mapping or a list of mappings as its value";
        match &v.value {
            Value::Map(entries) => self.mapping(entries, out, depth + 1, path),
            // Earlier mappings in the list take precedence, so they are applied last.
            Value::Seq(items) => {
                for item in items.iter().rev() {
                    match &item.value {
                        Value::Map(entries) => self.mapping(entries, out, depth + 1, path),
                        _ => self.err(item.line, want_map.into()),
                    }
                }
            }
            Value::Scalar(_) => self.err(v.line, want_map.into()),
        }
    }

    /// The JSON key for a YAML key; JSON keys are strings, so sigs.k8s.io/yaml stringifies
    /// numbers and booleans and fails on anything else.
    fn key(&mut self, k: &Node) -> Option<String> {
        let Value::Scalar(s) = &k.value else {
            self.err(
                k.line,
                format!("a mapping key must be a scalar, found {}", k.kind_name()),
            );
            return None;
        };
        match resolve(s, self.json) {
            Ok(Resolved::Str) => Some(s.text.clone()),
            Ok(Resolved::Int(i)) => Some(i.to_string()),
            Ok(Resolved::Bool(b)) => Some(b.to_string()),
            Ok(Resolved::Float(f)) => Some(if f.is_nan() {
                ".nan".into()
            } else if f.is_infinite() {
                if f > 0.0 { ".inf" } else { "-.inf" }.into()
            } else {
                format!("{}", f as f32)
            }),
            Ok(Resolved::Null) => {
                self.err(
                    k.line,
                    "a mapping key is null (the apiserver fails with \"unsupported map key\")"
                        .into(),
                );
                None
            }
            Err(e) => {
                self.err(k.line, e);
                None
            }
        }
    }

    fn set(&mut self, out: &mut Vec<GEntry>, key: String, path: String, line: usize, value: GNode) {
        if let Some(e) = out.iter_mut().find(|e| e.key == key) {
            self.duplicates.push(Duplicate {
                key,
                path,
                line,
                first_line: e.line,
            });
            let old = std::mem::replace(&mut e.value, value);
            e.earlier.push(old);
            e.line = line;
        } else {
            out.push(GEntry {
                key,
                line,
                value,
                earlier: Vec::new(),
            });
        }
    }
}

pub(crate) struct Converted {
    pub root: GNode,
    pub duplicates: Vec<Duplicate>,
}

/// Converts a parsed YAML document the way sigs.k8s.io/yaml's YAMLToJSON does; `json` when the
/// text is a JSON document, which the apiserver decodes directly.
pub(crate) fn convert(root: &Node, json: bool) -> Result<Converted, Vec<ConvError>> {
    let mut c = Converter {
        json,
        duplicates: Vec::new(),
        errors: Vec::new(),
    };
    let root = c.node(root, 0, "");
    if c.errors.is_empty() {
        Ok(Converted {
            root,
            duplicates: c.duplicates,
        })
    } else {
        Err(c.errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(t: &str) -> Resolved {
        resolve_plain(t)
    }

    #[test]
    fn yaml_1_1_scalars() {
        assert_eq!(plain("yes"), Resolved::Bool(true));
        assert_eq!(plain("Off"), Resolved::Bool(false));
        assert_eq!(plain("y"), Resolved::Bool(true));
        assert_eq!(plain("TrUe"), Resolved::Str);
        assert_eq!(plain("~"), Resolved::Null);
        assert_eq!(plain("0x1F"), Resolved::Int(31));
        assert_eq!(plain("017"), Resolved::Int(15));
        assert_eq!(plain("08"), Resolved::Float(8.0));
        assert_eq!(plain("1_000"), Resolved::Int(1000));
        assert_eq!(plain("1e3"), Resolved::Float(1000.0));
        assert_eq!(plain("1e400"), Resolved::Str);
        assert_eq!(plain(".5"), Resolved::Float(0.5));
        assert_eq!(plain("-"), Resolved::Str);
        assert_eq!(plain("0x"), Resolved::Str);
        assert_eq!(plain("2001-01-01"), Resolved::Str);
        assert_eq!(
            plain("18446744073709551615"),
            Resolved::Int(u64::MAX.into())
        );
        assert_eq!(
            plain("+9223372036854775808"),
            Resolved::Float(9223372036854775808.0)
        );
        assert_eq!(plain("None"), Resolved::Str);
        assert_eq!(plain("/api*"), Resolved::Str);
    }
}
