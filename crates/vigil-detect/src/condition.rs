//! The `condition` language: `and`, `or`, `not`, parentheses, `1 of x*`, `all of x*`,
//! `1 of them`, `all of them`, and the legacy aggregation after a pipe
//! (`selection | count(field) by a, b > 10`).
//!
//! Precedence, least to most binding: `or`, `and`, `not`, `x of`, parentheses. Keywords are
//! matched case-insensitively.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CondAst {
    Ident(String),
    Not(Box<CondAst>),
    And(Vec<CondAst>),
    Or(Vec<CondAst>),
    Of { quant: Quant, target: OfTarget },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quant {
    All,
    AtLeast(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfTarget {
    Them,
    Pattern(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CmpOp {
    Gt,
    Gte,
    Lt,
    Lte,
    Eq,
}

impl CmpOp {
    pub fn apply(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Gt => a > b,
            CmpOp::Gte => a >= b,
            CmpOp::Lt => a < b,
            CmpOp::Lte => a <= b,
            CmpOp::Eq => a == b,
        }
    }
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Gt => ">",
            CmpOp::Gte => ">=",
            CmpOp::Lt => "<",
            CmpOp::Lte => "<=",
            CmpOp::Eq => "==",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFunc {
    Count,
    Sum,
    Min,
    Max,
    Avg,
}

/// The legacy `| func(field) by group > N` suffix.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregation {
    pub func: AggFunc,
    pub field: Option<String>,
    pub by: Vec<String>,
    pub op: CmpOp,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParsedCondition {
    pub expr: CondAst,
    pub agg: Option<Aggregation>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CondError {
    Syntax(String),
    /// `near` was removed from the specification.
    Near,
    /// An aggregation that is not understood.
    Aggregation(String),
}

impl fmt::Display for CondError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CondError::Syntax(s) => write!(f, "condition: {s}"),
            CondError::Near => f.write_str(
                "condition uses the `near` aggregation, removed from the Sigma specification \
                 (write a temporal correlation rule instead)",
            ),
            CondError::Aggregation(s) => write!(f, "condition aggregation: {s}"),
        }
    }
}

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

impl fmt::Display for CondAst {
    /// Fully parenthesised rendering that [`parse`] reads back to the same tree.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CondAst::Ident(s) => f.write_str(s),
            CondAst::Not(e) => write!(f, "not ({e})"),
            CondAst::And(xs) | CondAst::Or(xs) => {
                let op = if matches!(self, CondAst::And(_)) {
                    " and "
                } else {
                    " or "
                };
                for (i, x) in xs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(op)?;
                    }
                    write!(f, "({x})")?;
                }
                Ok(())
            }
            CondAst::Of { quant, target } => {
                match quant {
                    Quant::All => f.write_str("all of ")?,
                    Quant::AtLeast(n) => write!(f, "{n} of ")?,
                }
                match target {
                    OfTarget::Them => f.write_str("them"),
                    OfTarget::Pattern(p) => f.write_str(p),
                }
            }
        }
    }
}

/// Whether a search identifier matches an `x of` pattern (`*` matches any run of characters).
pub fn ident_matches(pattern: &str, name: &str) -> bool {
    let toks: Vec<crate::pattern::Tok> = pattern
        .split('*')
        .enumerate()
        .flat_map(|(i, part)| {
            let mut v = Vec::new();
            if i > 0 {
                v.push(crate::pattern::Tok::Star);
            }
            if !part.is_empty() {
                v.push(crate::pattern::Tok::Lit(part.to_string()));
            }
            v
        })
        .collect();
    crate::pattern::StrPattern::new(&crate::pattern::normalize(toks), true).matches(name)
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

    #[test]
    fn identifier_patterns() {
        assert!(ident_matches("selection_*", "selection_img"));
        assert!(!ident_matches("selection_*", "filter"));
        assert!(ident_matches("*", "x"));
        assert!(ident_matches("sel*ion", "selection"));
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    fn ast() -> impl Strategy<Value = CondAst> {
        let leaf = prop_oneof![
            "[a-c][a-c_0-9]{0,3}".prop_map(CondAst::Ident),
            ("[a-c]{1,2}\\*", any::<bool>()).prop_map(|(p, all)| CondAst::Of {
                quant: if all { Quant::All } else { Quant::AtLeast(1) },
                target: OfTarget::Pattern(p),
            }),
            Just(CondAst::Of {
                quant: Quant::All,
                target: OfTarget::Them
            }),
        ];
        leaf.prop_recursive(4, 24, 3, |inner| {
            prop_oneof![
                inner.clone().prop_map(|e| CondAst::Not(Box::new(e))),
                prop::collection::vec(inner.clone(), 2..4).prop_map(CondAst::And),
                prop::collection::vec(inner, 2..4).prop_map(CondAst::Or),
            ]
        })
    }

    /// Nested ANDs/ORs flatten on reparse: compare by evaluation instead of structure.
    fn eval(e: &CondAst, env: &dyn Fn(&str) -> bool) -> bool {
        match e {
            CondAst::Ident(s) => env(s),
            CondAst::Not(x) => !eval(x, env),
            CondAst::And(xs) => xs.iter().all(|x| eval(x, env)),
            CondAst::Or(xs) => xs.iter().any(|x| eval(x, env)),
            CondAst::Of { quant, target } => {
                let p = match target {
                    OfTarget::Them => "*".to_string(),
                    OfTarget::Pattern(p) => p.clone(),
                };
                let names = ["a", "b", "c", "ab", "ba", "a_1"];
                let hits: Vec<bool> = names
                    .iter()
                    .filter(|n| ident_matches(&p, n))
                    .map(|n| env(n))
                    .collect();
                match quant {
                    Quant::All => hits.iter().all(|h| *h),
                    Quant::AtLeast(n) => hits.iter().filter(|h| **h).count() >= *n as usize,
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn printed_conditions_parse_back_to_the_same_meaning(e in ast(), seed in any::<u64>()) {
            let text = e.to_string();
            let parsed = parse(&text).map_err(|err| TestCaseError::fail(format!("{text}: {err}")))?;
            prop_assert!(parsed.agg.is_none());
            let env = |s: &str| {
                let h = s.bytes().fold(seed, |a, b| a.wrapping_mul(31).wrapping_add(b as u64));
                h % 3 == 0
            };
            prop_assert_eq!(eval(&parsed.expr, &env), eval(&e, &env), "{}", text);
            // And the printed form is a fixed point.
            prop_assert_eq!(parse(&parsed.expr.to_string()).unwrap().expr.to_string(), parsed.expr.to_string());
        }

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
