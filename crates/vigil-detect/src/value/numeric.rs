//! Numeric and time comparisons: CIDR networks, numbers and numeric strings, timestamps
//! (RFC 3339 or epoch) and their time parts (`minute` ... `year`), as the `cidr`, `gt`/`gte`/
//! `lt`/`lte` and time-part modifiers and plain numbers compare them.

use std::net::IpAddr;

use chrono::{Datelike, Timelike};
use serde_json::Value;

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub(super) net: IpAddr,
    pub(super) prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = a.trim().parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|&p| p <= max)?,
            None => max,
        };
        Some(Cidr { net, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.net, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            (_, ip) => ip,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                (u32::from(n) & mask) == (u32::from(a) & mask)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                (u128::from(n) & mask) == (u128::from(a) & mask)
            }
            _ => false,
        }
    }
}

pub(super) fn numeric_text(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty()
        || !t
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.'))
    {
        return None;
    }
    t.parse().ok()
}

pub(super) fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => numeric_text(s),
        _ => None,
    }
}

/// Parses a timestamp: RFC 3339 text, or epoch seconds / milliseconds (numbers above 10^11 are
/// taken as milliseconds).
pub fn parse_time_ms(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s.trim())
            .ok()
            .map(|t| t.timestamp_millis())
            .or_else(|| numeric_text(s).map(epoch_ms)),
        Value::Number(n) => n.as_f64().map(epoch_ms),
        _ => None,
    }
}

pub(super) fn epoch_ms(x: f64) -> i64 {
    if x.abs() > 1e11 {
        x as i64
    } else {
        (x * 1000.0) as i64
    }
}

impl TimePart {
    pub(super) fn of(self, ms: i64) -> Option<f64> {
        let t = chrono::DateTime::from_timestamp_millis(ms)?;
        Some(match self {
            TimePart::Minute => t.minute() as f64,
            TimePart::Hour => t.hour() as f64,
            TimePart::Day => t.day() as f64,
            TimePart::Week => t.iso_week().week() as f64,
            TimePart::Month => t.month() as f64,
            TimePart::Year => t.year() as f64,
        })
    }
}
