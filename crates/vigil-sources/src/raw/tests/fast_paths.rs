//! The fast paths (`next_mapped`, and `next_ref` at any buffer size) against the general path
//! (`next`) on any mix of the lines a log may hold, and on a reader that fails part way: the
//! same records and rejections, line for line, and the same error at the same place.

use std::io::{self, BufReader, Read};

use proptest::prelude::*;

use super::*;

/// Each record's line and text, its rejection in words, or a read error in words.
type Out = Vec<Result<(usize, String), String>>;

fn render<T>(
    r: Result<Result<T, Rejected>, SourceError>,
    record: impl FnOnce(T) -> (usize, String),
) -> Result<(usize, String), String> {
    match r {
        Ok(Ok(t)) => Ok(record(t)),
        Ok(Err(rej)) => Err(format!("rejected: {rej} [{}]", rej.text)),
        Err(e) => Err(format!("failed: {e}")),
    }
}

fn general(reader: impl BufRead) -> Out {
    RawAuditRecords::new("f", reader)
        .map(|r| render(r, |r| (r.origin.line, r.text)))
        .collect()
}

fn lent(reader: impl BufRead) -> Out {
    let mut records = RawAuditRecords::new("f", reader);
    let mut out = Vec::new();
    while let Some(r) = records.next_ref() {
        out.push(render(r, |r| (r.line, r.text.to_string())));
    }
    out
}

fn mapped(bytes: &[u8]) -> Option<Out> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, bytes).unwrap();
    let map = crate::MappedFile::open(path.to_str().unwrap()).unwrap()?;
    let mut records = RawAuditRecords::new("f", map.reader(None));
    let mut out = Vec::new();
    while let Some(r) = records.next_mapped() {
        out.push(render(r, |r| (r.line, r.text.into_owned())));
    }
    Some(out)
}

/// Hands out at most `step` bytes a read, and fails for good at `fail_at`.
struct Flaky<'a> {
    data: &'a [u8],
    step: usize,
    fail_at: usize,
}

impl Read for Flaky<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.fail_at == 0 {
            return Err(io::Error::other("disk on fire"));
        }
        let n = out
            .len()
            .min(self.step)
            .min(self.fail_at)
            .min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        self.fail_at -= n;
        Ok(n)
    }
}

/// A line cut short inside `user`, yet ending in `}`.
const BROKEN: &str = r#"{"kind":"Event","auditID":"b","user":{"username":"a"}"#;

/// Whole lines (some of several lines) of every kind the general path must read.
fn known_lines() -> Vec<Vec<u8>> {
    let texts = [
        EVENT.to_string(),
        EVENT.replace(",\"", ",\n  \""),
        format!("{{\n  \"kind\": \"EventList\",\n  \"items\": [\n  {EVENT}\n  ]\n}}"),
        format!("{{\"kind\":\"EventList\",\"items\":[{EVENT},{{\"x\":1}}]}}"),
        BROKEN.to_string(),
        r#"{"kind":"Event","user":{"username":"a"}"#.to_string(),
        r#"{"items":[{"auditID":"c"}"#.to_string(),
        r#"{"auditID":"s}"#.to_string(),
        r#"{"auditID":"g"}}"#.to_string(),
        r#"{"auditID":"t","#.to_string(),
        "{\"auditID\":\"p\",\"x\":{\"a\":1}\n}".to_string(),
        r#"{"auditID":"i","responseObject":{"items":[]}}"#.to_string(),
        "{".into(),
        "}".into(),
        "".into(),
        " \t".into(),
        "not json".into(),
        "[]".into(),
        format!(" {EVENT}"),
    ];
    let mut lines: Vec<Vec<u8>> = texts.into_iter().map(String::into_bytes).collect();
    lines.push(b"{\"auditID\":\"\xff\"}".to_vec());
    lines
}

/// A known line, or one made of JSON's pieces.
fn line() -> impl Strategy<Value = Vec<u8>> {
    let pieces = [
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"",
        " ",
        "\\",
        "\"auditID\":\"a\"",
        "\"items\":",
        "1",
    ];
    prop_oneof![
        3 => proptest::sample::select(known_lines()),
        1 => proptest::collection::vec(proptest::sample::select(pieces.to_vec()), 0..10)
            .prop_map(|p| p.concat().into_bytes()),
    ]
}

/// Lines, each ended by `\n` or `\r\n`, the last one maybe by nothing.
fn input() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec((line(), any::<bool>()), 0..24),
        any::<bool>(),
    )
        .prop_map(|(lines, cut)| {
            let mut out = Vec::new();
            for (l, crlf) in &lines {
                out.extend_from_slice(l);
                out.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
            }
            if cut && !lines.is_empty() {
                out.pop();
            }
            out
        })
}

proptest! {
    #[test]
    fn fast_paths_read_what_the_general_path_reads(
        input in input(),
        cap in prop_oneof![1usize..400, Just(1 << 16)],
    ) {
        let want = general(BufReader::new(&input[..]));
        prop_assert_eq!(&lent(BufReader::with_capacity(cap, &input[..])), &want);
        if let Some(got) = mapped(&input) {
            prop_assert_eq!(&got, &want);
        }
    }

    #[test]
    fn fast_paths_fail_where_the_general_path_fails(
        input in input(),
        cap in 1usize..400,
        step in 1usize..600,
        fail_at in any::<prop::sample::Index>(),
    ) {
        let fail_at = fail_at.index(input.len() + 1);
        let flaky = |step| Flaky { data: &input, step, fail_at };
        let want = general(BufReader::new(flaky(usize::MAX)));
        let got = lent(BufReader::with_capacity(cap, flaky(step)));
        prop_assert_eq!(got, want);
    }
}
