//! The part of list-option decoding that decides a list/watch request's verb and name.
//!
//! For a GET without a name in the path, the apiserver decodes the query into ListOptions. If
//! that works, `watch` picks watch vs list and `fieldSelector=metadata.name=X` gives the request
//! the name X. If *any* parameter fails to decode (a bad label selector, a non-numeric `limit`)
//! the whole decoding is thrown away: the verb still honours `watch`, but the name is lost.
//! So deciding the name needs the same parsers for both selector languages.

mod labels;

use labels::parse_label_selector;

/// Go's `url.ParseQuery`, keeping only what it keeps: pairs split on `&`, pairs containing `;`
/// or a bad escape dropped, `+` is a space.
pub(crate) fn parse_query(raw: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for pair in raw.split('&') {
        if pair.is_empty() || pair.contains(';') {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if let (Some(k), Some(v)) = (query_unescape(k), query_unescape(v)) {
            out.push((k, v));
        }
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Percent-decoding; `plus_is_space` for query components. `None` on a malformed escape.
pub(crate) fn unescape(s: &str, plus_is_space: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hi = hex(*b.get(i + 1)?)?;
                let lo = hex(*b.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    // Go strings may hold any bytes; invalid UTF-8 can only come from escapes and is replaced.
    Some(String::from_utf8_lossy(&out).into_owned())
}

fn query_unescape(s: &str) -> Option<String> {
    unescape(s, true)
}

/// The first value of a query parameter, as the apiserver's conversions read it.
pub(crate) fn first<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Go's `strconv.ParseInt(s, 10, 64)`.
pub(crate) fn parse_int10(s: &str) -> bool {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && s.parse::<i64>().is_ok()
}

/// `strings.EqualFold(v, "false")`: `ſ` folds to `s` as well.
fn is_false_fold(v: &str) -> bool {
    v.chars()
        .map(|c| {
            if c == '\u{17F}' {
                's'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .eq("false".chars())
}

/// What ListOptions decoding gives the request-info parser.
pub(crate) struct ListInfo {
    pub watch: bool,
    pub name: Option<String>,
}

pub(crate) fn list_info(query: &[(String, String)]) -> ListInfo {
    let watch_value = first(query, "watch");
    let decoded = (|| {
        for key in ["timeoutSeconds", "limit"] {
            if let Some(v) = first(query, key) {
                if !parse_int10(v) {
                    return None;
                }
            }
        }
        parse_label_selector(first(query, "labelSelector").unwrap_or(""))?;
        parse_field_selector(first(query, "fieldSelector").unwrap_or(""))
    })();
    match decoded {
        Some(name) => ListInfo {
            watch: watch_value.is_some_and(|v| !(v == "0" || is_false_fold(v))),
            name: name.filter(|n| is_path_segment_name(n)),
        },
        // The fallback reads only `watch`, comparing its lower-cased value.
        None => ListInfo {
            watch: watch_value.is_some_and(|v| {
                let l = v.to_lowercase();
                l != "false" && l != "0"
            }),
            name: None,
        },
    }
}

/// `content.IsPathSegmentName`: a name that can sit in a URL path segment.
fn is_path_segment_name(name: &str) -> bool {
    name != "." && name != ".." && !name.contains('/') && !name.contains('%')
}

/// `fields.ParseSelector`: `Some(the metadata.name it requires, if any)`, `None` if invalid.
pub(crate) fn parse_field_selector(selector: &str) -> Option<Option<String>> {
    // Terms split on unescaped commas, sorted, empty ones skipped.
    let mut terms = Vec::new();
    let (mut start, mut in_slash) = (0, false);
    for (i, c) in selector.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    if !selector.is_empty() {
        terms.push(&selector[start..]);
    }
    terms.sort_unstable();
    let mut name = None;
    for term in terms.into_iter().filter(|t| !t.is_empty()) {
        // The first operator position wins; at a position "!=" and "==" are tried before "=".
        let (i, op) = term.char_indices().find_map(|(i, _)| {
            ["!=", "==", "="]
                .into_iter()
                .find(|op| term[i..].starts_with(op))
                .map(|op| (i, op))
        })?;
        let (field, raw_value) = (&term[..i], &term[i + op.len()..]);
        let value = unescape_field_value(raw_value)?;
        // The first `=`/`==` term on metadata.name (in sorted order) is the one required.
        if op != "!=" && field == "metadata.name" && name.is_none() {
            name = Some(value);
        }
    }
    Some(name)
}

/// `fields.UnescapeValue`: `\\`, `\,`, `\=` are escapes; other escapes and bare `,`/`=` fail.
fn unescape_field_value(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return None;
            }
            out.push(c);
            in_slash = false;
        } else {
            match c {
                '\\' => in_slash = true,
                ',' | '=' => return None,
                c => out.push(c),
            }
        }
    }
    (!in_slash).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_selectors() {
        assert_eq!(parse_field_selector(""), Some(None));
        assert_eq!(
            parse_field_selector("metadata.name=a"),
            Some(Some("a".into()))
        );
        assert_eq!(
            parse_field_selector("metadata.name==a"),
            Some(Some("a".into()))
        );
        assert_eq!(parse_field_selector("metadata.name!=a"), Some(None));
        assert_eq!(parse_field_selector("metadata.name=name1,foo"), None);
        assert_eq!(parse_field_selector("metadata.name=a=b"), None);
        assert_eq!(
            parse_field_selector("metadata.name=a\\,b"),
            Some(Some("a,b".into()))
        );
        assert_eq!(
            parse_field_selector("metadata.name=b,metadata.name=a"),
            Some(Some("a".into()))
        );
        assert_eq!(
            parse_field_selector("x=1,,metadata.name=z"),
            Some(Some("z".into()))
        );
    }

    #[test]
    fn query_parsing() {
        let q = parse_query("a=1&b&c=%zz&d=x+y&e;f=1&&a=2");
        assert_eq!(
            q,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "".into()),
                ("d".into(), "x y".into()),
                ("a".into(), "2".into())
            ]
        );
    }
}
