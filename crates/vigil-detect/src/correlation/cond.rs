//! Correlation conditions: comparison bounds (`gte: 10`, ranges `gt: 100` + `lte: 200`) and the
//! extended temporal condition, a boolean expression over referenced rules (`a and not b`).

use serde::{Deserialize, Serialize};

/// A comparison of a correlation's measure with a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Gt,
    Gte,
    Lt,
    Lte,
    Eq,
    Neq,
}

impl Op {
    pub fn apply(self, a: f64, b: f64) -> bool {
        match self {
            Op::Gt => a > b,
            Op::Gte => a >= b,
            Op::Lt => a < b,
            Op::Lte => a <= b,
            Op::Eq => a == b,
            Op::Neq => a != b,
        }
    }

    pub(crate) fn from_legacy(op: crate::condition::CmpOp) -> Op {
        use crate::condition::CmpOp;
        match op {
            CmpOp::Gt => Op::Gt,
            CmpOp::Gte => Op::Gte,
            CmpOp::Lt => Op::Lt,
            CmpOp::Lte => Op::Lte,
            CmpOp::Eq => Op::Eq,
        }
    }
}

/// What a correlation requires of its measure (or, for temporal types, of the set of rules
/// seen in the window).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cond {
    /// Every bound holds (a range is two bounds).
    Bounds(Vec<(Op, f64)>),
    /// Temporal: a boolean expression over which referenced rules were seen.
    Expr(Expr),
}

impl Cond {
    /// Whether the condition can only become true as a window grows (only lower bounds, or an
    /// expression without `not`): then it is checked on every event over a sliding window and
    /// alerts at once. Otherwise a window is judged when it is over.
    pub fn monotone(&self) -> bool {
        match self {
            Cond::Bounds(b) => b.iter().all(|(op, _)| matches!(op, Op::Gt | Op::Gte)),
            Cond::Expr(e) => !e.has_not(),
        }
    }

    pub fn holds(&self, measure: f64) -> bool {
        match self {
            Cond::Bounds(b) => b.iter().all(|(op, v)| op.apply(measure, *v)),
            Cond::Expr(_) => false,
        }
    }

    pub fn holds_for(&self, seen: &[bool]) -> bool {
        match self {
            Cond::Bounds(b) => {
                let n = seen.iter().filter(|s| **s).count() as f64;
                b.iter().all(|(op, v)| op.apply(n, *v))
            }
            Cond::Expr(e) => e.eval(seen),
        }
    }
}

/// A boolean expression over referenced rules, by their position in the correlation's `rules`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Rule(usize),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

impl Expr {
    fn has_not(&self) -> bool {
        match self {
            Expr::Rule(_) => false,
            Expr::Not(_) => true,
            Expr::And(xs) | Expr::Or(xs) => xs.iter().any(Expr::has_not),
        }
    }

    pub fn eval(&self, seen: &[bool]) -> bool {
        match self {
            Expr::Rule(i) => seen.get(*i).copied().unwrap_or(false),
            Expr::Not(e) => !e.eval(seen),
            Expr::And(xs) => xs.iter().all(|x| x.eval(seen)),
            Expr::Or(xs) => xs.iter().any(|x| x.eval(seen)),
        }
    }
}

/// The identifiers of an extended condition, in order of first appearance.
pub(crate) fn expr_names(text: &str) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = vec![];
    for t in tokens(text)? {
        if let Tok::Name(n) = t {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    Ok(names)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    And,
    Or,
    Not,
    Open,
    Close,
}

fn tokens(text: &str) -> Result<Vec<Tok>, String> {
    let mut out = vec![];
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '(' => out.push(Tok::Open),
            ')' => out.push(Tok::Close),
            c if c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':') => {
                let mut end = i + c.len_utf8();
                while let Some(&(j, d)) = chars.peek() {
                    if d.is_alphanumeric() || matches!(d, '_' | '-' | '.' | ':') {
                        end = j + d.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                let w = &text[i..end];
                out.push(match w.to_ascii_lowercase().as_str() {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    _ => Tok::Name(w.to_string()),
                });
            }
            other => return Err(format!("unexpected `{other}` in the condition")),
        }
    }
    Ok(out)
}

/// Parses an extended condition; `resolve` maps a rule name to its position.
pub(crate) fn parse_expr(
    text: &str,
    resolve: &dyn Fn(&str) -> Option<usize>,
) -> Result<Expr, String> {
    let toks = tokens(text)?;
    let mut p = Parser {
        toks: &toks,
        pos: 0,
        resolve,
    };
    let e = p.or()?;
    if p.pos != toks.len() {
        return Err(format!("unexpected {:?} in the condition", toks[p.pos]));
    }
    Ok(e)
}

struct Parser<'a> {
    toks: &'a [Tok],
    pos: usize,
    resolve: &'a dyn Fn(&str) -> Option<usize>,
}

impl Parser<'_> {
    fn or(&mut self) -> Result<Expr, String> {
        let mut xs = vec![self.and()?];
        while self.toks.get(self.pos) == Some(&Tok::Or) {
            self.pos += 1;
            xs.push(self.and()?);
        }
        Ok(if xs.len() == 1 {
            xs.pop().expect("one")
        } else {
            Expr::Or(xs)
        })
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut xs = vec![self.not()?];
        while self.toks.get(self.pos) == Some(&Tok::And) {
            self.pos += 1;
            xs.push(self.not()?);
        }
        Ok(if xs.len() == 1 {
            xs.pop().expect("one")
        } else {
            Expr::And(xs)
        })
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.toks.get(self.pos) == Some(&Tok::Not) {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Expr, String> {
        match self.toks.get(self.pos) {
            Some(Tok::Open) => {
                self.pos += 1;
                let e = self.or()?;
                if self.toks.get(self.pos) != Some(&Tok::Close) {
                    return Err("a `(` is not closed".into());
                }
                self.pos += 1;
                Ok(e)
            }
            Some(Tok::Name(n)) => {
                self.pos += 1;
                (self.resolve)(n)
                    .map(Expr::Rule)
                    .ok_or_else(|| format!("`{n}` is not one of the correlation's rules"))
            }
            Some(t) => Err(format!("unexpected {t:?} in the condition")),
            None => Err("the condition ends too early".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions() {
        let names = ["a", "b", "c"];
        let r = |n: &str| names.iter().position(|x| *x == n);
        let e = parse_expr("a and (b or not c)", &r).unwrap();
        assert!(e.eval(&[true, false, false]));
        assert!(!e.eval(&[true, false, true]));
        assert!(e.eval(&[true, true, true]));
        assert!(!Cond::Expr(e).monotone());
        let e = parse_expr("a AND b", &r).unwrap();
        assert!(Cond::Expr(e).monotone());
        assert!(parse_expr("a and", &r).is_err());
        assert!(parse_expr("a and d", &r).is_err());
        assert!(parse_expr("(a", &r).is_err());
        assert_eq!(expr_names("x and not (y or x)").unwrap(), ["x", "y"]);
    }

    #[test]
    fn bounds() {
        let c = Cond::Bounds(vec![(Op::Gt, 100.0), (Op::Lte, 200.0)]);
        assert!(!c.monotone());
        assert!(!c.holds(100.0));
        assert!(c.holds(101.0));
        assert!(c.holds(200.0));
        assert!(!c.holds(201.0));
        assert!(Cond::Bounds(vec![(Op::Gte, 3.0)]).monotone());
        assert!(!Cond::Bounds(vec![(Op::Neq, 3.0)]).monotone());
        assert!(Cond::Bounds(vec![(Op::Gte, 2.0)]).holds_for(&[true, false, true]));
    }
}
