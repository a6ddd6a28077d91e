//! The pruned parse's fast path: a hand-written scanner for the JSON that audit events are
//! made of, which skips what no path reads at memory speed and builds only what they read.
//!
//! Exact by giving up: it answers only when it is sure to answer as serde_json does, and
//! [`Bail`]s otherwise, so that the caller runs the serde path, which decides. It gives up on
//! anything outside plain JSON: `\u` escapes (surrogates), numbers other than integers of at
//! most 18 digits (floats, range, `-0`, leading zeros), deep nesting, serde_json's raw-value
//! marker key, keys with escapes, and every syntax error (the serde path then refuses the
//! text). What it accepts is valid JSON whose value serde_json reads the same way: strings with
//! the simple escapes, integers as `u64` (or `i64` when negative), `true`, `false`, `null`, and
//! objects whose duplicate keys keep the last value ([`Map::insert`], as serde_json does).

use serde_json::{Map, Number, Value};

use super::tree::{self, Node};
use super::{Tree, RAW_VALUE_TOKEN};

/// Captured values with their slots, in document order.
pub(super) type Slotted = Vec<(u32, Value)>;

/// The scanner cannot tell: let serde_json decide.
#[derive(Debug)]
pub(super) struct Bail;

type R<T> = Result<T, Bail>;

/// Nesting deeper than this gives up (serde_json's own limit is 128).
const MAX_DEPTH: u32 = 100;

/// `raw` parsed down to what `tree` keeps, when the scanner can be sure of the answer; the
/// root must be an object.
pub(super) fn parse(tree: &Tree, raw: &str) -> R<Value> {
    // Nothing is captured: no room is made for values.
    let (doc, _) = scan(tree, raw, Vec::new())?;
    Ok(doc.unwrap_or_else(|| Value::Object(Map::new())))
}

/// `raw` parsed down to what `tree` keeps (`None`: it keeps nothing), and the values of its
/// captured paths by slot, in document order.
///
/// Captured values are those [`crate::event::FieldPath::any`] finds in the whole document, in
/// its order, because the scanner gives up wherever they might not be: in an object, a path
/// reached through two keys (nested and joined, or the same key twice) would take the values
/// of the one the lookup prefers; reached through one key, they are that key's values, and
/// arrays give theirs element by element, as the lookup does.
pub(super) fn capture(tree: &Tree, raw: &str) -> R<(Option<Value>, Slotted)> {
    scan(tree, raw, Vec::with_capacity(16))
}

fn scan(tree: &Tree, raw: &str, captured: Slotted) -> R<(Option<Value>, Slotted)> {
    let mut p = Scanner {
        s: raw,
        b: raw.as_bytes(),
        i: 0,
        tree,
        depth: 0,
        captured,
    };
    p.ws();
    if p.peek() != Some(b'{') {
        return Err(Bail);
    }
    let v = p.pruned(0)?;
    p.ws();
    if p.i != p.b.len() {
        return Err(Bail);
    }
    Ok((v, p.captured))
}

struct Scanner<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    tree: &'a Tree,
    depth: u32,
    /// (slot, value) of captured paths, in document order.
    captured: Slotted,
}

/// Bytes that end a run of plain string content.
#[inline]
fn special(c: u8) -> bool {
    c == b'"' || c == b'\\' || c < 0x20
}

impl<'a> Scanner<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    #[inline]
    fn eat(&mut self, c: u8) -> R<()> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(Bail)
        }
    }

    fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Bail);
        }
        Ok(())
    }

    /// Moves to the next `"`, `\` or control byte of a string (eight bytes at a time).
    #[inline]
    fn run(&mut self) {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let b = self.b;
        while self.i + 8 <= b.len() {
            let w = u64::from_le_bytes(b[self.i..self.i + 8].try_into().unwrap());
            let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
            // The lowest flagged byte is exact (a borrow only flags bytes above it).
            let hit = zero(w ^ (ONES * b'"' as u64))
                | zero(w ^ (ONES * b'\\' as u64))
                | (w.wrapping_sub(ONES * 0x20) & !w & HIGH);
            if hit != 0 {
                self.i += (hit.trailing_zeros() / 8) as usize;
                return;
            }
            self.i += 8;
        }
        while self.i < b.len() && !special(b[self.i]) {
            self.i += 1;
        }
    }

    /// After the opening quote: the string's text, unescaped when it has escapes.
    fn string(&mut self) -> R<std::borrow::Cow<'a, str>> {
        let start = self.i;
        self.run();
        match self.peek() {
            Some(b'"') => {
                // Both ends are ASCII bytes, so this slice of the `str` is one.
                let s = &self.s[start..self.i];
                self.i += 1;
                Ok(std::borrow::Cow::Borrowed(s))
            }
            Some(b'\\') => {
                let mut out = self.s[start..self.i].to_string();
                loop {
                    match self.peek() {
                        Some(b'"') => {
                            self.i += 1;
                            return Ok(std::borrow::Cow::Owned(out));
                        }
                        Some(b'\\') => out.push(char::from(self.escape()?)),
                        _ => return Err(Bail),
                    }
                    let from = self.i;
                    self.run();
                    out.push_str(&self.s[from..self.i]);
                }
            }
            _ => Err(Bail),
        }
    }

    /// At a backslash: the escaped byte (`\u` gives up).
    #[inline]
    fn escape(&mut self) -> R<u8> {
        let c = match self.b.get(self.i + 1) {
            Some(b'"') => b'"',
            Some(b'\\') => b'\\',
            Some(b'/') => b'/',
            Some(b'b') => 0x08,
            Some(b'f') => 0x0c,
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            _ => return Err(Bail),
        };
        self.i += 2;
        Ok(c)
    }

    /// After the opening quote: skips a string.
    fn skip_string(&mut self) -> R<()> {
        loop {
            self.run();
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.escape()?;
                }
                _ => return Err(Bail),
            }
        }
    }

    /// An object key: borrowed, without escapes, not serde_json's raw-value marker.
    fn key(&mut self) -> R<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        self.run();
        if self.peek() != Some(b'"') {
            return Err(Bail);
        }
        let k = &self.s[start..self.i];
        self.i += 1;
        if k == RAW_VALUE_TOKEN {
            return Err(Bail);
        }
        self.ws();
        self.eat(b':')?;
        self.ws();
        Ok(k)
    }

    /// An integer of at most 18 digits, as serde_json reads it.
    fn number(&mut self) -> R<Number> {
        let neg = self.peek() == Some(b'-');
        if neg {
            self.i += 1;
        }
        let start = self.i;
        let mut n: u64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            n = n * 10 + u64::from(c - b'0');
            self.i += 1;
            if self.i - start > 18 {
                return Err(Bail);
            }
        }
        let len = self.i - start;
        // No digits, a leading zero, a fraction or an exponent: serde_json decides.
        if len == 0
            || (self.b[start] == b'0' && len > 1)
            || matches!(self.peek(), Some(b'.' | b'e' | b'E'))
        {
            return Err(Bail);
        }
        if !neg {
            return Ok(n.into());
        }
        if n == 0 {
            // serde_json reads `-0` as a float.
            return Err(Bail);
        }
        Ok((-(n as i64)).into())
    }

    fn literal(&mut self, word: &[u8]) -> R<()> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(Bail)
        }
    }

    /// The value at this node of the tree: pruned objects, arrays read at the same node;
    /// `None` where the node is not part of the built document. Captures on the way.
    /// (Kept apart from [`Scanner::whole`], which walks the same way: one function for both,
    /// told by an `Option` node, made the built-in pack's engine 5-7% slower.)
    fn pruned(&mut self, node: u32) -> R<Option<Value>> {
        let tree = self.tree;
        let n = &tree.nodes[node as usize];
        if n.whole {
            let v = self.whole()?;
            return Ok(self.keep(n, v));
        }
        match self.peek() {
            Some(b'{') => {
                self.i += 1;
                self.enter()?;
                let mut out = n.builds.then(Map::new);
                // The children found so far that lead to captured paths (see `Node::clash`).
                let mut seen = 0u128;
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                } else {
                    loop {
                        let k = self.key()?;
                        match n.child(k) {
                            Some((ci, c)) => {
                                let clash = n.clash[ci];
                                if clash != 0 {
                                    let bit = n.bit[ci];
                                    if bit == tree::NO_BIT || seen & clash != 0 {
                                        return Err(Bail);
                                    }
                                    seen |= 1 << bit;
                                }
                                let v = self.pruned(c)?;
                                if let (Some(out), Some(v)) = (&mut out, v) {
                                    out.insert(k.to_string(), v);
                                }
                            }
                            None => self.skip()?,
                        }
                        if self.more(b'}')? {
                            break;
                        }
                    }
                }
                self.depth -= 1;
                Ok(out.map(Value::Object))
            }
            Some(b'[') => {
                self.i += 1;
                self.enter()?;
                let mut out = n.builds.then(Vec::new);
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                } else {
                    loop {
                        let v = self.pruned(node)?;
                        if let (Some(out), Some(v)) = (&mut out, v) {
                            out.push(v);
                        }
                        if self.more(b']')? {
                            break;
                        }
                    }
                }
                self.depth -= 1;
                Ok(out.map(Value::Array))
            }
            _ if n.builds => self.whole().map(Some),
            _ => self.skip().map(|_| None),
        }
    }

    /// A whole node's value: captured for the paths that end here or go on below, and given
    /// back when the built document holds it.
    fn keep(&mut self, n: &Node, v: Value) -> Option<Value> {
        for &(slot, path, pos) in n.below.iter() {
            let out = &mut self.captured;
            self.tree.below_paths[path as usize].walk_from(&v, pos as usize, &mut |x| {
                out.push((slot, x.clone()));
                false
            });
        }
        match (&*n.ends, n.builds) {
            ([], true) => Some(v),
            ([], false) => None,
            ([slot], false) => {
                push_leaves(&mut self.captured, *slot, v);
                None
            }
            (ends, builds) => {
                for &slot in ends {
                    push_leaves(&mut self.captured, slot, v.clone());
                }
                builds.then_some(v)
            }
        }
    }

    /// After a member or element: true at the closing byte, false after a comma.
    #[inline]
    fn more(&mut self, close: u8) -> R<bool> {
        self.ws();
        match self.peek() {
            Some(b',') => {
                self.i += 1;
                self.ws();
                Ok(false)
            }
            Some(c) if c == close => {
                self.i += 1;
                Ok(true)
            }
            _ => Err(Bail),
        }
    }

    /// A whole value.
    fn whole(&mut self) -> R<Value> {
        match self.peek() {
            Some(b'"') => {
                self.i += 1;
                Ok(Value::String(self.string()?.into_owned()))
            }
            Some(b'{') => {
                self.i += 1;
                self.enter()?;
                let mut out = Map::new();
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                } else {
                    loop {
                        let k = self.key()?;
                        let v = self.whole()?;
                        out.insert(k.to_string(), v);
                        if self.more(b'}')? {
                            break;
                        }
                    }
                }
                self.depth -= 1;
                Ok(Value::Object(out))
            }
            Some(b'[') => {
                self.i += 1;
                self.enter()?;
                let mut out = Vec::new();
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                } else {
                    loop {
                        out.push(self.whole()?);
                        if self.more(b']')? {
                            break;
                        }
                    }
                }
                self.depth -= 1;
                Ok(Value::Array(out))
            }
            Some(b't') => self.literal(b"true").map(|_| Value::Bool(true)),
            Some(b'f') => self.literal(b"false").map(|_| Value::Bool(false)),
            Some(b'n') => self.literal(b"null").map(|_| Value::Null),
            _ => self.number().map(Value::Number),
        }
    }

    /// Checks a value and keeps nothing.
    fn skip(&mut self) -> R<()> {
        match self.peek() {
            Some(b'"') => {
                self.i += 1;
                self.skip_string()
            }
            Some(b'{') => {
                self.i += 1;
                self.enter()?;
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                } else {
                    loop {
                        self.key()?;
                        self.skip()?;
                        if self.more(b'}')? {
                            break;
                        }
                    }
                }
                self.depth -= 1;
                Ok(())
            }
            Some(b'[') => {
                self.i += 1;
                self.enter()?;
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                } else {
                    loop {
                        self.skip()?;
                        if self.more(b']')? {
                            break;
                        }
                    }
                }
                self.depth -= 1;
                Ok(())
            }
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            _ => self.number().map(|_| ()),
        }
    }
}

/// The leaves of a path's value, as the lookup gives them: arrays flattened, in order.
fn push_leaves(out: &mut Slotted, slot: u32, v: Value) {
    match v {
        Value::Array(items) => items.into_iter().for_each(|e| push_leaves(out, slot, e)),
        v => out.push((slot, v)),
    }
}

#[cfg(test)]
mod tests;
