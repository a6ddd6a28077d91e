//! Engine behaviour on small hand-written rules and events.

use serde_json::{json, Value};
use vigil_detect::{
    Config, CorrelationAlert, CorrelationState, Event, RejectKind, RuleError, RuleSet, RuleSource,
};

fn compile(text: &str) -> (RuleSet, Vec<RuleError>) {
    RuleSet::compile(&[RuleSource::new("test.yml", text)], &Config::default())
}

fn set(text: &str) -> RuleSet {
    let (s, e) = compile(text);
    assert!(e.is_empty(), "{e:#?}");
    s
}

fn k8s(detection: &str) -> RuleSet {
    set(&format!(
        "title: t\nid: r1\nlogsource: {{product: kubernetes, service: audit}}\ndetection:\n{detection}"
    ))
}

/// Whether the first rule matches, checked four ways (parsed, raw, both, no prefilter).
fn hits(s: &RuleSet, ev: Value) -> bool {
    let raw = serde_json::to_string(&ev).unwrap();
    let mut results = vec![];
    for e in [
        Event::new("k8s.audit", &ev),
        Event::from_raw("k8s.audit", &raw),
        Event::with_raw("k8s.audit", &ev, &raw),
    ] {
        let mut out = vec![];
        s.evaluate(&e, &mut out);
        results.push(!out.is_empty());
    }
    assert!(
        results.iter().all(|r| *r == results[0]),
        "prefilter changed the result: {results:?} for {ev}"
    );
    results[0]
}

#[test]
fn condition_precedence_not_and_or() {
    let s = k8s("  a: {x: 1}\n  b: {y: 1}\n  c: {z: 1}\n  condition: a or b and not c\n");
    for x in 0..2 {
        for y in 0..2 {
            for z in 0..2 {
                let want = x == 1 || (y == 1 && z != 1);
                assert_eq!(hits(&s, json!({"x": x, "y": y, "z": z})), want, "{x}{y}{z}");
            }
        }
    }
    let s = k8s("  a: {x: 1}\n  b: {y: 1}\n  c: {z: 1}\n  condition: (a or b) and not c\n");
    assert!(!hits(&s, json!({"x": 1, "z": 1})));
    assert!(hits(&s, json!({"y": 1, "z": 0})));
}

#[test]
fn quantifiers_and_them() {
    let s = k8s("  sel_a: {x: 1}\n  sel_b: {y: 1}\n  _helper: {z: 1}\n  condition: all of them\n");
    assert!(hits(&s, json!({"x": 1, "y": 1})), "`them` skips _helper");
    let s = k8s("  sel_a: {x: 1}\n  sel_b: {y: 1}\n  other: {z: 1}\n  condition: 1 of sel_* and not other\n");
    assert!(hits(&s, json!({"y": 1})));
    assert!(!hits(&s, json!({"y": 1, "z": 1})));
    assert!(!hits(&s, json!({"z": 0})));
    let s = k8s("  sel_a: {x: 1}\n  sel_b: {y: 1}\n  condition: all of sel_*\n");
    assert!(!hits(&s, json!({"y": 1})));
    assert!(hits(&s, json!({"x": 1, "y": 1})));
    let s = k8s("  s1: {x: 1}\n  s2: {y: 1}\n  s3: {z: 1}\n  condition: 2 of s*\n");
    assert!(!hits(&s, json!({"y": 1})));
    assert!(hits(&s, json!({"y": 1, "z": 1})));
    // A condition list means any of them.
    let s = k8s("  a: {x: 1}\n  b: {y: 1}\n  condition:\n    - a\n    - b\n");
    assert!(hits(&s, json!({"y": 1})));
}

#[test]
fn lists_of_maps_and_value_lists() {
    let s = k8s("  sel:\n    - {x: 1, y: 2}\n    - {z: 3}\n  condition: sel\n");
    assert!(hits(&s, json!({"x": 1, "y": 2})));
    assert!(!hits(&s, json!({"x": 1, "y": 3})));
    assert!(hits(&s, json!({"z": 3})));
    let s = k8s("  sel:\n    verb: [create, update]\n  condition: sel\n");
    assert!(hits(&s, json!({"verb": "UPDATE"})));
    assert!(!hits(&s, json!({"verb": "get"})));
    let s = k8s("  sel:\n    cmd|contains|all: [curl, '| sh']\n  condition: sel\n");
    assert!(hits(&s, json!({"cmd": "curl x | sh"})));
    assert!(!hits(&s, json!({"cmd": "curl x"})));
}

#[test]
fn arrays_anywhere_on_the_path() {
    let s = k8s(
        "  sel:\n    requestObject.spec.containers.securityContext.privileged: true\n  condition: sel\n",
    );
    let pod = |a: bool, b: bool| {
        json!({"requestObject": {"spec": {"containers": [
            {"name": "a", "securityContext": {"privileged": a}},
            {"name": "b", "securityContext": {"privileged": b}},
            {"name": "c"}
        ]}}})
    };
    assert!(hits(&s, pod(false, true)));
    assert!(!hits(&s, pod(false, false)));
    let s = k8s("  sel:\n    sourceIPs: 10.0.0.*\n  condition: sel\n");
    assert!(hits(&s, json!({"sourceIPs": ["192.168.1.1", "10.0.0.7"]})));
}

#[test]
fn dotted_keys_resolve_flat_and_nested() {
    let s = set("title: t\nlogsource: {product: zeek, service: conn}\ndetection:\n  sel:\n    id.orig_h: 10.1.1.1\n    dst_port: 22\n  condition: sel\n");
    let mut out = vec![];
    let ev = json!({"id.orig_h": "10.1.1.1", "id.resp_p": 22});
    s.evaluate(&Event::new("zeek.conn", &ev), &mut out);
    assert_eq!(out.len(), 1, "flat keys and the dst_port mapping");
    let ev = json!({"id": {"orig_h": "10.1.1.1", "resp_p": 22}});
    out.clear();
    s.evaluate(&Event::new("zeek.conn", &ev), &mut out);
    assert_eq!(out.len(), 1, "nested keys");
    assert_eq!(
        out[0].matched[0],
        ("id.orig_h".to_string(), json!("10.1.1.1"))
    );
}

#[test]
fn null_exists_and_empty() {
    let s = k8s("  sel: {x: 1}\n  f: {y: null}\n  condition: sel and f\n");
    assert!(hits(&s, json!({"x": 1})), "absent is null");
    assert!(hits(&s, json!({"x": 1, "y": null})));
    assert!(!hits(&s, json!({"x": 1, "y": ""})));
    assert!(!hits(&s, json!({"x": 1, "y": "v"})));
    let s = k8s("  sel: {x: 1}\n  f: {y: null}\n  condition: sel and not f\n");
    assert!(hits(&s, json!({"x": 1, "y": "v"})));
    let s = k8s("  sel:\n    y|exists: true\n  condition: sel\n");
    assert!(hits(&s, json!({"y": null})), "exists counts a null field");
    assert!(hits(&s, json!({"y": ""})));
    assert!(!hits(&s, json!({"x": 1})));
    let s = k8s("  sel:\n    x: 1\n    y|exists: false\n  condition: sel\n");
    assert!(hits(&s, json!({"x": 1})));
    assert!(!hits(&s, json!({"x": 1, "y": 0})));
    let s = k8s("  sel:\n    y: ''\n  condition: sel\n");
    assert!(hits(&s, json!({"y": ""})));
    assert!(!hits(&s, json!({})));
    // `*` means "has a value": objects count, null does not.
    let s = k8s("  sel:\n    y: '*'\n  condition: sel\n");
    assert!(hits(&s, json!({"y": {"a": 1}})));
    assert!(hits(&s, json!({"y": ""})));
    assert!(!hits(&s, json!({"y": null})));
    assert!(!hits(&s, json!({})));
}

#[test]
fn numbers_strings_and_booleans() {
    let s = k8s("  sel:\n    responseStatus.code: [401, 403]\n  condition: sel\n");
    assert!(hits(&s, json!({"responseStatus": {"code": 403}})));
    assert!(hits(&s, json!({"responseStatus": {"code": "401"}})));
    assert!(!hits(&s, json!({"responseStatus": {"code": 4030}})));
    assert!(!hits(&s, json!({"responseStatus": {"code": 200}})));
    let s = k8s("  sel:\n    port: '22'\n  condition: sel\n");
    assert!(hits(&s, json!({"port": 22})));
    let s = k8s("  sel:\n    flag: true\n  condition: sel\n");
    assert!(hits(&s, json!({"flag": true})));
    assert!(hits(&s, json!({"flag": "true"})));
    assert!(!hits(&s, json!({"flag": false})));
    let s = k8s("  sel:\n    n|gte: 10\n  condition: sel\n");
    assert!(hits(&s, json!({"n": 10})));
    assert!(hits(&s, json!({"n": "11"})));
    assert!(!hits(&s, json!({"n": 9.5})));
}

#[test]
fn neq_cased_fieldref_windash_re() {
    let s = k8s("  sel:\n    user|neq: [admin, root]\n  condition: sel\n");
    assert!(hits(&s, json!({"user": "bob"})));
    assert!(!hits(&s, json!({"user": "ROOT"})));
    let s = k8s("  sel:\n    user|cased: Admin\n  condition: sel\n");
    assert!(hits(&s, json!({"user": "Admin"})));
    assert!(!hits(&s, json!({"user": "admin"})));
    let s = k8s("  sel:\n    a|fieldref: b\n  condition: sel\n");
    assert!(hits(&s, json!({"a": "X", "b": "x"})));
    assert!(!hits(&s, json!({"a": "X", "b": "y"})));
    let s = k8s("  sel:\n    a|fieldref|neq: b\n  condition: sel\n");
    assert!(hits(&s, json!({"a": "X", "b": "y"})));
    let s = k8s("  sel:\n    a|fieldref|startswith: b\n  condition: sel\n");
    assert!(hits(&s, json!({"a": "prefix-rest", "b": "prefix"})));
    let s = k8s("  sel:\n    cmd|windash|contains: ' -f '\n  condition: sel\n");
    assert!(hits(&s, json!({"cmd": "rm /f x"})));
    assert!(hits(&s, json!({"cmd": "rm \u{2013}f x"})));
    let s = k8s("  sel:\n    uri|re|i: '^/API/v1/.*/exec'\n  condition: sel\n");
    assert!(hits(&s, json!({"uri": "/api/v1/namespaces/x/pods/p/exec"})));
    let s = k8s("  sel:\n    ip|cidr: 10.0.0.0/8\n  condition: sel\n");
    assert!(hits(&s, json!({"ip": "10.9.8.7"})));
    assert!(!hits(&s, json!({"ip": "11.9.8.7"})));
}

#[test]
fn keywords_search_every_value() {
    let s = set("title: t\nlogsource: {product: linux, service: sshd}\ndetection:\n  keywords:\n    - 'Corrupted MAC on input'\n    - 'bad client public DH value'\n  condition: keywords\n");
    let ev = json!({"message": "sshd[1]: Corrupted MAC on input. Disconnecting", "host": "h"});
    let mut out = vec![];
    s.evaluate(&Event::new("linux.auth", &ev), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].matched[0].0, "message");
    let s = set("title: t\nlogsource: {product: linux, service: auth}\ndetection:\n  keywords:\n    '|all':\n      - pkexec\n      - 'XAUTHORITY'\n  condition: keywords\n");
    out.clear();
    let ev = json!({"message": "pkexec: The value for environment variable XAUTHORITY contains suspicious content"});
    s.evaluate(&Event::new("linux.auth", &ev), &mut out);
    assert_eq!(out.len(), 1);
    out.clear();
    let ev = json!({"message": "pkexec ok", "other": ["x", {"deep": "xauthority"}]});
    s.evaluate(&Event::new("linux.auth", &ev), &mut out);
    assert_eq!(out.len(), 1, "keywords search nested values too");
}

#[test]
fn errors_name_the_line_and_reason() {
    let (_, e) = compile("title: t\nlogsource: {product: kubernetes, service: audit}\ndetection:\n  sel: {x: 1}\n  condition: sel and missing\n");
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].line, 5);
    assert_eq!(e[0].kind, RejectKind::Invalid);
    assert!(e[0].reason.contains("missing"), "{}", e[0]);
    assert!(
        e[0].to_string().starts_with("test.yml:5: rule \"t\""),
        "{}",
        e[0]
    );
    let (_, e) = compile("title: t\nlogsource: {product: kubernetes, service: audit}\ndetection:\n  sel:\n    x: 1\n    y|bogus: 2\n  condition: sel\n");
    assert_eq!((e[0].line, e[0].kind), (6, RejectKind::Invalid));
    assert!(e[0].reason.contains("bogus"));
    let (_, e) = compile(
        "title: t\nlogsource:\n  product: windows\ndetection:\n  sel: {x: 1}\n  condition: sel\n",
    );
    assert_eq!((e[0].line, e[0].kind), (3, RejectKind::NoSource));
    let (_, e) = compile("title: t\nlogsource: {product: linux, service: auditd}\ndetection:\n  a: {x: 1}\n  b: {y: 1}\n  condition: a | near b\n");
    assert_eq!(e[0].kind, RejectKind::NearRemoved);
    let (_, e) = compile("title: t\nlogsource: {product: linux, service: auditd}\ndetection:\n  a:\n    x|expand: '%Admins%'\n  condition: a\n");
    assert_eq!(
        (e[0].line, e[0].kind),
        (5, RejectKind::UndefinedPlaceholder)
    );
    let (_, e) = compile("title: t\nid: same\nlogsource: {product: linux, service: auditd}\ndetection:\n  a: {x: 1}\n  condition: a\n---\ntitle: u\nid: same\nlogsource: {product: linux, service: auditd}\ndetection:\n  a: {x: 1}\n  condition: a\n");
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].line, e[0].kind), (8, RejectKind::Duplicate));
    let (_, e) = compile("title: t\nlogsource: {product: linux, service: auditd}\ndetection:\n  a:\n    x|re: '(unclosed'\n  condition: a\n");
    assert_eq!((e[0].line, e[0].kind), (5, RejectKind::Invalid));
    // Unknown top-level keys are ignored.
    let (s, e) = compile("title: t\nlogsource: {product: linux, service: auditd}\ncustom_key: {whatever: 1}\ndetection:\n  a: {x: 1}\n  condition: a\n");
    assert!(e.is_empty());
    assert_eq!(s.rules().len(), 1);
}

#[test]
fn expand_placeholders_from_config() {
    let mut cfg = Config::default();
    cfg.placeholders
        .insert("Admins".into(), vec!["root".into(), "adm_*".into()]);
    let (s, e) = RuleSet::compile(
        &[RuleSource::new(
            "t.yml",
            "title: t\nlogsource: {product: kubernetes, service: audit}\ndetection:\n  a:\n    user.username|expand: '%Admins%'\n  condition: a\n",
        )],
        &cfg,
    );
    assert!(e.is_empty(), "{e:?}");
    assert!(hits(&s, json!({"user": {"username": "adm_eve"}})));
    assert!(!hits(&s, json!({"user": {"username": "eve"}})));
}

#[test]
fn global_action_and_filters() {
    let s = set("action: global\nlogsource: {product: kubernetes, service: audit}\ndetection:\n  condition: sel\n---\ntitle: one\nid: r-one\ndetection:\n  sel: {verb: delete}\n---\ntitle: two\nid: r-two\ndetection:\n  sel: {verb: create}\n---\naction: reset\n---\ntitle: no kube-system\nlogsource: {product: kubernetes, service: audit}\nfilter:\n  rules: [r-one]\n  ns:\n    objectRef.namespace: kube-system\n  condition: not ns\n");
    assert_eq!(s.rules().len(), 2);
    let run = |ev: Value| {
        let mut out = vec![];
        s.evaluate(&Event::new("k8s.audit", &ev), &mut out);
        out.iter()
            .map(|m| s.rules()[m.rule].title.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        run(json!({"verb": "delete", "objectRef": {"namespace": "shop"}})),
        ["one"]
    );
    assert!(run(json!({"verb": "delete", "objectRef": {"namespace": "kube-system"}})).is_empty());
    assert_eq!(
        run(json!({"verb": "create", "objectRef": {"namespace": "kube-system"}})),
        ["two"],
        "the filter names only rule one"
    );
    let (_, e) = compile("title: f\nlogsource: {product: kubernetes, service: audit}\nfilter:\n  rules: [nope]\n  s: {x: 1}\n  condition: not s\n");
    assert_eq!(e[0].kind, RejectKind::UnknownReference);
}

fn feed(s: &RuleSet, st: &mut CorrelationState, evs: &[(i64, Value)]) -> Vec<CorrelationAlert> {
    let mut alerts = vec![];
    let mut out = vec![];
    for (t, v) in evs {
        s.process(
            &Event::new("k8s.audit", v).at(*t),
            st,
            &mut out,
            &mut alerts,
        );
    }
    alerts
}

#[test]
fn event_count_correlation() {
    let s = set("title: failed\nid: base\nname: forbidden\nlogsource: {product: kubernetes, service: audit}\ndetection:\n  sel:\n    responseStatus.code: 403\n  condition: sel\n---\ntitle: many forbidden\nid: corr\ncorrelation:\n  type: event_count\n  rules: [forbidden]\n  group-by: [user.username]\n  timespan: 1m\n  condition:\n    gte: 3\nlevel: high\n");
    assert!(
        !s.rules()[0].alerts,
        "the base rule only feeds the correlation"
    );
    let mut st = CorrelationState::new();
    let e = |u: &str| json!({"user": {"username": u}, "responseStatus": {"code": 403}, "auditID": format!("id-{u}")});
    let alerts = feed(
        &s,
        &mut st,
        &[
            (0, e("bob")),
            (10_000, e("alice")),
            (70_000, e("bob")), // the first bob event has left the window
            (80_000, e("bob")),
            (100_000, e("bob")),
            (110_000, e("alice")),
        ],
    );
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a.rule, 1);
    assert_eq!(a.count, 3);
    assert_eq!(a.group, vec![("user.username".to_string(), json!("bob"))]);
    assert_eq!(a.events.len(), 3);
    assert_eq!(a.events[0].time_ms, 70_000);
    assert_eq!((a.first_ms, a.last_ms), (70_000, 100_000));
    assert_eq!(a.events[0].id.as_deref(), Some("id-bob"));
    // The state is serializable, for checkpoints.
    let saved = serde_json::to_string(&st).unwrap();
    let restored: CorrelationState = serde_json::from_str(&saved).unwrap();
    assert_eq!(restored.groups(), st.groups());
    // evaluate() alone never reports the base rule.
    let mut out = vec![];
    s.evaluate(&Event::new("k8s.audit", &e("bob")), &mut out);
    assert!(out.is_empty());
}

#[test]
fn value_count_and_legacy_aggregation() {
    let s = set("title: scan\nlogsource: {category: firewall}\ndetection:\n  sel:\n    action: denied\n  timeframe: 1h\n  condition: sel | count(dst_port) by src_ip > 2\n");
    assert!(!s.rules()[0].alerts);
    let mut st = CorrelationState::new();
    let mut alerts = vec![];
    let mut out = vec![];
    for (t, port) in [(0, 22), (1000, 22), (2000, 80), (3000, 443)] {
        let ev = json!({"id.orig_h": "10.0.0.9", "id.resp_p": port, "action": "denied"});
        s.process(
            &Event::new("zeek.conn", &ev).at(t),
            &mut st,
            &mut out,
            &mut alerts,
        );
    }
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].count, 3);
    assert_eq!(alerts[0].field.as_deref(), Some("dst_port"));
    assert_eq!(
        alerts[0].group,
        vec![("src_ip".to_string(), json!("10.0.0.9"))]
    );
    assert_eq!(alerts[0].values.len(), 3);
    // aws.vpcflow: `denied` means REJECT there (a value mapping), and fields map differently.
    let mut st = CorrelationState::new();
    alerts.clear();
    for (t, port) in [(0, 22), (1000, 80), (2000, 443)] {
        let ev = json!({"srcaddr": "10.0.0.9", "dstport": port, "action": "REJECT"});
        s.process(
            &Event::new("aws.vpcflow", &ev).at(t),
            &mut st,
            &mut out,
            &mut alerts,
        );
    }
    assert_eq!(alerts.len(), 1);
}

#[test]
fn upper_bounded_correlations_are_judged_when_the_window_ends() {
    let s = set("title: b\nname: heartbeat\nlogsource: {product: kubernetes, service: audit}\ndetection:\n  sel: {verb: update}\n  condition: sel\n---\ntitle: too few heartbeats\ncorrelation:\n  type: event_count\n  rules: heartbeat\n  group-by: [user.username]\n  timespan: 1m\n  condition:\n    lt: 3\n");
    let mut st = CorrelationState::new();
    let e = |u: &str| json!({"verb": "update", "user": {"username": u}});
    let mut alerts = feed(
        &s,
        &mut st,
        &[
            (0, e("n1")),
            (1000, e("n1")),
            (2000, e("n2")),
            (3000, e("n2")),
            (4000, e("n2")),
        ],
    );
    assert!(alerts.is_empty());
    s.flush(&mut st, i64::MAX, &mut alerts);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].group[0].1, json!("n1"));
    assert_eq!(alerts[0].count, 2);
    // A range.
    let s2 = set("title: b\nname: hb\nlogsource: {product: kubernetes, service: audit}\ndetection:\n  sel: {verb: update}\n  condition: sel\n---\ntitle: r\ncorrelation:\n  type: event_count\n  rules: [hb]\n  timespan: 10s\n  condition: {gt: 1, lte: 2}\n");
    let mut st = CorrelationState::new();
    let alerts = feed(
        &s2,
        &mut st,
        &[(0, e("a")), (1000, e("a")), (20_000, e("a"))],
    );
    assert_eq!(alerts.len(), 1, "the first window held 2 events");
}

#[test]
fn unsupported_correlations_are_reported() {
    let base = "title: b\nname: x\nlogsource: {product: kubernetes, service: audit}\ndetection:\n  sel: {verb: update}\n  condition: sel\n---\n";
    for (body, kind) in [
        ("title: c\ncorrelation:\n  type: temporal_ordered\n  rules: [x]\n  timespan: 1m\n  condition: x\n", RejectKind::NotYetSupported),
        ("title: c\ncorrelation:\n  type: value_percentile\n  rules: [x]\n  timespan: 1m\n  condition: {gt: 1, field: y}\n", RejectKind::Invalid),
        ("title: c\ncorrelation:\n  type: bogus\n  rules: [x]\n  timespan: 1m\n", RejectKind::Invalid),
        ("title: c\ncorrelation:\n  type: event_count\n  rules: [nope]\n  timespan: 1m\n  condition: {gt: 1}\n", RejectKind::UnknownReference),
        ("title: c\ncorrelation:\n  type: event_count\n  rules: [x]\n  condition: {gt: 1}\n", RejectKind::Invalid),
        ("title: c\ncorrelation:\n  type: value_count\n  rules: [x]\n  timespan: 1m\n  condition: {gt: 1}\n", RejectKind::Invalid),
    ] {
        let (s, e) = compile(&format!("{base}{body}"));
        assert_eq!(e.len(), 1, "{body}: {e:?}");
        assert_eq!(e[0].kind, kind, "{body}: {}", e[0]);
        assert_eq!(s.rules().len(), 1);
        assert!(s.rules()[0].alerts, "without its correlation the rule alerts alone");
    }
    let (_, e) = compile("title: t\nlogsource: {product: linux, service: auditd}\ndetection:\n  a: {x: 1}\n  condition: a | sum(bytes) by host > 5\n  timeframe: 1m\n");
    assert!(
        e.is_empty(),
        "legacy sum() is a value_sum correlation: {e:?}"
    );
    let (_, e) = compile("title: t\nlogsource: {product: linux, service: auditd}\ndetection:\n  a: {x: 1}\n  condition: a | count() by host > 5\n");
    assert_eq!(e[0].kind, RejectKind::BadAggregation);
}

#[test]
fn explanations() {
    let s = k8s("  sel:\n    verb: create\n    objectRef.resource: pods\n  filter:\n    user.username|startswith: 'system:'\n  condition: sel and not filter\n");
    let ev = json!({"verb": "create", "objectRef": {"resource": "pods"}, "user": {"username": "system:kube-scheduler"}});
    let e = s.explain(0, &Event::new("k8s.audit", &ev)).unwrap();
    assert!(!e.matched);
    assert_eq!(e.selections.len(), 2);
    assert!(e.selections[0].result);
    assert!(e.selections[1].result);
    let text = e.to_string();
    assert!(text.contains("[false] not filter"), "{text}");
    assert!(text.contains("\"system:kube-scheduler\""), "{text}");
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["matched"], false);
    // Another dataset: the rule does not apply.
    let e = s.explain(0, &Event::new("zeek.conn", &ev)).unwrap();
    assert!(!e.applies);
}

#[test]
fn explained_negations_keep_their_parentheses() {
    let s = k8s("  a:\n    verb: create\n  b:\n    objectRef.resource: pods\n  c:\n    verb: get\n  condition: c or not (a and b)\n");
    let ev = json!({"verb": "create", "objectRef": {"resource": "pods"}});
    let e = s.explain(0, &Event::new("k8s.audit", &ev)).unwrap();
    assert!(!e.matched);
    assert_eq!(e.condition.text, "c or not (a and b)");
    assert_eq!(e.condition.children[1].text, "not (a and b)");
    assert_eq!(e.condition.children[1].children[0].text, "a and b");
    let text = e.to_string();
    assert!(text.contains("[false] not (a and b)"), "{text}");
    let s =
        k8s("  a:\n    verb: create\n  b:\n    verb: get\n  condition: not (a or b) and not a\n");
    let e = s.explain(0, &Event::new("k8s.audit", &ev)).unwrap();
    assert_eq!(e.condition.text, "not (a or b) and not a");
}

#[test]
fn matched_fields_are_reported() {
    let s = k8s("  sel:\n    verb: create\n    objectRef.resource: pods\n  other:\n    verb: nope\n  condition: sel or other\n");
    let ev = json!({"verb": "create", "objectRef": {"resource": "pods"}});
    let mut out = vec![];
    s.evaluate(&Event::new("k8s.audit", &ev), &mut out);
    assert_eq!(
        out[0].matched,
        vec![
            ("verb".to_string(), json!("create")),
            ("objectRef.resource".to_string(), json!("pods"))
        ]
    );
}

#[test]
fn prefilter_is_sound_for_escapes_unicode_and_numbers() {
    let s = k8s("  sel:\n    a|contains: '<script>'\n  condition: sel\n");
    // Go's encoding/json escapes < and >.
    assert!(hits(&s, json!({"a": "x<script>y"})));
    let raw = r#"{"a":"x\u003cscript\u003ey"}"#;
    let mut out = vec![];
    s.evaluate(&Event::from_raw("k8s.audit", raw), &mut out);
    assert_eq!(out.len(), 1, "\\u escapes poison the prefilter");
    let s = k8s("  sel:\n    a|contains: 'usr/bin'\n  condition: sel\n");
    out.clear();
    s.evaluate(
        &Event::from_raw("k8s.audit", r#"{"a":"\/usr\/bin\/x"}"#),
        &mut out,
    );
    assert_eq!(out.len(), 1, "\\/ escapes");
    let s = k8s("  sel:\n    a: kube\n  condition: sel\n");
    out.clear();
    s.evaluate(
        &Event::from_raw("k8s.audit", "{\"a\":\"\u{212A}UBE\"}"),
        &mut out,
    );
    assert_eq!(out.len(), 1, "KELVIN SIGN lowercases to k");
    let s = k8s("  sel:\n    a|contains: '1.5'\n  condition: sel\n");
    out.clear();
    s.evaluate(&Event::from_raw("k8s.audit", r#"{"a":15e-1}"#), &mut out);
    assert_eq!(out.len(), 1, "15e-1 renders as 1.5");
}
