//! The modifiers that turn one value into several: `windash` (dash variants of command-line
//! flags) and `expand` (`%name%` placeholders replaced by every configured value).

use std::collections::HashMap;

use crate::pattern::{self, Tok};

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// pySigma's windash: a `-` or `/` that starts a word (no word character before it, a word
/// character after it) becomes each of `-`, `/`, en dash, em dash and horizontal bar.
pub(super) fn windash(toks: &[Tok]) -> Result<Vec<Vec<Tok>>, String> {
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

/// Expands `%name%` placeholders (a `\%` is a plain percent sign) into every combination of
/// the configured values.
pub(super) fn expand(
    s: &str,
    placeholders: &HashMap<String, Vec<String>>,
) -> Result<Vec<String>, String> {
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
