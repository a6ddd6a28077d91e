//! Key-scoped literals: a value literal of a field searched only in the values that follow the
//! field's last key, not in the whole text. The digits `401` of `responseStatus.code: 401` are
//! in every event's timestamps and ids; what can match is only the value after a `code"` key.
//! The digits of integers are scoped (`cnf` says why only those; the automaton ignores
//! scopes), and the values after each key are found once per event and shared by that key's
//! literals. The argument below holds for any value literal of a field.
//!
//! Soundness. Let a rule need literal `L` in the value of a field whose paths all end with the
//! clean segment `s` (scoping applies to value literals of fields only: never to keys or
//! keywords). When the rule matches, the document has a value `V` at one of the paths, and the
//! matcher matched `V` (or an element of it, when `V` is an array). Then, in the text (which has
//! no `\u` or `\/` escapes: poisoned texts skip the prefilter):
//! - `V` is the value of an object member whose key ends with `s` (the paths walk object keys
//!   exactly, a key may hold several segments joined with dots, `s` always ends it); `s` is
//!   clean, so that key's text ends with `s` and its closing quote: `s"` (lowercased here, as
//!   the text is). A key is followed by optional JSON whitespace and `:`, then optional
//!   whitespace and the first byte of its value. `s"` cannot overlap itself (its only quote is
//!   its last byte), so searching for it finds every occurrence.
//! - If `V` is a string without backslashes, its text runs from its opening quote to the next
//!   quote; if `V` is a number, its text is the run of `0-9 + - . e E` that starts there. The
//!   literal's argument in the parent module says `L` occurs (with its context) in the JSON
//!   text of the value it matches: here inside that range (quotes included).
//! - Anything else (an array, an object, `true`, `false`, `null`, a string with a backslash,
//!   the end of the text, something unexpected) counts as holding the literal.
//!
//! So every event the rule matches has an occurrence of `s"` followed by whitespace and `:`
//! whose value holds `L` or counts as holding it. Occurrences of `s"` that are not followed by
//! `:` close a string that is not a key: skipped. Keys that merely end with `s` (`xcode`) only
//! add values to look at.

/// What follows an occurrence of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Value {
    /// The text of a string (with its quotes) or number value: `text[start..end]`.
    Token(usize, usize),
    /// A value whose text is not a simple token: counts as holding the literal.
    Unknown,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// The values following each occurrence of `key` (the end of a key, with its closing quote)
/// that is followed by `:`.
pub(super) fn values<'a>(
    text: &'a [u8],
    key: &'a memchr::memmem::Finder<'static>,
) -> impl Iterator<Item = Value> + 'a {
    key.find_iter(text)
        .filter_map(move |at| value_after(text, at + key.needle().len()))
}

/// The value of the key whose closing quote is right before `i` (`None`: no `:` follows, so
/// the quote closed a string that is not a key).
fn value_after(text: &[u8], mut i: usize) -> Option<Value> {
    while text.get(i).copied().is_some_and(is_ws) {
        i += 1;
    }
    if text.get(i) != Some(&b':') {
        return None;
    }
    i += 1;
    while text.get(i).copied().is_some_and(is_ws) {
        i += 1;
    }
    Some(match text.get(i) {
        Some(b'"') => match memchr::memchr2(b'"', b'\\', &text[i + 1..]) {
            Some(o) if text[i + 1 + o] == b'"' => Value::Token(i, i + o + 2),
            // A backslash: the string's end is not simply the next quote.
            _ => Value::Unknown,
        },
        Some(b'-' | b'0'..=b'9') => {
            let n = text[i..]
                .iter()
                .take_while(|b| matches!(b, b'0'..=b'9' | b'+' | b'-' | b'.' | b'e' | b'E'))
                .count();
            Value::Token(i, i + n)
        }
        _ => Value::Unknown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(text: &str) -> Vec<Value> {
        let k = memchr::memmem::Finder::new(b"code\"").into_owned();
        values(text.as_bytes(), &k).collect()
    }

    #[test]
    fn values_after_keys() {
        assert_eq!(vals(r#"{"code":401}"#), vec![Value::Token(8, 11)]);
        assert_eq!(vals(r#"{"code" :	"4x01" }"#), vec![Value::Token(10, 16)]);
        // A string value ending in `code` is not a key.
        assert_eq!(vals(r#"{"a":"code","b":1}"#), vec![]);
        assert_eq!(vals(r#"{"code":[401]}"#), vec![Value::Unknown]);
        assert_eq!(vals(r#"{"code":"a\"401"}"#), vec![Value::Unknown]);
        assert_eq!(vals(r#"{"code":true}"#), vec![Value::Unknown]);
        assert_eq!(vals(r#"{"code":"#), vec![Value::Unknown]);
        assert_eq!(
            vals(r#"{"xcode":-4.01e2,"r.code":"#),
            vec![Value::Token(9, 16), Value::Unknown]
        );
    }
}
