//! Printing: the canonical text of a `Query` (`Display`), which parses back to the same query.

use std::fmt;
use std::ops::Bound;

use super::parse::is_special;
use super::{Query, Val};

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
