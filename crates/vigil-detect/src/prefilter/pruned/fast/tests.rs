//! The scanner answers as serde_json does whenever it answers, and answers for plain JSON.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::super::Tree;
use super::{parse, Bail};
use crate::event::FieldPath;

fn tree(paths: &[&str]) -> Tree {
    let ps: Vec<FieldPath> = paths.iter().map(|p| FieldPath::new(p)).collect();
    Tree::new(&ps.iter().collect::<Vec<_>>())
}

#[test]
fn answers_for_an_audit_event() {
    let raw = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request","auditID":"a-1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/shop/pods","verb":"create","user":{"username":"alice@example.com","groups":["dev","system:authenticated"]},"sourceIPs":["10.0.0.7"],"userAgent":"kubectl/v1.30.1 (linux/amd64)","objectRef":{"resource":"pods","namespace":"shop","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},"requestObject":{"spec":{"containers":[{"name":"web","image":"nginx:1.27","securityContext":{"privileged":true,"runAsUser":-5}}]},"metadata":{"annotations":{"note":"a \"quoted\"\\path\n"}}},"requestReceivedTimestamp":"2026-11-20T09:00:00.000000Z"}"#;
    let t = tree(&[
        "verb",
        "responseStatus.code",
        "requestObject.spec.containers.image",
        "requestObject.spec.containers.securityContext",
        "requestObject.metadata.annotations.note",
        "user.groups",
    ]);
    let v = parse(&t, raw).expect("plain JSON is answered without serde");
    assert_eq!(
        v,
        json!({"verb":"create","responseStatus":{"code":201},"user":{"groups":["dev","system:authenticated"]},
            "requestObject":{"spec":{"containers":[{"image":"nginx:1.27","securityContext":{"privileged":true,"runAsUser":-5}}]},
            "metadata":{"annotations":{"note":"a \"quoted\"\\path\n"}}}})
    );
    assert_eq!(Some(v), t.parse_serde(raw));
}

#[test]
fn gives_up_on_what_it_cannot_be_sure_of() {
    let t = tree(&["a"]);
    for raw in [
        r#"{"a":"\u0062"}"#,
        r#"{"b":"\ud800","a":1}"#,
        r#"{"a":1.5}"#,
        r#"{"b":1e999,"a":1}"#,
        r#"{"a":-0}"#,
        r#"{"a":01}"#,
        r#"{"a":12345678901234567890}"#,
        r#"{"a\"":1}"#,
        r#"{"b":{"$serde_json::private::RawValue":"[1]"},"a":1}"#,
        r#"{"a":1} x"#,
        r#"{"a":[1,]}"#,
        r#"{"a":"tab	inside"}"#,
        r#"{"a":tru}"#,
        r#"[{"a":1}]"#,
        r#"{"a":1"#,
        "{\"a\":1}\u{a0}",
    ] {
        assert!(matches!(parse(&t, raw), Err(Bail)), "{raw}");
    }
    let deep = format!(r#"{{"b":{}{},"a":1}}"#, "[".repeat(101), "]".repeat(101));
    assert!(matches!(parse(&t, &deep), Err(Bail)));
    let fine = format!(r#"{{"b":{}{},"a":1}}"#, "[".repeat(99), "]".repeat(99));
    assert_eq!(parse(&t, &fine).unwrap(), json!({"a":1}));
}

/// Pieces of JSON text, valid and not.
fn piece() -> impl Strategy<Value = String> {
    let leaf = prop::sample::select(vec![
        "0",
        "7",
        "-12",
        "-0",
        "01",
        "1.5",
        "2e3",
        "123456789012345678",
        "1234567890123456789",
        "true",
        "false",
        "null",
        "tru",
        "nul",
        "\"x\"",
        "\"\"",
        "\"a\\nb\\t\\\"c\\\\\\/\"",
        "\"\\b\\f\\r\"",
        "\"a\\u0062\"",
        "\"\\q\"",
        "\"tab\there\"",
        "\"é€😀\"",
        "[]",
        "{}",
        "[1,]",
        "+1",
        "-",
        "\"unterminated",
    ])
    .prop_map(str::to_string);
    let key = prop::sample::select(vec![
        "a",
        "b",
        "a.b",
        "b.c",
        "c",
        "\\u0061",
        "$serde_json::private::RawValue",
        "é",
    ]);
    let sep = prop::sample::select(vec![",", ", ", " ,\n\t", ",\r\n", ",,"]);
    let colon = prop::sample::select(vec![":", " : ", ":\n"]);
    leaf.prop_recursive(4, 40, 4, move |inner| {
        prop_oneof![
            (prop::collection::vec(inner.clone(), 0..4), sep.clone())
                .prop_map(|(v, s)| format!("[{}]", v.join(s))),
            (
                prop::collection::vec((key.clone(), colon.clone(), inner), 0..4),
                sep.clone()
            )
                .prop_map(|(kv, s)| {
                    let parts: Vec<String> = kv
                        .into_iter()
                        .map(|(k, c, v)| format!("\"{k}\"{c}{v}"))
                        .collect();
                    format!("{{ {} }}", parts.join(s))
                }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// Whatever the scanner answers, serde's pruned parse answers the same.
    #[test]
    fn answers_only_what_serde_answers(
        inner in piece(),
        tail in prop::sample::select(vec!["", " ", "\n", " x", "}"]),
        paths in prop::collection::vec(
            prop::sample::select(vec!["a", "b", "a.b", "a.b.c", "b.c", "c", "a.c", "x", "é"]),
            1..4,
        ),
    ) {
        let raw = format!("{{\"a\":{inner},\"b\":{inner}}}{tail}");
        let t = tree(&paths);
        if let Ok(v) = parse(&t, &raw) {
            prop_assert_eq!(Some(v), t.parse_serde(&raw), "{}", raw);
        }
    }

    /// Plain JSON is answered (the fast path is really taken).
    #[test]
    fn answers_plain_json(
        v in prop::collection::vec((0u8..4, -1000i64..1000, "[a-z\\\\\"\n/ ]{0,12}"), 0..6),
    ) {
        let mut m = serde_json::Map::new();
        for (i, (kind, n, s)) in v.into_iter().enumerate() {
            let x = match kind {
                0 => json!(n),
                1 => json!(s),
                2 => json!([n, s, {"a": n}]),
                _ => json!({"a": {"b": s}, "c": null}),
            };
            m.insert(format!("k{i}"), x);
        }
        m.insert("a".into(), json!({"b": [1, {"c": "d"}]}));
        let raw = Value::Object(m).to_string();
        let t = tree(&["a.b.c", "k1", "k3.a"]);
        let fast = parse(&t, &raw);
        prop_assert!(fast.is_ok(), "{}", raw);
        prop_assert_eq!(fast.ok(), t.parse_serde(&raw));
    }
}

/// Skipping speed against serde's `IgnoredAny` (`/tmp/a30k.jsonl`: audit lines).
#[test]
#[ignore]
fn skip_speed() {
    let text = std::fs::read_to_string("/tmp/a30k.jsonl").unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let empty = tree(&[]);
    for _ in 0..3 {
        let c = std::time::Instant::now();
        let ok = lines.iter().filter(|l| parse(&empty, l).is_ok()).count();
        let fast = c.elapsed();
        let c = std::time::Instant::now();
        let ok2 = lines
            .iter()
            .filter(|l| serde_json::from_str::<serde::de::IgnoredAny>(l).is_ok())
            .count();
        println!("fast {fast:?} ({ok}) ignored {:?} ({ok2})", c.elapsed());
    }
}
