//! Generic JSON lines normalized through a field-mapping file:
//!
//! ```yaml
//! dataset: myapp.audit            # becomes event.dataset
//! timestamp:
//!   field: meta.time              # source path (dots walk objects, numbers index arrays)
//!   format: rfc3339               # rfc3339 | epoch | epoch_millis | a strftime pattern (UTC unless %z)
//! fields:                         # ECS field: source path
//!   user.name: actor.login
//!   source.ip: client.addr
//!   event.action: action
//! constants:                      # ECS field: fixed value
//!   event.category: [web]
//! ```
//!
//! The source object stays as is; mapped ECS fields are added beside it.
//! `*.port`, `*.pid` and `*.bytes` targets become numbers, `event.category`
//! and `event.type` arrays.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::ecs::{self, set, set_str};
use crate::{excerpt, ConfigError, Dataset, Output, ParseError, Parsed, Parser};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonMapping {
    pub dataset: String,
    #[serde(default)]
    pub timestamp: Option<TimestampSpec>,
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    #[serde(default)]
    pub constants: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimestampSpec {
    pub field: String,
    #[serde(default = "default_format")]
    pub format: String,
}

fn default_format() -> String {
    "rfc3339".into()
}

impl JsonMapping {
    /// Reads a mapping file's text.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let m: JsonMapping =
            serde_norway::from_str(text).map_err(|e| ConfigError::Mapping(e.to_string()))?;
        if m.dataset.trim().is_empty() {
            return Err(ConfigError::Mapping("`dataset` is empty".into()));
        }
        if Dataset::BUILTIN.iter().any(|d| d.as_str() == m.dataset) {
            return Err(ConfigError::Mapping(format!(
                "`dataset: {}` is a built-in dataset; use its parser",
                m.dataset
            )));
        }
        Ok(m)
    }
}

/// Walks `a.b.0.c`: a flat key with the whole rest wins, numbers index arrays.
pub fn source_lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(found) = ecs::lookup(v, path) {
        return Some(found);
    }
    let (head, tail) = match path.split_once('.') {
        Some((h, t)) => (h, Some(t)),
        None => (path, None),
    };
    let next = match v {
        Value::Object(m) => m.get(head)?,
        Value::Array(a) => {
            let i: i64 = head.parse().ok()?;
            let i = if i < 0 { a.len() as i64 + i } else { i };
            a.get(usize::try_from(i).ok()?)?
        }
        _ => return None,
    };
    match tail {
        Some(t) => source_lookup(next, t),
        None => Some(next),
    }
}

fn parse_time(v: &Value, format: &str) -> Option<String> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    match format {
        "rfc3339" => DateTime::parse_from_rfc3339(&text)
            .ok()
            .map(|t| ecs::rfc3339(&t)),
        "epoch" => ecs::epoch_to_rfc3339(&text),
        "epoch_millis" => {
            let ms: f64 = text.parse().ok()?;
            if !ms.is_finite() {
                return None;
            }
            DateTime::<Utc>::from_timestamp_millis(ms as i64).map(|t| ecs::rfc3339(&t))
        }
        pattern => DateTime::parse_from_str(&text, pattern)
            .map(|t| ecs::rfc3339(&t))
            .or_else(|_| {
                NaiveDateTime::parse_from_str(&text, pattern).map(|t| ecs::rfc3339(&t.and_utc()))
            })
            .ok(),
    }
}

fn coerce(target: &str, v: Value) -> Value {
    let numeric = [".port", ".pid", ".bytes", ".packets"]
        .iter()
        .any(|s| target.ends_with(s));
    match v {
        Value::String(s) if numeric => s
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or(Value::String(s)),
        Value::String(s) if target == "event.category" || target == "event.type" => {
            Value::Array(vec![Value::String(s)])
        }
        other => other,
    }
}

pub struct JsonMappedParser {
    mapping: JsonMapping,
}

impl JsonMappedParser {
    pub fn new(mapping: JsonMapping) -> Self {
        JsonMappedParser { mapping }
    }

    /// Normalizes one JSON object.
    pub fn normalize(
        &self,
        mut doc: Map<String, Value>,
        line_no: usize,
    ) -> Result<Map<String, Value>, ParseError> {
        let src = Value::Object(doc.clone());
        set_str(&mut doc, "event.dataset", &self.mapping.dataset);
        if let Some(ts) = &self.mapping.timestamp {
            let raw = source_lookup(&src, &ts.field).ok_or_else(|| {
                ParseError::new(
                    line_no,
                    format!("the timestamp field `{}`", ts.field),
                    "missing",
                )
            })?;
            let t = parse_time(raw, &ts.format).ok_or_else(|| {
                ParseError::new(
                    line_no,
                    format!("a `{}` time in `{}`", ts.format, ts.field),
                    excerpt(&raw.to_string()),
                )
            })?;
            set_str(&mut doc, "@timestamp", &t);
        }
        for (target, path) in &self.mapping.fields {
            if let Some(v) = source_lookup(&src, path) {
                if !v.is_null() {
                    set(&mut doc, target, coerce(target, v.clone()));
                }
            }
        }
        for (target, v) in &self.mapping.constants {
            set(&mut doc, target, coerce(target, v.clone()));
        }
        ecs::add_related(&mut doc);
        Ok(doc)
    }
}

impl Parser for JsonMappedParser {
    fn dataset(&self) -> Dataset {
        Dataset::Json(self.mapping.dataset.clone())
    }

    fn push_line(&mut self, line: &str, line_no: usize, out: &mut Output) {
        if line.trim().is_empty() {
            return;
        }
        out.push(match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(m)) => self.normalize(m, line_no).map(|doc| Parsed {
                line: line_no,
                doc: Value::Object(doc),
            }),
            Ok(_) => Err(ParseError::new(line_no, "a JSON object", excerpt(line))),
            Err(e) => Err(ParseError::new(
                line_no,
                "a JSON object",
                format!("{e}: {}", excerpt(line)),
            )),
        });
    }

    fn flush(&mut self, _out: &mut Output) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecs::lookup;
    use crate::parse_all;
    use serde_json::json;

    const MAPPING: &str = "dataset: myapp.audit\ntimestamp:\n  field: meta.time\n  format: epoch_millis\nfields:\n  user.name: actor.login\n  source.ip: client.addrs.-1\n  source.port: client.port\n  event.action: action\nconstants:\n  event.category: [web]\n  event.outcome: unknown\n";

    #[test]
    fn maps_fields() {
        let m = JsonMapping::from_yaml(MAPPING).unwrap();
        let mut p = JsonMappedParser::new(m);
        assert_eq!(p.dataset().as_str(), "myapp.audit");
        let text = r#"{"meta":{"time":1700000000123},"actor":{"login":"eve"},"client":{"addrs":["10.0.0.1","192.0.2.5"],"port":"4443"},"action":"login"}
{"meta":{},"action":"x"}
{"meta":{"time":"soon"}}
[]"#;
        let out = parse_all(&mut p, text);
        let v = &out[0].as_ref().unwrap().doc;
        assert_eq!(v["@timestamp"], "2023-11-14T22:13:20.123Z");
        assert_eq!(lookup(v, "user.name").unwrap(), "eve");
        assert_eq!(lookup(v, "source.ip").unwrap(), "192.0.2.5");
        assert_eq!(lookup(v, "source.port").unwrap(), 4443);
        assert_eq!(lookup(v, "event.category").unwrap(), &json!(["web"]));
        assert_eq!(lookup(v, "event.dataset").unwrap(), "myapp.audit");
        assert_eq!(v["actor"]["login"], "eve");
        assert!(out[1].as_ref().unwrap_err().expected.contains("meta.time"));
        assert!(out[2].is_err());
        assert!(out[3].is_err());
    }

    #[test]
    fn strftime_and_bad_mappings() {
        let m = JsonMapping::from_yaml(
            "dataset: x.y\ntimestamp:\n  field: t\n  format: \"%Y-%m-%d %H:%M:%S\"\n",
        )
        .unwrap();
        let p = JsonMappedParser::new(m);
        let doc = p
            .normalize(
                json!({"t": "2024-01-02 03:04:05"})
                    .as_object()
                    .unwrap()
                    .clone(),
                1,
            )
            .unwrap();
        assert_eq!(doc["@timestamp"], "2024-01-02T03:04:05Z");
        assert!(JsonMapping::from_yaml("dataset: linux.auth\n").is_err());
        assert!(JsonMapping::from_yaml("datasett: a\n").is_err());
        assert!(JsonMapping::from_yaml("dataset: ''\n").is_err());
    }
}
