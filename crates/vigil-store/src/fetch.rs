//! Reading many records at once (a query's hits, a timeline): the locations are grouped by
//! partition and block, each block is read and decompressed once, the partitions are walked in
//! journal order, and the work is split over the available cores. The caller's function runs on
//! the worker that decoded the record, so what it builds from the record (a table row, a JSON
//! line) is built in parallel too; the results come back in the order of the locations.

use std::collections::HashMap;

use crate::index;
use crate::journal;
use crate::reader::{event_of, PartInfo, StoredEvent};
use crate::segment::{Decoder, StoredRecord};
use crate::StoreError;

/// Below this many records a single thread does the work (spawning costs more than it saves).
pub(crate) const PARALLEL_MIN: usize = 256;

/// When at least this many records of one block are wanted, the whole block is decoded in one
/// pass (random access to the `i`-th record walks the `i` before it).
const DENSE: usize = 12;

/// One wanted record: where it is, and where its result goes.
#[derive(Clone, Copy)]
struct Want {
    part: usize,
    block: usize,
    offset: usize,
    slot: usize,
}

/// Worker threads to use: the available cores, or `VIGIL_READ_THREADS` when set (1 turns the
/// parallel decoding off, for measurements).
pub fn read_threads() -> usize {
    std::env::var("VIGIL_READ_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The records at `locs`, passed through `f` (which may drop one: `None`), in the order of
/// `locs`. A location that is not served (unknown partition, past the last checkpoint) gives
/// `None`, as `Reader::get` does.
pub(crate) fn fetch_map<T: Send>(
    parts: &[PartInfo],
    by_id: &HashMap<u32, usize>,
    locs: &[u64],
    threads: usize,
    f: &(dyn Fn(StoredEvent) -> Option<T> + Sync),
) -> Result<Vec<Option<T>>, StoreError> {
    let mut wants = Vec::with_capacity(locs.len());
    for (slot, &loc) in locs.iter().enumerate() {
        let (pid, seq) = index::unloc(loc);
        let Some(&pi) = by_id.get(&pid) else { continue };
        let part = &parts[pi];
        if seq >= part.count {
            continue;
        }
        let bi = part.blocks.partition_point(|b| b.header.first_seq <= seq);
        let Some(bi) = bi.checked_sub(1) else {
            continue;
        };
        wants.push(Want {
            part: pi,
            block: bi,
            offset: (seq - part.blocks[bi].header.first_seq) as usize,
            slot,
        });
    }
    // Journal order: partition, block, record.
    wants.sort_unstable_by_key(|w| (w.part, w.block, w.offset, w.slot));
    // Runs of one block.
    let mut groups: Vec<&[Want]> = Vec::new();
    let mut start = 0;
    for i in 1..=wants.len() {
        if i == wants.len()
            || (wants[i].part, wants[i].block) != (wants[start].part, wants[start].block)
        {
            groups.push(&wants[start..i]);
            start = i;
        }
    }
    let threads = if wants.len() < PARALLEL_MIN {
        1
    } else {
        threads.clamp(1, groups.len().max(1))
    };
    let shares = shares(&groups, threads, |g| 8 + g.len());

    let mut out: Vec<Option<T>> = std::iter::repeat_with(|| None).take(locs.len()).collect();
    let results = on_threads(&shares, |share| run(parts, share, f));
    for r in results {
        for (slot, t) in r? {
            out[slot] = Some(t);
        }
    }
    Ok(out)
}

/// `groups` cut into at most `threads` contiguous shares of about equal `cost`, so each worker
/// still reads its partitions front to back.
pub(crate) fn shares<G>(groups: &[G], threads: usize, cost: impl Fn(&G) -> usize) -> Vec<&[G]> {
    let threads = threads.max(1);
    let total: usize = groups.iter().map(&cost).sum();
    let mut out: Vec<&[G]> = Vec::new();
    let (mut from, mut acc) = (0, 0);
    for (i, g) in groups.iter().enumerate() {
        acc += cost(g);
        if acc * threads >= total * (out.len() + 1) && out.len() + 1 < threads {
            out.push(&groups[from..=i]);
            from = i + 1;
        }
    }
    out.push(&groups[from..]);
    out
}

/// `work` on each share, each on a thread of its own when there are several; the results in
/// the order of the shares. A worker's panic is the caller's.
pub(crate) fn on_threads<S: Sync, R: Send>(shares: &[S], work: impl Fn(&S) -> R + Sync) -> Vec<R> {
    if shares.len() <= 1 {
        return shares.iter().map(&work).collect();
    }
    let work = &work;
    std::thread::scope(|s| {
        let handles: Vec<_> = shares
            .iter()
            .map(|share| s.spawn(move || work(share)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// One worker: its blocks in order, each decompressed once.
fn run<T>(
    parts: &[PartInfo],
    groups: &[&[Want]],
    f: &(dyn Fn(StoredEvent) -> Option<T> + Sync),
) -> Result<Vec<(usize, T)>, StoreError> {
    let mut decoders: HashMap<(usize, u32), Decoder> = HashMap::new();
    let mut buf = Vec::new();
    let mut out = Vec::with_capacity(groups.iter().map(|g| g.len()).sum());
    for g in groups {
        let first = g[0];
        let part = &parts[first.part];
        let b = &part.blocks[first.block];
        let dec = match decoders.entry((first.part, b.segment)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(
                Decoder::new(part.dicts.get(&b.segment).map(|d| &d[..])).map_err(StoreError::Io)?,
            ),
        };
        let mut emit = |w: &Want, r: StoredRecord| {
            if let Some(t) = f(event_of(part, r)) {
                out.push((w.slot, t));
            }
        };
        if g.len() >= DENSE {
            let mut recs = journal::read_block(&part.dir, b, dec)?;
            for (k, w) in g.iter().enumerate() {
                let r = recs.get_mut(w.offset).ok_or_else(|| {
                    StoreError::Corrupt(format!("{}: malformed record payload", part.name))
                })?;
                // The same record wanted again (sorted: next to this one) needs a copy.
                let r = if g.get(k + 1).is_some_and(|n| n.offset == w.offset) {
                    r.clone()
                } else {
                    std::mem::replace(r, taken())
                };
                emit(w, r);
            }
        } else {
            let payload = journal::read_block_payload(&part.dir, b, dec, std::mem::take(&mut buf))?;
            for w in g.iter() {
                let r = payload
                    .record(w.offset)
                    .map_err(|e| StoreError::Corrupt(format!("{}: {e}", part.name)))?;
                emit(w, r);
            }
            buf = payload.into_buffer();
        }
    }
    Ok(out)
}

/// What is left where a decoded record was taken out.
fn taken() -> StoredRecord {
    StoredRecord {
        seq: 0,
        received: 0,
        event_time: 0,
        source: String::new(),
        flags: 0,
        raw: Vec::new(),
        doc: Vec::new(),
    }
}
