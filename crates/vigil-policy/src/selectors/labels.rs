//! `labels.Parse`, the label-selector language, ported for one question: is a selector valid?
//! (An invalid one makes the apiserver drop all list options, including a name from the field
//! selector.) Lexer and parser follow upstream step by step, byte-oriented like Go's.

use super::parse_int10;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    End,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(s: &[u8]) -> Option<Tok> {
    Some(match s {
        b")" => Tok::ClosedPar,
        b"," => Tok::Comma,
        b"!" => Tok::DoesNotExist,
        b"==" => Tok::DoubleEquals,
        b"=" => Tok::Equals,
        b">" => Tok::GreaterThan,
        b"in" => Tok::In,
        b"<" => Tok::LessThan,
        b"!=" => Tok::NotEquals,
        b"notin" => Tok::NotIn,
        b"(" => Tok::OpenPar,
        _ => return None,
    })
}

fn is_special(c: u8) -> bool {
    matches!(c, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// The label-selector lexer, byte for byte (a NUL byte reads as the end of input, as upstream).
fn lex(s: &[u8]) -> Vec<(Tok, Vec<u8>)> {
    let mut pos = 0;
    let read = |pos: &mut usize| -> u8 {
        let b = s.get(*pos).copied().unwrap_or(0);
        if *pos < s.len() {
            *pos += 1;
        }
        b
    };
    let mut out = Vec::new();
    loop {
        let mut ch = read(&mut pos);
        while is_space(ch) {
            ch = read(&mut pos);
        }
        if ch == 0 {
            out.push((Tok::End, Vec::new()));
            return out;
        }
        pos -= 1;
        let mut buf = Vec::new();
        if is_special(ch) {
            // Longest run of special characters that is still a token.
            let mut last: Option<(Tok, usize)> = None;
            loop {
                let c = read(&mut pos);
                if c == 0 {
                    break;
                }
                if !is_special(c) {
                    pos -= 1;
                    break;
                }
                buf.push(c);
                if let Some(t) = keyword(&buf) {
                    last = Some((t, buf.len()));
                } else if last.is_some() {
                    pos -= 1;
                    break;
                }
            }
            // Every single special character is a token, so `last` is always set.
            let (tok, len) = last.unwrap_or((Tok::End, 0));
            buf.truncate(len);
            out.push((tok, buf));
        } else {
            loop {
                let c = read(&mut pos);
                if c == 0 {
                    break;
                }
                if is_special(c) || is_space(c) {
                    pos -= 1;
                    break;
                }
                buf.push(c);
            }
            let tok = keyword(&buf).unwrap_or(Tok::Identifier);
            out.push((tok, buf));
        }
    }
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63 bytes (label names and values).
fn is_label_name(b: &[u8]) -> bool {
    let alnum = |c: &u8| c.is_ascii_alphanumeric();
    !b.is_empty()
        && b.len() <= 63
        && alnum(&b[0])
        && alnum(&b[b.len() - 1])
        && b.iter()
            .all(|c| alnum(c) || matches!(c, b'-' | b'_' | b'.'))
}

/// `IsLabelKey`: an optional DNS-subdomain prefix and '/', then a label name.
fn is_label_key(k: &[u8]) -> bool {
    let parts: Vec<&[u8]> = k.split(|&c| c == b'/').collect();
    match parts.as_slice() {
        [name] => is_label_name(name),
        [prefix, name] => {
            !prefix.is_empty()
                && std::str::from_utf8(prefix).is_ok_and(crate::validate::is_dns1123_subdomain)
                && is_label_name(name)
        }
        _ => false,
    }
}

fn is_label_value(v: &[u8]) -> bool {
    v.is_empty() || is_label_name(v)
}

/// `labels.Parse`: `Some(())` when the selector is valid.
pub(super) fn parse_label_selector(selector: &str) -> Option<()> {
    let toks = lex(selector.as_bytes());
    let mut p = 0;
    // In value position `in` and `notin` are plain identifiers.
    let val = |t: Tok| match t {
        Tok::In | Tok::NotIn => Tok::Identifier,
        t => t,
    };
    let at = |p: usize| toks.get(p).map_or(Tok::End, |t| t.0);
    loop {
        match val(at(p)) {
            Tok::End => return Some(()),
            Tok::Identifier | Tok::DoesNotExist => {}
            _ => return None,
        }
        // Key, with an optional leading `!`.
        let mut not_exists = false;
        if val(at(p)) == Tok::DoesNotExist {
            not_exists = true;
            p += 1;
        }
        if val(at(p)) != Tok::Identifier || !is_label_key(&toks[p].1) {
            return None;
        }
        p += 1;
        let exists_only = matches!(val(at(p)), Tok::End | Tok::Comma);
        if !(not_exists || exists_only) {
            // Operator (here `in`/`notin` are keywords) and its values.
            let op = at(p);
            p += 1;
            let mut values: Vec<&[u8]> = Vec::new();
            match op {
                Tok::In | Tok::NotIn => {
                    if val(at(p)) != Tok::OpenPar {
                        return None;
                    }
                    p += 1;
                    match val(at(p)) {
                        Tok::ClosedPar => {
                            values.push(b"");
                            p += 1;
                        }
                        Tok::Identifier | Tok::Comma => {
                            // Identifiers separated by commas; empty slots are "".
                            loop {
                                match val(at(p)) {
                                    Tok::Identifier => {
                                        values.push(&toks[p].1);
                                        p += 1;
                                        match val(at(p)) {
                                            Tok::Comma => {}
                                            Tok::ClosedPar => break,
                                            _ => return None,
                                        }
                                    }
                                    Tok::Comma => {
                                        p += 1;
                                        if matches!(val(at(p)), Tok::ClosedPar | Tok::Comma)
                                            || values.is_empty()
                                        {
                                            values.push(b"");
                                        }
                                        if val(at(p)) == Tok::ClosedPar {
                                            break;
                                        }
                                    }
                                    _ => return None,
                                }
                            }
                            // The closing parenthesis.
                            if val(at(p)) != Tok::ClosedPar {
                                return None;
                            }
                            p += 1;
                        }
                        _ => return None,
                    }
                }
                Tok::Equals
                | Tok::DoubleEquals
                | Tok::NotEquals
                | Tok::GreaterThan
                | Tok::LessThan => match val(at(p)) {
                    Tok::End | Tok::Comma => values.push(b""),
                    Tok::Identifier => {
                        values.push(&toks[p].1);
                        p += 1;
                    }
                    _ => return None,
                },
                _ => return None,
            }
            if matches!(op, Tok::GreaterThan | Tok::LessThan)
                && !values
                    .iter()
                    .all(|v| std::str::from_utf8(v).is_ok_and(parse_int10))
            {
                return None;
            }
            if !values.iter().all(|v| is_label_value(v)) {
                return None;
            }
        }
        // After a requirement: the end, or a comma followed by another requirement.
        let t = val(at(p));
        p += 1;
        match t {
            Tok::End => return Some(()),
            Tok::Comma if matches!(val(at(p)), Tok::Identifier | Tok::DoesNotExist) => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selectors() {
        for ok in [
            "",
            "a",
            "!a",
            "a=b",
            "a==b",
            "a!=b",
            "a in (b,c)",
            "a notin (b)",
            "a in ()",
            "a in (,)",
            "a in (,b)",
            "a>1",
            "a<-1x",
            "x,y",
            "in",
            "a=",
            "a in (in)",
            "k8s.io/x=y",
        ] {
            let expect_ok = ok != "a<-1x";
            assert_eq!(parse_label_selector(ok).is_some(), expect_ok, "{ok}");
        }
        for bad in [
            "a=b=c",
            "!a=b",
            "a>b",
            "a in b",
            "a in (b",
            ",a",
            "a,",
            "a b",
            "-a",
            "a=-b",
            "a>-1",
            "a/b/c",
            "/a",
            "a in (b c)",
        ] {
            assert!(parse_label_selector(bad).is_none(), "{bad}");
        }
    }
}
