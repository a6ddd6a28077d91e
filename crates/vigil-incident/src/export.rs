//! Evidence export (`vigil incident export ID --out FILE.tar.gz`) and its check
//! (`vigil incident verify FILE.tar.gz`): chain of custody for what the incident is about.
//!
//! The archive holds:
//!
//! ```text
//! events.jsonl       every event of the timeline: as received, normalized, and where it is stored
//! alerts.jsonl       the incident's alerts (as stored) with their locations
//! timeline.jsonl     the time-ordered summary (time, kind, who, what, result, location)
//! notes.jsonl        the incident's history (notes, phases; hash-chained as in the data dir)
//! incident.json      the incident's state
//! runbook.md         the runbook
//! report.md          the report (Markdown)
//! checkpoints.jsonl  the latest signed checkpoint of every partition an exported event is in
//! signing.pub        the store's Ed25519 public key (hex)
//! manifest.json      SHA-256 and size of every file above, and which records are exported
//! manifest.sig       Ed25519 signature of manifest.json with the store's key
//! ```
//!
//! Trust model. The store signs its checkpoints (and here the manifest) with its own key.
//! `signing.pub` travels with the archive for convenience only: an archive rebuilt by someone
//! holding another key is self-consistent, so a verifier must get the public key out of band
//! (`vigil verify --export-public-key` on the store, recorded when the store was set up) and
//! pass it with `--public-key`; without it, verify says that it trusted the enclosed key. With
//! the right key, an intact signature over the manifest binds every file of the archive by its
//! SHA-256; the checkpoints show that the store had signed (at least) as many records of each
//! partition as the exported ones need (`record < checkpoint.records`), and their chain heads
//! let `vigil verify --public-key` on the store itself prove that the stored records are the
//! ones that were signed.

mod tar;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use vigil_store::chain::{self, Checkpoint};

use crate::book::{entry_hash, hex, GENESIS};
use crate::model::{HistoryEntry, Incident, IncidentError};
use crate::scope::Ev;

pub const FORMAT: &str = "vigil-evidence-v1";
const SIG_DOMAIN: &[u8] = b"vigil-evidence-manifest-v1\n";
/// The most an archive may unpack to (a gzip bomb is refused, not unpacked).
const MAX_TAR: u64 = 4 << 30;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    pub name: String,
    pub sha256: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub incident: String,
    pub created: String,
    pub files: Vec<FileEntry>,
}

/// What the export needs, already read.
pub struct ExportInput<'a> {
    pub incident: &'a Incident,
    /// The timeline's events and alerts (alerts are split out by `Ev::alert`).
    pub events: &'a [Ev],
    pub runbook: &'a str,
    /// The report (Markdown), when given.
    pub report: Option<&'a str>,
    pub checkpoints: Vec<Checkpoint>,
    pub key: &'a SigningKey,
    /// RFC 3339.
    pub created: String,
}

fn sha256_hex(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

fn jsonl<T: Serialize>(items: impl IntoIterator<Item = T>) -> Vec<u8> {
    let mut out = Vec::new();
    for i in items {
        serde_json::to_writer(&mut out, &i).expect("values serialize");
        out.push(b'\n');
    }
    out
}

fn location(e: &Ev) -> Value {
    json!({"partition": e.partition, "record": e.seq, "loc": e.loc, "source": e.source,
           "received": vigil_store::reader::micros_rfc3339(e.received)})
}

/// The files of the archive, manifest and signature last.
pub fn files(input: &ExportInput) -> Result<Vec<(String, Vec<u8>)>, IncidentError> {
    let inc = input.incident;
    let mut evs: Vec<&Ev> = input.events.iter().collect();
    evs.sort_by_key(|e| (e.time, e.loc));
    let events = jsonl(evs.iter().filter(|e| !e.alert).map(|e| {
        json!({"@timestamp": e.time_rfc3339(), "dataset": e.dataset, "event": e.raw,
               "fields": e.doc, "store": location(e)})
    }));
    let alerts =
        jsonl(evs.iter().filter(|e| e.alert).map(
            |e| json!({"@timestamp": e.time_rfc3339(), "alert": e.raw, "store": location(e)}),
        ));
    let timeline = jsonl(evs.iter().map(|e| {
        json!({"@timestamp": e.time_rfc3339(), "kind": if e.alert {"alert"} else {"event"},
               "dataset": e.dataset, "who": e.actor(), "what": e.what(),
               "result": e.code().map(|c| c.to_string())
                   .or_else(|| e.str("event.outcome").map(str::to_string)),
               "store": {"partition": e.partition, "record": e.seq}})
    }));
    let notes = jsonl(&inc.history);
    let mut state = serde_json::to_value(inc).expect("incidents serialize");
    if let Some(m) = state.as_object_mut() {
        m.remove("history");
    }
    let mut ckpts = input.checkpoints.clone();
    ckpts.sort_by(|a, b| a.partition.cmp(&b.partition));
    let public = hex(input.key.verifying_key().as_bytes()) + "\n";
    let mut out: Vec<(String, Vec<u8>)> = vec![
        ("events.jsonl".into(), events),
        ("alerts.jsonl".into(), alerts),
        ("timeline.jsonl".into(), timeline),
        ("notes.jsonl".into(), notes),
        (
            "incident.json".into(),
            serde_json::to_vec_pretty(&state).expect("values serialize"),
        ),
        ("runbook.md".into(), input.runbook.as_bytes().to_vec()),
    ];
    if let Some(r) = input.report {
        out.push(("report.md".into(), r.as_bytes().to_vec()));
    }
    out.extend([
        ("checkpoints.jsonl".into(), jsonl(&ckpts)),
        ("signing.pub".into(), public.into_bytes()),
    ]);
    let manifest = Manifest {
        format: FORMAT.into(),
        incident: inc.id.clone(),
        created: input.created.clone(),
        files: out
            .iter()
            .map(|(name, b)| FileEntry {
                name: name.clone(),
                sha256: sha256_hex(b),
                bytes: b.len() as u64,
            })
            .collect(),
    };
    let mbytes = serde_json::to_vec_pretty(&manifest).expect("manifests serialize");
    let sig = input.key.sign(&[SIG_DOMAIN, &mbytes].concat());
    out.push(("manifest.json".into(), mbytes));
    out.push((
        "manifest.sig".into(),
        (hex(&sig.to_bytes()) + "\n").into_bytes(),
    ));
    Ok(out)
}

/// The archive (tar.gz) of `files`.
pub fn archive(files: &[(String, Vec<u8>)], mtime: u64) -> Result<Vec<u8>, IncidentError> {
    let t = tar::write(files, mtime).map_err(IncidentError::Usage)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&t)
        .and_then(|()| gz.finish())
        .map_err(|source| IncidentError::Io {
            path: "archive".into(),
            source,
        })
}

/// The latest signed checkpoint of each partition of `partitions` (from `DIR/checkpoints.log`).
pub fn latest_checkpoints(
    data_dir: &Path,
    partitions: &BTreeSet<String>,
) -> Result<Vec<Checkpoint>, IncidentError> {
    let (lines, _) = chain::read_log::<Checkpoint>(&data_dir.join("checkpoints.log"))?;
    let mut last: BTreeMap<String, Checkpoint> = BTreeMap::new();
    for l in lines {
        if let Ok(c) = l.entry {
            if partitions.contains(&c.partition) {
                last.insert(c.partition.clone(), c);
            }
        }
    }
    Ok(last.into_values().collect())
}

/// The outcome of `verify`: intact when `problems` is empty.
#[derive(Debug, Default, Serialize)]
pub struct Verification {
    pub incident: String,
    pub files: usize,
    pub events: usize,
    pub checkpoints: usize,
    /// The key that verified the signatures (hex) and where it came from.
    pub key: String,
    pub key_from_archive: bool,
    pub problems: Vec<String>,
}

/// Checks an archive: every file against the manifest (edited, missing, added), the manifest's
/// signature, the checkpoints' signatures, that each exported event is covered by a
/// checkpoint, and the history's hash chain. `key` is the public key obtained out of band; when
/// absent the archive's own `signing.pub` is used (and `key_from_archive` says so).
pub fn verify(archive: &[u8], key: Option<&VerifyingKey>) -> Verification {
    let mut v = Verification::default();
    let mut tar_bytes = Vec::new();
    let gz = flate2::read::GzDecoder::new(archive);
    if let Err(e) = gz.take(MAX_TAR + 1).read_to_end(&mut tar_bytes) {
        v.problems.push(format!("not a gzip archive: {e}"));
        return v;
    }
    if tar_bytes.len() as u64 > MAX_TAR {
        v.problems.push(format!(
            "the archive unpacks to more than {} GiB: not an evidence export",
            MAX_TAR >> 30
        ));
        return v;
    }
    let entries = match tar::read(&tar_bytes) {
        Ok(e) => e,
        Err(e) => {
            v.problems.push(e);
            return v;
        }
    };
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (name, b) in entries {
        if files.insert(name.clone(), b).is_some() {
            v.problems
                .push(format!("{name}: in the archive twice (added)"));
        }
    }
    v.files = files.len();
    let Some(mbytes) = files.get("manifest.json") else {
        v.problems
            .push("manifest.json: missing (nothing can be checked)".into());
        return v;
    };
    let manifest: Manifest = match serde_json::from_slice(mbytes) {
        Ok(m) => m,
        Err(e) => {
            v.problems.push(format!("manifest.json: unreadable: {e}"));
            return v;
        }
    };
    v.incident = manifest.incident.clone();
    // Files against the manifest.
    let listed: BTreeSet<&str> = manifest.files.iter().map(|f| f.name.as_str()).collect();
    for f in &manifest.files {
        match files.get(&f.name) {
            None => v
                .problems
                .push(format!("{}: missing (listed in the manifest)", f.name)),
            Some(b) if sha256_hex(b) != f.sha256 || b.len() as u64 != f.bytes => v.problems.push(
                format!("{}: edited (its SHA-256 differs from the manifest)", f.name),
            ),
            Some(_) => {}
        }
    }
    for name in files.keys() {
        if !listed.contains(name.as_str()) && name != "manifest.json" && name != "manifest.sig" {
            v.problems
                .push(format!("{name}: added (not in the manifest)"));
        }
    }
    // The key.
    let enclosed = files
        .get("signing.pub")
        .and_then(|b| chain::parse_public_key(&String::from_utf8_lossy(b)));
    let key = match (key, enclosed) {
        (Some(k), enc) => {
            if enc.is_some_and(|e| e != *k) {
                v.problems
                    .push("signing.pub: not the public key given (signed with another key)".into());
            }
            Some(*k)
        }
        (None, Some(e)) => {
            v.key_from_archive = true;
            Some(e)
        }
        (None, None) => {
            v.problems
                .push("signing.pub: missing or not a public key".into());
            None
        }
    };
    let Some(key) = key else { return v };
    v.key = hex(key.as_bytes());
    // The manifest's signature.
    let sig = files
        .get("manifest.sig")
        .and_then(|b| chain::unhex(&String::from_utf8_lossy(b)))
        .and_then(|b| <[u8; 64]>::try_from(b).ok());
    match sig {
        None => v
            .problems
            .push("manifest.sig: missing or unreadable".into()),
        Some(s) => {
            let msg = [SIG_DOMAIN, mbytes].concat();
            if key.verify(&msg, &Signature::from_bytes(&s)).is_err() {
                v.problems.push(
                    "manifest.sig: bad signature (manifest.json altered or signed with another key)"
                        .into(),
                );
            }
        }
    }
    // Checkpoints and coverage.
    let mut covered: BTreeMap<String, u64> = BTreeMap::new();
    if let Some(b) = files.get("checkpoints.jsonl") {
        for (i, line) in String::from_utf8_lossy(b).lines().enumerate() {
            match serde_json::from_str::<Checkpoint>(line) {
                Ok(c) if c.verify(&key) => {
                    v.checkpoints += 1;
                    covered.insert(c.partition.clone(), c.records);
                }
                Ok(c) => v.problems.push(format!(
                    "checkpoints.jsonl line {}: bad checkpoint signature (partition {})",
                    i + 1,
                    c.partition
                )),
                Err(e) => v
                    .problems
                    .push(format!("checkpoints.jsonl line {}: unreadable: {e}", i + 1)),
            }
        }
    }
    for name in ["events.jsonl", "alerts.jsonl"] {
        let Some(b) = files.get(name) else { continue };
        for (i, line) in String::from_utf8_lossy(b).lines().enumerate() {
            if name == "events.jsonl" {
                v.events += 1;
            }
            let e: Value = serde_json::from_str(line).unwrap_or(Value::Null);
            let part = e.pointer("/store/partition").and_then(Value::as_str);
            let rec = e.pointer("/store/record").and_then(Value::as_u64);
            let ok = match (part, rec) {
                (Some(p), Some(r)) => covered.get(p).is_some_and(|n| r < *n),
                _ => false,
            };
            if !ok {
                v.problems.push(format!(
                    "{name} line {}: not covered by a signed checkpoint",
                    i + 1
                ));
            }
        }
    }
    // The history: each line's own hash; lines of other incidents in between are not in the
    // export, so `prev` is checked where the sequence numbers are consecutive.
    if let Some(b) = files.get("notes.jsonl") {
        let mut last: Option<(u64, String)> = None;
        for (i, line) in String::from_utf8_lossy(b).lines().enumerate() {
            let ok = serde_json::from_str::<HistoryEntry>(line).is_ok_and(|e| {
                let chained = match &last {
                    None => e.seq > 1 || e.prev == GENESIS,
                    Some((seq, hash)) => e.seq > *seq && (e.seq != seq + 1 || e.prev == *hash),
                };
                let good = chained && entry_hash(&e) == e.hash && e.incident == manifest.incident;
                last = Some((e.seq, e.hash));
                good
            });
            if !ok {
                v.problems.push(format!(
                    "notes.jsonl line {}: the history's hash chain breaks here",
                    i + 1
                ));
                break;
            }
        }
    }
    v
}

#[cfg(test)]
mod tests;
