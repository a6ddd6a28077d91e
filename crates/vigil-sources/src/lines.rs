//! Lines of text from a reader: invalid UTF-8 replaced, line ends cut.

use std::io::{self, BufRead};

/// Reads one line, without its end (`\n` and any `\r` before it), as a `String` of its own:
/// `None` at the end of the input. Invalid UTF-8 is replaced rather than failing the whole file
/// (`String::from_utf8_lossy`). A line inside the reader's buffer (nearly all of them) is
/// copied once, straight from that buffer into a `String` of its exact size; one that straddles
/// the buffer's end is put together in `scratch` first.
pub fn read_line(reader: &mut impl BufRead, scratch: &mut Vec<u8>) -> io::Result<Option<String>> {
    let buf = fill_buf(reader)?;
    if let Some(end) = memchr::memchr(b'\n', buf) {
        let line = line_text(&buf[..end]);
        reader.consume(end + 1);
        return Ok(Some(line));
    }
    scratch.clear();
    if reader.read_until(b'\n', scratch)? == 0 {
        return Ok(None);
    }
    Ok(Some(line_text(scratch)))
}

/// The text of a line's bytes, its end (`\n`, then any `\r`) cut off. Cutting the bytes before
/// the UTF-8 check gives the same text as cutting after it: those ASCII bytes are never part
/// of a replaced sequence.
fn line_text(bytes: &[u8]) -> String {
    let bytes = without_line_end(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// `bytes` without the `\n` and `\r` at its end.
pub(crate) fn without_line_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|&b| b != b'\n' && b != b'\r')
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

/// The reader's buffered bytes, refilled when empty (retried when interrupted, as `read_until`
/// does).
pub(crate) fn fill_buf(reader: &mut impl BufRead) -> io::Result<&[u8]> {
    loop {
        match reader.fill_buf() {
            // At the end: not asked again (a terminal would wait for more).
            Ok([]) => return Ok(&[]),
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    // The loop cannot return its `buf` (the borrow checker would hold the borrow across
    // iterations), so the filled buffer is asked for once more; that reads nothing.
    reader.fill_buf()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    /// What a line was before `read_line`: `read_until`, the lossy conversion, then its end
    /// trimmed.
    fn lines_the_old_way(input: &[u8]) -> Vec<String> {
        let (mut reader, mut out) = (input, Vec::new());
        loop {
            let mut bytes = Vec::new();
            if reader.read_until(b'\n', &mut bytes).unwrap() == 0 {
                return out;
            }
            let line = String::from_utf8_lossy(&bytes);
            out.push(line.trim_end_matches(['\n', '\r']).to_string());
        }
    }

    #[test]
    fn lines_read_at_any_buffer_size_are_the_same() {
        let long = "x".repeat(300);
        let input = [
            long.as_bytes(),
            b"\nshort\r\n\xffbad \xe2\x82\r\nok \xc3\xa9\n\n\r\n\r\r\n",
            b"\xe2\x82\xac split\n",
            long.as_bytes(),
            b"\r\nlast \xf0\x9f",
        ]
        .concat();
        let want = lines_the_old_way(&input);
        assert_eq!(want.len(), 10, "{want:?}");
        assert_eq!(want[2], "\u{fffd}bad \u{fffd}");
        assert_eq!(want[9], "last \u{fffd}");
        // Capacities from 1 byte up cut every line at every place, so both paths (a line inside
        // the buffer, one put together across refills) meet every kind of line.
        for cap in (1..64).chain([200, 301, 1 << 16]) {
            let mut reader = BufReader::with_capacity(cap, &input[..]);
            let mut scratch = Vec::new();
            let mut got = Vec::new();
            while let Some(line) = read_line(&mut reader, &mut scratch).unwrap() {
                got.push(line);
            }
            assert_eq!(got, want, "capacity {cap}");
        }
    }
}
