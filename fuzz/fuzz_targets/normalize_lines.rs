//! Untrusted input: log lines of every line-based source (auth.log over syslog, auditd, Zeek,
//! VPC flow logs, audit JSON). The first byte picks the parser; format detection sees the rest.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigil_normalize::{detect_format, parse_all, parser_for, Dataset, Options, YearHint};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let lines: Vec<&str> = text.lines().take(16).collect();
    let _ = detect_format(&lines);
    let dataset = &Dataset::BUILTIN[pick as usize % Dataset::BUILTIN.len()];
    let mut opts = Options::new(YearHint::Year(2026));
    opts.max_open_events = 4;
    let mut parser = parser_for(dataset, &opts).expect("built-in datasets have parsers");
    let _ = parse_all(parser.as_mut(), &text);
});
