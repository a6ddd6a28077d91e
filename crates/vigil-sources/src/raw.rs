//! Kubernetes audit events as JSON text, undecoded, for detection (which parses lazily).

use std::collections::VecDeque;
use std::io::BufRead;

use vigil_model::decode::{split_event_texts, split_single_event};

use crate::lines::{fill_buf, without_line_end};
use crate::{Chunks, Origin, Rejected, SourceError};

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

impl<R: BufRead> Chunks<R> {
    /// The next line, when it lies whole in the reader's buffer and is one event by itself:
    /// what [`Chunks::fill`] would make a chunk of, and [`RawAuditRecords::next`] would hand
    /// over unchanged. It is copied into `out` and consumed; its number is returned. Any other
    /// line (straddling the buffer, invalid UTF-8, blanks around it, part of a document, not
    /// an event) is left unread for the general path, which then reads it as always.
    fn whole_event_line(&mut self, out: &mut String) -> Result<Option<usize>, SourceError> {
        let line = self.line + 1;
        let buf = fill_buf(&mut self.reader).map_err(|source| SourceError::Read {
            path: self.file.to_string(),
            line,
            source,
        })?;
        let Some(end) = memchr::memchr(b'\n', buf) else {
            return Ok(None);
        };
        // Every line passes this check: simdutf8 halves std's cost on audit lines (measured on
        // the 1M-event log); it accepts exactly what std accepts.
        let Ok(text) = simdutf8::basic::from_utf8(without_line_end(&buf[..end])) else {
            return Ok(None);
        };
        if !self.assembler.is_whole_document(text) || !is_one_event(text, line) {
            return Ok(None);
        }
        out.clear();
        out.push_str(text);
        self.reader.consume(end + 1);
        self.line = line;
        Ok(Some(line))
    }
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

    fn raw_records(text: &str, cap: usize) -> Vec<Result<(usize, String), String>> {
        let reader = BufReader::with_capacity(cap, text.as_bytes());
        RawAuditRecords::new("f", reader)
            .map(|r| match r.unwrap() {
                Ok(rec) => Ok((rec.origin.line, rec.text)),
                Err(rej) => Err(format!("{rej} [{}]", rej.text)),
            })
            .collect()
    }

    /// The same records through `next_ref`, rejected ones in the same words.
    fn lent_records(text: &[u8], cap: usize) -> Vec<Result<(usize, String), String>> {
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

    #[test]
    fn lent_records_are_the_records() {
        let long = format!("{{\"auditID\":\"long\",\"x\":\"{}\"}}", "y".repeat(400));
        let input = [
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
        .concat();
        let want = raw_records(&String::from_utf8_lossy(&input), 1 << 16);
        assert_eq!(want.len(), 16, "{want:#?}");
        assert_eq!(want[2], Ok((3, "{\"auditID\":\"\u{fffd}\"}".to_string())));
        for cap in (1..40).chain([100, 250, 300, 500, 1 << 16]) {
            assert_eq!(lent_records(&input, cap), want, "capacity {cap}");
        }
    }

    #[test]
    fn raw_records_keep_lines_and_texts() {
        let list = format!("{{\"kind\":\"EventList\",\"items\":[{EVENT},{{\"x\":1}}]}}");
        let text = format!(
            "{EVENT}{pad}\r\n{EVENT}\n  {EVENT}  \n{{\n  \"items\": [\n  {EVENT}\n  ]\n}}\n\
             {list}\nnot json\n{{\"torn\": \n{EVENT}",
            pad = " ".repeat(500),
        );
        let want: Vec<Result<(usize, String), String>> = vec![
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
}
