//! Untrusted input: audit log lines and EventList bodies (the webhook receives them from the network).
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigil_model::decode::{decode_document, LineAssembler};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = decode_document(&text, 1);
    let mut assembler = LineAssembler::new(1 << 16);
    for (i, line) in text.lines().enumerate() {
        assembler.push(i + 1, line, &mut |chunk| {
            if let Ok(c) = chunk {
                let _ = decode_document(&c.text, c.line);
            }
        });
    }
    let _ = assembler.finish();
});
