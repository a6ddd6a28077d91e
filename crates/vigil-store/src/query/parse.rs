//! Lexer and recursive-descent parser: query text → `Query`.

use std::ops::Bound;

use super::{canonical_field, ParseError, Query, Val};

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

pub(super) fn is_special(c: char) -> bool {
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
