//! `linux.auth`: auth.log / secure lines. The syslog envelope (RFC 3164 with
//! or without a year, the RFC 3339 form rsyslog writes, RFC 5424) is read with
//! `syslog_loose`; lines without a time stamp (`host sshd[1]: ...`, as
//! `journalctl -o cat`-like exports give) are accepted with no `@timestamp`.
//! Dates without a zone are taken as UTC.

use std::sync::LazyLock;

use chrono::{DateTime, Datelike, Duration, FixedOffset, TimeZone, Utc};
use regex::Regex;
use serde_json::{Map, Value};
use syslog_loose::{IncompleteDate, ProcId, Variant};

use crate::ecs::{self, set, set_str};
use crate::{auth_msg, excerpt, Dataset, Output, ParseError, Parsed, Parser, YearHint};

/// The syslog header of one line.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<'a> {
    pub timestamp: Option<DateTime<FixedOffset>>,
    pub hostname: Option<&'a str>,
    pub appname: Option<&'a str>,
    pub procid: Option<String>,
    pub facility: Option<&'static str>,
    pub severity: Option<&'static str>,
    pub rfc5424: bool,
    pub msg: &'a str,
}

/// The year for a date without one, as [`YearHint`] says.
pub fn infer_year(hint: YearHint, (mon, day, h, mi, s): IncompleteDate) -> i32 {
    match hint {
        YearHint::Year(y) => y,
        YearHint::Reference(r) => {
            let y = r.year();
            match Utc.with_ymd_and_hms(y, mon, day, h, mi, s).single() {
                // Written before the file was last modified; a date more than a
                // day later than that is from the previous year.
                Some(t) if t > r + Duration::days(1) => y - 1,
                _ => y,
            }
        }
    }
}

static NO_TIME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(\S+) ([^\s\[\]:]+)(?:\[(\d+)\])?: (.*)$").unwrap_or_else(|e| panic!("{e}"))
});

/// Reads the syslog header. None when the line has none.
pub fn parse_envelope(line: &str, hint: YearHint) -> Option<Envelope<'_>> {
    let get_year = move |d: IncompleteDate| infer_year(hint, d);
    match syslog_loose::parse_message_with_year_exact_tz(line, get_year, Some(Utc), Variant::Either)
    {
        Ok(m) if m.timestamp.is_some() => {
            let (mut host, mut app, mut msg) = (m.hostname, m.appname, m.msg);
            let mut procid = m.procid.map(|p| match p {
                ProcId::PID(n) => n.to_string(),
                ProcId::Name(s) => s.to_string(),
            });
            // "Mar  3 00:17:22 [sshd]: msg" is read as an empty tag with pid "sshd".
            if app == Some("") {
                procid = None;
                app = None;
                if let Some(i) = line.find(": ") {
                    let tag = line[..i].rsplit(' ').next().unwrap_or("");
                    app = Some(tag.trim_start_matches('[').trim_end_matches(']'));
                }
            }
            // "Jun 25 23:53:34 [sshd] User root ...": the tag is read as a host name.
            if let Some(h) = host.filter(|h| h.starts_with('[') && h.ends_with(']')) {
                if let Some(i) = line.find(h) {
                    msg = line[i + h.len()..].trim_start_matches(':').trim();
                    app = Some(&h[1..h.len() - 1]);
                    host = None;
                    procid = None;
                }
            }
            Some(Envelope {
                timestamp: m.timestamp,
                hostname: host.filter(|h| *h != "-"),
                appname: app.filter(|a| *a != "-"),
                procid,
                facility: m.facility.map(|f| f.as_str()),
                severity: m.severity.map(|s| s.as_str()),
                rfc5424: matches!(m.protocol, syslog_loose::Protocol::RFC5424(_)),
                msg,
            })
        }
        _ => {
            let c = NO_TIME.captures(line.trim())?;
            Some(Envelope {
                timestamp: None,
                hostname: c.get(1).map(|m| m.as_str()),
                appname: c.get(2).map(|m| m.as_str()),
                procid: c.get(3).map(|m| m.as_str().to_string()),
                facility: None,
                severity: None,
                rfc5424: false,
                msg: c.get(4).map_or("", |m| m.as_str()),
            })
        }
    }
}

/// Parses one auth.log line into a document (None: not a syslog line).
pub fn parse_line(line: &str, hint: YearHint) -> Option<Map<String, Value>> {
    let env = parse_envelope(line, hint)?;
    let mut doc = ecs::new_doc(Dataset::LinuxAuth.as_str());
    if let Some(t) = env.timestamp {
        set_str(&mut doc, "@timestamp", &ecs::rfc3339(&t));
    }
    if let Some(h) = env.hostname {
        set_str(&mut doc, "syslog.hostname", h);
        set_str(&mut doc, "host.name", h);
    }
    let program = env.appname.unwrap_or("");
    set_str(&mut doc, "syslog.appname", program);
    let name = program.split('(').next().unwrap_or(program);
    set_str(&mut doc, "process.name", name);
    if let Some(p) = &env.procid {
        set_str(&mut doc, "syslog.procid", p);
        if let Ok(pid) = p.parse::<u32>() {
            set(&mut doc, "process.pid", Value::from(pid));
        }
    }
    if let Some(f) = env.facility {
        set_str(&mut doc, "syslog.facility", f);
    }
    if let Some(s) = env.severity {
        set_str(&mut doc, "syslog.severity", s);
    }
    if env.rfc5424 {
        set_str(&mut doc, "syslog.version", "1");
    }
    set_str(&mut doc, "syslog.msg", env.msg);
    auth_msg::classify(program, env.msg, &mut doc);
    set_str(&mut doc, "message", line);
    ecs::add_related(&mut doc);
    Some(doc)
}

/// The `linux.auth` line parser.
pub struct LinuxAuthParser {
    year: YearHint,
}

impl LinuxAuthParser {
    pub fn new(year: YearHint) -> Self {
        LinuxAuthParser { year }
    }
}

impl Parser for LinuxAuthParser {
    fn dataset(&self) -> Dataset {
        Dataset::LinuxAuth
    }

    fn push_line(&mut self, line: &str, line_no: usize, out: &mut Output) {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            return;
        }
        out.push(match parse_line(line, self.year) {
            Some(doc) => Ok(Parsed {
                line: line_no,
                doc: Value::Object(doc),
            }),
            None => Err(ParseError::new(
                line_no,
                "a syslog line (`Mmm dd hh:mm:ss host prog[pid]: msg`, RFC 3339 or RFC 5424)",
                excerpt(line),
            )),
        });
    }

    fn flush(&mut self, _out: &mut Output) {}
}

#[cfg(test)]
#[path = "linux_auth_tests.rs"]
mod tests;
