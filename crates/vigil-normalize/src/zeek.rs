//! Zeek logs: TSV with `#` headers (`#separator`, `#fields`, `#types`,
//! `#unset_field`, `#empty_field`, `#set_separator`, `#path`, `#close`) and
//! JSON lines. The dataset is `zeek.<path>` (`zeek.conn` by default and for
//! JSON lines without `_path`). Values keep Zeek's names (`id.orig_h` is a
//! flat key); typed columns become JSON numbers, booleans and arrays; unset
//! (`-`) fields are left out.

use serde_json::{Map, Value};

use crate::ecs::{self, set, set_address, set_port, set_str};
use crate::{excerpt, Dataset, Output, ParseError, Parsed, Parser};

#[derive(Debug, Clone)]
struct Header {
    separator: String,
    set_separator: String,
    unset: String,
    empty: String,
    path: String,
    fields: Vec<String>,
    types: Vec<String>,
}

impl Default for Header {
    fn default() -> Self {
        Header {
            separator: "\t".into(),
            set_separator: ",".into(),
            unset: "-".into(),
            empty: "(empty)".into(),
            path: "conn".into(),
            fields: Vec::new(),
            types: Vec::new(),
        }
    }
}

/// `\x09` escapes in header values.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("\\x") {
        out.push_str(&rest[..i]);
        let hex = rest.get(i + 2..i + 4).unwrap_or("");
        match u8::from_str_radix(hex, 16) {
            Ok(b) if hex.len() == 2 => {
                out.push(char::from(b));
                rest = &rest[i + 4..];
            }
            _ => {
                out.push_str("\\x");
                rest = &rest[i + 2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The Zeek parser (TSV and JSON lines, switching per line).
#[derive(Default)]
pub struct ZeekParser {
    header: Header,
}

impl ZeekParser {
    pub fn new() -> Self {
        Self::default()
    }

    fn header_line(&mut self, line: &str) {
        if let Some(sep) = line.strip_prefix("#separator ") {
            self.header = Header {
                separator: unescape(sep.trim_end_matches(['\r', '\n'])),
                ..Header::default()
            };
            return;
        }
        let sep = self.header.separator.clone();
        let mut parts = line.splitn(2, sep.as_str());
        let key = parts.next().unwrap_or("");
        let val = parts.next().unwrap_or("");
        match key {
            "#set_separator" => self.header.set_separator = unescape(val),
            "#unset_field" => self.header.unset = val.to_string(),
            "#empty_field" => self.header.empty = val.to_string(),
            "#path" => self.header.path = val.to_string(),
            "#fields" => self.header.fields = val.split(sep.as_str()).map(str::to_string).collect(),
            "#types" => self.header.types = val.split(sep.as_str()).map(str::to_string).collect(),
            _ => {} // #open, #close, comments
        }
    }

    fn typed(&self, ty: &str, raw: &str) -> Value {
        let h = &self.header;
        if let Some(inner) = ty
            .strip_prefix("set[")
            .or_else(|| ty.strip_prefix("vector["))
            .and_then(|t| t.strip_suffix(']'))
        {
            if raw == h.empty {
                return Value::Array(Vec::new());
            }
            return Value::Array(
                raw.split(h.set_separator.as_str())
                    .map(|x| self.typed(inner, x))
                    .collect(),
            );
        }
        match ty {
            "count" | "port" | "int" => raw
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::from(raw)),
            "double" | "interval" => raw
                .parse::<f64>()
                .ok()
                .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
                .unwrap_or_else(|| Value::from(raw)),
            "bool" => match raw {
                "T" => Value::Bool(true),
                "F" => Value::Bool(false),
                _ => Value::from(raw),
            },
            _ => Value::from(raw),
        }
    }

    fn tsv_row(&self, line: &str, line_no: usize) -> Result<Map<String, Value>, ParseError> {
        let h = &self.header;
        if h.fields.is_empty() {
            return Err(ParseError::new(
                line_no,
                "a `#fields` header before the rows",
                excerpt(line),
            ));
        }
        let cols: Vec<&str> = line.split(h.separator.as_str()).collect();
        if cols.len() != h.fields.len() {
            return Err(ParseError::new(
                line_no,
                format!("{} columns as `#fields` says", h.fields.len()),
                format!("{} columns: {}", cols.len(), excerpt(line)),
            ));
        }
        let mut doc = Map::new();
        for (i, (name, raw)) in h.fields.iter().zip(cols).enumerate() {
            if raw == h.unset {
                continue;
            }
            let ty = h.types.get(i).map_or("string", String::as_str);
            doc.insert(name.clone(), self.typed(ty, raw));
        }
        Ok(doc)
    }
}

/// Adds the ECS fields to a Zeek record (TSV row or JSON object).
pub fn normalize(mut doc: Map<String, Value>, path: &str) -> Map<String, Value> {
    let text = |doc: &Map<String, Value>, k: &str| match doc.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    set_str(&mut doc, "event.dataset", &format!("zeek.{path}"));
    if let Some(ts) = text(&doc, "ts") {
        if let Some(t) = ecs::epoch_to_rfc3339(&ts) {
            set_str(&mut doc, "@timestamp", &t);
        } else if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&ts) {
            set_str(&mut doc, "@timestamp", &ecs::rfc3339(&t));
        }
    }
    for (side, h, p) in [
        ("source", "id.orig_h", "id.orig_p"),
        ("destination", "id.resp_h", "id.resp_p"),
    ] {
        if let Some(a) = text(&doc, h) {
            set_address(&mut doc, side, &a);
        }
        if let Some(port) = text(&doc, p) {
            set_port(&mut doc, side, &port);
        }
    }
    if let Some(proto) = text(&doc, "proto") {
        set_str(&mut doc, "network.transport", &proto.to_ascii_lowercase());
    }
    if let Some(s) = text(&doc, "service") {
        set_str(&mut doc, "network.protocol", &s);
    }
    let (cat, ty): (&[&str], &[&str]) = match path {
        "conn" => (&["network"], &["connection"]),
        "dns" | "http" | "ssl" | "ssh" | "ftp" | "smtp" | "dhcp" => (&["network"], &["protocol"]),
        _ => (&["network"], &["info"]),
    };
    ecs::set_categories(&mut doc, cat, ty);
    if path == "conn" {
        set_str(&mut doc, "event.action", "connection");
        // Rejected or never answered: S0, REJ, RSTO*, RSTR*.
        let outcome = match text(&doc, "conn_state").as_deref() {
            Some("SF" | "S1" | "S2" | "S3") => "success",
            Some("REJ" | "S0") => "failure",
            _ => "unknown",
        };
        set_str(&mut doc, "event.outcome", outcome);
    } else {
        set_str(&mut doc, "event.action", path);
        set_str(&mut doc, "event.outcome", "unknown");
    }
    if let Some(Value::Number(n)) = doc.get("orig_bytes").cloned() {
        set(&mut doc, "source.bytes", Value::Number(n));
    }
    if let Some(Value::Number(n)) = doc.get("resp_bytes").cloned() {
        set(&mut doc, "destination.bytes", Value::Number(n));
    }
    ecs::add_related(&mut doc);
    doc
}

impl Parser for ZeekParser {
    fn dataset(&self) -> Dataset {
        Dataset::ZeekConn
    }

    fn push_line(&mut self, line: &str, line_no: usize, out: &mut Output) {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            return;
        }
        if line.starts_with('#') {
            self.header_line(line);
            return;
        }
        let parsed = if line.trim_start().starts_with('{') {
            match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(m)) => {
                    let path = m
                        .get("_path")
                        .and_then(Value::as_str)
                        .unwrap_or("conn")
                        .to_string();
                    Ok(normalize(m, &path))
                }
                _ => Err(ParseError::new(
                    line_no,
                    "a Zeek JSON object",
                    excerpt(line),
                )),
            }
        } else {
            self.tsv_row(line, line_no)
                .map(|m| normalize(m, &self.header.path.clone()))
        };
        out.push(parsed.map(|doc| Parsed {
            line: line_no,
            doc: Value::Object(doc),
        }));
    }

    fn flush(&mut self, _out: &mut Output) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecs::lookup;
    use crate::parse_all;
    use serde_json::json;

    const TSV: &str = "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\tlocal_orig\ttunnel_parents\tconn_state\n#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tbool\tset[string]\tstring\n1700000000.5\tC1\t10.0.0.1\t5353\t224.0.0.251\t5353\tudp\tdns\t-\tT\t(empty)\tS0\n1700000001\tC2\tfe80::1\t80\t10.0.0.2\t443\ttcp\t-\t0.25\tF\tCa,Cb\tSF\nbroken\trow\n#close\t2024-01-01-00-00-00\n";

    #[test]
    fn tsv_rows() {
        let out = parse_all(&mut ZeekParser::new(), TSV);
        assert_eq!(out.len(), 3);
        let v = &out[0].as_ref().unwrap().doc;
        assert_eq!(v["id.orig_h"], "10.0.0.1");
        assert_eq!(v["id.orig_p"], 5353);
        assert_eq!(v["local_orig"], true);
        assert_eq!(v["tunnel_parents"], json!([]));
        assert!(v.get("duration").is_none());
        assert_eq!(v["@timestamp"], "2023-11-14T22:13:20.500Z");
        assert_eq!(lookup(v, "source.ip").unwrap(), "10.0.0.1");
        assert_eq!(lookup(v, "destination.port").unwrap(), 5353);
        assert_eq!(lookup(v, "network.transport").unwrap(), "udp");
        assert_eq!(lookup(v, "event.dataset").unwrap(), "zeek.conn");
        assert_eq!(lookup(v, "event.outcome").unwrap(), "failure");
        let v = &out[1].as_ref().unwrap().doc;
        assert_eq!(v["tunnel_parents"], json!(["Ca", "Cb"]));
        assert_eq!(v["duration"], 0.25);
        assert_eq!(lookup(v, "source.ip").unwrap(), "fe80::1");
        let e = out[2].as_ref().unwrap_err();
        assert_eq!(e.line, 10);
        assert!(e.expected.contains("12 columns"));
    }

    #[test]
    fn json_lines() {
        let line = r#"{"_path":"conn","ts":1700000000.25,"uid":"C1","id.orig_h":"192.0.2.1","id.orig_p":5000,"id.resp_h":"192.0.2.2","id.resp_p":22,"proto":"tcp","conn_state":"SF"}"#;
        let out = parse_all(&mut ZeekParser::new(), line);
        let v = &out[0].as_ref().unwrap().doc;
        assert_eq!(lookup(v, "source.port").unwrap(), 5000);
        assert_eq!(lookup(v, "destination.ip").unwrap(), "192.0.2.2");
        assert_eq!(v["@timestamp"], "2023-11-14T22:13:20.250Z");
        assert_eq!(lookup(v, "event.outcome").unwrap(), "success");
        let out = parse_all(&mut ZeekParser::new(), "{not json");
        assert!(out[0].is_err());
    }
}
