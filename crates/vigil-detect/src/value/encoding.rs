//! The encoding modifiers: `base64`, `base64offset` and the UTF-16 encodings (`utf16`,
//! `utf16le`, `utf16be`, `wide`) they combine with. A value is encoded as pySigma does, so
//! encoded rule values match the same event text.

use crate::pattern::Tok;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Utf16 {
    Le,
    Be,
}

pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// The three base64 forms of `data` at offsets 0, 1 and 2 (pySigma's cut points), so the value
/// is found wherever it sits inside a longer encoded string.
pub fn base64_offsets(data: &[u8]) -> Vec<String> {
    let start = [0usize, 2, 3];
    let end_cut = [0usize, 3, 2]; // characters removed at the end, by (len + i) % 3
    (0..3)
        .map(|i| {
            let mut d = vec![b' '; i];
            d.extend_from_slice(data);
            let enc = base64(&d);
            let cut = end_cut[(data.len() + i) % 3];
            let e = enc.len().saturating_sub(cut);
            enc.get(start[i]..e).unwrap_or("").to_string()
        })
        .collect()
}

pub(super) fn lit_bytes(toks: &[Tok], enc: Option<(Utf16, bool)>) -> Result<Vec<u8>, String> {
    let mut s = String::new();
    for t in toks {
        match t {
            Tok::Lit(l) => s.push_str(l),
            _ => return Err("base64 encoding of a value with wildcards is not allowed".into()),
        }
    }
    let mut bytes = s.into_bytes();
    if let Some((_, true)) = enc {
        // The utf16 modifier's byte order mark, encoded as UTF-16LE bytes.
        bytes.splice(0..0, [0xff, 0xfe]);
    }
    Ok(bytes)
}
