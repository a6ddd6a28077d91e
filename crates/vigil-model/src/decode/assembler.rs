//! [`LineAssembler`]: document boundaries in a stream of lines.

use std::borrow::Cow;

use super::{brackets, DecodeError};

/// Groups lines into JSON documents: one per line for JSON-lines logs, several lines for a
/// pretty-printed document. A line that cannot start a document is returned alone, so its
/// error names it and the next line is read afresh.
pub struct LineAssembler {
    buf: String,
    start: usize,
    limit: usize,
}

/// A complete document, ready for [`decode_document`](super::decode_document) or for reporting.
#[derive(Debug, PartialEq)]
pub struct Chunk {
    pub line: usize,
    pub text: String,
}

impl LineAssembler {
    /// `limit`: the largest multi-line document accepted, in bytes.
    pub fn new(limit: usize) -> Self {
        LineAssembler {
            buf: String::new(),
            start: 0,
            limit,
        }
    }

    /// Feeds line number `line` (1-based, without its newline); complete chunks go to `emit`.
    pub fn push(
        &mut self,
        line: usize,
        text: &str,
        emit: &mut impl FnMut(Result<Chunk, DecodeError>),
    ) {
        self.push_cow(line, Cow::Borrowed(text), emit)
    }

    /// Like [`push`](Self::push), taking the line's `String`: a line that is a document alone
    /// (nearly every line of a JSON-lines log) becomes its chunk's text without a copy.
    pub fn push_owned(
        &mut self,
        line: usize,
        text: String,
        emit: &mut impl FnMut(Result<Chunk, DecodeError>),
    ) {
        self.push_cow(line, Cow::Owned(text), emit)
    }

    fn push_cow(
        &mut self,
        line: usize,
        text: Cow<str>,
        emit: &mut impl FnMut(Result<Chunk, DecodeError>),
    ) {
        if !self.buf.is_empty() && text.starts_with('{') && is_standalone(&text) {
            // An unindented, complete object cannot sit inside a pretty-printed document: what
            // is pending was a torn line (a crash or a rotation mid-write). Report it alone.
            emit(Ok(Chunk {
                line: self.start,
                text: std::mem::take(&mut self.buf),
            }));
        }
        if self.buf.is_empty() {
            let trimmed = text.trim();
            if trimmed.is_empty() {
                return;
            }
            if !trimmed.starts_with('{') || is_complete(trimmed) {
                emit(Ok(Chunk {
                    line,
                    text: trim_owned(text),
                }));
                return;
            }
            self.start = line;
        }
        self.buf.push_str(&text);
        self.buf.push('\n');
        if self.buf.len() > self.limit {
            self.buf.clear();
            emit(Err(DecodeError::TooLong {
                line: self.start,
                limit: self.limit,
            }));
        } else if text.trim_end().ends_with('}') && is_complete(&self.buf) {
            // The cheap check first: a document can only end on a line that closes a brace.
            emit(Ok(Chunk {
                line: self.start,
                text: std::mem::take(&mut self.buf),
            }));
        }
    }

    /// Whether [`push`](Self::push) of this line would make it a chunk alone, exactly as it is
    /// (nothing pending before it, nothing to trim, complete), leaving nothing pending. A
    /// reader may then hand the line on without pushing it: the line's number is all the
    /// assembler would have kept of it.
    pub fn is_whole_document(&self, text: &str) -> bool {
        self.buf.is_empty() && text.starts_with('{') && text.ends_with('}') && is_complete(text)
    }

    /// Ends the input: an unfinished document is returned as is, to be reported.
    pub fn finish(&mut self) -> Option<Chunk> {
        (!self.buf.is_empty()).then(|| Chunk {
            line: self.start,
            text: std::mem::take(&mut self.buf),
        })
    }
}

/// `text.trim()` as a `String`, reusing an owned text's allocation (only a text with blanks
/// around it is shifted or cut in place).
fn trim_owned(text: Cow<str>) -> String {
    match text {
        Cow::Borrowed(t) => t.trim().to_string(),
        Cow::Owned(mut t) => {
            let end = t.trim_end().len();
            t.truncate(end);
            let start = end - t.trim_start().len();
            t.drain(..start);
            t
        }
    }
}

fn is_standalone(text: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

/// True unless the text is a JSON prefix cut short (an EOF error): garbage counts as complete,
/// so it is reported at once rather than swallowing the lines after it.
fn is_complete(text: &str) -> bool {
    // Nearly every line of a JSON-lines log is one whole object: a bracket count settles it
    // several times faster than a parse (the parse comes later, of the fields rules read).
    closes_at_end(text)
        || match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => true,
            Err(e) => !e.is_eof(),
        }
}

/// Whether `text` is `{`, then anything whose string-aware bracket count first returns to zero
/// at its last non-blank byte. Such a text is never a JSON prefix cut short: a parser either
/// accepts it or fails on a syntax error before its end (a mismatched bracket, a bad token), so
/// it is complete in `is_complete`'s sense. False means "ask the parser". Counted 64 bytes at a
/// time (see [`brackets`]).
fn closes_at_end(text: &str) -> bool {
    brackets::closes_at_end(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode_document;

    const EVENT: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a1","stage":"ResponseComplete","requestURI":"/api/v1/pods","verb":"list","user":{"username":"alice"},"requestReceivedTimestamp":"2024-01-01T00:00:00.000000Z","stageTimestamp":"2024-01-01T00:00:00.100000Z"}"#;

    fn assemble(text: &str) -> Vec<Result<Chunk, DecodeError>> {
        let mut a = LineAssembler::new(1 << 20);
        let mut out = Vec::new();
        for (i, l) in text.lines().enumerate() {
            a.push(i + 1, l, &mut |c| out.push(c));
        }
        out.extend(a.finish().map(Ok));
        out
    }

    #[test]
    fn assembles_pretty_documents_and_single_lines() {
        let text = format!(
            "{EVENT}\n\n{{\n  \"kind\": \"EventList\",\n  \"items\": []\n}}\nnot json\n{EVENT}\n"
        );
        let chunks = assemble(&text);
        let lines: Vec<usize> = chunks.iter().map(|c| c.as_ref().unwrap().line).collect();
        assert_eq!(lines, vec![1, 3, 7, 8]);
    }

    #[test]
    fn a_torn_line_does_not_swallow_the_next() {
        let text = format!("{{\"auditID\": \"x\",\n{EVENT}\n{EVENT}\n");
        let chunks = assemble(&text);
        let lines: Vec<usize> = chunks.iter().map(|c| c.as_ref().unwrap().line).collect();
        assert_eq!(lines, vec![1, 2, 3]);
        assert!(decode_document(&chunks[0].as_ref().unwrap().text, 1)[0].is_err());
    }

    #[test]
    fn a_broken_line_does_not_swallow_the_next() {
        let text = format!("{{\"auditID\": \"x\", oops\n{EVENT}\n");
        let chunks = assemble(&text);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[1].as_ref().unwrap().line, 2);
    }

    /// Feeds every line both ways, borrowed and owned; the owned answer is returned once the
    /// two agree.
    fn assemble_both(lines: &[&str]) -> Vec<Result<Chunk, DecodeError>> {
        let (mut a, mut b) = (LineAssembler::new(1 << 10), LineAssembler::new(1 << 10));
        let (mut borrowed, mut owned) = (Vec::new(), Vec::new());
        for (i, l) in lines.iter().enumerate() {
            a.push(i + 1, l, &mut |c| borrowed.push(c));
            b.push_owned(i + 1, l.to_string(), &mut |c| owned.push(c));
        }
        borrowed.extend(a.finish().map(Ok));
        owned.extend(b.finish().map(Ok));
        assert_eq!(borrowed, owned, "{lines:?}");
        owned
    }

    #[test]
    fn owned_lines_are_trimmed_and_keep_their_numbers() {
        let padded = format!("  {EVENT}\t ");
        let pretty = ["{", "  \"kind\": \"EventList\",", "  \"items\": []", "}"];
        let mut lines = vec![padded.as_str(), "", EVENT, " \u{3000}x\u{3000} "];
        lines.extend(pretty);
        lines.extend(["{\"auditID\": \"torn\",", EVENT, "{ \"a\": 1"]);
        let chunks: Vec<Chunk> = assemble_both(&lines)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let got: Vec<(usize, &str)> = chunks.iter().map(|c| (c.line, c.text.as_str())).collect();
        let pretty_text = pretty.join("\n") + "\n";
        let want = vec![
            (1, EVENT),
            (3, EVENT),
            (4, "x"),
            (5, pretty_text.as_str()),
            (9, "{\"auditID\": \"torn\",\n"),
            (10, EVENT),
            (11, "{ \"a\": 1\n"),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn an_owned_document_alone_keeps_its_allocation() {
        let mut a = LineAssembler::new(1 << 10);
        let line = EVENT.to_string();
        let ptr = line.as_ptr();
        let mut out = Vec::new();
        a.push_owned(1, line, &mut |c| out.push(c.unwrap()));
        assert_eq!(out[0].text.as_ptr(), ptr);
    }

    #[test]
    fn an_owned_document_too_long_is_reported() {
        let long = format!("{{\"x\": \"{}\",", "a".repeat(2000));
        let out = assemble_both(&[&long, "}", EVENT]);
        // The overflow drops what was pending; the next lines are read afresh.
        assert_eq!(out.len(), 3);
        assert!(matches!(out[0], Err(DecodeError::TooLong { line: 1, .. })));
        assert_eq!(out[1].as_ref().unwrap().text, "}");
        assert_eq!(out[2].as_ref().unwrap().line, 3);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any text, cut into lines any way, yields results for every line that held
            /// something, and never panics.
            #[test]
            fn never_panics_and_never_loses_lines(lines in proptest::collection::vec(".{0,80}", 0..20)) {
                let text = lines.join("\n");
                let mut a = LineAssembler::new(1 << 12);
                let mut chunks = Vec::new();
                for (i, l) in text.lines().enumerate() {
                    a.push(i + 1, l, &mut |c| chunks.push(c));
                }
                chunks.extend(a.finish().map(Ok));
                for c in chunks.iter().flatten() {
                    let _ = decode_document(&c.text, c.line);
                }
                let non_blank = text.lines().filter(|l| !l.trim().is_empty()).count();
                prop_assert!(chunks.len() <= non_blank);
                prop_assert!(non_blank == 0 || !chunks.is_empty());
            }

            /// Owned lines are assembled exactly as borrowed ones.
            #[test]
            fn owned_lines_agree_with_borrowed(lines in proptest::collection::vec("[ \t{}\"a:,x]{0,12}", 0..16)) {
                let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
                assemble_both(&lines);
            }

            /// A line said to be a whole document is what push makes a chunk of, unchanged.
            #[test]
            fn whole_documents_are_what_push_emits(
                before in proptest::option::of("\\{[ {}\"a:,]{0,3}"),
                text in "[ \t]?\\{[ {}\"a:,]{0,4}\\}?",
            ) {
                let mut a = LineAssembler::new(1 << 10);
                if let Some(b) = &before {
                    a.push(1, b, &mut |_| {});
                }
                let whole = a.is_whole_document(&text);
                let mut out = Vec::new();
                a.push(2, &text, &mut |c| out.push(c));
                let alone = out.len() == 1
                    && out[0] == Ok(Chunk { line: 2, text: text.clone() })
                    && a.finish().is_none();
                prop_assert!(!whole || alone, "{:?} then {:?}", before, text);
                if before.is_none() && text.starts_with('{') && text.ends_with('}') {
                    prop_assert_eq!(whole, alone, "{:?}", text);
                }
            }

            /// The bracket-count shortcut never changes the answer of the parser.
            #[test]
            fn shortcut_agrees_with_the_parser(text in "[{}\\[\\]\"\\\\:,a1 ]{0,24}") {
                let t = format!("{{{text}");
                let parsed = match serde_json::from_str::<serde::de::IgnoredAny>(&t) {
                    Ok(_) => true,
                    Err(e) => !e.is_eof(),
                };
                prop_assert!(!closes_at_end(&t) || parsed, "{t:?}");
                prop_assert_eq!(is_complete(&t), parsed, "{:?}", t);
            }

            /// Valid events survive any number of garbage lines between them.
            #[test]
            fn events_survive_garbage(garbage in proptest::collection::vec("[^{\\n][^\\n]{0,40}", 0..5)) {
                let mut text = String::new();
                for g in &garbage {
                    text.push_str(EVENT);
                    text.push('\n');
                    text.push_str(g);
                    text.push('\n');
                }
                text.push_str(EVENT);
                let mut a = LineAssembler::new(1 << 16);
                let mut good = 0;
                for (i, l) in text.lines().enumerate() {
                    a.push(i + 1, l, &mut |c| {
                        if let Ok(c) = c {
                            good += decode_document(&c.text, c.line).iter().filter(|r| r.is_ok()).count();
                        }
                    });
                }
                prop_assert_eq!(good, garbage.len() + 1);
            }
        }
    }
}
