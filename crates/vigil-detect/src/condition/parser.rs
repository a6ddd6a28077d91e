//! The condition parser: a tokenizer and a recursive-descent parser with one function per
//! precedence level, and the legacy aggregation after the pipe. Apart from the tree it builds
//! because the tree is all the rest of the engine reads; the grammar and its error messages
//! live only here.

use super::{AggFunc, Aggregation, CmpOp, CondAst, CondError, OfTarget, ParsedCondition, Quant};

#[derive(Debug, Clone, PartialEq)]
enum T {
    Word(String),
    LParen,
    RParen,
    Pipe,
    Comma,
    Op(CmpOp),
}

fn tokenize(s: &str) -> Result<Vec<T>, CondError> {
    let mut out = Vec::new();
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(T::LParen);
                i += 1
            }
            ')' => {
                out.push(T::RParen);
                i += 1
            }
            '|' => {
                out.push(T::Pipe);
                i += 1
            }
            ',' => {
                out.push(T::Comma);
                i += 1
            }
            '>' | '<' | '=' | '!' => {
                let two = cs.get(i + 1) == Some(&'=');
                let op = match (c, two) {
                    ('>', true) => CmpOp::Gte,
                    ('>', false) => CmpOp::Gt,
                    ('<', true) => CmpOp::Lte,
                    ('<', false) => CmpOp::Lt,
                    ('=', _) => CmpOp::Eq,
                    _ => return Err(CondError::Syntax(format!("unexpected `{c}`"))),
                };
                out.push(T::Op(op));
                i += if two { 2 } else { 1 };
            }
            _ => {
                let start = i;
                while i < cs.len()
                    && !cs[i].is_whitespace()
                    && !matches!(cs[i], '(' | ')' | '|' | ',' | '>' | '<' | '=' | '!')
                {
                    i += 1;
                }
                out.push(T::Word(cs[start..i].iter().collect()));
            }
        }
    }
    Ok(out)
}

fn is_kw(w: &str, kw: &str) -> bool {
    w.eq_ignore_ascii_case(kw)
}

fn is_reserved(w: &str) -> bool {
    ["and", "or", "not", "of", "them"]
        .iter()
        .any(|k| is_kw(w, k))
}

struct P {
    toks: Vec<T>,
    pos: usize,
}

impl P {
    fn peek(&self) -> Option<&T> {
        self.toks.get(self.pos)
    }
    fn peek_word(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(T::Word(w)) if is_kw(w, kw))
    }
    fn next(&mut self) -> Option<T> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn or(&mut self, depth: usize) -> Result<CondAst, CondError> {
        if depth > 64 {
            return Err(CondError::Syntax("nesting too deep".into()));
        }
        let mut parts = vec![self.and(depth)?];
        while self.peek_word("or") {
            self.pos += 1;
            parts.push(self.and(depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().unwrap_or(CondAst::Or(vec![]))
        } else {
            CondAst::Or(parts)
        })
    }

    fn and(&mut self, depth: usize) -> Result<CondAst, CondError> {
        let mut parts = vec![self.not(depth)?];
        while self.peek_word("and") {
            self.pos += 1;
            parts.push(self.not(depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().unwrap_or(CondAst::And(vec![]))
        } else {
            CondAst::And(parts)
        })
    }

    fn not(&mut self, depth: usize) -> Result<CondAst, CondError> {
        if self.peek_word("not") {
            self.pos += 1;
            if depth > 64 {
                return Err(CondError::Syntax("nesting too deep".into()));
            }
            return Ok(CondAst::Not(Box::new(self.not(depth + 1)?)));
        }
        self.primary(depth)
    }

    fn primary(&mut self, depth: usize) -> Result<CondAst, CondError> {
        match self.next() {
            Some(T::LParen) => {
                let e = self.or(depth + 1)?;
                match self.next() {
                    Some(T::RParen) => Ok(e),
                    _ => Err(CondError::Syntax("missing `)`".into())),
                }
            }
            Some(T::Word(w)) => {
                if self.peek_word("of") {
                    let quant = if is_kw(&w, "all") {
                        Quant::All
                    } else if is_kw(&w, "any") {
                        Quant::AtLeast(1)
                    } else if let Ok(n) = w.parse::<u32>() {
                        if n == 0 {
                            return Err(CondError::Syntax("`0 of` is meaningless".into()));
                        }
                        Quant::AtLeast(n)
                    } else {
                        return Err(CondError::Syntax(format!(
                            "`{w} of`: expected a number, `all` or `any` before `of`"
                        )));
                    };
                    self.pos += 1;
                    let target = match self.next() {
                        Some(T::Word(t)) if is_kw(&t, "them") => OfTarget::Them,
                        Some(T::Word(t)) if !is_reserved(&t) => OfTarget::Pattern(t),
                        _ => {
                            return Err(CondError::Syntax(
                                "expected a search identifier pattern or `them` after `of`".into(),
                            ))
                        }
                    };
                    return Ok(CondAst::Of { quant, target });
                }
                if is_reserved(&w) {
                    return Err(CondError::Syntax(format!("unexpected `{w}`")));
                }
                if self.peek() == Some(&T::LParen)
                    && ["count", "sum", "min", "max", "avg"]
                        .iter()
                        .any(|f| is_kw(&w, f))
                {
                    return Err(CondError::Aggregation(format!(
                        "`{w}(...)` must follow a `|` after the search expression"
                    )));
                }
                if is_kw(&w, "near") {
                    return Err(CondError::Near);
                }
                Ok(CondAst::Ident(w))
            }
            Some(T::RParen) => Err(CondError::Syntax("unexpected `)`".into())),
            Some(T::Pipe) => Err(CondError::Syntax("unexpected `|`".into())),
            Some(T::Comma) => Err(CondError::Syntax("unexpected `,`".into())),
            Some(T::Op(o)) => Err(CondError::Syntax(format!("unexpected `{}`", o.symbol()))),
            None => Err(CondError::Syntax("unexpected end of condition".into())),
        }
    }

    fn aggregation(&mut self) -> Result<Aggregation, CondError> {
        let func = match self.next() {
            Some(T::Word(w)) if is_kw(&w, "near") => return Err(CondError::Near),
            Some(T::Word(w)) => match w.to_ascii_lowercase().as_str() {
                "count" => AggFunc::Count,
                "sum" => AggFunc::Sum,
                "min" => AggFunc::Min,
                "max" => AggFunc::Max,
                "avg" => AggFunc::Avg,
                _ => {
                    return Err(CondError::Aggregation(format!(
                        "unknown aggregation function `{w}`"
                    )))
                }
            },
            _ => {
                return Err(CondError::Aggregation(
                    "expected a function after `|`".into(),
                ))
            }
        };
        if self.next() != Some(T::LParen) {
            return Err(CondError::Aggregation(
                "expected `(` after the function".into(),
            ));
        }
        let field = match self.next() {
            Some(T::RParen) => None,
            Some(T::Word(f)) => {
                if self.next() != Some(T::RParen) {
                    return Err(CondError::Aggregation("expected `)`".into()));
                }
                Some(f)
            }
            _ => return Err(CondError::Aggregation("expected a field or `)`".into())),
        };
        let mut by = Vec::new();
        if self.peek_word("by") {
            self.pos += 1;
            loop {
                match self.next() {
                    Some(T::Word(f)) => by.push(f),
                    _ => return Err(CondError::Aggregation("expected a field after `by`".into())),
                }
                if self.peek() == Some(&T::Comma) {
                    self.pos += 1;
                } else {
                    break;
                }
            }
        }
        let op = match self.next() {
            Some(T::Op(o)) => o,
            other => {
                return Err(CondError::Aggregation(format!(
                    "expected a comparison (`>`, `>=`, `<`, `<=`, `=`), found {}",
                    describe(other.as_ref())
                )))
            }
        };
        let value = match self.next() {
            Some(T::Word(n)) => n
                .parse::<f64>()
                .map_err(|_| CondError::Aggregation(format!("`{n}` is not a number")))?,
            other => {
                return Err(CondError::Aggregation(format!(
                    "expected a number, found {}",
                    describe(other.as_ref())
                )))
            }
        };
        Ok(Aggregation {
            func,
            field,
            by,
            op,
            value,
        })
    }
}

fn describe(t: Option<&T>) -> String {
    match t {
        None => "the end".into(),
        Some(T::Word(w)) => format!("`{w}`"),
        Some(T::LParen) => "`(`".into(),
        Some(T::RParen) => "`)`".into(),
        Some(T::Pipe) => "`|`".into(),
        Some(T::Comma) => "`,`".into(),
        Some(T::Op(o)) => format!("`{}`", o.symbol()),
    }
}

/// Parses one condition string.
pub fn parse(s: &str) -> Result<ParsedCondition, CondError> {
    let toks = tokenize(s)?;
    if toks.is_empty() {
        return Err(CondError::Syntax("empty condition".into()));
    }
    let mut p = P { toks, pos: 0 };
    let expr = p.or(0)?;
    let agg = match p.next() {
        None => None,
        Some(T::Pipe) => {
            let a = p.aggregation()?;
            if let Some(t) = p.peek() {
                let t = describe(Some(t));
                return Err(CondError::Aggregation(format!(
                    "unexpected {t} after the aggregation"
                )));
            }
            Some(a)
        }
        Some(T::Word(w)) if is_kw(&w, "near") => return Err(CondError::Near),
        Some(t) => {
            return Err(CondError::Syntax(format!(
                "unexpected {} (missing `and`/`or`?)",
                describe(Some(&t))
            )))
        }
    };
    Ok(ParsedCondition { expr, agg })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> CondAst {
        CondAst::Ident(s.into())
    }

    #[test]
    fn precedence_not_and_or() {
        // a or b and not c  ==  a or (b and (not c))
        let p = parse("a or b and not c").unwrap();
        assert_eq!(
            p.expr,
            CondAst::Or(vec![
                id("a"),
                CondAst::And(vec![id("b"), CondAst::Not(Box::new(id("c")))])
            ])
        );
        // not a and b == (not a) and b
        let p = parse("not a and b").unwrap();
        assert_eq!(
            p.expr,
            CondAst::And(vec![CondAst::Not(Box::new(id("a"))), id("b")])
        );
        let p = parse("(a or b) and c").unwrap();
        assert_eq!(
            p.expr,
            CondAst::And(vec![CondAst::Or(vec![id("a"), id("b")]), id("c")])
        );
    }

    #[test]
    fn quantifiers() {
        let p = parse("selection and not 1 of filter_*").unwrap();
        assert_eq!(
            p.expr,
            CondAst::And(vec![
                id("selection"),
                CondAst::Not(Box::new(CondAst::Of {
                    quant: Quant::AtLeast(1),
                    target: OfTarget::Pattern("filter_*".into())
                }))
            ])
        );
        assert_eq!(
            parse("all of them").unwrap().expr,
            CondAst::Of {
                quant: Quant::All,
                target: OfTarget::Them
            }
        );
        assert_eq!(
            parse("ALL OF Them").unwrap().expr,
            CondAst::Of {
                quant: Quant::All,
                target: OfTarget::Them
            }
        );
    }

    #[test]
    fn aggregations() {
        let p = parse("selection | count(dst_port) by src_ip > 10").unwrap();
        let a = p.agg.unwrap();
        assert_eq!(a.func, AggFunc::Count);
        assert_eq!(a.field.as_deref(), Some("dst_port"));
        assert_eq!(a.by, vec!["src_ip".to_string()]);
        assert_eq!(a.op, CmpOp::Gt);
        assert_eq!(a.value, 10.0);
        let a = parse("keywords | count() by host >= 6")
            .unwrap()
            .agg
            .unwrap();
        assert_eq!(a.field, None);
        assert_eq!(a.op, CmpOp::Gte);
        let a = parse("sel | count() > 6").unwrap().agg.unwrap();
        assert!(a.by.is_empty());
        assert_eq!(parse("a | near b").unwrap_err(), CondError::Near);
        assert_eq!(parse("a |near b").unwrap_err(), CondError::Near);
        assert!(matches!(
            parse("count(x) per a per b > 200 and not c"),
            Err(CondError::Aggregation(_))
        ));
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "", "a and", "(a", "a)", "and a", "a b", "1 of", "x of y", "not",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should fail");
        }
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn the_parser_never_panics(s in "[a-c()| ]{0,6}(and|or|not|of|1 of|all of|them|near|count\\(\\)|by|>|<=|=|,|[0-9]| |\\(|\\)|\\*){0,12}") {
            let _ = parse(&s);
        }

        #[test]
        fn the_parser_never_panics_on_any_text(s in "\\PC{0,40}") {
            let _ = parse(&s);
        }
    }
}
