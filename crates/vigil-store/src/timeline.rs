//! Query results as timeline rows (time, kind, and the `rows::Row` columns), read from the
//! partitions' rows files where they cover a hit: a frame of a few thousand short rows is
//! decompressed instead of a journal block per handful of hits, and no event is normalized
//! again. Hits the rows do not cover (not yet written, damaged, or a query the index cannot
//! answer exactly, whose records must be checked) are read from the journal, so the rows come
//! out the same either way.

use std::collections::HashMap;
use std::fs::File;

use crate::index;
use crate::prepare;
use crate::query::Query;
use crate::reader::{Gathered, PartInfo, Reader, SearchOptions, StoredEvent};
use crate::rows::{self, FramePos, Row, ROWS_FILE};
use crate::StoreError;

/// One timeline entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineRow {
    /// Event time, microseconds.
    pub ts: i64,
    pub alert: bool,
    pub row: Row,
}

impl TimelineRow {
    pub fn of(ev: &StoredEvent) -> TimelineRow {
        let alert = ev.is_alert();
        TimelineRow {
            ts: ev.record.event_time,
            alert,
            row: rows::row_of(alert, &ev.dataset, &ev.doc),
        }
    }
}

/// Items made (with their result slots), and the slots to read from the journal instead.
type Fetched<T> = (Vec<(usize, T)>, Vec<usize>);

/// A hit wanted from a rows frame.
#[derive(Clone, Copy)]
struct Want {
    part: usize,
    frame: usize,
    offset: usize,
    slot: usize,
    ts: i64,
}

impl Reader {
    /// As `search_map(q, opts, TimelineRow::of)`, reading the rows files where they serve.
    pub fn search_rows(
        &self,
        q: &Query,
        opts: &SearchOptions,
    ) -> Result<crate::reader::FoundMap<TimelineRow>, StoreError> {
        self.search_rows_map(q, opts, &|t| t)
    }

    /// As `search_rows`, each row passed through `f` on the thread that read it (what the
    /// caller makes of a row, a line of text, is made in parallel too).
    pub fn search_rows_map<T: Send>(
        &self,
        q: &Query,
        opts: &SearchOptions,
        f: &(dyn Fn(TimelineRow) -> T + Sync),
    ) -> Result<crate::reader::FoundMap<T>, StoreError> {
        let g = self.gather(q, opts)?;
        if !g.exact {
            return self.fetch_gathered(g, q, opts, &|ev| f(TimelineRow::of(&ev)));
        }
        let Gathered {
            mut hits,
            mut from_scan,
            scanned,
            ..
        } = g;
        let truncated = opts.limit > 0 && hits.len() > opts.limit;
        if truncated {
            hits.truncate(opts.limit);
        }
        let mut items: Vec<Option<T>> = std::iter::repeat_with(|| None).take(hits.len()).collect();
        let mut wants = Vec::new();
        let mut from_journal = Vec::new();
        for (slot, h) in hits.iter().enumerate() {
            if let Some(ev) = from_scan.remove(&h.loc) {
                items[slot] = Some(f(TimelineRow::of(&ev)));
                continue;
            }
            match self.frame_of(h.loc) {
                Some((part, frame, offset)) => wants.push(Want {
                    part,
                    frame,
                    offset,
                    slot,
                    ts: h.ts,
                }),
                None => from_journal.push(slot),
            }
        }
        let threads = crate::fetch::read_threads();
        let (found, failed) = fetch_frames(&self.parts, wants, threads, f);
        for (slot, item) in found {
            items[slot] = Some(item);
        }
        from_journal.extend(failed);
        from_journal.sort_unstable();
        let locs: Vec<u64> = from_journal.iter().map(|&s| hits[s].loc).collect();
        let read = crate::fetch::fetch_map(&self.parts, &self.by_id, &locs, threads, &|ev| {
            Some(f(TimelineRow::of(&ev)))
        })?;
        for (slot, item) in from_journal.into_iter().zip(read) {
            items[slot] = item;
        }
        Ok(crate::reader::FoundMap {
            items: items.into_iter().flatten().collect(),
            truncated,
            scanned_unindexed: scanned,
        })
    }

    /// The (partition, frame, offset in the frame) of the row of the record at `loc`.
    fn frame_of(&self, loc: u64) -> Option<(usize, usize, usize)> {
        let (pid, seq) = index::unloc(loc);
        let pi = *self.by_id.get(&pid)?;
        let frames = &self.parts[pi].rows;
        let fi = frames
            .partition_point(|f| f.first_seq <= seq)
            .checked_sub(1)?;
        let f = &frames[fi];
        (seq < f.end()).then(|| (pi, fi, (seq - f.first_seq) as usize))
    }
}

/// The wanted rows, each frame read once, the frames split over `threads` workers; also the
/// slots whose frame could not be read or did not check (to be read from the journal).
fn fetch_frames<T: Send>(
    parts: &[PartInfo],
    mut wants: Vec<Want>,
    threads: usize,
    f: &(dyn Fn(TimelineRow) -> T + Sync),
) -> Fetched<T> {
    wants.sort_unstable_by_key(|w| (w.part, w.frame, w.offset, w.slot));
    let groups: Vec<&[Want]> = wants
        .chunk_by(|a, b| (a.part, a.frame) == (b.part, b.frame))
        .collect();
    let threads = if wants.len() < crate::fetch::PARALLEL_MIN {
        1
    } else {
        threads
    };
    let shares = crate::fetch::shares(&groups, threads, |g| 64 + g.len());
    let results = crate::fetch::on_threads(&shares, |share| read_frames(parts, share, f));
    let mut found = Vec::with_capacity(wants.len());
    let mut failed = Vec::new();
    for (f, x) in results {
        found.extend(f);
        failed.extend(x);
    }
    (found, failed)
}

/// One worker: its frames in order.
fn read_frames<T>(
    parts: &[PartInfo],
    groups: &[&[Want]],
    f: &(dyn Fn(TimelineRow) -> T + Sync),
) -> Fetched<T> {
    let mut files: HashMap<usize, Option<File>> = HashMap::new();
    let mut found = Vec::new();
    let mut failed = Vec::new();
    let mut offsets = Vec::new();
    let Ok(mut decoder) = rows::FrameDecoder::new() else {
        return (
            Vec::new(),
            groups
                .iter()
                .flat_map(|g| g.iter().map(|w| w.slot))
                .collect(),
        );
    };
    for g in groups {
        let part = &parts[g[0].part];
        let alert = part.dataset == prepare::ALERT_DATASET;
        let frame: &FramePos = &part.rows[g[0].frame];
        let file = files
            .entry(g[0].part)
            .or_insert_with(|| File::open(part.dir.join(ROWS_FILE)).ok());
        offsets.clear();
        offsets.extend(g.iter().map(|w| w.offset));
        let rows = file
            .as_ref()
            .and_then(|f| rows::read_payload(f, frame).ok())
            .filter(|p| frame.checks(p))
            .and_then(|p| decoder.decode(frame, &p, Some(&offsets)));
        let Some(rows) = rows else {
            failed.extend(g.iter().map(|w| w.slot));
            continue;
        };
        // Both in offset order; a record wanted twice is next to itself.
        let mut it = rows.into_iter().peekable();
        for (k, w) in g.iter().enumerate() {
            while it.next_if(|(o, _)| *o < w.offset).is_some() {}
            let again = g.get(k + 1).is_some_and(|n| n.offset == w.offset);
            let row = match it.peek() {
                Some((o, _)) if *o == w.offset && again => it.peek().map(|(_, r)| r.clone()),
                Some((o, _)) if *o == w.offset => it.next().map(|(_, r)| r),
                _ => None,
            };
            match row {
                Some(row) => found.push((
                    w.slot,
                    f(TimelineRow {
                        ts: w.ts,
                        alert,
                        row,
                    }),
                )),
                None => failed.push(w.slot),
            }
        }
    }
    (found, failed)
}
