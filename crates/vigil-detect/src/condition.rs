//! The `condition` language: `and`, `or`, `not`, parentheses, `1 of x*`, `all of x*`,
//! `1 of them`, `all of them`, and the legacy aggregation after a pipe
//! (`selection | count(field) by a, b > 10`).
//!
//! Precedence, least to most binding: `or`, `and`, `not`, `x of`, parentheses. Keywords are
//! matched case-insensitively.
//!
//! This module holds the syntax tree, the errors, the printer and `x of` pattern matching;
//! `parser` turns text into the tree.

use std::fmt;

mod parser;

pub use parser::parse;

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
    }
}
