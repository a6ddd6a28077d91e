//! The little of POSIX ustar the evidence archive needs: regular files with short names,
//! written and read back. Anything else in an archive is reported, never followed (no links,
//! no directories, no absolute or `..` paths: the reader only returns names and bytes).

/// Appends one regular file to `out`.
pub fn append(out: &mut Vec<u8>, name: &str, data: &[u8], mtime: u64) -> Result<(), String> {
    if name.is_empty() || name.len() > 99 || !name.is_ascii() {
        return Err(format!("{name:?}: not a valid archive name"));
    }
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], data.len() as u64);
    octal(&mut h[136..148], mtime);
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    Ok(())
}

/// Ends the archive (two zero blocks).
pub fn finish(out: &mut Vec<u8>) {
    out.resize(out.len() + 1024, 0);
}

/// Writes `value` as zero-padded octal with a trailing NUL.
fn octal(field: &mut [u8], value: u64) {
    let s = format!("{value:0w$o}\0", w = field.len() - 1);
    field.copy_from_slice(s.as_bytes());
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(field).ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c == ' ');
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// The entries of an archive: (name, bytes) of every regular file, in order. Other entry
/// types and damaged headers are errors.
pub fn read(mut data: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    while data.len() >= 512 {
        let (h, rest) = data.split_at(512);
        if h.iter().all(|b| *b == 0) {
            return Ok(out);
        }
        let stored = parse_octal(&h[148..156]).ok_or("a damaged archive header")?;
        let sum: u64 = h
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(*b)
                }
            })
            .sum();
        if sum != stored {
            return Err(format!(
                "archive header {} has a bad checksum",
                out.len() + 1
            ));
        }
        let mut name = cstr(&h[..100]);
        let prefix = cstr(&h[345..500]);
        if h[257..262] == *b"ustar" && !prefix.is_empty() {
            name = format!("{prefix}/{name}");
        }
        let size = parse_octal(&h[124..136]).ok_or("a damaged archive header")? as usize;
        let kind = h[156];
        if kind != b'0' && kind != 0 {
            return Err(format!(
                "{name}: not a regular file (type {:?})",
                char::from(kind)
            ));
        }
        if rest.len() < size {
            return Err(format!("{name}: the archive ends inside it"));
        }
        out.push((name, rest[..size].to_vec()));
        let padded = size.div_ceil(512) * 512;
        data = &rest[padded.min(rest.len())..];
    }
    if data.is_empty() {
        Ok(out)
    } else {
        Err("the archive ends inside a header".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut a = Vec::new();
        append(&mut a, "a.txt", b"hello", 1).unwrap();
        append(&mut a, "empty", b"", 1).unwrap();
        append(&mut a, "big", &[7u8; 1000], 1).unwrap();
        finish(&mut a);
        let files = read(&a).unwrap();
        assert_eq!(files.len(), 3);
        assert_eq!(files[0], ("a.txt".to_string(), b"hello".to_vec()));
        assert_eq!(files[1].1.len(), 0);
        assert_eq!(files[2].1, vec![7u8; 1000]);
    }

    #[test]
    fn damage_is_an_error() {
        let mut a = Vec::new();
        append(&mut a, "a.txt", b"hello", 1).unwrap();
        finish(&mut a);
        a[10] = b'x';
        assert!(read(&a).unwrap_err().contains("checksum"));
        assert!(append(&mut Vec::new(), &"x".repeat(120), b"", 0).is_err());
    }
}
