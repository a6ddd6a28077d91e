//! Helpers for the tests over the public samples in `$VIGIL_SHARED/samples`
//! (see its PROVENANCE.md). Without `VIGIL_SHARED` those tests print a skip
//! message and pass. The samples are read in place, never copied.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use vigil_normalize::{detect_format, parser_for, Dataset, Options, ParseError, Parser, YearHint};

pub fn samples(test: &str) -> Option<PathBuf> {
    match std::env::var_os("VIGIL_SHARED") {
        Some(dir) => {
            let p = PathBuf::from(dir).join("samples");
            assert!(
                p.is_dir(),
                "VIGIL_SHARED is set but {} is not a folder",
                p.display()
            );
            Some(p)
        }
        None => {
            eprintln!("{test}: skipped (VIGIL_SHARED is not set)");
            None
        }
    }
}

pub fn read(p: &std::path::Path) -> String {
    let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Files of a folder with the given suffix, sorted.
pub fn files(dir: &std::path::Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

/// The outcome of parsing one file.
pub struct Run {
    pub dataset: Dataset,
    /// Non-empty lines fed to the parser.
    pub lines_in: usize,
    /// line number → document (the event's first line).
    pub docs: BTreeMap<usize, Value>,
    /// Documents in output order.
    pub events: Vec<Value>,
    pub rejects: Vec<ParseError>,
}

impl Run {
    /// Input lines accounted for: each event's `message` lines (auditd events
    /// hold several; line-based sources one), or one line for sources whose
    /// documents carry no `message`.
    pub fn lines_out(&self) -> usize {
        let ev: usize = self
            .events
            .iter()
            .map(|d| {
                d.get("message")
                    .and_then(Value::as_str)
                    .map_or(1, |m| m.lines().count())
            })
            .sum();
        ev + self.rejects.len()
    }
}

/// Detects the format from the first lines, then parses every line for
/// which `keep(line)` holds (numbers stay those of the file).
pub fn run(text: &str, year: YearHint, keep: impl Fn(&str) -> bool) -> Run {
    let kept: Vec<&str> = text.lines().filter(|l| keep(l)).collect();
    let dataset = detect_format(&kept).expect("a detectable format");
    let mut parser: Box<dyn Parser> = parser_for(&dataset, &Options::new(year)).unwrap();
    let mut out = Vec::new();
    let mut lines_in = 0;
    for (i, line) in text.lines().enumerate() {
        if !keep(line) || line.trim().is_empty() {
            continue;
        }
        lines_in += 1;
        parser.push_line(line, i + 1, &mut out);
    }
    parser.flush(&mut out);
    let mut run = Run {
        dataset,
        lines_in,
        docs: BTreeMap::new(),
        events: Vec::new(),
        rejects: Vec::new(),
    };
    for r in out {
        match r {
            Ok(p) => {
                run.docs.insert(p.line, p.doc.clone());
                run.events.push(p.doc);
            }
            Err(e) => run.rejects.push(e),
        }
    }
    run
}

pub fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    vigil_normalize::ecs::lookup(v, path)
}

pub fn get_str<'a>(v: &'a Value, path: &str) -> &'a str {
    get(v, path).and_then(Value::as_str).unwrap_or("")
}
