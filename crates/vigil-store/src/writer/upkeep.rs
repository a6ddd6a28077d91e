//! Keeping a store in step: the index and the timeline rows caught up with the journal on
//! open, and retention.

use std::fs::{self, OpenOptions};
use std::io::Write;

use tantivy::Term;

use super::recovery::each_record;
use super::{RowsLog, Store};
use crate::chain::{self, Deletion};
use crate::index;
use crate::prepare;
use crate::StoreError;

impl Store {
    pub(super) fn catch_up_index(&mut self) -> Result<(), StoreError> {
        let mut changed = false;
        let live: Vec<u32> = self.parts.values().map(|p| p.id).collect();
        let stale: Vec<u32> = self
            .indexer
            .indexed
            .keys()
            .copied()
            .filter(|id| !live.contains(id))
            .collect();
        for id in stale {
            self.indexer
                .writer
                .delete_term(Term::from_field_u64(self.indexer.fields.pid, u64::from(id)));
            self.indexer.indexed.remove(&id);
            changed = true;
        }
        let names: Vec<String> = self.parts.keys().cloned().collect();
        for name in names {
            let (id, count) = {
                let p = &self.parts[&name];
                (p.id, p.next_seq)
            };
            let mut from = self.indexer.indexed.get(&id).copied().unwrap_or(0);
            if from > count {
                self.indexer
                    .writer
                    .delete_term(Term::from_field_u64(self.indexer.fields.pid, u64::from(id)));
                from = 0;
            }
            if from == count {
                continue;
            }
            changed = true;
            let p = &self.parts[&name];
            let ix = &mut self.indexer;
            each_record(p, from, |r| {
                let doc = prepare::materialize(r.flags, &r.raw, &r.doc);
                ix.writer.add_document(ix.fields.document(
                    &doc,
                    index::loc(id, r.seq),
                    id,
                    r.event_time,
                ))?;
                Ok(())
            })?;
            self.indexer.indexed.insert(id, count);
        }
        if changed {
            self.commit_index()?;
        }
        Ok(())
    }

    /// Rebuilds from the journal the timeline rows the rows files lack (a crash before their
    /// frame was written, a store made before them).
    pub(super) fn catch_up_rows(&mut self) -> Result<(), StoreError> {
        let (level, key, frame_rows) = (self.opts.rows_zstd_level, &self.key, self.opts.frame_rows);
        for p in self.parts.values_mut() {
            let from = p.rows.next();
            if from >= p.next_seq {
                continue;
            }
            let alert = p.dataset == prepare::ALERT_DATASET;
            let mut rows = std::mem::replace(&mut p.rows, RowsLog::new(&p.dir));
            each_record(p, from, |r| {
                let doc = prepare::materialize(r.flags, &r.raw, &r.doc);
                rows.push(r.seq, crate::rows::row_of(alert, &p.dataset, &doc));
                if rows.pending() >= frame_rows {
                    rows.flush(&p.name, level, key);
                }
                Ok(())
            })?;
            rows.flush(&p.name, level, key);
            p.rows = rows;
        }
        Ok(())
    }

    /// Removes partitions older than their dataset's retention; each removal is signed and
    /// logged in `deletions.log` before anything is deleted.
    pub fn apply_retention(
        &mut self,
        policy: &crate::retention::Retention,
        now: i64,
    ) -> Result<Vec<Deletion>, StoreError> {
        let mut out = Vec::new();
        let mut names: Vec<String> = self.parts.keys().cloned().collect();
        names.sort();
        for name in names {
            let p = &self.parts[&name];
            let Some(keep) = policy.for_dataset(&p.dataset) else {
                continue;
            };
            let day = name.split_once('/').map_or("", |x| x.1);
            let Some(day_end) = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.succ_opt())
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc().timestamp_micros())
            else {
                continue;
            };
            if day_end + keep.as_micros() > now {
                continue;
            }
            let d = Deletion {
                partition: name.clone(),
                records: p.next_seq,
                segments: p.segment,
                hash: chain::hex(&p.head),
                reason: format!("retention {} for {}", keep.text, p.dataset),
                time: chain::now_rfc3339(),
                sig: String::new(),
            }
            .sign(&self.key);
            let path = self.dir.join("deletions.log");
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| StoreError::io(&path, e))?;
            let line = serde_json::to_string(&d).map_err(|e| StoreError::Io(e.to_string()))? + "\n";
            f.write_all(line.as_bytes())
                .and_then(|()| f.sync_data())
                .map_err(|e| StoreError::io(&path, e))?;
            self.indexer.writer.delete_term(Term::from_field_u64(
                self.indexer.fields.pid,
                u64::from(p.id),
            ));
            let (pid, dir) = (p.id, p.dir.clone());
            self.indexer.indexed.remove(&pid);
            self.commit_index()?;
            self.parts.remove(&name);
            fs::remove_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
            out.push(d);
        }
        Ok(out)
    }
}
