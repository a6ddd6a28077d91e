//! Double-quoted escapes that YAML 1.2 allows but the apiserver's YAML 1.1 parser rejects.
//!
//! Vigil's YAML parser follows YAML 1.2, where `"\/"` is an escaped slash; go-yaml v2 follows
//! YAML 1.1 and fails the whole file on it ("found unknown escape character"). Such strings
//! are easy to get by pasting JSON-escaped text, so they are re-checked here: every
//! double-quoted scalar is re-read from its source position with go-yaml's escape table.

use std::collections::HashSet;

use vigil_model::yaml::{Node, Value};

/// go-yaml v2's escapes after a backslash (`x`, `u`, `U` take hex digits, which the YAML 1.2
/// parser has already checked).
fn yaml11_escape(c: char) -> bool {
    matches!(
        c,
        '0' | 'a'
            | 'b'
            | 't'
            | '\t'
            | 'n'
            | 'v'
            | 'f'
            | 'r'
            | 'e'
            | ' '
            | '"'
            | '\''
            | '\\'
            | 'N'
            | '_'
            | 'L'
            | 'P'
            | 'x'
            | 'u'
            | 'U'
    )
}

/// `(line, message)` for the first escape in each double-quoted scalar that go-yaml rejects.
pub(crate) fn yaml11_escape_errors(text: &str, root: &Node) -> Vec<(usize, String)> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut seen = HashSet::new();
    let mut errors = Vec::new();
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        match &node.value {
            Value::Seq(items) => stack.extend(items),
            Value::Map(entries) => stack.extend(entries.iter().flat_map(|(k, v)| [k, v])),
            Value::Scalar(s) if s.quoted && seen.insert((node.line, node.col)) => {
                if let Some(e) = check_at(&lines, node.line, node.col) {
                    errors.push(e);
                }
            }
            Value::Scalar(_) => {}
        }
    }
    errors.sort();
    errors
}

/// Re-reads the double-quoted scalar starting at 1-based `line`/`col` (in characters).
fn check_at(lines: &[&str], line: usize, col: usize) -> Option<(usize, String)> {
    let first = lines.get(line.checked_sub(1)?)?;
    let mut chars = first.chars().skip(col.checked_sub(1)?);
    if chars.next() != Some('"') {
        return None; // single-quoted (no escapes) or a position this check does not know
    }
    let mut rest: Box<dyn Iterator<Item = char>> = Box::new(chars);
    let mut at = line;
    let mut following = lines[line..].iter();
    loop {
        match rest.next() {
            Some('"') => return None,
            Some('\\') => match rest.next() {
                // An escaped line break continues the scalar on the next line.
                None | Some('\r') => {}
                Some(c) if yaml11_escape(c) => continue,
                Some(c) => {
                    return Some((
                        at,
                        format!(
                            "the escape \\{c} is not valid in YAML 1.1, which the apiserver's YAML parser implements, so it rejects the file; write {c} without the backslash"
                        ),
                    ))
                }
            },
            Some(_) => continue,
            None => {}
        }
        // End of a line inside the scalar.
        let next = following.next()?;
        at += 1;
        rest = Box::new(next.chars());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(text: &str) -> Vec<usize> {
        let root = vigil_model::yaml::parse_document(text).unwrap().unwrap();
        yaml11_escape_errors(text, &root)
            .into_iter()
            .map(|(l, _)| l)
            .collect()
    }

    #[test]
    fn slash_escape_is_yaml_1_2_only() {
        assert_eq!(errs("a: \"x\\/y\"\n"), [1]);
        assert_eq!(
            errs("a: \"x\\ty\\\"\\u00e9\"\nb: 'x\\/'\n"),
            Vec::<usize>::new()
        );
        assert_eq!(errs("a: \"one\n  two \\/\"\n"), [2]);
        assert_eq!(errs("a: \"x\\\n  \\/\"\n"), [2]);
        assert_eq!(errs("\"k\\/\": [\"\\/\", &a \"\\/\", *a]\n"), [1, 1, 1]);
    }
}
