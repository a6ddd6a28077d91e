//! One audit.log line: `[node=N ]type=T msg=audit(SECS.MS:SERIAL): k=v ...`,
//! with the ENRICHED format's `\x1d`-separated interpreted fields.

/// One audit record, values unquoted and hex-decoded where auditd encodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub node: Option<String>,
    pub rtype: String,
    /// `1700000000.123` as written.
    pub time: String,
    pub serial: u64,
    /// In order of appearance; `msg='...'` contents are flattened in.
    pub fields: Vec<(String, String)>,
    /// ENRICHED-format fields (`AUID="root"`), after the GS separator.
    pub enriched: Vec<(String, String)>,
}

impl Record {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn enriched(&self, key: &str) -> Option<&str> {
        self.enriched
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Fields whose unquoted value is hex-encoded text (auditd's
/// `audit_log_untrustedstring`).
const ENCODED: &[&str] = &[
    "exe",
    "comm",
    "cwd",
    "name",
    "path",
    "proctitle",
    "cmd",
    "acct",
    "key",
    "data",
    "ocomm",
    "new-disk",
    "old-disk",
    "dir",
    "file",
    "grp",
    "new_group",
    "old_group",
    "root_dir",
    "vm",
    "watch",
];

fn is_hex_text(v: &str) -> bool {
    !v.is_empty() && (v.len() & 1) == 0 && v.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Hex → text (lossy UTF-8). None if not hex.
pub fn decode_hex(v: &str) -> Option<String> {
    if !is_hex_text(v) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..v.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&v[i..i + 2], 16).ok())
        .collect();
    Some(String::from_utf8_lossy(&bytes?).into_owned())
}

fn execve_arg(key: &str) -> bool {
    let Some(rest) = key.strip_prefix('a') else {
        return false;
    };
    let num = rest.split('[').next().unwrap_or("");
    !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) && !rest.ends_with("_len")
}

/// Parses one line. The error says what was expected.
pub fn parse_record(line: &str) -> Result<Record, &'static str> {
    let mut s = line.trim();
    let mut node = None;
    if let Some(rest) = s.strip_prefix("node=") {
        let (n, r) = rest.split_once(' ').ok_or("`type=` after `node=`")?;
        node = Some(n.to_string());
        s = r.trim_start();
    }
    let rest = s
        .strip_prefix("type=")
        .ok_or("`type=TYPE msg=audit(...)`")?;
    let (rtype, rest) = rest.split_once(' ').ok_or("`msg=audit(` after the type")?;
    if rtype.is_empty()
        || !rtype
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err("a record type name");
    }
    let rest = rest
        .trim_start()
        .strip_prefix("msg=audit(")
        .ok_or("`msg=audit(SECS.MS:SERIAL)`")?;
    let (stamp, body) = rest.split_once(')').ok_or("`)` closing msg=audit(")?;
    let (time, serial) = stamp
        .split_once(':')
        .ok_or("`SECS.MS:SERIAL` in msg=audit()")?;
    let serial: u64 = serial.parse().map_err(|_| "a numeric serial")?;
    if time.is_empty() || !time.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err("a numeric time in msg=audit()");
    }
    let body = body.strip_prefix(':').unwrap_or(body);
    let (body, enriched_text) = match body.split_once('\x1d') {
        Some((b, e)) => (b, Some(e)),
        None => (body, None),
    };
    let mut fields = Vec::new();
    let body = avc_prefix(body, &mut fields);
    parse_kv(body, &mut fields);
    for (k, v) in fields.iter_mut() {
        let decode = (ENCODED.contains(&k.as_str()) || (rtype == "EXECVE" && execve_arg(k)))
            && v.starts_with('\u{0}');
        if decode {
            // Marked unquoted by parse_kv: decode when it is hex text.
            let raw = v.trim_start_matches('\u{0}').to_string();
            *v = decode_hex(&raw).unwrap_or(raw);
        }
        if k == "proctitle" {
            *v = v.trim_end_matches('\u{0}').replace('\u{0}', " ");
        }
    }
    for (_, v) in fields.iter_mut() {
        if let Some(r) = v.strip_prefix('\u{0}') {
            *v = r.to_string();
        }
    }
    if rtype == "SOCKADDR" {
        let saddr = fields
            .iter()
            .find(|(k, _)| k == "saddr")
            .map(|(_, v)| v.clone());
        match saddr.as_deref().and_then(decode_sockaddr) {
            Some((path, None)) => fields.push(("path".into(), path)),
            Some((addr, Some(port))) => {
                fields.push(("addr".into(), addr));
                fields.push(("port".into(), port.to_string()));
            }
            None => {}
        }
    }
    let mut enriched = Vec::new();
    if let Some(e) = enriched_text {
        parse_kv(e, &mut enriched);
        for (_, v) in enriched.iter_mut() {
            if let Some(r) = v.strip_prefix('\u{0}') {
                *v = r.to_string();
            }
        }
    }
    Ok(Record {
        node,
        rtype: rtype.to_string(),
        time: time.to_string(),
        serial,
        fields,
        enriched,
    })
}

/// `saddr` hex of a sockaddr: (address, port) for AF_INET/AF_INET6, the
/// path for AF_UNIX.
pub fn decode_sockaddr(hex: &str) -> Option<(String, Option<u16>)> {
    let b: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    let family = u16::from_le_bytes([*b.first()?, *b.get(1)?]);
    let port = || Some(u16::from_be_bytes([*b.get(2)?, *b.get(3)?]));
    match family {
        2 => {
            let a: [u8; 4] = b.get(4..8)?.try_into().ok()?;
            Some((std::net::Ipv4Addr::from(a).to_string(), port()))
        }
        10 => {
            let a: [u8; 16] = b.get(8..24)?.try_into().ok()?;
            Some((
                std::net::Ipv6Addr::from(a).to_canonical().to_string(),
                port(),
            ))
        }
        1 => {
            let path: Vec<u8> = b
                .get(2..)?
                .iter()
                .copied()
                .take_while(|c| *c != 0)
                .collect();
            Some((String::from_utf8_lossy(&path).into_owned(), None))
        }
        _ => None,
    }
}

/// SELinux `avc:  denied  { read write } for  ...` → seresult, seperms.
fn avc_prefix<'a>(body: &'a str, fields: &mut Vec<(String, String)>) -> &'a str {
    let t = body.trim_start();
    let Some(rest) = t.strip_prefix("avc:") else {
        return body;
    };
    let rest = rest.trim_start();
    let Some((result, rest)) = rest.split_once(char::is_whitespace) else {
        return body;
    };
    let rest = rest.trim_start();
    let Some(rest) = rest.strip_prefix('{') else {
        return body;
    };
    let Some((perms, rest)) = rest.split_once('}') else {
        return body;
    };
    fields.push(("seresult".into(), result.to_string()));
    let perms: Vec<&str> = perms.split_whitespace().collect();
    fields.push(("seperms".into(), perms.join(",")));
    let rest = rest.trim_start();
    rest.strip_prefix("for").unwrap_or(rest)
}

/// `k=v k="quoted" k='nested k=v' bare words`. Unquoted values are marked
/// with a leading NUL so that the caller knows they may be hex-encoded.
fn parse_kv(s: &str, out: &mut Vec<(String, String)>) {
    let mut rest = s;
    let mut prefix: Option<&str> = None;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        if rest.is_empty() {
            break;
        }
        let tok_end = rest
            .find(|c: char| c.is_whitespace() || c == '=')
            .unwrap_or(rest.len());
        let key = rest[..tok_end].trim_start_matches('(');
        if !rest[tok_end..].starts_with('=') {
            // A bare word: "old auid=1 new auid=2" prefixes the next key.
            prefix = matches!(key, "old" | "new").then_some(key);
            rest = &rest[tok_end..];
            continue;
        }
        let after = &rest[tok_end + 1..];
        let (value, next, quoted) = match after.chars().next() {
            Some(q @ ('"' | '\'')) => match after[1..].find(q) {
                Some(end) => (&after[1..1 + end], &after[end + 2..], Some(q)),
                None => (&after[1..], "", Some(q)),
            },
            _ => {
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                (&after[..end], &after[end..], None)
            }
        };
        rest = next;
        let key = match prefix.take() {
            Some(p) => format!("{p}_{key}"),
            None => key.to_string(),
        };
        if key.is_empty() {
            continue;
        }
        match quoted {
            Some('\'') if key == "msg" && value.contains('=') => parse_kv(value, out),
            Some(_) => out.push((key, value.to_string())),
            None => {
                // A stray closing quote (`key=6578...74"`) is not part of the value.
                let mut v = value.trim_end_matches(',').trim_end_matches('"');
                if v.ends_with(')') && v.matches(')').count() > v.matches('(').count() {
                    v = &v[..v.len() - 1];
                }
                out.push((key, format!("\u{0}{v}")));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_record() {
        let r = parse_record(r#"node=web1 type=SYSCALL msg=audit(1700000000.123:456): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=2 comm="bash" exe="/usr/bin/bash" key=(null)"#).unwrap();
        assert_eq!(r.node.as_deref(), Some("web1"));
        assert_eq!(r.rtype, "SYSCALL");
        assert_eq!(r.time, "1700000000.123");
        assert_eq!(r.serial, 456);
        assert_eq!(r.get("comm"), Some("bash"));
        assert_eq!(r.get("arch"), Some("c000003e"));
        assert_eq!(r.get("key"), Some("(null)"));
    }

    #[test]
    fn hex_and_nested_msg() {
        let r = parse_record("type=USER_LOGIN msg=audit(1492896301.818:19955): pid=12635 uid=0 msg='op=login acct=28696E76616C6964207573657229 exe=\"/usr/sbin/sshd\" hostname=? addr=179.38.151.221 terminal=sshd res=failed'").unwrap();
        assert_eq!(r.get("acct"), Some("(invalid user)"));
        assert_eq!(r.get("addr"), Some("179.38.151.221"));
        assert_eq!(r.get("res"), Some("failed"));
        assert_eq!(r.get("msg"), None);
        let r = parse_record(
            "type=EXECVE msg=audit(1.0:7): argc=3 a0=\"ls\" a1=2D6C20612062 a2=\"123\"",
        )
        .unwrap();
        assert_eq!(r.get("a1"), Some("-l a b"));
        assert_eq!(r.get("a2"), Some("123"));
        let r = parse_record("type=PROCTITLE msg=audit(1.0:7): proctitle=6C73002D6C").unwrap();
        assert_eq!(r.get("proctitle"), Some("ls -l"));
        // SYSCALL a0..a3 are numbers, not text.
        let r = parse_record("type=SYSCALL msg=audit(1.0:7): a0=4142").unwrap();
        assert_eq!(r.get("a0"), Some("4142"));
    }

    #[test]
    fn old_new_avc_and_enriched() {
        let r = parse_record("type=LOGIN msg=audit(1170021601.343:296): login pid=13015 uid=0 old auid=4294967295 new auid=0").unwrap();
        assert_eq!(r.get("old_auid"), Some("4294967295"));
        assert_eq!(r.get("new_auid"), Some("0"));
        let r = parse_record("type=AVC msg=audit(1.0:293): avc:  denied  { read write } for  pid=13010 comm=\"pickup\"").unwrap();
        assert_eq!(r.get("seresult"), Some("denied"));
        assert_eq!(r.get("seperms"), Some("read,write"));
        assert_eq!(r.get("pid"), Some("13010"));
        let r = parse_record("type=SYSCALL msg=audit(1.0:8): uid=0 auid=1000\x1dARCH=x86_64 AUID=\"alice\" UID=\"root\"").unwrap();
        assert_eq!(r.enriched("AUID"), Some("alice"));
        assert_eq!(r.enriched("ARCH"), Some("x86_64"));
        let r = parse_record("type=USER_END msg=audit(1.0:9): user pid=1 msg='PAM: session close acct=root : exe=\"/usr/sbin/crond\" (hostname=?, addr=?, terminal=cron res=success)'").unwrap();
        assert_eq!(r.get("hostname"), Some("?"));
        assert_eq!(r.get("res"), Some("success"));
    }

    #[test]
    fn rejects() {
        assert!(parse_record("hello").is_err());
        assert!(parse_record("type=SYSCALL msg=audit(abc:1): x=1").is_err());
        assert!(parse_record("type=SYSCALL msg=audit(1.0:x): x=1").is_err());
        assert!(parse_record("type=SYSCALL msg=audit(1.0:1").is_err());
    }
}
