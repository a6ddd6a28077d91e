//! Signing: the store's Ed25519 key (made in the data directory on first use), and the signed
//! logs that anchor the hash chains: `checkpoints.log` (one line per block written) and
//! `deletions.log` (one line per partition removed by retention).

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::segment::Hash;
use crate::StoreError;

pub const SECRET_FILE: &str = "keys/signing.key";
pub const PUBLIC_FILE: &str = "keys/signing.pub";

pub fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.len() & 1 == 1 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Loads the signing key of `dir`, creating it (mode 0600) when there is none.
pub fn load_or_create_key(dir: &Path) -> Result<SigningKey, StoreError> {
    let path = dir.join(SECRET_FILE);
    if let Ok(text) = fs::read_to_string(&path) {
        let bytes: [u8; 32] = unhex(&text)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| StoreError::Corrupt(format!("{}: not a key", path.display())))?;
        return Ok(SigningKey::from_bytes(&bytes));
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| StoreError::Io(format!("no randomness for a key: {e}")))?;
    let key = SigningKey::from_bytes(&seed);
    fs::create_dir_all(dir.join("keys")).map_err(|e| StoreError::io(&path, e))?;
    let tmp = dir.join("keys/signing.key.tmp");
    {
        let mut opts = OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
        f.write_all(hex(&seed).as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| StoreError::io(&tmp, e))?;
    }
    fs::rename(&tmp, &path).map_err(|e| StoreError::io(&path, e))?;
    let public = dir.join(PUBLIC_FILE);
    fs::write(&public, hex(key.verifying_key().as_bytes()) + "\n")
        .map_err(|e| StoreError::io(&public, e))?;
    crate::sync_dir(&dir.join("keys"))?;
    Ok(key)
}

/// The public key of `dir` (hex file written beside the secret).
pub fn load_public_key(dir: &Path) -> Result<VerifyingKey, StoreError> {
    let path = dir.join(PUBLIC_FILE);
    let text = fs::read_to_string(&path).map_err(|e| StoreError::io(&path, e))?;
    parse_public_key(&text)
        .ok_or_else(|| StoreError::Corrupt(format!("{}: not a public key", path.display())))
}

pub fn parse_public_key(text: &str) -> Option<VerifyingKey> {
    let b: [u8; 32] = unhex(text)?.try_into().ok()?;
    VerifyingKey::from_bytes(&b).ok()
}

/// A signed statement that partition `partition` held `records` records with chain head `hash`
/// after block `block` of segment `segment`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Checkpoint {
    pub partition: String,
    pub segment: u32,
    pub block: u32,
    pub records: u64,
    pub hash: String,
    pub time: String,
    #[serde(default)]
    pub sig: String,
}

impl Checkpoint {
    fn message(&self) -> String {
        format!(
            "vigil-checkpoint-v1\n{}\n{}\n{}\n{}\n{}\n{}",
            self.partition, self.segment, self.block, self.records, self.hash, self.time
        )
    }
    pub fn new(
        key: &SigningKey,
        partition: &str,
        segment: u32,
        block: u32,
        records: u64,
        hash: &Hash,
    ) -> Self {
        let mut c = Checkpoint {
            partition: partition.to_string(),
            segment,
            block,
            records,
            hash: hex(hash),
            time: now_rfc3339(),
            sig: String::new(),
        };
        c.sig = hex(&key.sign(c.message().as_bytes()).to_bytes());
        c
    }
    pub fn verify(&self, key: &VerifyingKey) -> bool {
        verify_sig(key, self.message().as_bytes(), &self.sig)
    }
}

/// A signed record of a partition removed by retention.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Deletion {
    pub partition: String,
    pub records: u64,
    pub segments: u32,
    pub hash: String,
    pub reason: String,
    pub time: String,
    #[serde(default)]
    pub sig: String,
}

impl Deletion {
    fn message(&self) -> String {
        format!(
            "vigil-deletion-v1\n{}\n{}\n{}\n{}\n{}\n{}",
            self.partition, self.records, self.segments, self.hash, self.reason, self.time
        )
    }
    pub fn sign(mut self, key: &SigningKey) -> Self {
        self.sig = hex(&key.sign(self.message().as_bytes()).to_bytes());
        self
    }
    pub fn verify(&self, key: &VerifyingKey) -> bool {
        verify_sig(key, self.message().as_bytes(), &self.sig)
    }
}

fn verify_sig(key: &VerifyingKey, msg: &[u8], sig: &str) -> bool {
    let Some(bytes) = unhex(sig).and_then(|b| <[u8; 64]>::try_from(b).ok()) else {
        return false;
    };
    key.verify(msg, &Signature::from_bytes(&bytes)).is_ok()
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// One line of a signed log, with its line number.
pub struct LogLine<T> {
    pub line: usize,
    pub entry: Result<T, String>,
}

/// Reads a JSON-lines log. A last line without its newline is a torn append (`torn` = its
/// byte offset); it is not returned.
pub fn read_log<T: for<'de> Deserialize<'de>>(
    path: &Path,
) -> Result<(Vec<LogLine<T>>, Option<u64>), StoreError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), None)),
        Err(e) => return Err(StoreError::io(path, e)),
    };
    let mut reader = BufReader::new(file);
    let mut out = Vec::new();
    let (mut buf, mut offset, mut line) = (Vec::new(), 0u64, 0usize);
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| StoreError::io(path, e))?;
        if n == 0 {
            return Ok((out, None));
        }
        line += 1;
        if buf.last() != Some(&b'\n') {
            return Ok((out, Some(offset)));
        }
        offset += n as u64;
        let entry = serde_json::from_slice::<T>(&buf).map_err(|e| e.to_string());
        out.push(LogLine { line, entry });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_sign_and_verify() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let c = Checkpoint::new(&key, "k8s.audit/2026-01-01", 1, 0, 10, &[1; 32]);
        assert!(c.verify(&key.verifying_key()));
        let mut bad = c.clone();
        bad.records = 11;
        assert!(!bad.verify(&key.verifying_key()));
        let other = SigningKey::from_bytes(&[8; 32]);
        assert!(!c.verify(&other.verifying_key()));
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(unhex(&hex(&[0, 1, 255])), Some(vec![0, 1, 255]));
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("abc"), None);
    }
}
