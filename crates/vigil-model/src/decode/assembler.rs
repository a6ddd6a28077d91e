//! [`LineAssembler`]: document boundaries in a stream of lines.
//!
//! A line that opens an object (`{`) and is not complete alone starts a document; the lines
//! after it join that document until it is complete (or too long). Two rules end a pending
//! document early, because it was torn (a crash or a rotation mid-write) and would otherwise
//! swallow the good lines after it:
//!
//! - the next line starts with `{` and the pending text ends with `}`: in valid JSON, a `}`
//!   outside a string is only ever followed by `,`, `}` or `]` (and a `}` ending a line inside
//!   a string is already invalid: strings hold no raw newline), so no valid document goes on
//!   like that, whatever the next line is;
//! - the next line starts with `{` and is a whole JSON value by itself: an unindented, complete
//!   object does not sit inside a pretty-printed document.
//!
//! The pending text is then returned alone, to be reported, and the line is read afresh.

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
        if !self.buf.is_empty() && text.starts_with('{') {
            // What is pending was torn (see the module's docs); the cheap rule first.
            if let Some(chunk) = self.end_before_object() {
                emit(Ok(chunk));
            } else if is_standalone(&text) {
                emit(Ok(Chunk {
                    line: self.start,
                    text: std::mem::take(&mut self.buf),
                }));
            }
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

    /// Whether a document is pending: begun, not yet complete.
    pub fn is_pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Told that the next line starts with `{`: the pending document, when the first rule of
    /// the module's docs ends it there (it ends with `}`), as the push of that line would
    /// return it; otherwise `None`, and nothing changes. It needs no more of the next line
    /// than its first byte, so a reader can end the document before reading the line whole.
    pub fn end_before_object(&mut self) -> Option<Chunk> {
        let end = self.buf.trim_end().len();
        if !self.buf[..end].ends_with('}') {
            return None;
        }
        // Cut at the `}`: a line `is_whole_document` lets a reader hand on is then the chunk's
        // text as it is, and a parse error names the torn line, not the next one.
        self.buf.truncate(end);
        Some(Chunk {
            line: self.start,
            text: std::mem::take(&mut self.buf),
        })
    }

    /// Whether [`push`](Self::push) of this line would make it a chunk alone (nothing pending
    /// before it, nothing to trim), leaving nothing pending once the chunk is made: at once
    /// when it is complete, or, when `next_starts_object` (the next line is known to start with
    /// `{`), on the push of that next line at the latest, whether complete or not. The chunk's
    /// text is the line as it is; only when `next_starts_object` may it be the line and its
    /// newline (a line that ends inside a string is complete, garbage, once its newline is
    /// added). A reader may then hand the line on without pushing it: the line's number is all
    /// the assembler would have kept of it.
    pub fn is_whole_document(&self, text: &str, next_starts_object: bool) -> bool {
        self.buf.is_empty()
            && text.starts_with('{')
            && text.ends_with('}')
            // The first rule of the module's docs would end the document at this line, so the
            // bracket count (the costly part) is skipped; only a text too long to be kept
            // pending would be cut short otherwise.
            && ((next_starts_object && text.len() < self.limit) || is_complete(text))
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

    #[test]
    fn a_broken_line_ending_in_a_brace_does_not_swallow_a_pretty_document() {
        // Cut short inside `user`, yet ending in `}`; a pretty-printed event follows.
        let broken = r#"{"auditID":"x","user":{"username":"a"}"#;
        let pretty = EVENT.replace(",\"", ",\n  \"");
        let text = format!("{broken}  \n{pretty}\n{broken}\n\n{EVENT}\n");
        let chunks: Vec<Chunk> = assemble(&text).into_iter().map(Result::unwrap).collect();
        let got: Vec<(usize, &str)> = chunks.iter().map(|c| (c.line, c.text.as_str())).collect();
        let after = 2 + pretty.lines().count();
        let pretty_text = format!("{pretty}\n");
        let want = [
            (1, broken),
            (2, pretty_text.as_str()),
            (after, broken),
            (after + 2, EVENT),
        ];
        assert_eq!(got, want);
        let decoded: Vec<_> = chunks
            .iter()
            .flat_map(|c| decode_document(&c.text, c.line))
            .collect();
        assert!(decoded[1].is_ok() && decoded[3].is_ok());
        // The broken line's error names it, not the line after it.
        let lines = [&decoded[0], &decoded[2]].map(|d| d.as_ref().unwrap_err().line());
        assert_eq!(lines, [1, after]);
    }

    #[test]
    fn a_pending_document_ends_on_the_first_byte_of_an_object() {
        let mut a = LineAssembler::new(1 << 10);
        a.push(1, "{\"a\": {\"b\": 1}", &mut |_| unreachable!());
        a.push(2, "}", &mut |_| {});
        assert!(!a.is_pending());
        a.push(3, "{\"a\": [", &mut |_| unreachable!());
        assert_eq!(a.end_before_object(), None);
        a.push(4, "  {\"b\": 1}", &mut |_| unreachable!());
        assert!(a.is_pending());
        let want = Chunk {
            line: 3,
            text: "{\"a\": [\n  {\"b\": 1}".into(),
        };
        assert_eq!(a.end_before_object(), Some(want));
        assert!(!a.is_pending() && a.finish().is_none());
    }

    #[test]
    fn a_line_waits_for_the_next_only_when_it_can_be_kept_pending() {
        // Open (it ends inside a string), yet ending in `}`.
        let open = "{\"a\": \"}";
        assert!(!LineAssembler::new(1 << 10).is_whole_document(open, false));
        assert!(LineAssembler::new(open.len() + 1).is_whole_document(open, true));
        // Too long to be kept pending until the next line: reported at once.
        assert!(!LineAssembler::new(open.len()).is_whole_document(open, true));
        let out = assemble_both(&[open]);
        assert!(matches!(out[..], [Ok(Chunk { line: 1, .. })]), "{out:?}");
        let mut out = Vec::new();
        LineAssembler::new(open.len()).push(1, open, &mut |c| out.push(c));
        assert!(matches!(
            out[..],
            [Err(DecodeError::TooLong { line: 1, .. })]
        ));
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
        lines.extend([
            "{\"auditID\": \"torn\",",
            EVENT,
            "{\"x\": {} ",
            "{",
            "}",
            "{ \"a\": 1",
        ]);
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
            (11, "{\"x\": {}"),
            (12, "{\n}\n"),
            (14, "{ \"a\": 1\n"),
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

            /// A line said to be a whole document is what push makes a chunk of, unchanged: at
            /// once, or, when the next line is said to start with `{`, on the push of that line,
            /// which is then read as if nothing came before it.
            #[test]
            fn whole_documents_are_what_push_emits(
                before in proptest::option::of("\\{[ {}\"a:,]{0,3}"),
                text in "[ \t]?\\{[ {}\"a:,]{0,4}\\}?",
                next in proptest::option::of("\\{[ {}\"a:,]{0,4}"),
                limit in 1usize..12,
            ) {
                let mut a = LineAssembler::new(limit);
                if let Some(b) = &before {
                    a.push(1, b, &mut |_| {});
                }
                let whole = a.is_whole_document(&text, next.is_some());
                let mut out = Vec::new();
                a.push(2, &text, &mut |c| out.push(c));
                let (mut fresh, mut rest) = (LineAssembler::new(limit), Vec::new());
                if let Some(n) = &next {
                    a.push(3, n, &mut |c| out.push(c));
                    fresh.push(3, n, &mut |c| rest.push(c));
                }
                let first_is =
                    |t: &str| matches!(out.first(), Some(Ok(c)) if c.line == 2 && c.text == t);
                let alone = (first_is(&text)
                    || (next.is_some() && first_is(&format!("{text}\n"))))
                    && out[1..] == rest[..]
                    && a.finish() == fresh.finish();
                prop_assert!(!whole || alone, "{:?} then {:?} then {:?}", before, text, next);
                if before.is_none() && text.starts_with('{') && text.ends_with('}') {
                    prop_assert_eq!(whole, alone, "{:?} then {:?}", text, next);
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
