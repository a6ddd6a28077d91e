//! Files of a data directory a reader trusts only after checking: timeline rows (`rows.bin`)
//! and block maps (`NNNNNN.blk`). Whatever their bytes, reading them must not panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigil_store::{blockmap, rows};

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let rows_path = dir.path().join(rows::ROWS_FILE);
    if std::fs::write(&rows_path, data).is_err() {
        return;
    }
    if let Ok((frames, _)) = rows::scan(&rows_path, true) {
        for f in &frames {
            let start = f.payload_offset() as usize;
            if let Some(payload) = data.get(start..start + f.len as usize) {
                let _ = rows::decode_frame(f, payload, None);
                let _ = rows::decode_frame(f, payload, Some(&[0, 1, 5]));
            }
        }
    }
    if std::fs::write(blockmap::path(dir.path(), 1), data).is_ok() {
        let _ = blockmap::read(dir.path(), 1, u64::MAX, 0);
        let _ = blockmap::read(dir.path(), 1, data.len() as u64, 7);
    }
});
