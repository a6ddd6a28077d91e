//! The journal read back after a restart: what was stored after the last checkpoint is
//! evaluated again (alert ids are stable, so what was already raised collapses).

use std::collections::BTreeMap;

use vigil_store::prepare;

use crate::writer::DetectItem;

/// Records stored after the checkpoint (or, on a first start, nothing), for replay.
pub fn replay_items(
    dir: &std::path::Path,
    positions: &BTreeMap<u32, u64>,
    first_start: bool,
) -> Result<(Vec<DetectItem>, BTreeMap<u32, u64>), String> {
    let reader = vigil_store::Reader::open(dir).map_err(|e| e.to_string())?;
    let mut items = Vec::new();
    let mut start_positions = positions.clone();
    for part in &reader.parts {
        if part.dataset == prepare::ALERT_DATASET {
            continue;
        }
        if first_start {
            start_positions.insert(part.id, part.count);
            continue;
        }
        let from = positions.get(&part.id).copied().unwrap_or(0);
        if from >= part.count {
            continue;
        }
        reader
            .scan_partition(part, from, &mut |e| {
                let k8s = e.dataset == "k8s.audit";
                items.push(DetectItem {
                    dataset: e.dataset.clone(),
                    source: e.record.source.clone(),
                    raw: k8s.then(|| String::from_utf8_lossy(&e.record.raw).into_owned()),
                    doc: (!k8s).then(|| e.doc.clone()),
                    time_us: e.record.event_time,
                    received_us: e.record.received,
                    pid: part.id,
                    seq: e.seq,
                    arrived: None,
                });
                Ok(true)
            })
            .map_err(|e| e.to_string())?;
    }
    items.sort_by_key(|i| (i.received_us, i.pid, i.seq));
    Ok((items, start_positions))
}
