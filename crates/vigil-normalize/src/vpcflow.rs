//! `aws.vpcflow`: VPC flow log records, space separated. The default (v2)
//! field order is used until a header line (`version account-id ...`, or the
//! `${version} ${account-id} ...` format string) gives another. `-` is an
//! unset field; NODATA/SKIPDATA records are kept (no addresses).

use serde_json::{Map, Value};

use crate::ecs::{self, set, set_address, set_categories, set_port, set_str};
use crate::{excerpt, Dataset, Output, ParseError, Parsed, Parser};

pub const DEFAULT_FIELDS: [&str; 14] = [
    "version",
    "account-id",
    "interface-id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log-status",
];

/// Field names AWS documents (v2–v8); a header line must use only these.
const KNOWN: &[&str] = &[
    "version",
    "account-id",
    "interface-id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log-status",
    "vpc-id",
    "subnet-id",
    "instance-id",
    "tcp-flags",
    "type",
    "pkt-srcaddr",
    "pkt-dstaddr",
    "region",
    "az-id",
    "sublocation-type",
    "sublocation-id",
    "pkt-src-aws-service",
    "pkt-dst-aws-service",
    "flow-direction",
    "traffic-path",
    "ecs-cluster-arn",
    "ecs-cluster-name",
    "ecs-container-instance-arn",
    "ecs-container-instance-id",
    "ecs-container-id",
    "ecs-second-container-id",
    "ecs-service-name",
    "ecs-task-definition-arn",
    "ecs-task-arn",
    "ecs-task-id",
    "reject-reason",
];

const NUMERIC: &[&str] = &[
    "version",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "tcp-flags",
    "traffic-path",
];

fn header_name(tok: &str) -> &str {
    tok.trim_start_matches("${").trim_end_matches('}')
}

/// True when the line is a header naming known fields.
pub fn is_header(line: &str) -> bool {
    let toks: Vec<&str> = line.split_whitespace().collect();
    !toks.is_empty() && toks.iter().all(|t| KNOWN.contains(&header_name(t)))
}

pub struct VpcFlowParser {
    fields: Vec<String>,
}

impl Default for VpcFlowParser {
    fn default() -> Self {
        Self::new()
    }
}

impl VpcFlowParser {
    pub fn new() -> Self {
        VpcFlowParser {
            fields: DEFAULT_FIELDS.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// A parser for a custom format (`${version} ${vpc-id} ...` or names).
    pub fn with_format(format: &str) -> Self {
        VpcFlowParser {
            fields: format
                .split_whitespace()
                .map(|t| header_name(t).to_string())
                .collect(),
        }
    }
}

/// ECS fields of one record.
pub fn normalize(mut doc: Map<String, Value>) -> Map<String, Value> {
    let text = |doc: &Map<String, Value>, k: &str| match doc.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    set_str(&mut doc, "event.dataset", Dataset::AwsVpcFlow.as_str());
    if let Some(t) = text(&doc, "start").and_then(|s| ecs::epoch_to_rfc3339(&s)) {
        set_str(&mut doc, "@timestamp", &t);
        set_str(&mut doc, "event.start", &t);
    }
    if let Some(t) = text(&doc, "end").and_then(|s| ecs::epoch_to_rfc3339(&s)) {
        set_str(&mut doc, "event.end", &t);
    }
    for (side, a, p) in [
        ("source", "srcaddr", "srcport"),
        ("destination", "dstaddr", "dstport"),
    ] {
        if let Some(addr) = text(&doc, a) {
            set_address(&mut doc, side, &addr);
        }
        if let Some(port) = text(&doc, p) {
            set_port(&mut doc, side, &port);
        }
    }
    if let Some(Value::Number(n)) = doc.get("protocol").cloned() {
        set(&mut doc, "network.iana_number", Value::from(n.to_string()));
        if let Some(t) = n
            .as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .and_then(ecs::transport_name)
        {
            set_str(&mut doc, "network.transport", t);
        }
    }
    for (src, dst) in [("bytes", "network.bytes"), ("packets", "network.packets")] {
        if let Some(Value::Number(n)) = doc.get(src).cloned() {
            set(&mut doc, dst, Value::Number(n));
        }
    }
    if let Some(a) = text(&doc, "account-id") {
        set_str(&mut doc, "cloud.account.id", &a);
    }
    if let Some(a) = text(&doc, "instance-id") {
        set_str(&mut doc, "cloud.instance.id", &a);
    }
    if let Some(a) = text(&doc, "region") {
        set_str(&mut doc, "cloud.region", &a);
    }
    set_str(&mut doc, "cloud.provider", "aws");
    set_str(&mut doc, "event.action", "network_flow");
    let (outcome, ty): (&str, &[&str]) = match text(&doc, "action").as_deref() {
        Some("ACCEPT") => ("success", &["connection", "allowed"]),
        Some("REJECT") => ("failure", &["connection", "denied"]),
        _ => ("unknown", &["info"]),
    };
    set_str(&mut doc, "event.outcome", outcome);
    set_categories(&mut doc, &["network"], ty);
    ecs::add_related(&mut doc);
    doc
}

impl Parser for VpcFlowParser {
    fn dataset(&self) -> Dataset {
        Dataset::AwsVpcFlow
    }

    fn push_line(&mut self, line: &str, line_no: usize, out: &mut Output) {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            return;
        }
        if is_header(line) {
            *self = VpcFlowParser::with_format(line);
            return;
        }
        let toks: Vec<&str> = line.split_whitespace().collect();
        if toks.len() != self.fields.len() {
            out.push(Err(ParseError::new(
                line_no,
                format!(
                    "{} space-separated fields ({} ...)",
                    self.fields.len(),
                    self.fields[..self.fields.len().min(3)].join(" ")
                ),
                format!("{} fields: {}", toks.len(), excerpt(line)),
            )));
            return;
        }
        let mut doc = Map::new();
        for (name, raw) in self.fields.iter().zip(toks) {
            if raw == "-" {
                continue;
            }
            let v = if NUMERIC.contains(&name.as_str()) {
                match raw.parse::<u64>() {
                    Ok(n) => Value::from(n),
                    Err(_) => {
                        out.push(Err(ParseError::new(
                            line_no,
                            format!("a number for {name}"),
                            excerpt(raw),
                        )));
                        return;
                    }
                }
            } else {
                Value::from(raw)
            };
            doc.insert(name.clone(), v);
        }
        let mut doc = normalize(doc);
        set_str(&mut doc, "message", line);
        out.push(Ok(Parsed {
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

    #[test]
    fn default_v2() {
        let text = "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK\n\
2 123456789010 eni-1235b8ca123456789 172.31.9.69 172.31.9.12 49761 3389 6 20 4249 1418530010 1418530070 REJECT OK\n\
2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA\n\
2 123456789010 eni-1 1.1.1.1 2.2.2.2 1 2 17 x 5 6 7 ACCEPT OK\n\
2 too few\n";
        let out = parse_all(&mut VpcFlowParser::new(), text);
        assert_eq!(out.len(), 5);
        let v = &out[0].as_ref().unwrap().doc;
        assert_eq!(v["srcaddr"], "172.31.16.139");
        assert_eq!(v["account-id"], "123456789010");
        assert_eq!(lookup(v, "source.ip").unwrap(), "172.31.16.139");
        assert_eq!(lookup(v, "destination.port").unwrap(), 22);
        assert_eq!(lookup(v, "network.transport").unwrap(), "tcp");
        assert_eq!(lookup(v, "event.outcome").unwrap(), "success");
        assert_eq!(v["@timestamp"], "2014-12-14T04:06:50Z");
        let v = &out[1].as_ref().unwrap().doc;
        assert_eq!(lookup(v, "event.outcome").unwrap(), "failure");
        let v = &out[2].as_ref().unwrap().doc;
        assert_eq!(v["log-status"], "NODATA");
        assert!(lookup(v, "source.ip").is_none());
        assert_eq!(lookup(v, "event.outcome").unwrap(), "unknown");
        assert!(out[3].as_ref().unwrap_err().expected.contains("packets"));
        assert_eq!(out[4].as_ref().unwrap_err().line, 5);
    }

    #[test]
    fn custom_header() {
        let text = "version vpc-id srcaddr dstaddr srcport dstport protocol action log-status pkt-srcaddr\n\
5 vpc-1 10.0.0.1 10.0.0.2 5 53 17 ACCEPT OK 10.0.0.9\n";
        let out = parse_all(&mut VpcFlowParser::new(), text);
        assert_eq!(out.len(), 1);
        let v = &out[0].as_ref().unwrap().doc;
        assert_eq!(v["vpc-id"], "vpc-1");
        assert_eq!(v["pkt-srcaddr"], "10.0.0.9");
        assert_eq!(lookup(v, "network.transport").unwrap(), "udp");
        let p = VpcFlowParser::with_format("${version} ${srcaddr}");
        assert_eq!(p.fields, vec!["version", "srcaddr"]);
    }
}
