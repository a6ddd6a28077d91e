//! Tests of the query language: parsing, printing round trips and matching.

use super::*;
use proptest::prelude::*;
use serde_json::json;

fn m(field: &str, value: Val) -> Query {
    Query::Match {
        field: Some(field.into()),
        value,
    }
}

#[test]
fn parses_the_documented_forms() {
    assert_eq!(parse("*").unwrap(), Query::All);
    assert_eq!(parse("").unwrap(), Query::All);
    assert_eq!(
        parse("user.name:alice").unwrap(),
        m("user.name", Val::Term("alice".into()))
    );
    assert_eq!(
        parse("verb:get").unwrap(),
        m("event.action", Val::Term("get".into()))
    );
    assert_eq!(
        parse(r#"user.name:"system:serviceaccount:shop:web""#).unwrap(),
        m(
            "user.name",
            Val::Phrase("system:serviceaccount:shop:web".into())
        )
    );
    assert_eq!(
        parse("objectRef.name:web-*").unwrap(),
        m("objectRef.name", Val::Wildcard("web-*".into()))
    );
    assert_eq!(
        parse("code:[400 TO 499}").unwrap(),
        m(
            "http.response.status_code",
            Val::Range {
                lo: Bound::Included("400".into()),
                hi: Bound::Excluded("499".into())
            }
        )
    );
    assert_eq!(
        parse("source.ip:10.0.0.0/8").unwrap(),
        m("source.ip", Val::Term("10.0.0.0/8".into()))
    );
    assert_eq!(
        parse("a b OR NOT c -d").unwrap(),
        Query::Or(vec![
            Query::And(vec![
                Query::Match {
                    field: None,
                    value: Val::Term("a".into())
                },
                Query::Match {
                    field: None,
                    value: Val::Term("b".into())
                }
            ]),
            Query::And(vec![
                Query::Not(Box::new(Query::Match {
                    field: None,
                    value: Val::Term("c".into())
                })),
                Query::Not(Box::new(Query::Match {
                    field: None,
                    value: Val::Term("d".into())
                })),
            ])
        ])
    );
    assert_eq!(
        parse("verb:(get OR list)").unwrap(),
        Query::Or(vec![
            m("event.action", Val::Term("get".into())),
            m("event.action", Val::Term("list".into()))
        ])
    );
    assert_eq!(parse("host.name:*").unwrap(), m("host.name", Val::Exists));
    assert!(parse("(a").is_err());
    assert!(parse("a:[1 TO").is_err());
    assert!(parse("\"abc").is_err());
    assert!(parse("[1 TO 2]").is_err());
}

#[test]
fn matching() {
    let doc = json!({
        "user": {"name": "alice@example.com", "groups": ["dev", "ops"]},
        "source": {"ip": "10.1.2.3"},
        "http": {"response": {"status_code": 403}},
        "@timestamp": "2026-11-20T09:00:00Z",
        "annotations": {"authorization.k8s.io/decision": "forbid"},
        "requestURI": "/api/v1/namespaces/kube-system/secrets",
        "auditID": "abc-123"
    });
    let yes = |q: &str| assert!(matches(&parse(q).unwrap(), &doc), "{q}");
    let no = |q: &str| assert!(!matches(&parse(q).unwrap(), &doc), "{q}");
    yes("user.name:alice@example.com");
    yes("user.name:alice*");
    no("user.name:alice");
    yes("user.groups:ops");
    yes("source.ip:10.0.0.0/8");
    no("source.ip:192.168.0.0/16");
    yes("source.ip:[10.1.0.0 TO 10.2.0.0]");
    yes("code:[400 TO 499]");
    yes("code:403");
    no("code:{403 TO 500]");
    yes("@timestamp:[2026-11-20 TO 2026-11-21]");
    no("@timestamp:[2026-11-21 TO *]");
    yes("annotations.authorization.k8s.io/decision:forbid");
    yes("kube-system");
    yes("\"namespaces kube system\"");
    no("\"kube namespaces\"");
    yes("SECRETS");
    yes("secr*");
    no("abc");
    yes("NOT bob AND alice");
    yes("nothing OR alice");
    yes("user.name:* AND NOT host.name:*");
    yes("*");
}

#[test]
fn globs() {
    assert!(glob("a*c", "abbbc"));
    assert!(glob("a?c", "abc"));
    assert!(!glob("a?c", "ac"));
    assert!(glob(r"a\*c", "a*c"));
    assert!(!glob(r"a\*c", "abc"));
    assert!(glob("*", ""));
}

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9.@/_-]{1,8}",
        "[ -~]{1,8}",
        Just("AND".to_string()),
        Just("-x".to_string()),
    ]
}

fn arb_val() -> impl Strategy<Value = Val> {
    let bound = prop_oneof![
        Just(Bound::Unbounded),
        arb_text().prop_map(Bound::Included),
        arb_text().prop_map(Bound::Excluded),
    ];
    prop_oneof![
        arb_text().prop_map(Val::Term),
        "[a-z]{0,3}\\*[a-z]{1,3}".prop_map(Val::Wildcard),
        "[ -~]{0,8}".prop_map(Val::Phrase),
        (bound.clone(), bound).prop_map(|(lo, hi)| Val::Range { lo, hi }),
        Just(Val::Exists),
    ]
}

fn arb_query() -> impl Strategy<Value = Query> {
    let leaf = prop_oneof![
        Just(Query::All),
        ("[a-z][a-z.]{0,6}[a-z]", arb_val()).prop_map(|(f, value)| Query::Match {
            field: Some(canonical_field(&f)),
            value
        }),
        arb_text().prop_map(|t| Query::Match {
            field: None,
            value: Val::Term(t)
        }),
        "[ -~]{1,8}".prop_map(|t| Query::Match {
            field: None,
            value: Val::Phrase(t)
        }),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|q| Query::Not(Box::new(q))),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Query::And),
            prop::collection::vec(inner, 2..4).prop_map(Query::Or),
        ]
    })
}

proptest! {
    #[test]
    fn parse_never_panics(s in "\\PC{0,40}") {
        let _ = parse(&s);
    }

    #[test]
    fn parse_never_panics_on_query_like_text(s in "[a-z:*?()\\[\\]{}\" \\\\-]{0,30}( (AND|OR|NOT|TO) [a-z:*]{0,5}){0,3}") {
        if let Ok(q) = parse(&s) {
            let _ = matches(&q, &serde_json::json!({"a": "b"}));
        }
    }

    #[test]
    fn printed_queries_parse_back(q in arb_query()) {
        let text = q.to_string();
        let back = parse(&text);
        prop_assert_eq!(back.as_ref(), Ok(&q), "printed as {}", text);
    }
}
