//! Helpers to build ECS-shaped documents: nested objects addressed by dotted
//! paths, time stamps, addresses and transports.

use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde_json::{Map, Value};

/// Sets `path` (dotted: `source.ip`) in `doc`, creating nested objects.
/// A native value that is not an object where an object is needed is kept,
/// and the ECS field is then not set (returns false).
pub fn set(doc: &mut Map<String, Value>, path: &str, value: Value) -> bool {
    let mut cur = doc;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(part.to_string(), value);
            return true;
        }
        let entry = cur
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        match entry {
            Value::Object(m) => cur = m,
            _ => return false,
        }
    }
    false
}

/// Sets a string field unless `value` is empty.
pub fn set_str(doc: &mut Map<String, Value>, path: &str, value: &str) {
    if !value.is_empty() {
        set(doc, path, Value::String(value.to_string()));
    }
}

/// Sets a field only when it is not there yet.
pub fn set_default(doc: &mut Map<String, Value>, path: &str, value: Value) {
    if lookup_map(doc, path).is_none() {
        set(doc, path, value);
    }
}

/// Dotted lookup: a flat key with the whole path wins (`id.orig_h`), else the
/// nested path (`event.dataset`), trying flat keys at each level too.
pub fn lookup<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    match doc {
        Value::Object(m) => lookup_map(m, path),
        _ => None,
    }
}

pub fn lookup_map<'a>(doc: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = doc.get(path) {
        return Some(v);
    }
    // Try every split point, longest head first.
    let mut idx = path.len();
    while let Some(dot) = path[..idx].rfind('.') {
        let (head, tail) = (&path[..dot], &path[dot + 1..]);
        if let Some(Value::Object(m)) = doc.get(head) {
            if let Some(v) = lookup_map(m, tail) {
                return Some(v);
            }
        }
        idx = dot;
    }
    None
}

/// Lookup returning a string slice.
pub fn lookup_str<'a>(doc: &'a Value, path: &str) -> Option<&'a str> {
    lookup(doc, path).and_then(Value::as_str)
}

/// RFC 3339 UTC with as many fractional digits as needed.
pub fn rfc3339<Tz: TimeZone>(t: &DateTime<Tz>) -> String {
    t.with_timezone(&Utc)
        .to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Seconds since the epoch with an optional fraction (`1700000000.123`),
/// as written by auditd, Zeek and VPC flow logs.
pub fn epoch_to_rfc3339(s: &str) -> Option<String> {
    let (secs, frac) = match s.split_once('.') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    };
    if secs.is_empty()
        || secs.len() > 12
        || !secs.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: u32 = 0;
    for (i, b) in frac.bytes().take(9).enumerate() {
        nanos += u32::from(b - b'0') * 10u32.pow(8 - i as u32);
    }
    DateTime::from_timestamp(secs, nanos).map(|t| rfc3339(&t))
}

/// Parses an address; IPv4-mapped IPv6 (`::ffff:1.2.3.4`) becomes IPv4.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim_start_matches('[').trim_end_matches(']');
    s.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// Sets `<side>.address`, and `<side>.ip` when it is an IP address, else
/// `<side>.domain` when it looks like a host name.
pub fn set_address(doc: &mut Map<String, Value>, side: &str, addr: &str) {
    let addr = addr.trim();
    if addr.is_empty() || addr == "-" || addr == "?" {
        return;
    }
    set_str(doc, &format!("{side}.address"), addr);
    if let Some(ip) = parse_ip(addr) {
        set_str(doc, &format!("{side}.ip"), &ip.to_string());
    } else if addr
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    {
        set_str(doc, &format!("{side}.domain"), addr);
    }
}

/// Sets `<side>.port` from text when it is a port number.
pub fn set_port(doc: &mut Map<String, Value>, side: &str, port: &str) {
    if let Ok(p) = port.trim().parse::<u16>() {
        set(doc, &format!("{side}.port"), Value::from(p));
    }
}

/// IANA protocol number → ECS `network.transport` name.
pub fn transport_name(proto: u8) -> Option<&'static str> {
    Some(match proto {
        1 => "icmp",
        2 => "igmp",
        6 => "tcp",
        17 => "udp",
        41 => "ipv6",
        47 => "gre",
        50 => "esp",
        51 => "ah",
        58 => "ipv6-icmp",
        89 => "ospf",
        132 => "sctp",
        _ => return None,
    })
}

/// A new document with `event.dataset` set.
pub fn new_doc(dataset: &str) -> Map<String, Value> {
    let mut m = Map::new();
    set_str(&mut m, "event.dataset", dataset);
    m
}

/// Sets `event.category` (and `event.type` when given).
pub fn set_categories(doc: &mut Map<String, Value>, categories: &[&str], types: &[&str]) {
    if !categories.is_empty() {
        set(doc, "event.category", strings(categories));
    }
    if !types.is_empty() {
        set(doc, "event.type", strings(types));
    }
}

/// `success`, `failure` or `unknown`.
pub fn set_outcome(doc: &mut Map<String, Value>, outcome: Outcome) {
    set_str(doc, "event.outcome", outcome.as_str());
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Unknown,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Unknown => "unknown",
        }
    }
}

/// ECS `related.ip`, `related.user` and `related.hosts`: the distinct values
/// of the document's address, user and host fields, for pivoting.
pub fn add_related(doc: &mut Map<String, Value>) {
    let groups: [(&str, &[&str]); 3] = [
        ("related.ip", &["source.ip", "destination.ip"]),
        (
            "related.user",
            &[
                "user.name",
                "user.effective.name",
                "user.target.name",
                "user.audit.name",
            ],
        ),
        (
            "related.hosts",
            &["host.name", "source.domain", "destination.domain"],
        ),
    ];
    for (target, fields) in groups {
        let mut vals: Vec<Value> = Vec::new();
        for f in fields {
            if let Some(Value::String(s)) = lookup_map(doc, f) {
                let v = Value::String(s.clone());
                if !s.is_empty() && !vals.contains(&v) {
                    vals.push(v);
                }
            }
        }
        if !vals.is_empty() {
            set(doc, target, Value::Array(vals));
        }
    }
}

pub fn strings(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|s| Value::from(*s)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_and_lookup_nested_and_flat() {
        let mut m = Map::new();
        m.insert("id.orig_h".into(), json!("10.0.0.1"));
        set(&mut m, "source.ip", json!("10.0.0.1"));
        set(&mut m, "event.dataset", json!("zeek.conn"));
        let v = Value::Object(m);
        assert_eq!(lookup_str(&v, "id.orig_h"), Some("10.0.0.1"));
        assert_eq!(lookup_str(&v, "source.ip"), Some("10.0.0.1"));
        assert_eq!(v["event"]["dataset"], "zeek.conn");
        assert_eq!(lookup(&v, "source.port"), None);
    }

    #[test]
    fn set_keeps_native_scalar() {
        let mut m = Map::new();
        m.insert("user".into(), json!("bob"));
        assert!(!set(&mut m, "user.name", json!("x")));
        assert_eq!(m["user"], "bob");
    }

    #[test]
    fn epochs() {
        assert_eq!(
            epoch_to_rfc3339("1700000000.123").as_deref(),
            Some("2023-11-14T22:13:20.123Z")
        );
        assert_eq!(
            epoch_to_rfc3339("1700000000").as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
        assert_eq!(epoch_to_rfc3339("XXXXXXXXXX.XXXXXX"), None);
        assert_eq!(epoch_to_rfc3339("-1"), None);
        assert_eq!(epoch_to_rfc3339(""), None);
    }

    #[test]
    fn related_fields() {
        let mut m = Map::new();
        set_str(&mut m, "source.ip", "10.0.0.1");
        set_str(&mut m, "destination.ip", "10.0.0.1");
        set_str(&mut m, "user.name", "alice");
        set_str(&mut m, "user.effective.name", "root");
        add_related(&mut m);
        assert_eq!(m["related"]["ip"], serde_json::json!(["10.0.0.1"]));
        assert_eq!(m["related"]["user"], serde_json::json!(["alice", "root"]));
        assert!(m["related"].get("hosts").is_none());
    }

    #[test]
    fn addresses() {
        let mut m = Map::new();
        set_address(&mut m, "source", "::ffff:1.2.3.4");
        assert_eq!(m["source"]["ip"], "1.2.3.4");
        set_address(&mut m, "destination", "example.com");
        assert_eq!(m["destination"]["domain"], "example.com");
        assert!(m["destination"].get("ip").is_none());
    }
}
