//! The query language of `vigil search` (documented in README.md, "Query language").
//!
//! ```text
//! query  = or
//! or     = and ("OR" and)*
//! and    = unary (["AND"] unary)*          -- juxtaposition is AND
//! unary  = ("NOT" | "-") unary | atom
//! atom   = "(" or ")" | "*" | FIELD ":" value | FIELD ":" "(" or ")" | text
//! value  = WORD | "quoted phrase" | "*" | ("[" | "{") bound "TO" bound ("]" | "}")
//! ```
//! A word may hold `*` and `?` wildcards; `\` escapes the next character. `FIELD:(a OR b)` gives
//! the field to every bare term inside. Values of address fields may be CIDR blocks.
//!
//! Matching (`matches`) is the reference semantics; the index answers the same question faster
//! (see `index::translate`) and falls back to this where it cannot.

use std::fmt;
use std::net::IpAddr;
use std::ops::Bound;

use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// `*`: everything.
    All,
    Not(Box<Query>),
    And(Vec<Query>),
    Or(Vec<Query>),
    /// `field:value`, or free text when `field` is `None`.
    Match {
        field: Option<String>,
        value: Val,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Val {
    Term(String),
    /// A pattern with `*` (any run) and `?` (one character).
    Wildcard(String),
    Phrase(String),
    Range {
        lo: Bound<String>,
        hi: Bound<String>,
    },
    /// `field:*`
    Exists,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("query: {message} (at character {pos})")]
pub struct ParseError {
    pub pos: usize,
    pub message: String,
}

/// Field names people type, and the field they mean.
pub const ALIASES: &[(&str, &str)] = &[
    ("verb", "event.action"),
    ("auditID", "event.id"),
    ("user", "user.name"),
    ("user.username", "user.name"),
    ("impersonatedUser.username", "user.effective.name"),
    ("ip", "related.ip"),
    ("namespace", "objectRef.namespace"),
    ("resource", "objectRef.resource"),
    ("code", "http.response.status_code"),
    ("responseStatus.code", "http.response.status_code"),
    ("dataset", "event.dataset"),
    ("host", "host.name"),
    ("timestamp", "@timestamp"),
];

pub fn canonical_field(f: &str) -> String {
    ALIASES
        .iter()
        .find(|(a, _)| *a == f)
        .map_or(f, |(_, c)| c)
        .to_string()
}

/// Whether a field holds IP addresses (CIDR and IP comparisons apply).
pub fn is_address_field(f: &str) -> bool {
    f == "ip" || f.ends_with(".ip") || f == "sourceIPs"
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    LParen,
    RParen,
    And,
    Or,
    Not,
    /// A word: its text with escapes resolved, and for each character whether it was escaped.
    Word(String, Vec<bool>),
    Quoted(String),
    RangeOpen(bool),
    RangeClose(bool),
    To,
}

fn is_special(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | '"' | '[' | ']' | '{' | '}')
}

fn lex(s: &str) -> Result<Vec<(usize, Tok)>, ParseError> {
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |pos: usize, m: &str| ParseError {
        pos,
        message: m.to_string(),
    };
    while i < chars.len() {
        let (pos, c) = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push((pos, Tok::LParen));
                i += 1
            }
            ')' => {
                out.push((pos, Tok::RParen));
                i += 1
            }
            '[' | '{' => {
                out.push((pos, Tok::RangeOpen(c == '[')));
                i += 1
            }
            ']' | '}' => {
                out.push((pos, Tok::RangeClose(c == ']')));
                i += 1
            }
            '"' => {
                let mut text = String::new();
                i += 1;
                loop {
                    let Some(&(_, c)) = chars.get(i) else {
                        return Err(err(pos, "unterminated quoted phrase"));
                    };
                    i += 1;
                    match c {
                        '"' => break,
                        '\\' => {
                            let Some(&(_, n)) = chars.get(i) else {
                                return Err(err(pos, "unterminated quoted phrase"));
                            };
                            text.push(n);
                            i += 1;
                        }
                        c => text.push(c),
                    }
                }
                out.push((pos, Tok::Quoted(text)));
            }
            _ => {
                let (mut text, mut escaped) = (String::new(), Vec::new());
                while let Some(&(_, c)) = chars.get(i) {
                    if is_special(c) {
                        // A `field:(`, `field:[`, `field:"` ends the word at the colon.
                        break;
                    }
                    i += 1;
                    if c == '\\' {
                        let Some(&(_, n)) = chars.get(i) else {
                            return Err(err(pos, "a trailing backslash escapes nothing"));
                        };
                        text.push(n);
                        escaped.push(true);
                        i += 1;
                    } else {
                        text.push(c);
                        escaped.push(false);
                    }
                }
                let plain = !escaped.iter().any(|e| *e);
                let tok = match text.as_str() {
                    "AND" | "&&" if plain => Tok::And,
                    "OR" | "||" if plain => Tok::Or,
                    "NOT" if plain => Tok::Not,
                    "TO" if plain => Tok::To,
                    _ => Tok::Word(text, escaped),
                };
                out.push((pos, tok));
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    i: usize,
    end: usize,
    depth: usize,
}

const MAX_DEPTH: usize = 64;

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|t| &t.1)
    }
    fn pos(&self) -> usize {
        self.toks.get(self.i).map_or(self.end, |t| t.0)
    }
    fn err<T>(&self, m: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            pos: self.pos(),
            message: m.into(),
        })
    }

    fn or(&mut self, field: Option<&str>) -> Result<Query, ParseError> {
        let mut items = vec![self.and(field)?];
        while self.peek() == Some(&Tok::Or) {
            self.i += 1;
            items.push(self.and(field)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Query::Or(items)
        })
    }

    fn and(&mut self, field: Option<&str>) -> Result<Query, ParseError> {
        let mut items = vec![self.unary(field)?];
        loop {
            match self.peek() {
                Some(Tok::And) => {
                    self.i += 1;
                    items.push(self.unary(field)?);
                }
                None | Some(Tok::Or) | Some(Tok::RParen) => break,
                _ => items.push(self.unary(field)?),
            }
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Query::And(items)
        })
    }

    fn unary(&mut self, field: Option<&str>) -> Result<Query, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err("query nested too deeply");
        }
        let q = match self.peek() {
            Some(Tok::Not) => {
                self.i += 1;
                Query::Not(Box::new(self.unary(field)?))
            }
            Some(Tok::Word(w, e)) if w.len() > 1 && w.starts_with('-') && !e[0] => {
                let (w, e) = (w[1..].to_string(), e[1..].to_vec());
                self.toks[self.i].1 = Tok::Word(w, e);
                Query::Not(Box::new(self.unary(field)?))
            }
            _ => self.atom(field)?,
        };
        self.depth -= 1;
        Ok(q)
    }

    fn atom(&mut self, field: Option<&str>) -> Result<Query, ParseError> {
        let Some(tok) = self.peek().cloned() else {
            return self.err("expected a term");
        };
        match tok {
            Tok::LParen => {
                self.i += 1;
                let q = self.or(field)?;
                if self.peek() != Some(&Tok::RParen) {
                    return self.err("expected )");
                }
                self.i += 1;
                Ok(q)
            }
            Tok::Quoted(text) => {
                self.i += 1;
                Ok(Query::Match {
                    field: field.map(str::to_string),
                    value: Val::Phrase(text),
                })
            }
            Tok::Word(text, escaped) => {
                self.i += 1;
                // field:value?
                let colon = text
                    .char_indices()
                    .zip(escaped.iter())
                    .find(|((_, c), e)| *c == ':' && !**e)
                    .map(|((i, _), _)| i);
                if let (Some(at), None) = (colon, field) {
                    let name = &text[..at];
                    if valid_field(name) {
                        let n_chars = name.chars().count();
                        let rest = text[at + 1..].to_string();
                        let rest_esc = escaped[n_chars + 1..].to_vec();
                        let name = canonical_field(name);
                        return self.value(name, rest, rest_esc);
                    }
                }
                if text == "*" && !escaped[0] && field.is_none() {
                    return Ok(Query::All);
                }
                Ok(Query::Match {
                    field: field.map(str::to_string),
                    value: word_value(&text, &escaped),
                })
            }
            Tok::RangeOpen(_) => self.err("a range needs a field: field:[a TO b]"),
            _ => self.err("expected a term"),
        }
    }

    /// What follows `field:`.
    fn value(&mut self, field: String, rest: String, esc: Vec<bool>) -> Result<Query, ParseError> {
        if !rest.is_empty() {
            return Ok(Query::Match {
                field: Some(field),
                value: if rest == "*" && !esc[0] {
                    Val::Exists
                } else {
                    word_value(&rest, &esc)
                },
            });
        }
        match self.peek().cloned() {
            Some(Tok::Quoted(t)) => {
                self.i += 1;
                Ok(Query::Match {
                    field: Some(field),
                    value: Val::Phrase(t),
                })
            }
            Some(Tok::LParen) => {
                self.i += 1;
                let q = self.or(Some(&field))?;
                if self.peek() != Some(&Tok::RParen) {
                    return self.err("expected )");
                }
                self.i += 1;
                Ok(q)
            }
            Some(Tok::RangeOpen(incl_lo)) => {
                self.i += 1;
                let lo = self.bound(incl_lo)?;
                if self.peek() != Some(&Tok::To) {
                    return self.err("expected TO in a range");
                }
                self.i += 1;
                let hi_tok = self.bound_text()?;
                let Some(Tok::RangeClose(incl_hi)) = self.peek().cloned() else {
                    return self.err("expected ] or } to close the range");
                };
                self.i += 1;
                let hi = to_bound(hi_tok, incl_hi);
                Ok(Query::Match {
                    field: Some(field),
                    value: Val::Range { lo, hi },
                })
            }
            _ => self.err(format!("expected a value after {field}:")),
        }
    }

    fn bound_text(&mut self) -> Result<Option<String>, ParseError> {
        let t = match self.peek().cloned() {
            Some(Tok::Word(w, e)) if w == "*" && !e[0] => None,
            Some(Tok::Word(w, _)) => Some(w),
            Some(Tok::Quoted(w)) => Some(w),
            _ => return self.err("expected a range bound"),
        };
        self.i += 1;
        Ok(t)
    }

    fn bound(&mut self, inclusive: bool) -> Result<Bound<String>, ParseError> {
        Ok(to_bound(self.bound_text()?, inclusive))
    }
}

fn to_bound(v: Option<String>, inclusive: bool) -> Bound<String> {
    match (v, inclusive) {
        (None, _) => Bound::Unbounded,
        (Some(v), true) => Bound::Included(v),
        (Some(v), false) => Bound::Excluded(v),
    }
}

fn valid_field(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '@' || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-' | '/'))
}

fn word_value(text: &str, escaped: &[bool]) -> Val {
    let wild = text
        .chars()
        .zip(escaped)
        .any(|(c, e)| !e && (c == '*' || c == '?'));
    if !wild {
        return Val::Term(text.to_string());
    }
    // Keep escaped wildcard characters literal: `\*` inside a pattern becomes `\*`.
    let mut p = String::new();
    for (c, e) in text.chars().zip(escaped) {
        if *e && matches!(c, '*' | '?' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    Val::Wildcard(p)
}

/// Parses a query. `*` alone (or an empty query) means everything.
pub fn parse(s: &str) -> Result<Query, ParseError> {
    let toks = lex(s)?;
    if toks.is_empty() {
        return Ok(Query::All);
    }
    let mut p = Parser {
        toks,
        i: 0,
        end: s.len(),
        depth: 0,
    };
    let q = p.or(None)?;
    if p.i != p.toks.len() {
        return p.err("unexpected input");
    }
    Ok(q)
}

// ---- printing (canonical form; parses back to the same query) ----

fn escape_word(s: &str, keep_wild: bool, out: &mut String) {
    if matches!(s, "AND" | "OR" | "NOT" | "TO" | "&&" | "||") {
        out.push('\\');
    }
    let mut chars = s.chars().peekable();
    let mut first = true;
    while let Some(c) = chars.next() {
        if keep_wild && c == '\\' {
            // A pattern's own escape: copy it with the character it escapes.
            out.push('\\');
            if let Some(n) = chars.next() {
                out.push(n);
            }
            first = false;
            continue;
        }
        let wild = c == '*' || c == '?';
        if is_special(c) || c == '\\' || c == ':' || (wild && !keep_wild) || (first && c == '-') {
            out.push('\\');
        }
        out.push(c);
        first = false;
    }
}

fn quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

fn fmt_bound(b: &Bound<String>, out: &mut String) {
    match b {
        Bound::Unbounded => out.push('*'),
        Bound::Included(v) | Bound::Excluded(v) => {
            if v.is_empty() {
                quote(v, out)
            } else {
                escape_word(v, false, out)
            }
        }
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        write_query(self, &mut s);
        f.write_str(&s)
    }
}

fn write_query(q: &Query, out: &mut String) {
    match q {
        Query::All => out.push('*'),
        Query::Not(x) => {
            out.push_str("NOT ");
            write_query(x, out);
        }
        Query::And(xs) | Query::Or(xs) => {
            let op = if matches!(q, Query::And(_)) {
                " AND "
            } else {
                " OR "
            };
            out.push('(');
            for (i, x) in xs.iter().enumerate() {
                if i > 0 {
                    out.push_str(op);
                }
                write_query(x, out);
            }
            out.push(')');
        }
        Query::Match { field, value } => {
            if let Some(f) = field {
                out.push_str(f);
                out.push(':');
            }
            match value {
                Val::Term(t) if t.is_empty() => quote(t, out),
                Val::Term(t) => escape_word(t, false, out),
                Val::Wildcard(p) => escape_word(p, true, out),
                Val::Phrase(p) => quote(p, out),
                Val::Exists => out.push('*'),
                Val::Range { lo, hi } => {
                    out.push(if matches!(lo, Bound::Excluded(_)) {
                        '{'
                    } else {
                        '['
                    });
                    fmt_bound(lo, out);
                    out.push_str(" TO ");
                    fmt_bound(hi, out);
                    out.push(if matches!(hi, Bound::Excluded(_)) {
                        '}'
                    } else {
                        ']'
                    });
                }
            }
        }
    }
}

// ---- matching ----

/// Glob match with `*`, `?` and `\` escapes.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<(char, bool)> = {
        let mut v = Vec::new();
        let mut it = pattern.chars();
        while let Some(c) = it.next() {
            if c == '\\' {
                if let Some(n) = it.next() {
                    v.push((n, true));
                }
            } else {
                v.push((c, false));
            }
        }
        v
    };
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && !p[pi].1 && p[pi].0 == '*' {
            star = Some(pi);
            pi += 1;
            mark = ti;
        } else if pi < p.len() && ((!p[pi].1 && p[pi].0 == '?') || p[pi].0 == t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && !p[pi].1 && p[pi].0 == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// The tokens of free text: alphanumeric runs, lowercased, under 40 bytes (as the index's).
pub fn tokens(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty() && t.len() < 40)
        .map(str::to_lowercase)
}

/// Values at a dotted path: nested objects, or (where the next segment is not a key) keys that
/// themselves contain dots; arrays are searched element by element.
pub fn lookup<'a>(doc: &'a Value, path: &str, out: &mut Vec<&'a Value>) {
    fn walk<'a>(v: &'a Value, path: &str, out: &mut Vec<&'a Value>) {
        if path.is_empty() {
            match v {
                Value::Array(items) => out.extend(items.iter().filter(|i| !i.is_null())),
                Value::Null => {}
                v => out.push(v),
            }
            return;
        }
        match v {
            Value::Object(m) => {
                // The next segment, and keys that span several segments (`a.b` in `a.b.c`).
                let first = path.split('.').next().unwrap_or(path);
                if let Some(child) = m.get(first) {
                    walk(child, path.get(first.len() + 1..).unwrap_or(""), out);
                } else if path.len() > first.len() {
                    let dotted = m.iter().filter(|(k, _)| {
                        k.len() > first.len()
                            && k.starts_with(first)
                            && k.as_bytes()[first.len()] == b'.'
                    });
                    for (k, child) in dotted {
                        if path == k.as_str() {
                            walk(child, "", out);
                        } else if path.starts_with(k.as_str())
                            && path.as_bytes().get(k.len()) == Some(&b'.')
                        {
                            walk(child, &path[k.len() + 1..], out);
                        } else {
                            continue;
                        }
                    }
                }
            }
            Value::Array(items) => {
                for i in items {
                    walk(i, path, out);
                }
            }
            _ => {}
        }
    }
    walk(doc, path, out);
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Keys whose values are not free text (ids, times, versions), or only repeat other fields
/// (the ECS copies of native fields).
pub fn is_free_text_key(key: &str) -> bool {
    !(matches!(
        key,
        "event"
            | "url"
            | "user_agent"
            | "orchestrator"
            | "related"
            | "source"
            | "destination"
            | "http"
            | "kind"
            | "apiVersion"
            | "level"
            | "stage"
            | "verb"
    ) || key == "auditID"
        || key == "uid"
        || key == "id"
        || key == "resourceVersion"
        || key == "@timestamp"
        || key == "managedFields"
        || key.ends_with("Timestamp")
        || key.ends_with("Time")
        || key == "timestamp")
}

/// The free-text strings of a document.
pub fn text_values(doc: &Value) -> Vec<&str> {
    fn walk<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::String(s) => out.push(s),
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Object(m) => {
                for (k, v) in m {
                    if is_free_text_key(k) {
                        walk(v, out);
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, &mut out);
    out
}

fn parse_ip_or_net(s: &str) -> Option<(IpAddr, u8)> {
    match s.split_once('/') {
        Some((ip, bits)) => {
            let ip: IpAddr = ip.parse().ok()?;
            let bits: u8 = bits.parse().ok()?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            (bits <= max).then_some((ip, bits))
        }
        None => {
            let ip: IpAddr = s.parse().ok()?;
            Some((ip, if ip.is_ipv4() { 32 } else { 128 }))
        }
    }
}

/// An address or CIDR block as an inclusive range of IPv6 (IPv4-mapped) addresses.
pub fn ip_range(s: &str) -> Option<(u128, u128)> {
    let (ip, bits) = parse_ip_or_net(s)?;
    let (v, bits) = match ip {
        IpAddr::V4(a) => (u128::from(a.to_ipv6_mapped()), bits + 96),
        IpAddr::V6(a) => (u128::from(a), bits),
    };
    let mask = if bits == 0 {
        0
    } else {
        u128::MAX << (128 - bits)
    };
    Some((v & mask, (v & mask) | !mask))
}

pub fn ip_value(s: &str) -> Option<u128> {
    Some(match s.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a),
    })
}

fn cmp_in_range<T: PartialOrd>(v: &T, lo: &Bound<T>, hi: &Bound<T>) -> bool {
    let lo_ok = match lo {
        Bound::Unbounded => true,
        Bound::Included(l) => v >= l,
        Bound::Excluded(l) => v > l,
    };
    let hi_ok = match hi {
        Bound::Unbounded => true,
        Bound::Included(h) => v <= h,
        Bound::Excluded(h) => v < h,
    };
    lo_ok && hi_ok
}

fn map_bound<T>(b: &Bound<String>, f: impl Fn(&str) -> Option<T>) -> Option<Bound<T>> {
    Some(match b {
        Bound::Unbounded => Bound::Unbounded,
        Bound::Included(v) => Bound::Included(f(v)?),
        Bound::Excluded(v) => Bound::Excluded(f(v)?),
    })
}

pub fn time_value(s: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros())
}

fn field_matches(field: &str, value: &Val, values: &[&Value]) -> bool {
    let addr = is_address_field(field);
    match value {
        Val::Exists => !values.is_empty(),
        Val::Term(t) | Val::Phrase(t) => {
            if addr {
                if let Some((lo, hi)) = ip_range(t) {
                    return values
                        .iter()
                        .filter_map(|v| v.as_str())
                        .any(|v| ip_value(v).is_some_and(|x| x >= lo && x <= hi));
                }
            }
            values.iter().any(|v| match v {
                Value::Number(n) => t.parse::<f64>().ok() == n.as_f64(),
                v => as_text(v).as_deref() == Some(t.as_str()),
            })
        }
        Val::Wildcard(p) => values
            .iter()
            .filter_map(|v| as_text(v))
            .any(|v| glob(p, &v)),
        Val::Range { lo, hi } => values.iter().any(|v| {
            let text = as_text(v).unwrap_or_default();
            if field == "@timestamp" {
                if let (Some(l), Some(h), Some(x)) = (
                    map_bound(lo, time_value),
                    map_bound(hi, time_value),
                    time_value(&text),
                ) {
                    return cmp_in_range(&x, &l, &h);
                }
            }
            if addr {
                if let (Some(l), Some(h), Some(x)) = (
                    map_bound(lo, ip_value),
                    map_bound(hi, ip_value),
                    ip_value(&text),
                ) {
                    return cmp_in_range(&x, &l, &h);
                }
            }
            let num = |s: &str| s.parse::<f64>().ok();
            if let (Some(l), Some(h), Some(x)) =
                (map_bound(lo, num), map_bound(hi, num), num(&text))
            {
                return cmp_in_range(&x, &l, &h);
            }
            cmp_in_range(&text, lo, hi)
        }),
    }
}

fn text_matches(value: &Val, doc: &Value) -> bool {
    let strings = text_values(doc);
    match value {
        Val::Exists => true,
        Val::Term(t) | Val::Phrase(t) => {
            let want: Vec<String> = tokens(t).collect();
            if want.is_empty() {
                return false;
            }
            strings.iter().any(|s| {
                let have: Vec<String> = tokens(s).collect();
                have.windows(want.len()).any(|w| w == want.as_slice())
            })
        }
        Val::Wildcard(p) => {
            let p = p.to_lowercase();
            strings.iter().any(|s| tokens(s).any(|t| glob(&p, &t)))
        }
        Val::Range { .. } => false,
    }
}

/// Whether `doc` (a normalized document) matches `q`.
pub fn matches(q: &Query, doc: &Value) -> bool {
    match q {
        Query::All => true,
        Query::Not(x) => !matches(x, doc),
        Query::And(xs) => xs.iter().all(|x| matches(x, doc)),
        Query::Or(xs) => xs.iter().any(|x| matches(x, doc)),
        Query::Match { field: None, value } => text_matches(value, doc),
        Query::Match {
            field: Some(f),
            value,
        } => {
            let mut values = Vec::new();
            lookup(doc, f, &mut values);
            field_matches(f, value, &values)
        }
    }
}

/// Every field a query names.
pub fn fields(q: &Query, out: &mut Vec<String>) {
    match q {
        Query::All => {}
        Query::Not(x) => fields(x, out),
        Query::And(xs) | Query::Or(xs) => xs.iter().for_each(|x| fields(x, out)),
        Query::Match { field, .. } => {
            if let Some(f) = field {
                out.push(f.clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn m(field: &str, value: Val) -> Query {
        Query::Match {
            field: Some(field.into()),
            value,
        }
    }

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse("*").unwrap(), Query::All);
        assert_eq!(parse("").unwrap(), Query::All);
        assert_eq!(
            parse("user.name:alice").unwrap(),
            m("user.name", Val::Term("alice".into()))
        );
        assert_eq!(
            parse("verb:get").unwrap(),
            m("event.action", Val::Term("get".into()))
        );
        assert_eq!(
            parse(r#"user.name:"system:serviceaccount:shop:web""#).unwrap(),
            m(
                "user.name",
                Val::Phrase("system:serviceaccount:shop:web".into())
            )
        );
        assert_eq!(
            parse("objectRef.name:web-*").unwrap(),
            m("objectRef.name", Val::Wildcard("web-*".into()))
        );
        assert_eq!(
            parse("code:[400 TO 499}").unwrap(),
            m(
                "http.response.status_code",
                Val::Range {
                    lo: Bound::Included("400".into()),
                    hi: Bound::Excluded("499".into())
                }
            )
        );
        assert_eq!(
            parse("source.ip:10.0.0.0/8").unwrap(),
            m("source.ip", Val::Term("10.0.0.0/8".into()))
        );
        assert_eq!(
            parse("a b OR NOT c -d").unwrap(),
            Query::Or(vec![
                Query::And(vec![
                    Query::Match {
                        field: None,
                        value: Val::Term("a".into())
                    },
                    Query::Match {
                        field: None,
                        value: Val::Term("b".into())
                    }
                ]),
                Query::And(vec![
                    Query::Not(Box::new(Query::Match {
                        field: None,
                        value: Val::Term("c".into())
                    })),
                    Query::Not(Box::new(Query::Match {
                        field: None,
                        value: Val::Term("d".into())
                    })),
                ])
            ])
        );
        assert_eq!(
            parse("verb:(get OR list)").unwrap(),
            Query::Or(vec![
                m("event.action", Val::Term("get".into())),
                m("event.action", Val::Term("list".into()))
            ])
        );
        assert_eq!(parse("host.name:*").unwrap(), m("host.name", Val::Exists));
        assert!(parse("(a").is_err());
        assert!(parse("a:[1 TO").is_err());
        assert!(parse("\"abc").is_err());
        assert!(parse("[1 TO 2]").is_err());
    }

    #[test]
    fn matching() {
        let doc = json!({
            "user": {"name": "alice@example.com", "groups": ["dev", "ops"]},
            "source": {"ip": "10.1.2.3"},
            "http": {"response": {"status_code": 403}},
            "@timestamp": "2026-11-20T09:00:00Z",
            "annotations": {"authorization.k8s.io/decision": "forbid"},
            "requestURI": "/api/v1/namespaces/kube-system/secrets",
            "auditID": "abc-123"
        });
        let yes = |q: &str| assert!(matches(&parse(q).unwrap(), &doc), "{q}");
        let no = |q: &str| assert!(!matches(&parse(q).unwrap(), &doc), "{q}");
        yes("user.name:alice@example.com");
        yes("user.name:alice*");
        no("user.name:alice");
        yes("user.groups:ops");
        yes("source.ip:10.0.0.0/8");
        no("source.ip:192.168.0.0/16");
        yes("source.ip:[10.1.0.0 TO 10.2.0.0]");
        yes("code:[400 TO 499]");
        yes("code:403");
        no("code:{403 TO 500]");
        yes("@timestamp:[2026-11-20 TO 2026-11-21]");
        no("@timestamp:[2026-11-21 TO *]");
        yes("annotations.authorization.k8s.io/decision:forbid");
        yes("kube-system");
        yes("\"namespaces kube system\"");
        no("\"kube namespaces\"");
        yes("SECRETS");
        yes("secr*");
        no("abc");
        yes("NOT bob AND alice");
        yes("nothing OR alice");
        yes("user.name:* AND NOT host.name:*");
        yes("*");
    }

    #[test]
    fn globs() {
        assert!(glob("a*c", "abbbc"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob(r"a\*c", "a*c"));
        assert!(!glob(r"a\*c", "abc"));
        assert!(glob("*", ""));
    }

    fn arb_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9.@/_-]{1,8}",
            "[ -~]{1,8}",
            Just("AND".to_string()),
            Just("-x".to_string()),
        ]
    }

    fn arb_val() -> impl Strategy<Value = Val> {
        let bound = prop_oneof![
            Just(Bound::Unbounded),
            arb_text().prop_map(Bound::Included),
            arb_text().prop_map(Bound::Excluded),
        ];
        prop_oneof![
            arb_text().prop_map(Val::Term),
            "[a-z]{0,3}\\*[a-z]{1,3}".prop_map(Val::Wildcard),
            "[ -~]{0,8}".prop_map(Val::Phrase),
            (bound.clone(), bound).prop_map(|(lo, hi)| Val::Range { lo, hi }),
            Just(Val::Exists),
        ]
    }

    fn arb_query() -> impl Strategy<Value = Query> {
        let leaf = prop_oneof![
            Just(Query::All),
            ("[a-z][a-z.]{0,6}[a-z]", arb_val()).prop_map(|(f, value)| Query::Match {
                field: Some(canonical_field(&f)),
                value
            }),
            arb_text().prop_map(|t| Query::Match {
                field: None,
                value: Val::Term(t)
            }),
            "[ -~]{1,8}".prop_map(|t| Query::Match {
                field: None,
                value: Val::Phrase(t)
            }),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                inner.clone().prop_map(|q| Query::Not(Box::new(q))),
                prop::collection::vec(inner.clone(), 2..4).prop_map(Query::And),
                prop::collection::vec(inner, 2..4).prop_map(Query::Or),
            ]
        })
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = parse(&s);
        }

        #[test]
        fn parse_never_panics_on_query_like_text(s in "[a-z:*?()\\[\\]{}\" \\\\-]{0,30}( (AND|OR|NOT|TO) [a-z:*]{0,5}){0,3}") {
            if let Ok(q) = parse(&s) {
                let _ = matches(&q, &serde_json::json!({"a": "b"}));
            }
        }

        #[test]
        fn printed_queries_parse_back(q in arb_query()) {
            let text = q.to_string();
            let back = parse(&text);
            prop_assert_eq!(back.as_ref(), Ok(&q), "printed as {}", text);
        }
    }
}
