//! Checks on the raw text, before (or instead of) parsing it.

/// Deepest block nesting Vigil parses. The YAML parser recurses once per level (about 1,500
/// levels overflow a 2 MiB thread stack) and caps flow nesting at 255 itself; real policies
/// nest fewer than 10 levels.
pub(crate) const MAX_BLOCK_DEPTH: usize = 256;

/// A cheap upper bound on block nesting, checked before parsing so that no input can overflow
/// the parser's stack: open indentation levels plus leading `- `/`? ` indicators on a line.
/// Returns the first line that exceeds [`MAX_BLOCK_DEPTH`].
pub(crate) fn too_deep(text: &str) -> Option<usize> {
    let mut indents: Vec<usize> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let rest = line.trim_start_matches(' ');
        if rest.trim().is_empty() || rest.starts_with('#') {
            continue;
        }
        let indent = line.len() - rest.len();
        while indents.last().is_some_and(|&l| l >= indent) {
            indents.pop();
        }
        indents.push(indent);
        let mut indicators = 0;
        let mut r = rest;
        while let Some(next) = r
            .strip_prefix("- ")
            .or_else(|| r.strip_prefix("? "))
            .or_else(|| r.strip_prefix("-\t"))
        {
            indicators += 1;
            r = next.trim_start_matches([' ', '\t']);
        }
        if indents.len() + indicators > MAX_BLOCK_DEPTH {
            return Some(i + 1);
        }
    }
    None
}

/// A document marker line: `---` or `...` at column 0, alone or followed by a space.
fn marker(line: &str, m: &str) -> bool {
    line.strip_prefix(m)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r']))
}

/// The text of the first YAML document, when more follows it. go-yaml reads only the first
/// document, so whatever comes after (even broken YAML) never reaches the apiserver.
pub(crate) fn first_document(text: &str) -> Option<&str> {
    let mut content = false;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        let starts_doc = marker(bare, "---");
        if (starts_doc || marker(bare, "...")) && content {
            return Some(&text[..offset]);
        }
        let rest = if starts_doc { &bare[3..] } else { bare };
        let rest = rest.trim();
        // Directives (`%YAML 1.1`) come before the first document and are not content.
        let directive = !content && bare.starts_with('%');
        if !rest.is_empty() && !rest.starts_with('#') && !directive {
            content = true;
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_documents() {
        assert_eq!(first_document("a: 1\n---\nb: ["), Some("a: 1\n"));
        assert_eq!(first_document("--- \na: 1\n...\nx"), Some("--- \na: 1\n"));
        assert_eq!(
            first_document("%YAML 1.1\n---\na: 1\n---\n"),
            Some("%YAML 1.1\n---\na: 1\n")
        );
        assert_eq!(first_document("--- a\n--- b\n"), Some("--- a\n"));
        assert_eq!(first_document("a: 1\nb: ---\n"), None);
        assert_eq!(first_document("# c\n---\na: 1\n"), None);
    }

    #[test]
    fn nesting_bound() {
        assert_eq!(too_deep("a:\n  b:\n    - - c\n"), None);
        assert_eq!(too_deep(&("- ".repeat(300) + "x")), Some(1));
    }
}
