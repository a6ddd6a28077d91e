//! Untrusted input: the search query language (typed by users, and sent to the console's API).
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigil_store::query;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(q) = query::parse(&text) {
        let doc = serde_json::json!({
            "user": {"name": "alice"},
            "source": {"ip": "10.0.0.5"},
            "@timestamp": "2026-11-27T10:00:00Z",
            "message": "Failed password for root from 10.0.0.5 port 22 ssh2",
        });
        let _ = query::matches(&q, &doc);
        let mut fields = Vec::new();
        query::fields(&q, &mut fields);
    }
});
