//! Where the detector's alerts go. A single-event alert is handed over borrowed
//! ([`SingleAlert`]): the JSON-lines writer ([`JsonLines`]) prints it straight from the
//! detector's state with the rule's part serialized once per rule, instead of building an
//! [`Alert`] (rule strings, evidence, time cloned per alert) only to serialize it. The bytes are
//! those `serde_json` writes for the [`Alert`] (a test compares them).

use std::io::Write;

use anyhow::Result;
use serde_json::{Map, Value};
use vigil_model::alert::{level_rank, Alert, AlertRule, EvidenceRef};

/// A single-event alert, borrowed from the detector: what [`SingleAlert::into_alert`] makes.
pub struct SingleAlert<'a> {
    /// Index into the rule set's rules.
    pub rule_index: usize,
    pub rule: &'a AlertRule,
    pub time: &'a str,
    pub dataset: &'a str,
    pub file: &'a str,
    pub line: usize,
    pub id: Option<&'a str>,
    /// The match's fields and values, in match order (a later duplicate field wins).
    pub matched: Vec<(String, Value)>,
}

impl SingleAlert<'_> {
    pub fn into_alert(self) -> Alert {
        Alert {
            rule: self.rule.clone(),
            time: self.time.to_string(),
            group: Map::new(),
            events: vec![EvidenceRef {
                dataset: self.dataset.to_string(),
                file: self.file.to_string(),
                line: self.line,
                id: self.id.map(str::to_string),
            }],
            matched: self.matched.into_iter().collect(),
        }
    }
}

/// Takes alerts: any `FnMut(Alert, Option<&Value>)` does (single-event alerts are made into
/// [`Alert`]s for it); `doc` is the event's document when the detector keeps it.
pub trait AlertSink {
    fn alert(&mut self, alert: Alert, doc: Option<&Value>) -> Result<()>;

    fn single(&mut self, alert: SingleAlert<'_>, doc: Option<&Value>) -> Result<()> {
        self.alert(alert.into_alert(), doc)
    }
}

impl<F: FnMut(Alert, Option<&Value>) -> Result<()>> AlertSink for F {
    fn alert(&mut self, alert: Alert, doc: Option<&Value>) -> Result<()> {
        self(alert, doc)
    }
}

/// Writes alerts as JSON lines, counting them and the highest level seen.
pub struct JsonLines<W: Write> {
    pub out: W,
    pub count: u64,
    /// The highest [`level_rank`] written.
    pub worst: u8,
    /// Per rule index: `{"rule":{...},"time":` and the rule's level rank, made on first use.
    heads: Vec<Option<(Vec<u8>, u8)>>,
}

impl<W: Write> JsonLines<W> {
    pub fn new(out: W) -> Self {
        JsonLines {
            out,
            count: 0,
            worst: 0,
            heads: Vec::new(),
        }
    }
}

impl<W: Write> AlertSink for JsonLines<W> {
    fn alert(&mut self, alert: Alert, _: Option<&Value>) -> Result<()> {
        self.count += 1;
        self.worst = self.worst.max(level_rank(&alert.rule.level));
        serde_json::to_writer(&mut self.out, &alert)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    fn single(&mut self, a: SingleAlert<'_>, _: Option<&Value>) -> Result<()> {
        if self.heads.len() <= a.rule_index {
            self.heads.resize(a.rule_index + 1, None);
        }
        let (head, rank) = match &mut self.heads[a.rule_index] {
            Some(h) => h,
            slot => {
                let mut head = b"{\"rule\":".to_vec();
                serde_json::to_writer(&mut head, a.rule)?;
                head.extend_from_slice(b",\"time\":");
                slot.insert((head, level_rank(&a.rule.level)))
            }
        };
        self.count += 1;
        self.worst = self.worst.max(*rank);
        let out = &mut self.out;
        out.write_all(head)?;
        serde_json::to_writer(&mut *out, a.time)?;
        out.write_all(b",\"group\":{},\"events\":[{\"dataset\":")?;
        serde_json::to_writer(&mut *out, a.dataset)?;
        out.write_all(b",\"file\":")?;
        serde_json::to_writer(&mut *out, a.file)?;
        write!(out, ",\"line\":{},\"id\":", a.line)?;
        serde_json::to_writer(&mut *out, &a.id)?;
        out.write_all(b"}],\"matched\":")?;
        // As the alert's map: sorted by field, the last of a duplicate field kept.
        let matched: Map<String, Value> = a.matched.into_iter().collect();
        serde_json::to_writer(&mut *out, &matched)?;
        out.write_all(b"}\n")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_alerts_are_written_as_the_alert_serializes() {
        let rule = AlertRule {
            id: "r-1".into(),
            title: "A \"quoted\" title\n".into(),
            level: "high".into(),
            tags: vec!["attack.t1".into(), "x".into()],
        };
        let single = |id: Option<&'static str>| SingleAlert {
            rule_index: 3,
            rule: &rule,
            time: "2024-01-01T00:00:00Z",
            dataset: "k8s.audit",
            file: "a\\b.jsonl",
            line: 42,
            id,
            matched: vec![
                ("verb".into(), Value::from("create")),
                ("code".into(), Value::from(201)),
                ("verb".into(), Value::from("patch")),
            ],
        };
        let mut sink = JsonLines::new(Vec::new());
        let mut want = Vec::new();
        for id in [Some("a1"), None, Some("é\u{1}")] {
            sink.single(single(id), None).unwrap();
            crate::output::write_json_line(&mut want, &single(id).into_alert()).unwrap();
        }
        assert_eq!(
            String::from_utf8(sink.out).unwrap(),
            String::from_utf8(want).unwrap()
        );
        assert_eq!((sink.count, sink.worst), (3, 4));
    }
}
