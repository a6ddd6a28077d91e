//! Untrusted input: audit policy files; evaluation of whatever loads must not panic either.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigil_policy::{load_policy, Attributes};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(loaded) = load_policy(text) {
            let attrs = Attributes {
                verb: "get".into(),
                resource: "pods".into(),
                resource_request: true,
                path: "/api/v1/pods".into(),
                ..Default::default()
            };
            let _ = loaded.policy.evaluate(&attrs);
            let _ = vigil_policy::lint::lint(&loaded.policy);
        }
    }
});
