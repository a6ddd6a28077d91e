//! Values and modifiers: turning `field|mod1|mod2: values` into matchers, and matching them.

use std::collections::HashMap;
use std::net::IpAddr;

use aho_corasick::AhoCorasick;
use chrono::{Datelike, Timelike};
use serde_json::Value;

use crate::condition::CmpOp;
use crate::event::{with_text, FieldPath};
use crate::pattern::{self, StrPattern, Tok};

/// How one rule value is compared with one event value.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// A string with wildcards (case-insensitive unless cased). `*` alone matches any non-null
    /// value, objects included ("the field has a value").
    Str(StrPattern),
    /// Many plain strings of an OR list folded into one automaton and one hash set.
    StrSet(Box<StrSet>),
    /// A YAML number: equal numbers, or strings holding that number.
    Num {
        n: f64,
        text: String,
    },
    Bool(bool),
    /// `null`: the field is absent or null.
    Null,
    Regex(regex::Regex),
    Cidr(Cidr),
    /// `gt`, `gte`, `lt`, `lte`: numbers or numeric strings.
    Cmp(CmpOp, f64),
    /// `fieldref`: compare with the value(s) of another field of the same event.
    FieldRef {
        name: String,
        paths: Vec<FieldPath>,
        mode: RefMode,
        cased: bool,
    },
    /// `minute`, `hour`, `day`, `week`, `month`, `year` of a timestamp.
    TimePart {
        part: TimePart,
        op: CmpOp,
        n: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefMode {
    Equal,
    Prefix,
    Suffix,
    Contains,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimePart {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

#[derive(Debug, Clone)]
pub struct StrSet {
    exact: std::collections::HashSet<String>,
    contains: Option<AhoCorasick>,
    contains_lits: Vec<String>,
    /// Rendered patterns, for explanations.
    pub sources: Vec<String>,
}

impl StrSet {
    /// Folds plain, case-insensitive, ASCII `lit` and `*lit*` patterns; returns the rest.
    pub fn fold(ms: Vec<Matcher>) -> Vec<Matcher> {
        let mut exact = std::collections::HashSet::new();
        let mut contains = Vec::new();
        let mut sources = Vec::new();
        let mut rest = Vec::new();
        let mut n = 0;
        for m in &ms {
            if let Matcher::Str(p) = m {
                if !p.is_cased()
                    && (p.exact().is_some_and(str::is_ascii)
                        || p.contains_literal()
                            .is_some_and(|s| s.is_ascii() && !s.is_empty()))
                {
                    n += 1;
                }
            }
        }
        if n < 6 {
            return ms;
        }
        for m in ms {
            match m {
                Matcher::Str(p) if !p.is_cased() && p.exact().is_some_and(str::is_ascii) => {
                    exact.insert(p.exact().unwrap_or_default().to_string());
                    sources.push(p.source.clone());
                }
                Matcher::Str(p)
                    if !p.is_cased()
                        && p.contains_literal()
                            .is_some_and(|s| s.is_ascii() && !s.is_empty()) =>
                {
                    contains.push(p.contains_literal().unwrap_or_default().to_string());
                    sources.push(p.source.clone());
                }
                m => rest.push(m),
            }
        }
        let ac = if contains.is_empty() {
            None
        } else {
            AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(&contains)
                .ok()
        };
        rest.insert(
            0,
            Matcher::StrSet(Box::new(StrSet {
                exact,
                contains: ac,
                contains_lits: contains,
                sources,
            })),
        );
        rest
    }

    fn matches(&self, s: &str) -> bool {
        if !self.exact.is_empty() {
            let hit = if s.bytes().any(|b| b.is_ascii_uppercase()) || !s.is_ascii() {
                self.exact.contains(pattern::fold(s).as_ref())
            } else {
                self.exact.contains(s)
            };
            if hit {
                return true;
            }
        }
        match &self.contains {
            None => false,
            Some(ac) => {
                if s.is_ascii() {
                    ac.is_match(s)
                } else {
                    // The automaton folds ASCII only; fold the rest the Unicode way first.
                    let l = s.to_lowercase();
                    self.contains_lits.iter().any(|c| l.contains(c.as_str()))
                }
            }
        }
    }

    /// The exact strings, when the set has no `contains` patterns.
    pub fn exact_only(&self) -> Option<&std::collections::HashSet<String>> {
        self.contains_lits.is_empty().then_some(&self.exact)
    }

    /// Every pattern of the set: `(text, true)` for exact strings, `(text, false)` for
    /// `*text*`.
    pub fn patterns(&self) -> impl Iterator<Item = (&str, bool)> {
        self.exact
            .iter()
            .map(|s| (s.as_str(), true))
            .chain(self.contains_lits.iter().map(|s| (s.as_str(), false)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = a.trim().parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|&p| p <= max)?,
            None => max,
        };
        Some(Cidr { net, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.net, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            (_, ip) => ip,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                (u32::from(n) & mask) == (u32::from(a) & mask)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                (u128::from(n) & mask) == (u128::from(a) & mask)
            }
            _ => false,
        }
    }
}

fn numeric_text(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty()
        || !t
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.'))
    {
        return None;
    }
    t.parse().ok()
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => numeric_text(s),
        _ => None,
    }
}

/// Parses a timestamp: RFC 3339 text, or epoch seconds / milliseconds (numbers above 10^11 are
/// taken as milliseconds).
pub fn parse_time_ms(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s.trim())
            .ok()
            .map(|t| t.timestamp_millis())
            .or_else(|| numeric_text(s).map(epoch_ms)),
        Value::Number(n) => n.as_f64().map(epoch_ms),
        _ => None,
    }
}

fn epoch_ms(x: f64) -> i64 {
    if x.abs() > 1e11 {
        x as i64
    } else {
        (x * 1000.0) as i64
    }
}

impl TimePart {
    fn of(self, ms: i64) -> Option<f64> {
        let t = chrono::DateTime::from_timestamp_millis(ms)?;
        Some(match self {
            TimePart::Minute => t.minute() as f64,
            TimePart::Hour => t.hour() as f64,
            TimePart::Day => t.day() as f64,
            TimePart::Week => t.iso_week().week() as f64,
            TimePart::Month => t.month() as f64,
            TimePart::Year => t.year() as f64,
        })
    }
}

impl Matcher {
    /// Whether this rule value matches the event value `v` (never an array: callers flatten).
    pub fn matches(&self, v: &Value, doc: &Value) -> bool {
        match self {
            Matcher::Str(p) => {
                if p.is_any() {
                    !v.is_null()
                } else {
                    with_text(v, |s| p.matches(s)).unwrap_or(false)
                }
            }
            Matcher::StrSet(set) => with_text(v, |s| set.matches(s)).unwrap_or(false),
            Matcher::Num { n, text } => {
                // An integer in a rule matches integral JSON numbers (401, not 401.0) and strings
                // holding that integer; a fraction matches numbers and numeric strings equal to it.
                let int = (n.fract() == 0.0 && n.abs() < 9.0e18).then_some(*n as i64);
                match (v, int) {
                    (Value::Number(x), Some(i)) => {
                        x.as_i64() == Some(i) || (i >= 0 && x.as_u64() == Some(i as u64))
                    }
                    (Value::Number(x), None) => x.as_f64() == Some(*n),
                    (Value::String(s), Some(i)) => {
                        s == text || s.trim().parse::<i64>().ok() == Some(i)
                    }
                    (Value::String(s), None) => s == text || numeric_text(s) == Some(*n),
                    _ => false,
                }
            }
            Matcher::Bool(b) => match v {
                Value::Bool(x) => x == b,
                Value::String(s) => s.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
                _ => false,
            },
            Matcher::Null => v.is_null(),
            Matcher::Regex(re) => with_text(v, |s| re.is_match(s)).unwrap_or(false),
            Matcher::Cidr(c) => match v {
                Value::String(s) => s.trim().parse::<IpAddr>().is_ok_and(|ip| c.contains(ip)),
                _ => false,
            },
            Matcher::Cmp(op, n) => as_number(v).is_some_and(|x| op.apply(x, *n)),
            Matcher::FieldRef {
                paths, mode, cased, ..
            } => with_text(v, |s| {
                let a = if *cased {
                    std::borrow::Cow::Borrowed(s)
                } else {
                    pattern::fold(s)
                };
                paths.iter().any(|p| {
                    p.any(doc, &mut |o| {
                        with_text(o, |t| {
                            let b = if *cased {
                                std::borrow::Cow::Borrowed(t)
                            } else {
                                pattern::fold(t)
                            };
                            match mode {
                                RefMode::Equal => a == b,
                                RefMode::Prefix => a.starts_with(b.as_ref()),
                                RefMode::Suffix => a.ends_with(b.as_ref()),
                                RefMode::Contains => a.contains(b.as_ref()),
                            }
                        })
                        .unwrap_or(false)
                    })
                })
            })
            .unwrap_or(false),
            Matcher::TimePart { part, op, n } => parse_time_ms(v)
                .and_then(|ms| part.of(ms))
                .is_some_and(|x| op.apply(x, *n)),
        }
    }

    /// Sigma-like text of the value, for explanations.
    pub fn describe(&self) -> String {
        match self {
            Matcher::Str(p) => format!(
                "'{}'{}",
                p.source,
                if p.is_cased() { " (cased)" } else { "" }
            ),
            Matcher::StrSet(s) => {
                let mut v: Vec<String> = s.sources.iter().map(|x| format!("'{x}'")).collect();
                v.sort();
                format!("one of [{}]", v.join(", "))
            }
            Matcher::Num { text, .. } => text.clone(),
            Matcher::Bool(b) => b.to_string(),
            Matcher::Null => "null".into(),
            Matcher::Regex(r) => format!("/{}/", r.as_str()),
            Matcher::Cidr(c) => format!("cidr {}/{}", c.net, c.prefix),
            Matcher::Cmp(op, n) => format!("{} {n}", op.symbol()),
            Matcher::FieldRef { name, mode, .. } => format!("fieldref {name} ({mode:?})"),
            Matcher::TimePart { part, op, n } => format!("{part:?} {} {n}", op.symbol()),
        }
    }
}

/// A rule value as written, before modifiers.
#[derive(Debug, Clone)]
pub enum RawValue {
    Null,
    Bool(bool),
    /// A YAML number, with its source text.
    Num(f64, String),
    Str(String),
}

/// The intermediate state of one value while modifiers apply.
#[derive(Debug, Clone)]
enum St {
    Raw(String),
    Toks {
        toks: Vec<Tok>,
        cased: bool,
        /// UTF-16 encoding applied (with or without byte order mark).
        enc: Option<(Utf16, bool)>,
    },
    Regex {
        src: String,
        i: bool,
        m: bool,
        s: bool,
    },
    Cidr(Cidr),
    Num(f64, String),
    Bool(bool),
    Null,
    Cmp(CmpOp, f64),
    FieldRef {
        name: String,
        mode: RefMode,
        cased: bool,
    },
    Time(TimePart, CmpOp, f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Utf16 {
    Le,
    Be,
}

/// The compiled form of one `field|modifiers: values` entry.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub exists: Option<bool>,
    pub all: bool,
    pub negate: bool,
    pub matchers: Vec<Matcher>,
    /// Field references to resolve through the dataset's field mapping.
    pub fieldrefs: Vec<String>,
}

const KNOWN: &[&str] = &[
    "all",
    "neq",
    "base64",
    "base64offset",
    "cased",
    "cidr",
    "contains",
    "day",
    "dotall",
    "endswith",
    "exists",
    "expand",
    "fieldref",
    "gt",
    "gte",
    "hour",
    "i",
    "ignorecase",
    "lt",
    "lte",
    "m",
    "minute",
    "month",
    "multiline",
    "re",
    "utf16",
    "utf16le",
    "utf16be",
    "s",
    "startswith",
    "week",
    "wide",
    "windash",
    "year",
];

fn to_toks(st: St) -> Result<St, String> {
    match st {
        St::Raw(s) => Ok(St::Toks {
            toks: pattern::parse_wildcards(&s),
            cased: false,
            enc: None,
        }),
        St::Num(_, t) => Ok(St::Toks {
            toks: vec![Tok::Lit(t)],
            cased: false,
            enc: None,
        }),
        St::Bool(b) => Ok(St::Toks {
            toks: vec![Tok::Lit(b.to_string())],
            cased: false,
            enc: None,
        }),
        st @ St::Toks { .. } => Ok(st),
        other => Err(format!(
            "a string modifier cannot apply to {}",
            st_kind(&other)
        )),
    }
}

fn st_kind(st: &St) -> &'static str {
    match st {
        St::Raw(_) | St::Toks { .. } => "a string",
        St::Regex { .. } => "a regular expression",
        St::Cidr(_) => "a CIDR network",
        St::Num(..) => "a number",
        St::Bool(_) => "a boolean",
        St::Null => "null",
        St::Cmp(..) => "a comparison",
        St::FieldRef { .. } => "a field reference",
        St::Time(..) => "a time part",
    }
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// pySigma's windash: a `-` or `/` that starts a word (no word character before it, a word
/// character after it) becomes each of `-`, `/`, en dash, em dash and horizontal bar.
fn windash(toks: &[Tok]) -> Result<Vec<Vec<Tok>>, String> {
    const DASHES: [char; 5] = ['-', '/', '\u{2013}', '\u{2014}', '\u{2015}'];
    // Flatten to (char or wildcard) with positions eligible for expansion.
    #[derive(Clone)]
    enum C {
        Ch(char),
        W(Tok),
    }
    let mut cs: Vec<C> = Vec::new();
    for t in toks {
        match t {
            Tok::Lit(s) => cs.extend(s.chars().map(C::Ch)),
            w => cs.push(C::W(w.clone())),
        }
    }
    let mut slots = Vec::new();
    for i in 0..cs.len() {
        if let C::Ch(c) = cs[i] {
            if c == '-' || c == '/' {
                let prev_word = i > 0 && matches!(cs[i - 1], C::Ch(p) if is_word(p));
                let next_word = matches!(cs.get(i + 1), Some(C::Ch(n)) if is_word(*n));
                if !prev_word && next_word {
                    slots.push(i);
                }
            }
        }
    }
    if slots.len() > 5 {
        return Err(format!(
            "windash would expand {} dashes into {} variants; at most 5 dashes are supported",
            slots.len(),
            5usize.pow(slots.len() as u32)
        ));
    }
    let mut out = Vec::new();
    let total = 5usize.pow(slots.len() as u32);
    for mut k in 0..total {
        let mut v = cs.clone();
        for &s in &slots {
            v[s] = C::Ch(DASHES[k % 5]);
            k /= 5;
        }
        let mut toks = Vec::new();
        for c in v {
            match c {
                C::Ch(ch) => toks.push(Tok::Lit(ch.to_string())),
                C::W(w) => toks.push(w),
            }
        }
        out.push(pattern::normalize(toks));
    }
    Ok(out)
}

pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// The three base64 forms of `data` at offsets 0, 1 and 2 (pySigma's cut points), so the value
/// is found wherever it sits inside a longer encoded string.
pub fn base64_offsets(data: &[u8]) -> Vec<String> {
    let start = [0usize, 2, 3];
    let end_cut = [0usize, 3, 2]; // characters removed at the end, by (len + i) % 3
    (0..3)
        .map(|i| {
            let mut d = vec![b' '; i];
            d.extend_from_slice(data);
            let enc = base64(&d);
            let cut = end_cut[(data.len() + i) % 3];
            let e = enc.len().saturating_sub(cut);
            enc.get(start[i]..e).unwrap_or("").to_string()
        })
        .collect()
}

fn lit_bytes(toks: &[Tok], enc: Option<(Utf16, bool)>) -> Result<Vec<u8>, String> {
    let mut s = String::new();
    for t in toks {
        match t {
            Tok::Lit(l) => s.push_str(l),
            _ => return Err("base64 encoding of a value with wildcards is not allowed".into()),
        }
    }
    let mut bytes = s.into_bytes();
    if let Some((_, true)) = enc {
        // The utf16 modifier's byte order mark, encoded as UTF-16LE bytes.
        bytes.splice(0..0, [0xff, 0xfe]);
    }
    Ok(bytes)
}

/// Applies the modifier chain to the values of one detection item.
///
/// `placeholders` answers `|expand`; an undefined placeholder is an error naming it (prefixed
/// `placeholder:` so the caller can classify it).
pub fn compile(
    mods: &[String],
    values: &[RawValue],
    keyword: bool,
    placeholders: &HashMap<String, Vec<String>>,
) -> Result<Compiled, String> {
    for m in mods {
        if !KNOWN.contains(&m.as_str()) {
            return Err(format!("unknown modifier `{m}`"));
        }
    }
    let has = |m: &str| mods.iter().any(|x| x == m);
    let mut out = Compiled {
        exists: None,
        all: has("all"),
        negate: has("neq"),
        matchers: vec![],
        fieldrefs: vec![],
    };
    if out.all && values.len() < 2 && !keyword {
        // The specification forbids it; it is harmless, so accept it (it means the same).
    }
    if has("exists") {
        if keyword {
            return Err("`exists` needs a field".into());
        }
        if mods.len() > 1 {
            return Err("`exists` cannot be combined with other modifiers".into());
        }
        return match values {
            [RawValue::Bool(b)] => {
                out.exists = Some(*b);
                Ok(out)
            }
            [RawValue::Str(s)]
                if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") =>
            {
                out.exists = Some(s.eq_ignore_ascii_case("true"));
                Ok(out)
            }
            _ => Err("`exists` takes a single boolean value".into()),
        };
    }
    if values.is_empty() {
        return Err("no values".into());
    }
    let mut states: Vec<St> = Vec::new();
    for v in values {
        let st = match v {
            RawValue::Null => St::Null,
            RawValue::Bool(b) => St::Bool(*b),
            RawValue::Num(n, t) => St::Num(*n, t.clone()),
            RawValue::Str(s) => St::Raw(s.clone()),
        };
        if has("expand") {
            if let St::Raw(s) = &st {
                for e in expand(s, placeholders)? {
                    states.push(St::Raw(e));
                }
                continue;
            }
        }
        states.push(st);
    }
    let cmp_op = mods.iter().find_map(|m| match m.as_str() {
        "gt" => Some(CmpOp::Gt),
        "gte" => Some(CmpOp::Gte),
        "lt" => Some(CmpOp::Lt),
        "lte" => Some(CmpOp::Lte),
        _ => None,
    });
    let time_part = mods.iter().find_map(|m| match m.as_str() {
        "minute" => Some(TimePart::Minute),
        "hour" => Some(TimePart::Hour),
        "day" => Some(TimePart::Day),
        "week" => Some(TimePart::Week),
        "month" => Some(TimePart::Month),
        "year" => Some(TimePart::Year),
        _ => None,
    });
    for (pos, m) in mods.iter().enumerate() {
        let mut next = Vec::with_capacity(states.len());
        for st in states {
            match m.as_str() {
                "all" | "neq" | "expand" => next.push(st),
                "contains" | "startswith" | "endswith" => match st {
                    St::Regex { src, i, m: ml, s } => {
                        let src = match m.as_str() {
                            "startswith" => format!("^(?:{src})"),
                            "endswith" => format!("(?:{src})$"),
                            _ => src,
                        };
                        next.push(St::Regex { src, i, m: ml, s })
                    }
                    St::FieldRef { name, cased, .. } => next.push(St::FieldRef {
                        name,
                        cased,
                        mode: match m.as_str() {
                            "contains" => RefMode::Contains,
                            "startswith" => RefMode::Prefix,
                            _ => RefMode::Suffix,
                        },
                    }),
                    st => {
                        let St::Toks {
                            mut toks,
                            cased,
                            enc,
                        } = to_toks(st)?
                        else {
                            unreachable!()
                        };
                        if m != "endswith" && toks.last() != Some(&Tok::Star) {
                            toks.push(Tok::Star);
                        }
                        if m != "startswith" && toks.first() != Some(&Tok::Star) {
                            toks.insert(0, Tok::Star);
                        }
                        next.push(St::Toks { toks, cased, enc });
                    }
                },
                "cased" => match st {
                    St::FieldRef { name, mode, .. } => next.push(St::FieldRef {
                        name,
                        mode,
                        cased: true,
                    }),
                    st => {
                        let St::Toks { toks, enc, .. } = to_toks(st)? else {
                            unreachable!()
                        };
                        next.push(St::Toks {
                            toks,
                            cased: true,
                            enc,
                        });
                    }
                },
                "windash" => {
                    let St::Toks { toks, cased, enc } = to_toks(st)? else {
                        unreachable!()
                    };
                    for t in windash(&toks)? {
                        next.push(St::Toks {
                            toks: t,
                            cased,
                            enc,
                        });
                    }
                }
                "wide" | "utf16le" | "utf16be" | "utf16" => {
                    let St::Toks { toks, cased, .. } = to_toks(st)? else {
                        unreachable!()
                    };
                    let kind = if m == "utf16be" { Utf16::Be } else { Utf16::Le };
                    let mut out_toks = Vec::new();
                    for t in toks {
                        match t {
                            Tok::Lit(l) => {
                                if !l.is_ascii() {
                                    return Err(format!(
                                        "`{m}` is only supported for ASCII values ('{l}' is not)"
                                    ));
                                }
                                let mut e = String::new();
                                for c in l.chars() {
                                    if kind == Utf16::Le {
                                        e.push(c);
                                        e.push('\0');
                                    } else {
                                        e.push('\0');
                                        e.push(c);
                                    }
                                }
                                out_toks.push(Tok::Lit(e));
                            }
                            w => out_toks.push(w),
                        }
                    }
                    let bom = m == "utf16";
                    if bom {
                        out_toks.insert(0, Tok::Lit("\u{feff}".into()));
                    }
                    next.push(St::Toks {
                        toks: pattern::normalize(out_toks),
                        cased,
                        enc: Some((kind, bom)),
                    });
                }
                "base64" | "base64offset" => {
                    let St::Toks { toks, enc, .. } = to_toks(st)? else {
                        unreachable!()
                    };
                    let toks: Vec<Tok> = match (enc, toks.first()) {
                        // Drop the textual BOM: lit_bytes adds its UTF-16LE bytes.
                        (Some((_, true)), Some(Tok::Lit(l))) => {
                            let mut t = toks.clone();
                            t[0] = Tok::Lit(l.trim_start_matches('\u{feff}').to_string());
                            t
                        }
                        _ => toks,
                    };
                    let data = lit_bytes(&toks, enc)?;
                    let encs = if m == "base64" {
                        vec![base64(&data)]
                    } else {
                        base64_offsets(&data)
                    };
                    for e in encs {
                        next.push(St::Toks {
                            toks: vec![Tok::Lit(e)],
                            cased: true,
                            enc: None,
                        });
                    }
                }
                "re" => match st {
                    St::Raw(src)
                        if pos == 0 || mods[..pos].iter().all(|x| x == "all" || x == "neq") =>
                    {
                        next.push(St::Regex {
                            src,
                            i: false,
                            m: false,
                            s: false,
                        })
                    }
                    St::Raw(_) => return Err("`re` must come before other value modifiers".into()),
                    other => return Err(format!("`re` needs a string, not {}", st_kind(&other))),
                },
                "i" | "ignorecase" | "m" | "multiline" | "s" | "dotall" => match st {
                    St::Regex { src, i, m: ml, s } => {
                        let f = m.as_str();
                        next.push(St::Regex {
                            src,
                            i: i || f == "i" || f == "ignorecase",
                            m: ml || f == "m" || f == "multiline",
                            s: s || f == "s" || f == "dotall",
                        })
                    }
                    _ => return Err(format!("`{m}` is a flag of `re` and needs it first")),
                },
                "cidr" => match st {
                    St::Raw(s) => next.push(St::Cidr(
                        Cidr::parse(&s).ok_or_else(|| format!("'{s}' is not a CIDR network"))?,
                    )),
                    other => return Err(format!("`cidr` needs a string, not {}", st_kind(&other))),
                },
                "gt" | "gte" | "lt" | "lte" => match st {
                    St::Num(n, _) if time_part.is_none() => {
                        next.push(St::Cmp(cmp_op.unwrap_or(CmpOp::Eq), n))
                    }
                    st @ (St::Num(..) | St::Time(..)) => next.push(st),
                    St::Raw(s) if s.trim().parse::<f64>().is_ok() && time_part.is_none() => next
                        .push(St::Cmp(
                            cmp_op.unwrap_or(CmpOp::Eq),
                            s.trim().parse().unwrap_or(0.0),
                        )),
                    other => return Err(format!("`{m}` needs a number, not {}", st_kind(&other))),
                },
                "minute" | "hour" | "day" | "week" | "month" | "year" => match st {
                    St::Num(n, _) => next.push(St::Time(
                        time_part.unwrap_or(TimePart::Year),
                        cmp_op.unwrap_or(CmpOp::Eq),
                        n,
                    )),
                    other => return Err(format!("`{m}` needs a number, not {}", st_kind(&other))),
                },
                "fieldref" => match st {
                    St::Raw(s) => {
                        if s.contains('*') || s.contains('?') {
                            return Err("a field reference cannot contain wildcards".into());
                        }
                        next.push(St::FieldRef {
                            name: s,
                            mode: RefMode::Equal,
                            cased: false,
                        })
                    }
                    other => {
                        return Err(format!(
                            "`fieldref` needs a field name, not {}",
                            st_kind(&other)
                        ))
                    }
                },
                "exists" => unreachable!(),
                _ => return Err(format!("unknown modifier `{m}`")),
            }
        }
        states = next;
    }
    if states.len() > 100_000 {
        return Err("the modifiers expand into more than 100000 values".into());
    }
    let mut ms = Vec::with_capacity(states.len());
    for st in states {
        ms.push(match st {
            St::Raw(s) => {
                let mut toks = pattern::parse_wildcards(&s);
                if keyword {
                    wrap_contains(&mut toks);
                }
                Matcher::Str(StrPattern::new(&toks, false))
            }
            St::Toks {
                mut toks, cased, ..
            } => {
                if keyword && !has("startswith") && !has("endswith") {
                    wrap_contains(&mut toks);
                }
                Matcher::Str(StrPattern::new(&toks, cased))
            }
            St::Num(n, t) => {
                if keyword {
                    Matcher::Str(StrPattern::new(&[Tok::Star, Tok::Lit(t), Tok::Star], false))
                } else {
                    Matcher::Num { n, text: t }
                }
            }
            St::Bool(b) => Matcher::Bool(b),
            St::Null => {
                if keyword {
                    return Err("a keyword cannot be null".into());
                }
                Matcher::Null
            }
            St::Regex { src, i, m, s } => {
                let mut flags = String::new();
                if i {
                    flags.push('i');
                }
                if m {
                    flags.push('m');
                }
                if s {
                    flags.push('s');
                }
                let full = if flags.is_empty() {
                    src.clone()
                } else {
                    format!("(?{flags}){src}")
                };
                Matcher::Regex(
                    regex::RegexBuilder::new(&full)
                        .size_limit(1 << 22)
                        .build()
                        .map_err(|e| format!("regular expression /{src}/: {e}"))?,
                )
            }
            St::Cidr(c) => Matcher::Cidr(c),
            St::Cmp(op, n) => Matcher::Cmp(op, n),
            St::FieldRef { name, mode, cased } => {
                out.fieldrefs.push(name.clone());
                Matcher::FieldRef {
                    name,
                    paths: vec![],
                    mode,
                    cased,
                }
            }
            St::Time(part, op, n) => Matcher::TimePart { part, op, n },
        });
    }
    out.matchers = if out.all { ms } else { StrSet::fold(ms) };
    Ok(out)
}

fn wrap_contains(toks: &mut Vec<Tok>) {
    if toks.first() != Some(&Tok::Star) {
        toks.insert(0, Tok::Star);
    }
    if toks.last() != Some(&Tok::Star) {
        toks.push(Tok::Star);
    }
}

/// Expands `%name%` placeholders (a `\%` is a plain percent sign) into every combination of
/// the configured values.
fn expand(s: &str, placeholders: &HashMap<String, Vec<String>>) -> Result<Vec<String>, String> {
    // Split into literal text and placeholder names.
    enum Part {
        Lit(String),
        Ph(String),
    }
    let mut parts = Vec::new();
    let mut acc = String::new();
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        if cs[i] == '\\' && cs.get(i + 1) == Some(&'%') {
            acc.push('%');
            i += 2;
        } else if cs[i] == '%' {
            match cs[i + 1..].iter().position(|&c| c == '%') {
                Some(len) => {
                    if !acc.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut acc)));
                    }
                    parts.push(Part::Ph(cs[i + 1..i + 1 + len].iter().collect()));
                    i += len + 2;
                }
                None => {
                    acc.push('%');
                    i += 1;
                }
            }
        } else {
            acc.push(cs[i]);
            i += 1;
        }
    }
    if !acc.is_empty() {
        parts.push(Part::Lit(acc));
    }
    let mut out = vec![String::new()];
    for p in parts {
        match p {
            Part::Lit(l) => {
                // Keep the literal's wildcards escaped as written: `%` handling only.
                for o in &mut out {
                    o.push_str(&l);
                }
            }
            Part::Ph(name) => {
                let vals = placeholders.get(&name).ok_or_else(|| {
                    format!("placeholder:%{name}% is not defined in the configuration")
                })?;
                let mut n = Vec::with_capacity(out.len() * vals.len());
                for o in &out {
                    for v in vals {
                        n.push(format!("{o}{v}"));
                    }
                }
                out = n;
                if out.len() > 10_000 {
                    return Err("placeholders expand into more than 10000 values".into());
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(mods: &[&str], vals: &[RawValue]) -> Compiled {
        compile(
            &mods.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            vals,
            false,
            &HashMap::new(),
        )
        .unwrap()
    }
    fn s(x: &str) -> RawValue {
        RawValue::Str(x.into())
    }
    fn hit(c: &Compiled, v: Value) -> bool {
        c.matchers.iter().any(|m| m.matches(&v, &json!({})))
    }

    #[test]
    fn base64_reference_values() {
        assert_eq!(base64(b"cmd"), "Y21k");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
        // pySigma's base64offset of "/bin/bash"
        assert_eq!(
            base64_offsets(b"/bin/bash"),
            vec!["L2Jpbi9iYXNo", "9iaW4vYmFza", "vYmluL2Jhc2"]
        );
        // Length not a multiple of three.
        assert_eq!(base64_offsets(b"ping"), vec!["cGluZ", "Bpbm", "waW5n"]);
    }

    #[test]
    fn base64offset_contains_finds_value_anywhere() {
        let c = m(&["base64offset", "contains"], &[s("http://")]);
        for prefix in ["", "x", "xy", "xyz"] {
            let enc = base64(format!("{prefix}http://evil").as_bytes());
            assert!(hit(&c, json!(format!("cmd -e {enc}"))), "{prefix}");
        }
        assert!(!hit(&c, json!(base64(b"ftp://evil"))));
        // base64 output is case-sensitive
        let c = m(&["base64"], &[s("cmd")]);
        assert!(hit(&c, json!("Y21k")));
        assert!(!hit(&c, json!("y21k")));
    }

    #[test]
    fn utf16_then_base64() {
        // "cmd" UTF-16LE = 63 00 6d 00 64 00 -> base64 "YwBtAGQA"
        let c = m(&["utf16le", "base64"], &[s("cmd")]);
        assert!(hit(&c, json!("YwBtAGQA")));
        let c = m(&["wide", "base64offset", "contains"], &[s("cmd")]);
        assert!(hit(
            &c,
            json!(format!(
                "-enc {}",
                base64(&[b'x', 0, b'c', 0, b'm', 0, b'd', 0, b'!', 0])
            ))
        ));
        // utf16 adds the FF FE byte order mark
        let c = m(&["utf16", "base64"], &[s("cmd")]);
        assert!(hit(
            &c,
            json!(base64(&[0xff, 0xfe, b'c', 0, b'm', 0, b'd', 0]))
        ));
        let c = m(&["utf16be", "base64"], &[s("cmd")]);
        assert!(hit(&c, json!(base64(&[0, b'c', 0, b'm', 0, b'd']))));
        assert!(compile(&["base64".into()], &[s("a*")], false, &HashMap::new()).is_err());
    }

    #[test]
    fn windash_variants() {
        let c = m(&["windash", "contains"], &[s(" -exec ")]);
        for d in ["-", "/", "\u{2013}", "\u{2014}", "\u{2015}"] {
            assert!(hit(&c, json!(format!("find . {d}exec rm"))), "{d}");
        }
        // A dash inside a word is not a flag.
        let c = m(&["windash"], &[s("a-b")]);
        assert!(hit(&c, json!("a-b")));
        assert!(!hit(&c, json!("a/b")));
        // Two flags: 25 variants.
        let c = m(&["windash"], &[s("-a -b")]);
        assert!(hit(&c, json!("/a \u{2014}b")));
    }

    #[test]
    fn regex_and_flags() {
        let c = m(&["re"], &[s("^ab+c$")]);
        assert!(hit(&c, json!("abbc")));
        assert!(
            !hit(&c, json!("ABBC")),
            "regex is case-sensitive by default"
        );
        let c = m(&["re", "i"], &[s("^ab+c$")]);
        assert!(hit(&c, json!("ABBC")));
        let c = m(&["re", "m"], &[s("^x$")]);
        assert!(hit(&c, json!("a\nx\nb")));
        let c = m(&["re"], &[s("^x$")]);
        assert!(!hit(&c, json!("a\nx\nb")));
        let c = m(&["re", "s"], &[s("a.b")]);
        assert!(hit(&c, json!("a\nb")));
        let c = m(&["re"], &[s("a.b")]);
        assert!(!hit(&c, json!("a\nb")));
        // Unanchored search.
        let c = m(&["re"], &[s("b+")]);
        assert!(hit(&c, json!("abbbc")));
        assert!(compile(&["re".into()], &[s("(")], false, &HashMap::new()).is_err());
        assert!(compile(
            &["contains".into(), "re".into()],
            &[s("a")],
            false,
            &HashMap::new()
        )
        .is_err());
    }

    #[test]
    fn cidr_v4_v6() {
        let c = m(&["cidr"], &[s("10.0.0.0/8"), s("fe80::/10")]);
        assert!(hit(&c, json!("10.1.2.3")));
        assert!(!hit(&c, json!("11.1.2.3")));
        assert!(hit(&c, json!("fe80::1")));
        assert!(!hit(&c, json!("fc00::1")));
        assert!(hit(&c, json!("::ffff:10.9.9.9")));
        assert!(!hit(&c, json!("not an ip")));
        assert!(compile(
            &["cidr".into()],
            &[s("10.0.0.0/33")],
            false,
            &HashMap::new()
        )
        .is_err());
    }

    #[test]
    fn numbers_strings_booleans() {
        let c = m(&[], &[RawValue::Num(42.0, "42".into())]);
        assert!(hit(&c, json!(42)));
        assert!(
            !hit(&c, json!(42.0)),
            "integers match integral JSON numbers only"
        );
        assert!(hit(&c, json!("42")));
        assert!(hit(&c, json!(" +42")));
        assert!(!hit(&c, json!("42.0")));
        let c = m(&[], &[RawValue::Num(1.5, "1.5".into())]);
        assert!(hit(&c, json!(1.5)));
        assert!(hit(&c, json!("1.50")));
        assert!(!hit(&c, json!("420")));
        assert!(!hit(&c, json!(43)));
        let c = m(&[], &[s("42")]);
        assert!(hit(&c, json!(42)));
        assert!(hit(&c, json!("42")));
        let c = m(&[], &[RawValue::Bool(true)]);
        assert!(hit(&c, json!(true)));
        assert!(hit(&c, json!("True")));
        assert!(!hit(&c, json!(false)));
        let c = m(&[], &[s("true")]);
        assert!(hit(&c, json!(true)));
    }

    #[test]
    fn comparisons_and_time_parts() {
        let c = m(&["gt"], &[RawValue::Num(10.0, "10".into())]);
        assert!(hit(&c, json!(11)));
        assert!(hit(&c, json!("10.5")));
        assert!(!hit(&c, json!(10)));
        let c = m(&["lte"], &[RawValue::Num(10.0, "10".into())]);
        assert!(hit(&c, json!(10)));
        assert!(!hit(&c, json!("abc")));
        assert!(compile(&["gt".into()], &[s("abc")], false, &HashMap::new()).is_err());
        let c = m(&["hour"], &[RawValue::Num(3.0, "3".into())]);
        assert!(hit(&c, json!("2024-05-06T03:04:05Z")));
        assert!(hit(&c, json!("2024-05-06T05:04:05+02:00")));
        assert!(!hit(&c, json!("2024-05-06T04:04:05Z")));
        let c = m(&["minute"], &[RawValue::Num(4.0, "4".into())]);
        assert!(hit(&c, json!("2024-05-06T03:04:05.123456Z")));
        let c = m(&["day"], &[RawValue::Num(6.0, "6".into())]);
        assert!(hit(&c, json!(1714964645)));
        let c = m(&["month"], &[RawValue::Num(5.0, "5".into())]);
        assert!(hit(&c, json!(1714964645000i64)));
        let c = m(&["year"], &[RawValue::Num(2024.0, "2024".into())]);
        assert!(hit(&c, json!("2024-05-06T03:04:05Z")));
        let c = m(&["week"], &[RawValue::Num(19.0, "19".into())]);
        assert!(hit(&c, json!("2024-05-06T03:04:05Z")));
        let c = m(&["hour", "gte"], &[RawValue::Num(22.0, "22".into())]);
        assert!(hit(&c, json!("2024-05-06T23:00:00Z")));
        assert!(!hit(&c, json!("2024-05-06T21:00:00Z")));
    }

    #[test]
    fn expand_placeholders() {
        let mut ph = HashMap::new();
        ph.insert(
            "Admins".to_string(),
            vec!["root".to_string(), "adm_*".to_string()],
        );
        let c = compile(&["expand".into()], &[s("%Admins%")], false, &ph).unwrap();
        assert!(hit(&c, json!("root")));
        assert!(hit(&c, json!("adm_bob")));
        assert!(!hit(&c, json!("bob")));
        let c = compile(&["expand".into()], &[s(r"\%plain%Admins%")], false, &ph).unwrap();
        assert!(hit(&c, json!("%plainroot")));
        let e = compile(&["expand".into()], &[s("%Nope%")], false, &ph).unwrap_err();
        assert!(e.starts_with("placeholder:"), "{e}");
        // Without expand, percent signs are literal.
        let c = m(&[], &[s("%Admins%")]);
        assert!(hit(&c, json!("%admins%")));
    }

    #[test]
    fn modifiers_are_validated() {
        for (mods, v) in [
            (vec!["nope"], s("x")),
            (vec!["exists", "contains"], RawValue::Bool(true)),
            (vec!["exists"], s("maybe")),
            (vec!["i"], s("x")),
            (vec!["fieldref"], s("a*")),
            (vec!["utf16le"], s("é")),
            (vec!["hour"], s("x")),
        ] {
            let mods: Vec<String> = mods.into_iter().map(String::from).collect();
            assert!(
                compile(&mods, &[v], false, &HashMap::new()).is_err(),
                "{mods:?}"
            );
        }
    }

    #[test]
    fn str_set_matches_like_individual_patterns() {
        let vals: Vec<RawValue> = [
            "alpha", "*beta*", "gamma", "*delta*", "EPS", "*zeta*", "eta*",
        ]
        .iter()
        .map(|x| s(x))
        .collect();
        let c = m(&[], &vals);
        assert!(matches!(c.matchers[0], Matcher::StrSet(_)));
        for (v, want) in [
            ("ALPHA", true),
            ("xxBETAyy", true),
            ("eps", true),
            ("eta-1", true),
            ("zzzetazz", true),
            ("alphab", false),
            ("bet", false),
            ("xdélTAx", false),
            ("xdeltaé", true),
        ] {
            assert_eq!(hit(&c, json!(v)), want, "{v}");
        }
    }
}
