//! Kubernetes audit events as JSON text, undecoded, for detection (which parses lazily).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::BufRead;

use vigil_model::decode::{split_event_texts, split_single_event, LineAssembler};

use crate::lines::{fill_buf, without_line_end};
use crate::{Chunks, MapReader, Origin, Rejected, SourceError};

/// One audit event's JSON text, undecoded, with its origin (for detection, which parses lazily).
#[derive(Debug)]
pub struct RawRecord {
    pub origin: Origin,
    pub text: String,
}

/// Reads a Kubernetes audit input event by event, as JSON text (EventLists split into items).
pub struct RawAuditRecords<R> {
    chunks: Chunks<R>,
    ready: VecDeque<Result<RawRecord, Rejected>>,
    /// The text [`next_ref`](Self::next_ref) lends; one buffer for the whole input.
    lent: String,
}

/// One event's JSON text and the line it starts on, lent by [`RawAuditRecords::next_ref`].
#[derive(Debug, PartialEq)]
pub struct RawRef<'a> {
    pub line: usize,
    pub text: &'a str,
}

impl<R: BufRead> RawAuditRecords<R> {
    pub fn new(file: &str, reader: R) -> Self {
        RawAuditRecords {
            chunks: Chunks::new(file, reader),
            ready: VecDeque::new(),
            lent: String::new(),
        }
    }

    /// Like [`next`](Iterator::next), the event's text lent until the next call instead of
    /// handed over: a JSON-lines log is then read without a `String` (or a queue entry, or an
    /// origin) per event, each line copied once from the reader's buffer into one buffer.
    pub fn next_ref(&mut self) -> Option<Result<Result<RawRef<'_>, Rejected>, SourceError>> {
        if self.ready.is_empty() && self.chunks.ready.is_empty() && !self.chunks.done {
            match self.chunks.whole_event_line(&mut self.lent) {
                Err(e) => {
                    self.chunks.done = true;
                    return Some(Err(e));
                }
                Ok(Some(line)) => {
                    return Some(Ok(Ok(RawRef {
                        line,
                        text: &self.lent,
                    })))
                }
                Ok(None) => {}
            }
        }
        Some(match self.next()? {
            Err(e) => Err(e),
            Ok(Err(rejected)) => Ok(Err(rejected)),
            Ok(Ok(record)) => {
                self.lent = record.text;
                Ok(Ok(RawRef {
                    line: record.origin.line,
                    text: &self.lent,
                }))
            }
        })
    }
}

/// One event's JSON text and the line it starts on, from [`RawAuditRecords::next_mapped`]:
/// borrowed from the map (nearly every event of a JSON-lines log) or owned (an event the
/// general path put together: an EventList's item, a pretty-printed document, a line whose
/// invalid UTF-8 was replaced).
#[derive(Debug, PartialEq)]
pub struct RawLine<'m> {
    pub line: usize,
    pub text: Cow<'m, str>,
}

impl<'m> RawAuditRecords<MapReader<'m>> {
    /// Like [`next_ref`](Self::next_ref), without copying: a line that is one event is lent
    /// from the map itself, for as long as the map lives, so it outlives this call.
    pub fn next_mapped(&mut self) -> Option<Result<Result<RawLine<'m>, Rejected>, SourceError>> {
        if self.ready.is_empty() && self.chunks.ready.is_empty() && !self.chunks.done {
            let line = self.chunks.line + 1;
            let rest = self.chunks.reader.rest();
            if let Some((text, used)) = whole_event_in(&self.chunks.assembler, line, rest) {
                self.chunks.reader.advance(used);
                self.chunks.line = line;
                return Some(Ok(Ok(RawLine {
                    line,
                    text: Cow::Borrowed(text),
                })));
            }
        }
        Some(match self.next()? {
            Err(e) => Err(e),
            Ok(Err(rejected)) => Ok(Err(rejected)),
            Ok(Ok(record)) => Ok(Ok(RawLine {
                line: record.origin.line,
                text: Cow::Owned(record.text),
            })),
        })
    }
}

impl<R: BufRead> Chunks<R> {
    /// The next line, when it lies whole in the reader's buffer and is one event by itself
    /// (see [`whole_event_in`]). It is copied into `out` and consumed; its number is returned.
    /// Any other line is left unread for the general path, which then reads it as always.
    fn whole_event_line(&mut self, out: &mut String) -> Result<Option<usize>, SourceError> {
        let line = self.line + 1;
        let buf = fill_buf(&mut self.reader).map_err(|source| SourceError::Read {
            path: self.file.to_string(),
            line,
            source,
        })?;
        let Some((text, used)) = whole_event_in(&self.assembler, line, buf) else {
            return Ok(None);
        };
        out.clear();
        out.push_str(text);
        self.reader.consume(used);
        self.line = line;
        Ok(Some(line))
    }
}

/// The line at the head of `buf` (line number `line`), when it ends inside `buf` and is one
/// event by itself: what [`Chunks::fill`] would make a chunk of (maybe with its newline, see
/// [`LineAssembler::is_whole_document`]), and [`RawAuditRecords::next`] would hand over as it
/// is. Its text and the bytes it takes, its end included. `None` for any other line
/// (straddling the buffer, invalid UTF-8, blanks around it, part of a document, not an event):
/// the general path reads those.
fn whole_event_in<'b>(
    assembler: &LineAssembler,
    line: usize,
    buf: &'b [u8],
) -> Option<(&'b str, usize)> {
    let end = memchr::memchr(b'\n', buf)?;
    // Every line passes this check: simdutf8 halves std's cost on audit lines (measured on
    // the 1M-event log); it accepts exactly what std accepts.
    let text = simdutf8::basic::from_utf8(without_line_end(&buf[..end])).ok()?;
    // In a JSON-lines log the next line is nearly always in `buf` and starts with `{`: the
    // assembler then ends this one there, complete or not, so its bracket count is spared.
    let next_starts_object = buf.get(end + 1) == Some(&b'{');
    (assembler.is_whole_document(text, next_starts_object) && is_one_event(text, line))
        .then_some((text, end + 1))
}

/// Whether the text is one event by itself, exactly as it stands (no blanks around it), so
/// that it can be handed over unchanged.
fn is_one_event(text: &str, line: usize) -> bool {
    split_single_event(text, line).is_some_and(|t| t.is_ok_and(|t| t.len() == text.len()))
}

impl<R: BufRead> Iterator for RawAuditRecords<R> {
    type Item = Result<Result<RawRecord, Rejected>, SourceError>;
    fn next(&mut self) -> Option<Self::Item> {
        if let Some(r) = self.ready.pop_front() {
            return Some(Ok(r));
        }
        loop {
            let chunk = match self.chunks.next()? {
                Err(e) => return Some(Err(e)),
                Ok(Err(rejected)) => return Some(Ok(Err(rejected))),
                Ok(Ok(chunk)) => chunk,
            };
            let origin = Origin {
                file: self.chunks.file().clone(),
                line: chunk.line,
            };
            // The common case, one event per line: hand over the line without copying it (and
            // without the list split_event_texts would allocate to say so).
            if is_one_event(&chunk.text, chunk.line) {
                return Some(Ok(Ok(RawRecord {
                    origin,
                    text: chunk.text,
                })));
            }
            let mut texts = split_event_texts(&chunk.text, chunk.line);
            for t in texts.drain(..) {
                self.ready.push_back(match t {
                    Ok(text) => Ok(RawRecord {
                        origin: origin.clone(),
                        text: text.to_string(),
                    }),
                    Err(error) => Err(self.chunks.rejected(error, &chunk.text)),
                });
            }
            if let Some(r) = self.ready.pop_front() {
                return Some(Ok(r));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::excerpt;
    use std::io::BufReader;

    const EVENT: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a1","stage":"ResponseComplete","requestURI":"/api/v1/pods","verb":"list","user":{"username":"alice"},"stageTimestamp":"2024-01-01T00:00:00.100000Z"}"#;

    /// Each record's line and text, or its rejection in words.
    type Records = Vec<Result<(usize, String), String>>;

    fn raw_records(text: &str, cap: usize) -> Records {
        let reader = BufReader::with_capacity(cap, text.as_bytes());
        RawAuditRecords::new("f", reader)
            .map(|r| match r.unwrap() {
                Ok(rec) => Ok((rec.origin.line, rec.text)),
                Err(rej) => Err(format!("{rej} [{}]", rej.text)),
            })
            .collect()
    }

    /// The same records through `next_ref`, rejected ones in the same words.
    fn lent_records(text: &[u8], cap: usize) -> Records {
        let mut records = RawAuditRecords::new("f", BufReader::with_capacity(cap, text));
        let mut out = Vec::new();
        while let Some(r) = records.next_ref() {
            out.push(match r.unwrap() {
                Ok(r) => Ok((r.line, r.text.to_string())),
                Err(rej) => Err(format!("{rej} [{}]", rej.text)),
            });
        }
        out
    }

    /// JSON lines and every kind of line the general path must read (see the test below).
    fn mixed_input() -> Vec<u8> {
        let long = format!("{{\"auditID\":\"long\",\"x\":\"{}\"}}", "y".repeat(400));
        [
            long.as_bytes(),
            b"\r\n",
            EVENT.as_bytes(),
            b"\r\r\n{\"auditID\":\"\xff\"}\n",
            EVENT.as_bytes(),
            b"\n\n \t\n",
            EVENT.as_bytes(),
            b"\n{\n  \"items\": [\n  ",
            EVENT.as_bytes(),
            b"\n  ]\n}\n",
            EVENT.as_bytes(),
            b"\n{\"kind\":\"EventList\",\"items\":[]}\n{\"no\":\"id\"}\n[]\n{\"auditID\": \n",
            EVENT.as_bytes(),
            b"\n ",
            EVENT.as_bytes(),
            // Braces at both ends, yet open; then a pending document torn by a whole line.
            b"\n{\"auditID\":\"p\",\"x\":{\"a\":1}\n}\n{\"auditID\":\"torn\",\n",
            EVENT.as_bytes(),
            b"\n",
            EVENT.as_bytes(),
        ]
        .concat()
    }

    #[test]
    fn lent_records_are_the_records() {
        let input = mixed_input();
        let want = raw_records(&String::from_utf8_lossy(&input), 1 << 16);
        assert_eq!(want.len(), 16, "{want:#?}");
        assert_eq!(want[2], Ok((3, "{\"auditID\":\"\u{fffd}\"}".to_string())));
        for cap in (1..40).chain([100, 250, 300, 500, 1 << 16]) {
            assert_eq!(lent_records(&input, cap), want, "capacity {cap}");
        }
    }

    /// The same records through `next_mapped` over `bytes` written to a file and mapped, and
    /// how many of them were lent from the map.
    fn mapped_records(bytes: &[u8]) -> (Records, usize) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, bytes).unwrap();
        let map = crate::MappedFile::open(path.to_str().unwrap())
            .unwrap()
            .expect("a plain file is mapped");
        let mut records = RawAuditRecords::new("f", map.reader(None));
        let (mut out, mut lent) = (Vec::new(), 0);
        while let Some(r) = records.next_mapped() {
            out.push(match r.unwrap() {
                Ok(r) => {
                    lent += usize::from(matches!(r.text, Cow::Borrowed(_)));
                    Ok((r.line, r.text.into_owned()))
                }
                Err(rej) => Err(format!("{rej} [{}]", rej.text)),
            });
        }
        (out, lent)
    }

    #[test]
    fn mapped_records_are_the_records() {
        let huge = format!(
            "{{\"auditID\":\"huge\",\"x\":\"{}\"}}",
            "y".repeat(300 << 10)
        );
        let pretty =
            format!("{{\n  \"kind\": \"EventList\",\n  \"items\": [\n  {EVENT}\n  ]\n}}\n");
        let plain = format!("{EVENT}\n").repeat(3);
        let cases: Vec<(Vec<u8>, usize)> = vec![
            // (input, how many records a map lends: a last line without its end is read by
            // the general path, which goes on reading whatever was appended since the map)
            ([plain.as_bytes(), EVENT.as_bytes()].concat(), 3),
            (format!("{EVENT}\r\n{EVENT}\r\n").into_bytes(), 2),
            (
                [
                    plain.as_bytes(),
                    b"{\"auditID\":\"\xff\"}\n",
                    plain.as_bytes(),
                ]
                .concat(),
                6,
            ),
            (
                [pretty.as_bytes(), plain.as_bytes(), pretty.as_bytes()].concat(),
                3,
            ),
            (format!("{huge}\n{EVENT}\n{huge}").into_bytes(), 2),
            (format!("{EVENT}\n{{\"auditID\":\"torn\",").into_bytes(), 1),
            (b"\n\n \n".to_vec(), 0),
        ];
        for (input, lent) in cases {
            let want = raw_records(&String::from_utf8_lossy(&input), 1 << 16);
            assert_eq!(lent_records(&input, 1 << 16), want);
            assert_eq!(mapped_records(&input), (want, lent));
        }
    }

    #[test]
    fn mapped_records_of_the_mixed_input_are_the_records() {
        let input = mixed_input();
        let want = raw_records(&String::from_utf8_lossy(&input), 1 << 16);
        let (got, lent) = mapped_records(&input);
        assert_eq!(got, want);
        // The lines 1, 2, 4 and 13: each a whole event, with nothing pending before it.
        assert_eq!(lent, 4, "{got:#?}");
    }

    /// A line cut short (here before its auditID) that still ends in `}` is rejected alone,
    /// under its own number: the pretty-printed event after it is read (they used to be
    /// joined into one rejected record), on every path.
    #[test]
    fn a_broken_line_ending_in_a_brace_loses_only_itself() {
        let broken = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","user":{"username":"a"}"#;
        let pretty = EVENT.replace(",\"", ",\n  \"");
        let input = format!("{broken}\n{pretty}\n{broken}\n{EVENT}\n");
        let after = 2 + pretty.lines().count();
        let want: Records = vec![
            Err(format!(
                "f: line 1: not an audit event: field auditID is missing [{broken}]"
            )),
            Ok((2, pretty.clone())),
            Err(format!(
                "f: line {after}: not an audit event: field auditID is missing [{broken}]"
            )),
            Ok((after + 1, EVENT.into())),
        ];
        assert_eq!(raw_records(&input, 1 << 16), want);
        assert_eq!(lent_records(input.as_bytes(), 1 << 16), want);
        // The last event alone is lent from the map: the broken line before it is rejected by
        // the general path, which reads the pretty-printed event too.
        assert_eq!(mapped_records(input.as_bytes()), (want, 1));
    }

    #[test]
    fn raw_records_keep_lines_and_texts() {
        let list = format!("{{\"kind\":\"EventList\",\"items\":[{EVENT},{{\"x\":1}}]}}");
        let text = format!(
            "{EVENT}{pad}\r\n{EVENT}\n  {EVENT}  \n{{\n  \"items\": [\n  {EVENT}\n  ]\n}}\n\
             {list}\nnot json\n{{\"torn\": \n{EVENT}",
            pad = " ".repeat(500),
        );
        let want: Records = vec![
            Ok((1, EVENT.into())),
            Ok((2, EVENT.into())),
            Ok((3, EVENT.into())),
            Ok((4, EVENT.into())),
            Ok((9, EVENT.into())),
            Err(format!(
                "f: line 9 (EventList item 1): not an audit event: field auditID is missing [{}]",
                excerpt(&list)
            )),
            Err("f: line 10: not an audit event: expected a JSON object [not json]".into()),
            Err("f: line 11: not an audit event: expected a JSON object [{\"torn\":]".into()),
            Ok((12, EVENT.into())),
        ];
        for cap in [7, 64, 300, 1 << 16] {
            assert_eq!(raw_records(&text, cap), want, "capacity {cap}");
        }
    }

    mod fast_paths;
}
