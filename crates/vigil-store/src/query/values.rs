//! Value helpers shared by the matcher and the index: globs, free-text tokens, dotted-path
//! lookup, address ranges and times.

use std::net::IpAddr;
use std::ops::Bound;

use serde_json::Value;

/// Glob match with `*`, `?` and `\` escapes.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<(char, bool)> = {
        let mut v = Vec::new();
        let mut it = pattern.chars();
        while let Some(c) = it.next() {
            if c == '\\' {
                if let Some(n) = it.next() {
                    v.push((n, true));
                }
            } else {
                v.push((c, false));
            }
        }
        v
    };
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && !p[pi].1 && p[pi].0 == '*' {
            star = Some(pi);
            pi += 1;
            mark = ti;
        } else if pi < p.len() && ((!p[pi].1 && p[pi].0 == '?') || p[pi].0 == t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && !p[pi].1 && p[pi].0 == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// The tokens of free text: alphanumeric runs, lowercased, under 40 bytes (as the index's).
pub fn tokens(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty() && t.len() < 40)
        .map(str::to_lowercase)
}

/// Values at a dotted path: nested objects, or (where the next segment is not a key) keys that
/// themselves contain dots; arrays are searched element by element.
pub fn lookup<'a>(doc: &'a Value, path: &str, out: &mut Vec<&'a Value>) {
    fn walk<'a>(v: &'a Value, path: &str, out: &mut Vec<&'a Value>) {
        if path.is_empty() {
            match v {
                Value::Array(items) => out.extend(items.iter().filter(|i| !i.is_null())),
                Value::Null => {}
                v => out.push(v),
            }
            return;
        }
        match v {
            Value::Object(m) => {
                // The next segment, and keys that span several segments (`a.b` in `a.b.c`).
                let first = path.split('.').next().unwrap_or(path);
                if let Some(child) = m.get(first) {
                    walk(child, path.get(first.len() + 1..).unwrap_or(""), out);
                } else if path.len() > first.len() {
                    let dotted = m.iter().filter(|(k, _)| {
                        k.len() > first.len()
                            && k.starts_with(first)
                            && k.as_bytes()[first.len()] == b'.'
                    });
                    for (k, child) in dotted {
                        if path == k.as_str() {
                            walk(child, "", out);
                        } else if path.starts_with(k.as_str())
                            && path.as_bytes().get(k.len()) == Some(&b'.')
                        {
                            walk(child, &path[k.len() + 1..], out);
                        } else {
                            continue;
                        }
                    }
                }
            }
            Value::Array(items) => {
                for i in items {
                    walk(i, path, out);
                }
            }
            _ => {}
        }
    }
    walk(doc, path, out);
}

pub(super) fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Keys whose values are not free text (ids, times, versions), or only repeat other fields
/// (the ECS copies of native fields).
pub fn is_free_text_key(key: &str) -> bool {
    !(matches!(
        key,
        "event"
            | "url"
            | "user_agent"
            | "orchestrator"
            | "related"
            | "source"
            | "destination"
            | "http"
            | "kind"
            | "apiVersion"
            | "level"
            | "stage"
            | "verb"
    ) || key == "auditID"
        || key == "uid"
        || key == "id"
        || key == "resourceVersion"
        || key == "@timestamp"
        || key == "managedFields"
        || key.ends_with("Timestamp")
        || key.ends_with("Time")
        || key == "timestamp")
}

/// The free-text strings of a document.
pub fn text_values(doc: &Value) -> Vec<&str> {
    fn walk<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::String(s) => out.push(s),
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Object(m) => {
                for (k, v) in m {
                    if is_free_text_key(k) {
                        walk(v, out);
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, &mut out);
    out
}

fn parse_ip_or_net(s: &str) -> Option<(IpAddr, u8)> {
    match s.split_once('/') {
        Some((ip, bits)) => {
            let ip: IpAddr = ip.parse().ok()?;
            let bits: u8 = bits.parse().ok()?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            (bits <= max).then_some((ip, bits))
        }
        None => {
            let ip: IpAddr = s.parse().ok()?;
            Some((ip, if ip.is_ipv4() { 32 } else { 128 }))
        }
    }
}

/// An address or CIDR block as an inclusive range of IPv6 (IPv4-mapped) addresses.
pub fn ip_range(s: &str) -> Option<(u128, u128)> {
    let (ip, bits) = parse_ip_or_net(s)?;
    let (v, bits) = match ip {
        IpAddr::V4(a) => (u128::from(a.to_ipv6_mapped()), bits + 96),
        IpAddr::V6(a) => (u128::from(a), bits),
    };
    let mask = if bits == 0 {
        0
    } else {
        u128::MAX << (128 - bits)
    };
    Some((v & mask, (v & mask) | !mask))
}

pub fn ip_value(s: &str) -> Option<u128> {
    Some(match s.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a),
    })
}

pub(super) fn cmp_in_range<T: PartialOrd>(v: &T, lo: &Bound<T>, hi: &Bound<T>) -> bool {
    let lo_ok = match lo {
        Bound::Unbounded => true,
        Bound::Included(l) => v >= l,
        Bound::Excluded(l) => v > l,
    };
    let hi_ok = match hi {
        Bound::Unbounded => true,
        Bound::Included(h) => v <= h,
        Bound::Excluded(h) => v < h,
    };
    lo_ok && hi_ok
}

pub(super) fn map_bound<T>(b: &Bound<String>, f: impl Fn(&str) -> Option<T>) -> Option<Bound<T>> {
    Some(match b {
        Bound::Unbounded => Bound::Unbounded,
        Bound::Included(v) => Bound::Included(f(v)?),
        Bound::Excluded(v) => Bound::Excluded(f(v)?),
    })
}

pub fn time_value(s: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros())
}
