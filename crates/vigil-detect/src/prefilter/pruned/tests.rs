//! The pruned parse against the whole document: what it keeps, what it refuses, what it
//! captures; and its speed (ignored).

mod documents {
    use super::super::*;
    use crate::event::FieldPath;
    use serde_json::json;

    fn tree(paths: &[&str]) -> Tree {
        let ps: Vec<FieldPath> = paths.iter().map(|p| FieldPath::new(p)).collect();
        Tree::new(&ps.iter().collect::<Vec<_>>())
    }

    #[test]
    fn keeps_what_paths_reach() {
        let t = tree(&["objectRef.resource", "a.b.c", "verb"]);
        let raw = r#"{"kind":"Event","verb":"get","objectRef":{"resource":"pods","name":"x"},"a":[{"b":{"c":1,"d":2}},{"b.c":3,"e":4}],"a.b":{"c":5,"f":6},"user":{"username":"u"}}"#;
        assert_eq!(
            t.parse(raw).unwrap(),
            json!({"verb":"get","objectRef":{"resource":"pods"},"a":[{"b":{"c":1}},{"b.c":3}],"a.b":{"c":5}})
        );
        // A path ending at an object keeps all of it.
        let t = tree(&["objectRef"]);
        assert_eq!(
            t.parse(r#"{"objectRef":{"resource":"pods","x":[1]},"verb":"get"}"#)
                .unwrap(),
            json!({"objectRef":{"resource":"pods","x":[1]}})
        );
    }

    #[test]
    fn refuses_what_value_refuses() {
        let t = tree(&["a"]);
        for bad in [
            r#"{"a":1,"b":1e999}"#,
            r#"{"a":1,"b":"\ud800"}"#,
            r#"{"a":1,"b":"x"} x"#,
            r#"{"a":1,"b":[1,]}"#,
            r#"{"a":1,"b":"tab	inside"}"#,
            r#"[{"a":1}]"#,
        ] {
            assert!(
                serde_json::from_str::<Value>(bad).map_or(true, |v| !v.is_object()),
                "{bad}"
            );
            assert!(t.parse(bad).is_none(), "{bad}");
        }
        let deep = format!(r#"{{"a":1,"b":{}{}}}"#, "[".repeat(200), "]".repeat(200));
        assert!(serde_json::from_str::<Value>(&deep).is_err());
        assert!(t.parse(&deep).is_none());
        let marker = format!(r#"{{"a":1,"b":{{"{RAW_VALUE_TOKEN}":"[1]"}}}}"#);
        assert!(t.parse(&marker).is_none());
    }
}

mod props {
    use super::super::*;
    use crate::event::FieldPath;
    use proptest::prelude::*;

    fn json() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("1".to_string()),
            Just("-2.5e3".to_string()),
            Just("true".to_string()),
            Just("null".to_string()),
            Just("\"x\"".to_string()),
            Just("\"a\\u0062\"".to_string()),
            Just("[]".to_string()),
            Just("{}".to_string()),
        ];
        let key = prop::sample::select(vec!["a", "b", "a.b", "b.c", "a.b.c", "c", "\\u0061"]);
        leaf.prop_recursive(4, 40, 4, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec((key.clone(), inner), 0..4).prop_map(|kv| {
                    let parts: Vec<String> = kv
                        .into_iter()
                        .map(|(k, v)| format!("\"{k}\": {v}"))
                        .collect();
                    format!("{{{}}}", parts.join(","))
                }),
            ]
        })
    }

    fn values(p: &FieldPath, v: &Value) -> Vec<Value> {
        let mut out = Vec::new();
        p.any(v, &mut |x| {
            out.push(x.clone());
            false
        });
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Every path reaches the same values in the pruned and the whole document, and the
        /// pruned parse accepts exactly the objects the whole parse accepts.
        #[test]
        fn pruned_documents_answer_like_whole_ones(
            raw in json(),
            paths in prop::collection::vec(
                prop::sample::select(vec!["a", "b", "a.b", "a.b.c", "b.c", "c", "a.c", "x"]),
                1..4,
            ),
        ) {
            let raw = format!("{{\"a\":{raw},\"b\":{raw}}}");
            let ps: Vec<FieldPath> = paths.iter().map(|p| FieldPath::new(p)).collect();
            let tree = Tree::new(&ps.iter().collect::<Vec<_>>());
            let whole = serde_json::from_str::<Value>(&raw).ok().filter(Value::is_object);
            let pruned = tree.parse(&raw);
            prop_assert_eq!(whole.is_some(), pruned.is_some(), "{}", raw);
            if let (Some(w), Some(p)) = (whole, pruned) {
                for path in &ps {
                    prop_assert_eq!(values(path, &w), values(path, &p), "{} {}", path.text, raw);
                }
            }
        }

        /// Captured paths get the values the whole document gives them, in its order, and
        /// kept paths answer in the built document as in the whole one; texts the whole
        /// parse refuses are never captured.
        #[test]
        fn captured_values_are_the_whole_documents(
            raw in json(),
            captured in prop::collection::vec(
                prop::sample::select(vec!["a", "b", "a.b", "a.b.c", "b.c", "c", "a.c", "x"]),
                1..4,
            ),
            kept in prop::collection::vec(
                prop::sample::select(vec!["a", "b.c", "a.b", "c"]),
                0..2,
            ),
        ) {
            let raw = format!("{{\"a\":{raw},\"b\":{raw}}}");
            let cs: Vec<FieldPath> = captured.iter().map(|p| FieldPath::new(p)).collect();
            let ks: Vec<FieldPath> = kept.iter().map(|p| FieldPath::new(p)).collect();
            let slots: Vec<(&FieldPath, u32)> =
                cs.iter().enumerate().map(|(i, p)| (p, i as u32)).collect();
            let tree = Tree::with_captures(&ks.iter().collect::<Vec<_>>(), &slots);
            let whole = serde_json::from_str::<Value>(&raw).ok().filter(Value::is_object);
            if let Some((doc, cap)) = tree.capture(&raw) {
                let w = whole.expect("captured a text the whole parse refuses");
                for (i, path) in cs.iter().enumerate() {
                    let first = cs.iter().position(|p| p.text == path.text).unwrap() as u32;
                    prop_assert_eq!(
                        values(path, &w),
                        cap.values(first).cloned().collect::<Vec<_>>(),
                        "{} {}", path.text, raw
                    );
                    let _ = i;
                }
                let doc = doc.unwrap_or_else(|| Value::Object(Map::new()));
                for path in &ks {
                    prop_assert_eq!(values(path, &w), values(path, &doc), "{} {}", path.text, raw);
                }
            }
        }
    }
}

mod capture_tests {
    use super::super::*;
    use crate::event::FieldPath;
    use serde_json::json;

    fn capture(
        raw: &str,
        keep: &[&str],
        paths: &[&str],
    ) -> Option<(Option<Value>, Vec<Vec<Value>>)> {
        let ks: Vec<FieldPath> = keep.iter().map(|p| FieldPath::new(p)).collect();
        let cs: Vec<FieldPath> = paths.iter().map(|p| FieldPath::new(p)).collect();
        let slots: Vec<(&FieldPath, u32)> =
            cs.iter().enumerate().map(|(i, p)| (p, i as u32)).collect();
        let tree = Tree::with_captures(&ks.iter().collect::<Vec<_>>(), &slots);
        let (doc, cap) = tree.capture(raw)?;
        Some((
            doc,
            (0..paths.len() as u32)
                .map(|s| cap.values(s).cloned().collect())
                .collect(),
        ))
    }

    #[test]
    fn audit_events_are_captured() {
        let raw = r#"{"auditID":"a1","verb":"create","user":{"username":"u","groups":["g1","g2"]},
            "objectRef":{"resource":"pods"},"requestObject":{"spec":{"containers":[
            {"image":"x","securityContext":{"privileged":true}},{"image":"y"}]}},
            "annotations":{"authorization.k8s.io/decision":"allow"}}"#;
        let (doc, vals) = capture(
            raw,
            &["auditID"],
            &[
                "verb",
                "user.groups",
                "requestObject.spec.containers.image",
                "requestObject.spec.containers.securityContext.privileged",
                "annotations.authorization.k8s.io/decision",
                "objectRef.subresource",
                "user",
                "user.username",
            ],
        )
        .expect("captured");
        assert_eq!(doc, Some(json!({"auditID": "a1"})));
        assert_eq!(vals[0], vec![json!("create")]);
        assert_eq!(vals[1], vec![json!("g1"), json!("g2")]);
        assert_eq!(vals[2], vec![json!("x"), json!("y")]);
        assert_eq!(vals[3], vec![json!(true)]);
        assert_eq!(vals[4], vec![json!("allow")]);
        assert!(vals[5].is_empty());
        assert_eq!(vals[6], vec![json!({"username":"u","groups":["g1","g2"]})]);
        assert_eq!(vals[7], vec![json!("u")]);
    }

    #[test]
    fn gives_up_where_the_lookup_would_choose() {
        // Nested and joined keys for one path, and a duplicate key.
        assert!(capture(r#"{"a":{"b":1},"a.b":2}"#, &[], &["a.b"]).is_none());
        assert!(capture(r#"{"a":1,"a":2}"#, &[], &["a"]).is_none());
        // A duplicate key no captured path goes through is the built document's business.
        assert!(capture(r#"{"k":1,"k":2,"a":3}"#, &["k"], &["a"]).is_some());
        // One route only: captured.
        assert_eq!(
            capture(r#"{"a.b":2,"c":1}"#, &[], &["a.b"]).unwrap().1,
            vec![vec![json!(2)]]
        );
    }
}

mod speed {
    #[test]
    #[ignore]
    fn pruned_vs_whole() {
        let text = std::fs::read_to_string("/tmp/a30k.jsonl").unwrap();
        let cfg = crate::Config {
            placeholders: crate::builtin::placeholders(),
            ..Default::default()
        };
        let (set, _) = crate::RuleSet::compile(&crate::builtin::rules(), &cfg);
        let ds = &set.datasets[set.dataset_index("k8s.audit").unwrap()];
        let mut paths = vec![];
        let mut kw = false;
        for r in &ds.rules {
            for s in &r.selections {
                super::super::super::collect_paths(&s.node, &mut paths, &mut kw);
            }
        }
        let tree = super::super::Tree::new(&paths);
        let small = super::super::Tree::new(&[
            &crate::event::FieldPath::new("requestURI"),
            &crate::event::FieldPath::new("user.username"),
            &crate::event::FieldPath::new("responseStatus.code"),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        for (name, t) in [("all paths", &tree), ("3 paths", &small)] {
            let c = std::time::Instant::now();
            let mut k = 0;
            for l in &lines {
                k += t.parse(l).map_or(0, |v| v.as_object().unwrap().len());
            }
            println!("pruned ({name}) {:?} {k}", c.elapsed());
            let c = std::time::Instant::now();
            let mut k = 0;
            for l in &lines {
                k += t.parse_serde(l).map_or(0, |v| v.as_object().unwrap().len());
            }
            println!("pruned by serde ({name}) {:?} {k}", c.elapsed());
        }
        let t = std::time::Instant::now();
        let mut k = 0;
        for l in &lines {
            k += serde_json::from_str::<serde_json::Value>(l)
                .map_or(0, |v| v.as_object().unwrap().len());
        }
        println!("whole {:?} {k}", t.elapsed());
        let bails = lines
            .iter()
            .filter(|l| super::super::fast::parse(&small, l).is_err())
            .count();
        println!("fast gives up on {bails} of {}", lines.len());
        let t = std::time::Instant::now();
        let mut k = 0;
        for l in &lines {
            k += serde_json::from_str::<serde::de::IgnoredAny>(l).map_or(0, |_| 1);
        }
        println!("ignored {:?} {k}", t.elapsed());
    }
}
