//! Sigma string values: wildcard parsing (with the specification's escaping rules) and matching.
//!
//! Sigma strings may contain `*` (any run of characters) and `?` (exactly one character). A
//! backslash escapes `*`, `?` and itself; a backslash before any other character is literal
//! (so `C:\Windows` needs no doubling). Matching is case-insensitive unless the value carries the
//! `cased` modifier (or comes out of a base64 transformation, whose alphabet is case-significant).
//!
//! Case-insensitive matching compares Unicode lowercase forms (`str::to_lowercase`). ASCII values
//! (the vast majority) are compared byte-wise with ASCII folding, without allocating.

use std::borrow::Cow;

/// One part of a parsed Sigma string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    Lit(String),
    /// `*`
    Star,
    /// `?`
    Quest,
}

/// Parses a Sigma string into literal runs and wildcards, honouring `\*`, `\?` and `\\`.
pub fn parse_wildcards(s: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut acc = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            if matches!(c, '*' | '?' | '\\') {
                acc.push(c);
            } else {
                acc.push('\\');
                acc.push(c);
            }
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '*' || c == '?' {
            if !acc.is_empty() {
                out.push(Tok::Lit(std::mem::take(&mut acc)));
            }
            out.push(if c == '*' { Tok::Star } else { Tok::Quest });
        } else {
            acc.push(c);
        }
    }
    if escaped {
        acc.push('\\');
    }
    if !acc.is_empty() {
        out.push(Tok::Lit(acc));
    }
    normalize(out)
}

/// Merges adjacent literals and collapses runs of `*`.
pub fn normalize(toks: Vec<Tok>) -> Vec<Tok> {
    let mut out: Vec<Tok> = Vec::with_capacity(toks.len());
    for t in toks {
        match (out.last_mut(), t) {
            (Some(Tok::Lit(prev)), Tok::Lit(s)) => prev.push_str(&s),
            (Some(Tok::Star), Tok::Star) => {}
            (_, Tok::Lit(s)) if s.is_empty() => {}
            (_, t) => out.push(t),
        }
    }
    out
}

/// Renders tokens back to Sigma syntax (escaping literal `*`, `?` and backslashes where needed).
pub fn render(toks: &[Tok]) -> String {
    let mut s = String::new();
    for t in toks {
        match t {
            Tok::Star => s.push('*'),
            Tok::Quest => s.push('?'),
            Tok::Lit(l) => {
                let chars: Vec<char> = l.chars().collect();
                for (i, &c) in chars.iter().enumerate() {
                    match c {
                        '*' | '?' => {
                            s.push('\\');
                            s.push(c);
                        }
                        '\\' => {
                            // A backslash must be doubled when something special could follow it.
                            let next = chars.get(i + 1).copied();
                            if matches!(next, None | Some('*' | '?' | '\\')) {
                                s.push_str("\\\\");
                            } else {
                                s.push('\\');
                            }
                        }
                        _ => s.push(c),
                    }
                }
            }
        }
    }
    s
}

/// Lowercases for case-insensitive comparison; borrows when nothing changes.
pub fn fold(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(s.to_ascii_lowercase())
        } else {
            Cow::Borrowed(s)
        }
    } else {
        let l = s.to_lowercase();
        if l == s {
            Cow::Borrowed(s)
        } else {
            Cow::Owned(l)
        }
    }
}

/// A compiled string matcher.
#[derive(Debug, Clone)]
pub struct StrPattern {
    kind: Kind,
    cased: bool,
    /// The Sigma text of the pattern, for explanations.
    pub source: String,
}

#[derive(Debug, Clone)]
enum Kind {
    /// `*` alone: any value.
    Any,
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Glob(Vec<Tok>),
}

impl StrPattern {
    /// Builds a matcher from parsed tokens. Literals are lowercased unless `cased`.
    pub fn new(toks: &[Tok], cased: bool) -> StrPattern {
        let source = render(toks);
        let toks: Vec<Tok> = normalize(
            toks.iter()
                .map(|t| match t {
                    Tok::Lit(s) if !cased => Tok::Lit(s.to_lowercase()),
                    t => t.clone(),
                })
                .collect(),
        );
        let kind = match toks.as_slice() {
            [] => Kind::Exact(String::new()),
            [Tok::Star] => Kind::Any,
            [Tok::Lit(s)] => Kind::Exact(s.clone()),
            [Tok::Lit(s), Tok::Star] => Kind::Prefix(s.clone()),
            [Tok::Star, Tok::Lit(s)] => Kind::Suffix(s.clone()),
            [Tok::Star, Tok::Lit(s), Tok::Star] => Kind::Contains(s.clone()),
            _ => Kind::Glob(toks),
        };
        StrPattern {
            kind,
            cased,
            source,
        }
    }

    pub fn is_cased(&self) -> bool {
        self.cased
    }

    /// True for the pattern `*`, which Sigma uses to mean "has any value".
    pub fn is_any(&self) -> bool {
        matches!(self.kind, Kind::Any)
    }

    /// The exact (lowercased unless cased) string this pattern equals, if it has no wildcards.
    pub fn exact(&self) -> Option<&str> {
        match &self.kind {
            Kind::Exact(s) => Some(s),
            _ => None,
        }
    }

    /// The literal runs a matching value must contain (lowercased unless cased).
    pub fn literals(&self) -> Vec<&str> {
        match &self.kind {
            Kind::Any => vec![],
            Kind::Exact(s) | Kind::Prefix(s) | Kind::Suffix(s) | Kind::Contains(s) => vec![s],
            Kind::Glob(t) => t
                .iter()
                .filter_map(|t| match t {
                    Tok::Lit(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect(),
        }
    }

    /// The literal a matching value starts with (`.1`), ends with (`.2`), or both (exact), or
    /// merely contains (neither); `None` for globs with `?` or several stars and for `*`.
    pub fn anchored_literal(&self) -> Option<(&str, bool, bool)> {
        match &self.kind {
            Kind::Exact(s) => Some((s, true, true)),
            Kind::Prefix(s) => Some((s, true, false)),
            Kind::Suffix(s) => Some((s, false, true)),
            Kind::Contains(s) => Some((s, false, false)),
            Kind::Any | Kind::Glob(_) => None,
        }
    }

    /// The substring this pattern needs when it is a plain `*lit*`, for multi-pattern search.
    pub fn contains_literal(&self) -> Option<&str> {
        match &self.kind {
            Kind::Contains(s) => Some(s),
            _ => None,
        }
    }

    pub fn matches(&self, v: &str) -> bool {
        if self.cased {
            return self.kind.matches_bytes(v.as_bytes(), false);
        }
        if v.is_ascii() {
            self.kind.matches_bytes(v.as_bytes(), true)
        } else {
            let l = v.to_lowercase();
            self.kind.matches_bytes(l.as_bytes(), false)
        }
    }
}

impl Kind {
    /// `ci`: fold ASCII letters of `v` (the pattern is already lowercase).
    fn matches_bytes(&self, v: &[u8], ci: bool) -> bool {
        match self {
            Kind::Any => true,
            Kind::Exact(p) => eq(v, p.as_bytes(), ci),
            Kind::Prefix(p) => v.len() >= p.len() && eq(&v[..p.len()], p.as_bytes(), ci),
            Kind::Suffix(p) => v.len() >= p.len() && eq(&v[v.len() - p.len()..], p.as_bytes(), ci),
            Kind::Contains(p) => find(v, p.as_bytes(), ci, 0).is_some(),
            Kind::Glob(t) => glob(t, v, ci),
        }
    }
}

#[inline]
fn eq(a: &[u8], b: &[u8], ci: bool) -> bool {
    if ci {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

/// First position at or after `from` where `needle` occurs in `hay`.
pub(crate) fn find(hay: &[u8], needle: &[u8], ci: bool, from: usize) -> Option<usize> {
    if needle.is_empty() {
        return Some(from.min(hay.len()));
    }
    if hay.len() < needle.len() + from {
        return None;
    }
    if !ci {
        return memchr::memmem::find(&hay[from..], needle).map(|i| i + from);
    }
    let first = needle[0];
    let (lo, up) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    let last_start = hay.len() - needle.len();
    let mut i = from;
    while i <= last_start {
        let off = if lo == up {
            memchr::memchr(lo, &hay[i..=last_start])
        } else {
            memchr::memchr2(lo, up, &hay[i..=last_start])
        };
        match off {
            None => return None,
            Some(o) => {
                let p = i + o;
                if hay[p + 1..p + needle.len()].eq_ignore_ascii_case(&needle[1..]) {
                    return Some(p);
                }
                i = p + 1;
            }
        }
    }
    None
}

fn char_len(b: u8) -> usize {
    match b {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// Glob matching over UTF-8 bytes: `?` consumes one character, `*` any run of characters.
fn glob(toks: &[Tok], v: &[u8], ci: bool) -> bool {
    // Classic iterative matcher with a single backtrack point (the last star).
    let mut ti = 0; // token index
    let mut vi = 0; // byte position in v
    let mut star: Option<(usize, usize)> = None; // (token after star, value position)
    loop {
        if ti < toks.len() {
            match &toks[ti] {
                Tok::Star => {
                    star = Some((ti + 1, vi));
                    ti += 1;
                    continue;
                }
                Tok::Quest => {
                    if vi < v.len() {
                        vi += char_len(v[vi]);
                        ti += 1;
                        continue;
                    }
                }
                Tok::Lit(s) => {
                    let s = s.as_bytes();
                    if v.len() - vi >= s.len() && eq(&v[vi..vi + s.len()], s, ci) {
                        vi += s.len();
                        ti += 1;
                        continue;
                    }
                }
            }
        } else if vi == v.len() {
            return true;
        }
        // Mismatch: let the last star swallow one more character.
        match star {
            Some((st, sv)) if sv < v.len() => {
                let nv = sv + char_len(v[sv]);
                star = Some((st, nv));
                ti = st;
                vi = nv;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(s: &str) -> StrPattern {
        StrPattern::new(&parse_wildcards(s), false)
    }

    #[test]
    fn escaping_follows_the_specification() {
        // Plain backslash, single or doubled.
        assert_eq!(
            parse_wildcards(r"C:\Windows"),
            vec![Tok::Lit(r"C:\Windows".into())]
        );
        assert_eq!(
            parse_wildcards(r"C:\\Windows"),
            vec![Tok::Lit(r"C:\Windows".into())]
        );
        // Escaped wildcards are literal.
        assert_eq!(parse_wildcards(r"a\*b"), vec![Tok::Lit("a*b".into())]);
        assert_eq!(parse_wildcards(r"a\?b"), vec![Tok::Lit("a?b".into())]);
        // Escaped backslash followed by a wildcard.
        assert_eq!(
            parse_wildcards(r"a\\*"),
            vec![Tok::Lit(r"a\".into()), Tok::Star]
        );
        // Three backslashes: backslash and literal star.
        assert_eq!(parse_wildcards(r"a\\\*"), vec![Tok::Lit(r"a\*".into())]);
        // Three or four backslashes are a double backslash.
        assert_eq!(parse_wildcards(r"a\\\\"), vec![Tok::Lit(r"a\\".into())]);
        assert_eq!(parse_wildcards(r"a\\\"), vec![Tok::Lit(r"a\\".into())]);
        // Trailing single backslash.
        assert_eq!(parse_wildcards(r"a\"), vec![Tok::Lit(r"a\".into())]);
    }

    #[test]
    fn wildcards_and_case() {
        assert!(pat("kube-*").matches("KUBE-system"));
        assert!(pat("*.exe").matches("C:\\X\\CMD.EXE"));
        assert!(pat("*admin*").matches("the Administrator"));
        assert!(pat("prog?.exe").matches("progA.exe"));
        assert!(!pat("prog?.exe").matches("prog.exe"));
        assert!(!pat("prog?.exe").matches("progAB.exe"));
        assert!(pat("a*b*c").matches("aXXbYYc"));
        assert!(!pat("a*b*c").matches("aXXbYY"));
        assert!(pat("*").matches(""));
        assert!(pat("").matches(""));
        assert!(!pat("").matches("x"));
        assert!(pat(r"a\*").matches("A*"));
        assert!(!pat(r"a\*").matches("ab"));
        // Non-ASCII: Unicode lowercase on both sides; ? is one character.
        assert!(pat("ÉCOLE").matches("école"));
        assert!(pat("?cole").matches("École"));
        assert!(pat("*ß*").matches("straße"));
    }

    #[test]
    fn cased_values() {
        let p = StrPattern::new(&parse_wildcards("Admin*"), true);
        assert!(p.matches("Administrator"));
        assert!(!p.matches("administrator"));
    }

    #[test]
    fn render_round_trips() {
        for s in [
            r"a\*b",
            r"C:\Windows\*",
            "x*y?z",
            r"a\\*",
            r"\\server\share",
            r"end\\",
        ] {
            let t = parse_wildcards(s);
            assert_eq!(parse_wildcards(&render(&t)), t, "{s}");
        }
    }

    #[test]
    fn ci_find() {
        assert_eq!(find(b"Hello World", b"world", true, 0), Some(6));
        assert_eq!(find(b"Hello World", b"worlds", true, 0), None);
        assert_eq!(find(b"aaa", b"", true, 1), Some(1));
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    /// The reference: the same tokens as a regular expression.
    fn reference(toks: &[Tok], cased: bool) -> regex::Regex {
        let mut re = String::from(if cased { "(?s)^" } else { "(?is)^" });
        for t in toks {
            match t {
                Tok::Star => re.push_str(".*"),
                Tok::Quest => re.push('.'),
                Tok::Lit(s) => re.push_str(&regex::escape(s)),
            }
        }
        re.push('$');
        regex::Regex::new(&re).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn wildcard_matcher_agrees_with_a_regex(
            pat in "[abAB*?\\\\.]{0,8}",
            text in "[abAB*?\\\\.x]{0,10}",
            cased in any::<bool>(),
        ) {
            let toks = parse_wildcards(&pat);
            let p = StrPattern::new(&toks, cased);
            prop_assert_eq!(p.matches(&text), reference(&toks, cased).is_match(&text),
                "pattern {:?} tokens {:?} text {:?}", pat, toks, text);
        }

        #[test]
        fn wildcard_matcher_agrees_on_unicode(
            pat in "[aéÉß*?]{0,6}",
            text in "[aéÉßx]{0,8}",
        ) {
            let toks = parse_wildcards(&pat);
            let p = StrPattern::new(&toks, false);
            // Reference on lowercased text (the matcher's definition of case-insensitivity).
            let lowered: Vec<Tok> = toks.iter().map(|t| match t {
                Tok::Lit(s) => Tok::Lit(s.to_lowercase()),
                t => t.clone(),
            }).collect();
            let want = reference(&lowered, true).is_match(&text.to_lowercase());
            prop_assert_eq!(p.matches(&text), want, "{:?} {:?}", pat, text);
        }

        #[test]
        fn rendering_round_trips(pat in "[ab*?\\\\]{0,10}") {
            let toks = parse_wildcards(&pat);
            prop_assert_eq!(parse_wildcards(&render(&toks)), toks);
        }
    }
}
