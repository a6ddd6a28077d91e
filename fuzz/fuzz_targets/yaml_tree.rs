//! Untrusted input: YAML written by people (policies, rules, configuration).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = vigil_model::yaml::parse_documents(text);
    }
});
