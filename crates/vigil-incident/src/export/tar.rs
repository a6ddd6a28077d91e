//! The evidence archive's tar layer, on the `tar` crate: regular files only, written and read
//! back. Anything else in an archive is reported, never followed (no links, no directories, no
//! absolute or `..` paths: the reader only returns names and bytes, nothing is unpacked).

use std::io::Read;

/// The archive of `files` (name, bytes), all regular files with the same `mtime`.
pub fn write(files: &[(String, Vec<u8>)], mtime: u64) -> Result<Vec<u8>, String> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        if name.is_empty() || name.len() > 99 || !name.is_ascii() || name.contains("..") {
            return Err(format!("{name:?}: not a valid archive name"));
        }
        let mut h = tar::Header::new_ustar();
        h.set_path(name).map_err(|e| format!("{name}: {e}"))?;
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(mtime);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, data.as_slice())
            .map_err(|e| format!("{name}: {e}"))?;
    }
    b.into_inner().map_err(|e| format!("archive: {e}"))
}

/// The entries of an archive: (name, bytes) of every regular file, in order. Other entry
/// types and damaged headers are errors.
pub fn read(data: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    let mut a = tar::Archive::new(data);
    let entries = a.entries().map_err(|e| format!("not a tar archive: {e}"))?;
    for (i, e) in entries.enumerate() {
        let mut e = e.map_err(|err| format!("archive entry {}: {err}", i + 1))?;
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let kind = e.header().entry_type();
        if !kind.is_file() {
            return Err(format!("{name}: not a regular file ({kind:?})"));
        }
        let mut bytes = Vec::with_capacity(e.size() as usize);
        e.read_to_end(&mut bytes)
            .map_err(|err| format!("{name}: the archive ends inside it ({err})"))?;
        out.push((name, bytes));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let f = |n: &str, b: &[u8]| (n.to_string(), b.to_vec());
        let a = write(
            &[
                f("a.txt", b"hello"),
                f("empty", b""),
                f("big", &[7u8; 1000]),
            ],
            1,
        )
        .unwrap();
        let files = read(&a).unwrap();
        assert_eq!(files.len(), 3);
        assert_eq!(files[0], ("a.txt".to_string(), b"hello".to_vec()));
        assert_eq!(files[1].1.len(), 0);
        assert_eq!(files[2].1, vec![7u8; 1000]);
    }

    #[test]
    fn damage_is_an_error() {
        let mut a = write(&[("a.txt".into(), b"hello".to_vec())], 1).unwrap();
        a[10] = b'x';
        assert!(read(&a).unwrap_err().contains("checksum"), "{:?}", read(&a));
        assert!(write(&[("x".repeat(120), vec![])], 0).is_err());
        assert!(write(&[("../x".into(), vec![])], 0).is_err());
    }

    #[test]
    fn a_symlink_is_refused() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_path("manifest.json").unwrap();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_link_name("/etc/passwd").unwrap();
        h.set_size(0);
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
        let a = b.into_inner().unwrap();
        assert!(read(&a).unwrap_err().contains("not a regular file"));
    }
}
