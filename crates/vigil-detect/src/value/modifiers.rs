//! Parsing and applying modifiers: the known modifier names, the intermediate state of a value
//! while the chain of `field|mod1|mod2` applies, and [`compile`], which turns one detection
//! item's values into matchers (or an error naming the modifier that does not fit).

use std::collections::HashMap;

use super::encoding::{base64, base64_offsets, lit_bytes, Utf16};
use super::expand::{expand, windash};
use super::*;
use crate::condition::CmpOp;
use crate::pattern::{self, StrPattern, Tok};

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
