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
    /// The last dataset and file written, and their part of an alert: from `,"group":` to
    /// `"line":` (every alert of one input repeats it).
    origin: Option<(String, String, Vec<u8>)>,
    /// Scratch: the order in which `matched` is written.
    order: Vec<usize>,
}

impl<W: Write> JsonLines<W> {
    pub fn new(out: W) -> Self {
        JsonLines {
            out,
            count: 0,
            worst: 0,
            heads: Vec::new(),
            origin: None,
            order: Vec::new(),
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
        let origin = match &mut self.origin {
            Some((d, f, bytes)) if d == a.dataset && f == a.file => bytes,
            slot => {
                let mut bytes = b",\"group\":{},\"events\":[{\"dataset\":".to_vec();
                serde_json::to_writer(&mut bytes, a.dataset)?;
                bytes.extend_from_slice(b",\"file\":");
                serde_json::to_writer(&mut bytes, a.file)?;
                bytes.extend_from_slice(b",\"line\":");
                &mut slot
                    .insert((a.dataset.to_string(), a.file.to_string(), bytes))
                    .2
            }
        };
        let out = &mut self.out;
        out.write_all(head)?;
        serde_json::to_writer(&mut *out, a.time)?;
        out.write_all(origin)?;
        serde_json::to_writer(&mut *out, &a.line)?;
        out.write_all(b",\"id\":")?;
        serde_json::to_writer(&mut *out, &a.id)?;
        out.write_all(b"}],\"matched\":")?;
        write_matched(&mut *out, &a.matched, &mut self.order)?;
        out.write_all(b"}\n")?;
        Ok(())
    }
}

/// Writes `matched` as the alert's map serializes: sorted by field (byte order, as `String`
/// compares), the last of a duplicate field kept. Building that map cost more than writing it
/// (a tree of a few nodes, every key and value moved in, all dropped after).
fn write_matched<W: Write>(
    out: &mut W,
    matched: &[(String, Value)],
    order: &mut Vec<usize>,
) -> Result<()> {
    out.write_all(b"{")?;
    if let [only] = matched {
        write_entry(out, only)?;
    } else if !matched.is_empty() {
        order.clear();
        order.extend(0..matched.len());
        // Stable: among equal fields the last one matched comes last, and is the one kept.
        order.sort_by(|&i, &j| matched[i].0.cmp(&matched[j].0));
        let mut first = true;
        for (n, &i) in order.iter().enumerate() {
            let superseded = order
                .get(n + 1)
                .is_some_and(|&next| matched[next].0 == matched[i].0);
            if superseded {
                continue;
            }
            if !first {
                out.write_all(b",")?;
            }
            first = false;
            write_entry(out, &matched[i])?;
        }
    }
    out.write_all(b"}")?;
    Ok(())
}

fn write_entry<W: Write>(out: &mut W, (field, value): &(String, Value)) -> Result<()> {
    serde_json::to_writer(&mut *out, field)?;
    out.write_all(b":")?;
    serde_json::to_writer(&mut *out, value)?;
    Ok(())
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

    /// `single` and serde's serialization of the alert, over the same alerts.
    fn assert_written_as_serde(alerts: impl Fn(&AlertRule) -> Vec<SingleAlert<'_>>) {
        let rule = AlertRule {
            id: "r".into(),
            title: "t".into(),
            level: "low".into(),
            tags: vec![],
        };
        let mut sink = JsonLines::new(Vec::new());
        let mut want = Vec::new();
        for (a, b) in alerts(&rule).into_iter().zip(alerts(&rule)) {
            sink.single(a, None).unwrap();
            crate::output::write_json_line(&mut want, &b.into_alert()).unwrap();
        }
        assert_eq!(
            String::from_utf8(sink.out).unwrap(),
            String::from_utf8(want).unwrap()
        );
    }

    fn alert<'a>(
        rule: &'a AlertRule,
        file: &'a str,
        matched: Vec<(String, Value)>,
    ) -> SingleAlert<'a> {
        SingleAlert {
            rule_index: 0,
            rule,
            time: "t",
            dataset: "k8s.audit",
            file,
            line: usize::MAX,
            id: Some("\u{7f}\"\\/"),
            matched,
        }
    }

    #[test]
    fn matched_fields_are_sorted_escaped_and_the_last_duplicate_wins() {
        let pairs = |ps: &[(&str, Value)]| -> Vec<(String, Value)> {
            ps.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
        };
        let nested =
            serde_json::json!({"z": [1, 2.5, null, true], "a": {"\u{0}": "\t"}, "é": -0.0});
        assert_written_as_serde(|rule| {
            vec![
                alert(rule, "f", vec![]),
                alert(rule, "f", pairs(&[("only", Value::from("x"))])),
                // Duplicates: adjacent, apart, three times, and all of them.
                alert(
                    rule,
                    "f",
                    pairs(&[("b", 1.into()), ("b", 2.into()), ("a", 3.into())]),
                ),
                alert(
                    rule,
                    "f",
                    pairs(&[
                        ("b", 1.into()),
                        ("a", 2.into()),
                        ("b", 3.into()),
                        ("a", 4.into()),
                    ]),
                ),
                alert(
                    rule,
                    "f",
                    pairs(&[("k", 1.into()), ("k", 2.into()), ("k", 3.into())]),
                ),
                // Byte order: uppercase before lowercase, a prefix first, non-ASCII last, the
                // empty key before all.
                alert(
                    rule,
                    "g",
                    pairs(&[
                        ("objectRef.resource", "pods".into()),
                        ("objectRef", "o".into()),
                        ("Verb", "V".into()),
                        ("verb", "v".into()),
                        ("é", "e".into()),
                        ("", "empty".into()),
                        ("z\u{1}", "ctl".into()),
                        ("z", "z".into()),
                    ]),
                ),
                // Keys and values that need escaping, nested values.
                alert(
                    rule,
                    "a\"b\\c\n",
                    pairs(&[
                        ("q\"uote", "\u{1f}\u{2028}\\".into()),
                        ("back\\slash", nested.clone()),
                        (
                            "new\nline",
                            Value::Array(vec![nested.clone(), "</script>".into()]),
                        ),
                        ("q\"uote", 1e300.into()),
                    ]),
                ),
                // The origin's part changes with the file, and comes back.
                alert(
                    rule,
                    "f",
                    pairs(&[("x", u64::MAX.into()), ("y", i64::MIN.into())]),
                ),
            ]
        });
    }

    #[test]
    fn many_generated_matches_are_written_as_serde_writes_them() {
        // Few distinct keys, so that duplicates are common; a fixed generator keeps the test
        // repeatable.
        let keys = ["a", "b", "B", "a.b", "", "ä", "a\"", "b\u{0}"];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let cases: Vec<Vec<(String, Value)>> = (0..2000)
            .map(|_| {
                (0..next(9))
                    .map(|_| (keys[next(keys.len())].to_string(), Value::from(next(100))))
                    .collect()
            })
            .collect();
        assert_written_as_serde(|rule| cases.iter().map(|m| alert(rule, "f", m.clone())).collect());
    }
}
