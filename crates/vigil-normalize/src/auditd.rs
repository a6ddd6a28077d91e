//! `auditd`: audit.log lines grouped by serial into one event each.
//!
//! The [`AuditdAssembler`] keeps events open while their records arrive
//! (records of several events may interleave) and emits an event when
//! - its `EOE` record arrives;
//! - it is a user-space message (`USER_*`, `CRED_*`, `ADD_USER`, ...), which
//!   auditd writes as a single record;
//! - a record of a newer serial arrives on the same host and the open event
//!   is out of the reorder window (more than `reorder_window` serials or two
//!   seconds older): kernels without `EOE` records end events that way;
//! - more than `max_open_events` are open (the oldest goes first);
//! - on [`AuditdAssembler::flush`].
//!
//! Events are normalized by [`crate::auditd::normalize`]; `EXECVE` events also
//! carry the Sysmon-for-Linux fields Sigma's process_creation rules use, with
//! the parent image resolved from earlier events of the same host through a
//! bounded pid → image cache.

use std::collections::{HashMap, VecDeque};

use serde_json::Value;

pub use crate::auditd_record::{decode_hex, decode_sockaddr, parse_record, Record};
use crate::{excerpt, Dataset, Options, Output, ParseError, Parsed, Parser};

#[path = "auditd_event.rs"]
mod event;
pub use event::{execve_args, normalize};

/// Records of one event, with the input lines they came from.
#[derive(Debug, Clone)]
pub struct Group {
    pub records: Vec<Record>,
    pub lines: Vec<String>,
    pub first_line: usize,
}

/// A bounded pid → executable map per host; the oldest entries are dropped.
#[derive(Debug, Default)]
pub struct PidCache {
    capacity: usize,
    map: HashMap<(String, u32), (String, u64)>,
    order: VecDeque<((String, u32), u64)>,
    generation: u64,
}

impl PidCache {
    pub fn new(capacity: usize) -> Self {
        PidCache {
            capacity: capacity.max(1),
            ..Default::default()
        }
    }

    pub fn insert(&mut self, host: &str, pid: u32, image: &str) {
        self.generation += 1;
        let key = (host.to_string(), pid);
        self.map
            .insert(key.clone(), (image.to_string(), self.generation));
        self.order.push_back((key, self.generation));
        while self.map.len() > self.capacity || self.order.len() > 4 * self.capacity {
            let Some((k, g)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&k).is_some_and(|(_, g0)| *g0 == g) {
                self.map.remove(&k);
            }
        }
    }

    pub fn get(&self, host: &str, pid: u32) -> Option<&str> {
        self.map
            .get(&(host.to_string(), pid))
            .map(|(s, _)| s.as_str())
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Record types auditd writes alone (user-space messages).
pub fn is_standalone(rtype: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "USER_",
        "CRED_",
        "DAEMON_",
        "ADD_",
        "DEL_",
        "GRP_",
        "ROLE_",
        "SERVICE_",
        "SYSTEM_",
        "CRYPTO_",
        "ANOM_LOGIN",
        "ANOM_ADD",
        "ANOM_DEL",
        "ANOM_MOD",
        "ANOM_ROLE",
        "ANOM_RBAC",
        "ANOM_CRYPTO",
        "ACCT_",
        "USYS_",
        "VIRT_",
        "LABEL_",
        "RESP_",
    ];
    const NAMES: &[&str] = &[
        "CHGRP_ID",
        "CHUSER_ID",
        "SOFTWARE_UPDATE",
        "TRUSTED_APP",
        "TEST",
    ];
    PREFIXES.iter().any(|p| rtype.starts_with(p)) || NAMES.contains(&rtype)
}

fn seconds(time: &str) -> u64 {
    time.split('.')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Groups records into events; see the module documentation.
pub struct AuditdAssembler {
    open: Vec<Group>,
    max_open: usize,
    reorder_window: u64,
}

impl AuditdAssembler {
    pub fn new(max_open: usize) -> Self {
        AuditdAssembler {
            open: Vec::new(),
            max_open: max_open.max(1),
            reorder_window: 16,
        }
    }

    /// Serials an open event may lag behind the newest record of its host.
    pub fn with_reorder_window(mut self, serials: u64) -> Self {
        self.reorder_window = serials;
        self
    }

    pub fn open_events(&self) -> usize {
        self.open.len()
    }

    /// Adds a record; completed events are appended to `done`.
    pub fn push(&mut self, rec: Record, line: &str, line_no: usize, done: &mut Vec<Group>) {
        let same = |g: &Group, r: &Record| {
            let f = &g.records[0];
            f.serial == r.serial && f.node == r.node && f.time == r.time
        };
        let idx = self.open.iter().position(|g| same(g, &rec));
        let is_eoe = rec.rtype == "EOE";
        let standalone = is_standalone(&rec.rtype);
        match idx {
            Some(i) => {
                let g = &mut self.open[i];
                g.records.push(rec);
                g.lines.push(line.to_string());
                if is_eoe {
                    done.push(self.open.remove(i));
                }
            }
            None => {
                // Records of a newer serial end the events left behind.
                let (serial, secs) = (rec.serial, seconds(&rec.time));
                let window = self.reorder_window;
                let mut i = 0;
                while i < self.open.len() {
                    let f = &self.open[i].records[0];
                    let stale = f.node == rec.node
                        && f.serial < serial
                        && (serial - f.serial > window || secs > seconds(&f.time) + 2);
                    if stale {
                        done.push(self.open.remove(i));
                    } else {
                        i += 1;
                    }
                }
                let g = Group {
                    records: vec![rec],
                    lines: vec![line.to_string()],
                    first_line: line_no,
                };
                if is_eoe || standalone {
                    done.push(g);
                } else {
                    self.open.push(g);
                    while self.open.len() > self.max_open {
                        done.push(self.open.remove(0));
                    }
                }
            }
        }
    }

    /// Emits every open event, oldest first.
    pub fn flush(&mut self, done: &mut Vec<Group>) {
        done.append(&mut self.open);
    }
}

/// The `auditd` line parser: records → assembler → normalized events.
pub struct AuditdParser {
    assembler: AuditdAssembler,
    pids: PidCache,
    groups: Vec<Group>,
}

impl AuditdParser {
    pub fn new(opts: &Options) -> Self {
        AuditdParser {
            assembler: AuditdAssembler::new(opts.max_open_events),
            pids: PidCache::new(opts.pid_cache_size),
            groups: Vec::new(),
        }
    }

    fn drain(&mut self, out: &mut Output) {
        for g in self.groups.drain(..) {
            let doc = normalize(&g, &mut self.pids);
            out.push(Ok(Parsed {
                line: g.first_line,
                doc,
            }));
        }
    }
}

impl Parser for AuditdParser {
    fn dataset(&self) -> Dataset {
        Dataset::Auditd
    }

    fn push_line(&mut self, line: &str, line_no: usize, out: &mut Output) {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            return;
        }
        match parse_record(line) {
            Ok(rec) => {
                self.assembler.push(rec, line, line_no, &mut self.groups);
                self.drain(out);
            }
            Err(expected) => out.push(Err(ParseError::new(line_no, expected, excerpt(line)))),
        }
    }

    fn flush(&mut self, out: &mut Output) {
        self.assembler.flush(&mut self.groups);
        self.drain(out);
    }
}

/// Convenience: the documents of a whole audit.log text (rejects dropped).
pub fn parse_text(text: &str, opts: &Options) -> Vec<Value> {
    let mut p = AuditdParser::new(opts);
    crate::parse_all(&mut p, text)
        .into_iter()
        .filter_map(|r| r.ok().map(|p| p.doc))
        .collect()
}

#[cfg(test)]
#[path = "auditd_tests.rs"]
mod tests;
