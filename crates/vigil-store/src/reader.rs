//! Reading the store: records by location, id lookups, and query execution (index first, the
//! reference matcher where the index cannot answer exactly, and a scan of whatever the index
//! does not cover yet). Only records covered by a signed checkpoint are ever served.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde_json::Value;
use tantivy::query::{BooleanQuery, Occur, Query as TQuery, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::{Index, IndexReader, ReloadPolicy, Term};

use crate::index::{self, Fields, Hit, HitCollector};
use crate::journal::{self, BlockPos};
use crate::prepare;
use crate::query::{self, Query};
use crate::segment::{BlockPayload, Decoder, StoredRecord, FLAG_REDACTED};
use crate::{list_partitions, StoreError};

/// A partition as the reader sees it.
#[derive(Debug, Clone)]
pub struct PartInfo {
    pub name: String,
    pub id: u32,
    pub dataset: String,
    pub day: String,
    pub dir: PathBuf,
    pub blocks: Vec<BlockPos>,
    /// Segment dictionaries.
    pub dicts: std::collections::BTreeMap<u32, std::sync::Arc<Vec<u8>>>,
    /// Records served: those covered by a signed checkpoint.
    pub count: u64,
    /// Records in the index.
    pub indexed: u64,
    /// Bytes of the segment files.
    pub bytes: u64,
    /// The frames of `rows.bin` (timeline rows) within `count`.
    pub rows: Vec<crate::rows::FramePos>,
}

/// One stored event (or alert), as read back.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub partition: String,
    pub dataset: String,
    pub seq: u64,
    pub loc: u64,
    pub record: StoredRecord,
    /// The normalized document.
    pub doc: Value,
}

impl StoredEvent {
    pub fn is_alert(&self) -> bool {
        self.dataset == prepare::ALERT_DATASET
    }
    pub fn redacted(&self) -> bool {
        self.record.flags & FLAG_REDACTED != 0
    }
    /// The event as received: JSON when it is JSON, else the text.
    pub fn original(&self) -> Value {
        serde_json::from_slice(&self.record.raw)
            .unwrap_or_else(|_| Value::from(String::from_utf8_lossy(&self.record.raw).into_owned()))
    }
    pub fn time_rfc3339(&self) -> String {
        micros_rfc3339(self.record.event_time)
    }
}

/// A record of `part` as a `StoredEvent` (its normalized document rebuilt).
pub(crate) fn event_of(part: &PartInfo, r: StoredRecord) -> StoredEvent {
    StoredEvent {
        partition: part.name.clone(),
        dataset: part.dataset.clone(),
        seq: r.seq,
        loc: index::loc(part.id, r.seq),
        doc: prepare::materialize(r.flags, &r.raw, &r.doc),
        record: r,
    }
}

pub fn micros_rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp_micros(t)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_default()
}

/// Which records a search returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kinds {
    Events,
    Alerts,
    Both,
}

#[derive(Clone, Debug)]
pub struct SearchOptions {
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// 0: no limit.
    pub limit: usize,
    pub newest_first: bool,
    pub kinds: Kinds,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            since: None,
            until: None,
            limit: 0,
            newest_first: false,
            kinds: Kinds::Events,
        }
    }
}

pub struct Found {
    pub events: Vec<StoredEvent>,
    /// More matched than `limit`.
    pub truncated: bool,
    /// Records not yet in the index that were scanned instead.
    pub scanned_unindexed: u64,
}

/// What `Reader::search_map` found: the caller's function applied to each result, in order.
pub struct FoundMap<T> {
    pub items: Vec<T>,
    /// More matched than `limit`.
    pub truncated: bool,
    /// Records not yet in the index that were scanned instead.
    pub scanned_unindexed: u64,
}

/// The hits of a query before their records are read.
pub(crate) struct Gathered {
    pub hits: Vec<Hit>,
    /// The index answered the query exactly (no hit needs its record checked).
    pub exact: bool,
    /// Hits found by scanning what the index does not cover, with their records.
    pub from_scan: HashMap<u64, StoredEvent>,
    pub scanned: u64,
}

struct IndexHandle {
    fields: Fields,
    reader: IndexReader,
}

pub struct Reader {
    pub dir: PathBuf,
    pub parts: Vec<PartInfo>,
    pub(crate) by_id: HashMap<u32, usize>,
    index: Option<IndexHandle>,
    cache: RefCell<Vec<CachedBlock>>,
    decoders: RefCell<HashMap<(u32, u32), Decoder>>,
}

const CACHE_BLOCKS: usize = 8;

/// (partition id, first record, payload) of a decompressed block.
type CachedBlock = (u32, u64, Rc<BlockPayload>);

impl Reader {
    /// Opens a data directory for reading (no lock; the writer only appends).
    pub fn open(dir: &Path) -> Result<Reader, StoreError> {
        if !dir.join("store.json").exists() {
            return Err(StoreError::Io(format!(
                "{}: not a Vigil data directory (run `vigil ingest --data-dir {}` first)",
                dir.display(),
                dir.display()
            )));
        }
        let (ckpts, _) = crate::writer::last_checkpoints(dir)?;
        let index = open_index(dir)?;
        let indexed: HashMap<u32, u64> = match &index {
            Some((_, payload)) => payload.clone(),
            None => HashMap::new(),
        };
        let mut parts = Vec::new();
        for (name, path, meta) in list_partitions(dir)? {
            let scan = journal::scan_for_reading(&path)?;
            let signed = ckpts.get(&name).map_or(0, |c| c.records);
            let count = scan.next_seq.min(signed);
            let mut blocks = scan.blocks;
            blocks.retain(|b| b.header.first_seq < count);
            let rows_path = path.join(crate::rows::ROWS_FILE);
            let (mut rows, _) =
                crate::rows::scan(&rows_path, false).map_err(|e| StoreError::io(&rows_path, e))?;
            rows.retain(|f| f.end() <= count);
            let bytes = std::fs::read_dir(&path)
                .map(|d| {
                    d.flatten()
                        .filter_map(|e| e.metadata().ok())
                        .map(|m| m.len())
                        .sum()
                })
                .unwrap_or(0);
            parts.push(PartInfo {
                name,
                id: meta.id,
                dataset: meta.dataset,
                day: meta.day,
                dir: path,
                blocks,
                dicts: scan.dicts,
                count,
                indexed: indexed.get(&meta.id).copied().unwrap_or(0).min(count),
                bytes,
                rows,
            });
        }
        let by_id = parts.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
        Ok(Reader {
            dir: dir.to_path_buf(),
            parts,
            by_id,
            index: index.map(|(h, _)| h),
            cache: RefCell::new(Vec::new()),
            decoders: RefCell::new(HashMap::new()),
        })
    }

    pub fn index_bytes(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            std::fs::read_dir(p)
                .map(|d| {
                    d.flatten()
                        .map(|e| match e.metadata() {
                            Ok(m) if m.is_dir() => walk(&e.path()),
                            Ok(m) => m.len(),
                            Err(_) => 0,
                        })
                        .sum()
                })
                .unwrap_or(0)
        }
        walk(&self.dir.join("index"))
    }

    fn block_payload(&self, part: &PartInfo, b: &BlockPos) -> Result<Rc<BlockPayload>, StoreError> {
        let key = (part.id, b.header.first_seq);
        if let Some(hit) = self
            .cache
            .borrow()
            .iter()
            .find(|c| (c.0, c.1) == key)
            .map(|c| c.2.clone())
        {
            return Ok(hit);
        }
        // The oldest cached block makes room, and lends its buffer when nobody holds it.
        let reuse = {
            let mut cache = self.cache.borrow_mut();
            if cache.len() >= CACHE_BLOCKS {
                let old = cache.remove(0);
                Rc::try_unwrap(old.2)
                    .map(BlockPayload::into_buffer)
                    .unwrap_or_default()
            } else {
                Vec::new()
            }
        };
        let payload = {
            let mut decs = self.decoders.borrow_mut();
            let dec = match decs.entry((part.id, b.segment)) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(
                    Decoder::new(part.dicts.get(&b.segment).map(|d| &d[..]))
                        .map_err(StoreError::Io)?,
                ),
            };
            Rc::new(journal::read_block_payload(&part.dir, b, dec, reuse)?)
        };
        let mut cache = self.cache.borrow_mut();
        cache.push((key.0, key.1, payload.clone()));
        Ok(payload)
    }

    fn read_block(&self, part: &PartInfo, b: &BlockPos) -> Result<Vec<StoredRecord>, StoreError> {
        let mut decs = self.decoders.borrow_mut();
        let key = (part.id, b.segment);
        let dec = match decs.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(
                Decoder::new(part.dicts.get(&b.segment).map(|d| &d[..])).map_err(StoreError::Io)?,
            ),
        };
        journal::read_block(&part.dir, b, dec)
    }

    fn event(&self, part: &PartInfo, r: &StoredRecord) -> StoredEvent {
        event_of(part, r.clone())
    }

    /// The record at `loc`, if it is served.
    pub fn get(&self, loc: u64) -> Result<Option<StoredEvent>, StoreError> {
        let (pid, seq) = index::unloc(loc);
        let Some(part) = self.by_id.get(&pid).map(|i| &self.parts[*i]) else {
            return Ok(None);
        };
        if seq >= part.count {
            return Ok(None);
        }
        let i = part.blocks.partition_point(|b| b.header.first_seq <= seq);
        let Some(b) = i.checked_sub(1).map(|i| &part.blocks[i]) else {
            return Ok(None);
        };
        let payload = self.block_payload(part, b)?;
        let r = payload
            .record((seq - b.header.first_seq) as usize)
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", part.name)))?;
        Ok(Some(self.event(part, &r)))
    }

    /// Every served record of a partition from `from` on, in order.
    pub fn scan_partition(
        &self,
        part: &PartInfo,
        from: u64,
        each: &mut dyn FnMut(StoredEvent) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        for b in &part.blocks {
            if b.header.first_seq + u64::from(b.header.count) <= from {
                continue;
            }
            let recs = self.read_block(part, b)?;
            for r in recs.iter().filter(|r| r.seq >= from && r.seq < part.count) {
                if !each(self.event(part, r))? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Locations whose id hash matches `id` (a Kubernetes auditID or an alert id); a hash
    /// match is a candidate, checked on the record by the caller.
    pub fn locate_id(&self, id: &str) -> Vec<u64> {
        let want = prepare::id_hash(id);
        let want_alert = prepare::id_hash(&format!("alert:{id}"));
        let mut out = Vec::new();
        for p in &self.parts {
            let Some((bytes, width)) = crate::ids::read(&p.dir) else {
                continue;
            };
            for (i, c) in bytes.chunks_exact(width).enumerate() {
                let k = crate::ids::get(c) & !0xff;
                if (k == want || k == want_alert) && (i as u64) < p.count {
                    out.push(index::loc(p.id, i as u64));
                }
            }
        }
        out
    }

    fn in_window(opts: &SearchOptions, t: i64) -> bool {
        opts.since.is_none_or(|s| t >= s) && opts.until.is_none_or(|u| t < u)
    }

    fn kind_ok(opts: &SearchOptions, ev: &StoredEvent) -> bool {
        match opts.kinds {
            Kinds::Both => true,
            Kinds::Events => !ev.is_alert(),
            Kinds::Alerts => ev.is_alert(),
        }
    }

    /// A partition's days that may hold events of the window.
    fn part_in_window(opts: &SearchOptions, part: &PartInfo) -> bool {
        let Some(start) = query::time_value(&part.day) else {
            return true;
        };
        let end = start + 86_400_000_000;
        opts.since.is_none_or(|s| end > s) && opts.until.is_none_or(|u| start < u)
    }

    /// Runs a query. Results are in time order (oldest first unless `newest_first`).
    pub fn search(&self, q: &Query, opts: &SearchOptions) -> Result<Found, StoreError> {
        let found = self.search_map(q, opts, &|ev| ev)?;
        Ok(Found {
            events: found.items,
            truncated: found.truncated,
            scanned_unindexed: found.scanned_unindexed,
        })
    }

    /// As `search`, with `f` applied to each result as soon as it is read, on the thread that
    /// read it (the records are read block by block, in parallel): what the caller keeps of a
    /// result (a table row, a JSON line) is built in parallel and the full records need not
    /// all be held at once. The items are in the order `search` returns the events.
    pub fn search_map<T: Send>(
        &self,
        q: &Query,
        opts: &SearchOptions,
        f: &(dyn Fn(StoredEvent) -> T + Sync),
    ) -> Result<FoundMap<T>, StoreError> {
        let g = self.gather(q, opts)?;
        self.fetch_gathered(g, q, opts, f)
    }

    /// Every hit of a query in the window, in order (the index's, and those of a scan of what
    /// it does not cover yet, with their records).
    pub(crate) fn gather(&self, q: &Query, opts: &SearchOptions) -> Result<Gathered, StoreError> {
        let mut hits: Vec<Hit> = Vec::new();
        let mut exact = true;
        let mut from_scan: HashMap<u64, StoredEvent> = HashMap::new();
        if let Some(ix) = &self.index {
            let ids = |id: &str| self.locate_id(id);
            let plan = index::translate(&ix.fields, q, &ids);
            exact = plan.exact;
            let mut tq: Box<dyn TQuery> = plan.query;
            let kind = match opts.kinds {
                Kinds::Events => Some("event"),
                Kinds::Alerts => Some("alert"),
                Kinds::Both => None,
            };
            if let Some(kind) = kind {
                let field = ix
                    .fields
                    .keywords
                    .iter()
                    .find(|k| k.0 == "vigil.kind")
                    .map(|k| k.1);
                if let Some(field) = field {
                    tq = Box::new(BooleanQuery::new(vec![
                        (Occur::Must, tq),
                        (
                            Occur::Must,
                            Box::new(TermQuery::new(
                                Term::from_field_text(field, kind),
                                IndexRecordOption::Basic,
                            )),
                        ),
                    ]));
                }
            }
            let searcher = ix.reader.searcher();
            hits = searcher.search(
                tq.as_ref(),
                &HitCollector {
                    since: opts.since,
                    until: opts.until,
                },
            )?;
            hits.retain(|h| {
                let (pid, seq) = index::unloc(h.loc);
                self.by_id
                    .get(&pid)
                    .is_some_and(|i| seq < self.parts[*i].indexed)
            });
        }
        // What the index does not cover yet: scan it.
        let mut scanned = 0u64;
        for part in &self.parts {
            let from = if self.index.is_some() {
                part.indexed
            } else {
                0
            };
            if from >= part.count || !Self::part_in_window(opts, part) {
                continue;
            }
            scanned += part.count - from;
            self.scan_partition(part, from, &mut |ev| {
                if Self::in_window(opts, ev.record.event_time)
                    && Self::kind_ok(opts, &ev)
                    && query::matches(q, &ev.doc)
                {
                    hits.push(Hit {
                        ts: ev.record.event_time,
                        loc: ev.loc,
                    });
                    from_scan.insert(ev.loc, ev);
                }
                Ok(true)
            })?;
        }
        if opts.newest_first {
            hits.sort_unstable_by(|a, b| b.cmp(a));
        } else {
            hits.sort_unstable();
        }
        Ok(Gathered {
            hits,
            exact,
            from_scan,
            scanned,
        })
    }

    /// The records of gathered hits, `opts.limit` at a time, through `f`.
    pub(crate) fn fetch_gathered<T: Send>(
        &self,
        g: Gathered,
        q: &Query,
        opts: &SearchOptions,
        f: &(dyn Fn(StoredEvent) -> T + Sync),
    ) -> Result<FoundMap<T>, StoreError> {
        let Gathered {
            hits,
            exact,
            mut from_scan,
            scanned,
        } = g;
        // The hits in order, `limit` at a time (a hit the index could not answer exactly may
        // still fail the query): each batch read block by block, on every core.
        let keep = |ev: StoredEvent| {
            if !exact && !query::matches(q, &ev.doc) {
                return None;
            }
            Some(f(ev))
        };
        let threads = crate::fetch::read_threads();
        let mut items = Vec::new();
        let mut truncated = false;
        let mut pos = 0;
        while pos < hits.len() {
            if opts.limit > 0 && items.len() >= opts.limit {
                truncated = true;
                break;
            }
            let n = if opts.limit > 0 {
                opts.limit - items.len()
            } else {
                hits.len()
            };
            let batch = &hits[pos..hits.len().min(pos + n)];
            pos += batch.len();
            let locs: Vec<u64> = batch
                .iter()
                .filter(|h| !from_scan.contains_key(&h.loc))
                .map(|h| h.loc)
                .collect();
            let mut fetched =
                crate::fetch::fetch_map(&self.parts, &self.by_id, &locs, threads, &keep)?
                    .into_iter();
            for h in batch {
                let item = match from_scan.remove(&h.loc) {
                    Some(ev) => Some(f(ev)),
                    None => fetched.next().flatten(),
                };
                items.extend(item);
            }
        }
        Ok(FoundMap {
            items,
            truncated,
            scanned_unindexed: scanned,
        })
    }
}

type Opened = (IndexHandle, HashMap<u32, u64>);

fn open_index(dir: &Path) -> Result<Option<Opened>, StoreError> {
    let path = dir.join("index");
    if !path.join("meta.json").exists() {
        return Ok(None);
    }
    let index = Index::open_in_dir(&path)?;
    let fields = Fields::from_schema(index.schema()).map_err(StoreError::Index)?;
    let payload: HashMap<u32, u64> = index
        .load_metas()?
        .payload
        .and_then(|p| serde_json::from_str(&p).ok())
        .unwrap_or_default();
    let reader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()?;
    Ok(Some((IndexHandle { fields, reader }, payload)))
}
