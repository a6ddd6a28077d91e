//! The service's own state files: `server/offsets.log`, whose last intent is resolved against
//! the store after a crash, and whole files (the detection checkpoint) replaced atomically.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use vigil_store::StoreError;

#[derive(Serialize, Deserialize)]
pub(super) struct Intent {
    /// Source name -> its read state.
    pub(super) states: BTreeMap<String, Value>,
    /// Partition -> records before the commit; empty when already known to be committed.
    #[serde(default)]
    pub(super) before: BTreeMap<String, u64>,
    #[serde(default)]
    pub(super) aborted: bool,
}

/// The file sources' committed read states (`server/offsets.log`).
pub struct Offsets {
    path: PathBuf,
    file: File,
    pub states: BTreeMap<String, Value>,
}

impl Offsets {
    /// Reads the log, resolves its last intent against the store's partition counts, and
    /// rewrites it compacted.
    pub fn open(state_dir: &Path, counts: &HashMap<String, u64>) -> std::io::Result<Offsets> {
        let path = state_dir.join("offsets.log");
        let mut states = BTreeMap::new();
        if let Ok(f) = File::open(&path) {
            let lines: Vec<Intent> = BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| serde_json::from_str(&l).ok())
                .collect();
            let n = lines.len();
            let aborted: Vec<bool> = lines.iter().map(|l| l.aborted).collect();
            for (i, intent) in lines.into_iter().enumerate() {
                // An intent followed by an abort line was not committed.
                if intent.aborted || aborted.get(i + 1).copied().unwrap_or(false) {
                    continue;
                }
                let committed = i + 1 < n
                    || intent.before.is_empty()
                    || intent
                        .before
                        .iter()
                        .any(|(p, before)| counts.get(p).copied().unwrap_or(0) > *before);
                if committed {
                    states.extend(intent.states);
                }
            }
        }
        let tmp = path.with_extension("tmp");
        {
            let mut f = File::create(&tmp)?;
            let line = serde_json::to_string(&Intent {
                states: states.clone(),
                before: BTreeMap::new(),
                aborted: false,
            })?;
            writeln!(f, "{line}")?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        File::open(state_dir)?.sync_all()?;
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok(Offsets { path, file, states })
    }

    pub(super) fn write(&mut self, intent: &Intent) -> std::io::Result<()> {
        let line = serde_json::to_string(intent)? + "\n";
        self.file.write_all(line.as_bytes())?;
        self.file.sync_data()
    }

    /// Starts the log afresh when it grew large (everything in it is committed).
    pub(super) fn compact(&mut self) -> std::io::Result<()> {
        if self.file.metadata()?.len() < (4 << 20) {
            return Ok(());
        }
        let tmp = self.path.with_extension("tmp");
        {
            let mut f = File::create(&tmp)?;
            let line = serde_json::to_string(&Intent {
                states: self.states.clone(),
                before: BTreeMap::new(),
                aborted: false,
            })?;
            writeln!(f, "{line}")?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        Ok(())
    }
}

/// Records per partition, from a reader of the (just opened) store.
pub fn partition_counts(dir: &Path) -> Result<HashMap<String, u64>, StoreError> {
    let reader = vigil_store::Reader::open(dir)?;
    Ok(reader
        .parts
        .iter()
        .map(|p| (p.name.clone(), p.count))
        .collect())
}

/// Replaces a file atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(lines: &[&str], counts: &[(&str, u64)]) -> Value {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("offsets.log"), lines.join("\n") + "\n").unwrap();
        let counts = counts.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let o = Offsets::open(dir.path(), &counts).unwrap();
        // Compacted to one committed line, which resolves the same way again.
        let again = Offsets::open(dir.path(), &HashMap::new()).unwrap();
        assert_eq!(again.states, o.states);
        o.states.get("f").cloned().unwrap_or(Value::Null)
    }

    const BASE: &str = r#"{"states":{"f":1},"before":{}}"#;
    const NEXT: &str =
        r#"{"states":{"f":2},"before":{"k8s.audit/2026-01-01":10,"linux.auth/2026-01-01":4}}"#;

    #[test]
    fn the_last_intent_holds_only_if_a_partition_grew() {
        assert_eq!(
            resolve(
                &[BASE, NEXT],
                &[("k8s.audit/2026-01-01", 10), ("linux.auth/2026-01-01", 4)]
            ),
            1
        );
        assert_eq!(
            resolve(
                &[BASE, NEXT],
                &[("k8s.audit/2026-01-01", 10), ("linux.auth/2026-01-01", 5)]
            ),
            2
        );
        // A new partition created by the commit.
        assert_eq!(
            resolve(
                &[BASE, NEXT],
                &[
                    ("k8s.audit/2026-01-01", 10),
                    ("linux.auth/2026-01-01", 4),
                    ("other", 3)
                ]
            ),
            1
        );
        // An intent followed by an abort line was not committed.
        let abort = r#"{"states":{},"before":{},"aborted":true}"#;
        assert_eq!(
            resolve(&[BASE, NEXT, abort], &[("linux.auth/2026-01-01", 9)]),
            1
        );
        // Earlier intents (followed by others) were committed.
        let third = r#"{"states":{"f":3},"before":{"linux.auth/2026-01-01":20}}"#;
        assert_eq!(
            resolve(&[BASE, NEXT, third], &[("linux.auth/2026-01-01", 20)]),
            2
        );
        // A torn last line is ignored.
        assert_eq!(resolve(&[BASE, r#"{"states":{"f":9},"bef"#], &[]), 1);
    }
}
