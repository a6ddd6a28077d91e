//! Sigma correlations: every type at its window edges, conditions and ranges, aliases,
//! `generate`, correlations over correlations, event time with allowed lateness, bounded state,
//! and save/restore mid-stream.

use serde_json::{json, Value};
use vigil_detect::{
    Config, CorrelationAlert, CorrelationState, Event, Limits, RejectKind, RuleError, RuleSet,
    RuleSource,
};

/// Base rules `a`, `b`, `c`: Kubernetes audit events whose verb is that letter.
const BASE: &str = "title: A\nid: 6a0d6b2e-0000-4000-8000-00000000000a\nname: a\nlogsource: {product: kubernetes, service: audit}\ndetection: {sel: {verb: a}, condition: sel}\n---\ntitle: B\nname: b\nlogsource: {product: kubernetes, service: audit}\ndetection: {sel: {verb: b}, condition: sel}\n---\ntitle: C\nname: c\nlogsource: {product: kubernetes, service: audit}\ndetection: {sel: {verb: c}, condition: sel}\n---\n";

fn compile_with(yaml: &str, limits: Limits) -> (RuleSet, Vec<RuleError>) {
    let cfg = Config {
        limits,
        ..Config::default()
    };
    RuleSet::compile(&[RuleSource::new("t.yml", yaml)], &cfg)
}

fn set_with(yaml: &str, limits: Limits) -> RuleSet {
    let (s, e) = compile_with(yaml, limits);
    assert!(e.is_empty(), "{e:#?}");
    s
}

fn set(yaml: &str) -> RuleSet {
    set_with(yaml, Limits::default())
}

fn corr(body: &str) -> RuleSet {
    set(&format!(
        "{BASE}title: corr\nname: corr\ncorrelation:\n{body}"
    ))
}

/// An audit event with this verb, user and time.
fn ev(verb: &str, user: &str) -> Value {
    json!({"verb": verb, "user": {"username": user}, "auditID": format!("{verb}-{user}")})
}

/// Feeds `(time, event)` in order, then ends the stream.
fn run(s: &RuleSet, evs: &[(i64, Value)]) -> Vec<CorrelationAlert> {
    let mut st = CorrelationState::new();
    let mut alerts = feed(s, &mut st, evs);
    s.flush(&mut st, i64::MAX, &mut alerts);
    alerts
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

fn times(a: &CorrelationAlert) -> Vec<i64> {
    a.events.iter().map(|e| e.time_ms).collect()
}

const S: i64 = 1000;
const M: i64 = 60 * S;

// ---------------------------------------------------------------------------------------------
// event_count

#[test]
fn event_count_window_is_closed_an_event_exactly_timespan_later_is_in() {
    let s = corr("  type: event_count\n  rules: [a]\n  group-by: [user.username]\n  timespan: 1m\n  condition: {gte: 2}\n");
    let a = run(&s, &[(0, ev("a", "u")), (M, ev("a", "u"))]);
    assert_eq!(a.len(), 1, "difference == timespan: same window");
    assert_eq!((a[0].first_ms, a[0].last_ms, a[0].count), (0, M, 2));
    assert!(run(&s, &[(0, ev("a", "u")), (M + 1, ev("a", "u"))]).is_empty());
}

#[test]
fn event_count_groups_and_slides() {
    let s = corr("  type: event_count\n  rules: [a, b]\n  group-by: [user.username]\n  timespan: 10s\n  condition: {gt: 2}\n");
    let a = run(
        &s,
        &[
            (0, ev("a", "x")),
            (S, ev("b", "y")),
            (5 * S, ev("b", "x")),
            (11 * S, ev("a", "x")), // the event at 0 has left: 2 in [1s, 11s]
            (12 * S, ev("a", "y")),
            (14 * S, ev("b", "x")), // 3 in [4s, 14s]
        ],
    );
    assert_eq!(a.len(), 1, "{a:#?}");
    assert_eq!(a[0].group, vec![("user.username".into(), json!("x"))]);
    assert_eq!(times(&a[0]), [5 * S, 11 * S, 14 * S]);
    assert_eq!(a[0].events[0].id.as_deref(), Some("b-x"));
}

#[test]
fn a_threshold_alerts_once_per_group_per_timespan() {
    let s = corr("  type: event_count\n  rules: [a]\n  group-by: [user.username]\n  timespan: 1m\n  condition: {gte: 3}\n");
    let mut evs: Vec<(i64, Value)> = (0..10).map(|i| (i * S, ev("a", "u"))).collect();
    // Quiet until the alert at 2s is a timespan old (2s + 1m, inclusive), then 3 more.
    evs.push((2 * S + M, ev("a", "u")));
    evs.extend((0..3).map(|i| (2 * S + M + 1 + i, ev("a", "u"))));
    let mut st = CorrelationState::new();
    let mut a = feed(&s, &mut st, &evs);
    s.flush(&mut st, i64::MAX, &mut a);
    assert_eq!(a.len(), 2, "{a:#?}");
    assert_eq!(a[0].last_ms, 2 * S);
    assert_eq!(times(&a[1]), [2 * S + M + 1, 2 * S + M + 2, 2 * S + M + 3]);
    assert_eq!(
        st.stats.suppressed_events, 8,
        "7 after the first alert, 1 at its edge"
    );
}

#[test]
fn upper_bounds_are_judged_on_anchored_windows_at_their_end() {
    let s = corr("  type: event_count\n  rules: [a]\n  group-by: [user.username]\n  timespan: 1m\n  condition: {lt: 3}\n");
    // Window [0, 1m]: 3 events (the one at exactly 1m is in): no alert. The event after opens
    // the next window, which holds one event: alert at the end of input.
    let a = run(
        &s,
        &[
            (0, ev("a", "u")),
            (S, ev("a", "u")),
            (M, ev("a", "u")),
            (M + 1, ev("a", "u")),
        ],
    );
    assert_eq!(a.len(), 1, "{a:#?}");
    assert_eq!((a[0].first_ms, a[0].count), (M + 1, 1));
    // Judged as soon as the stream passes the window's end.
    let mut st = CorrelationState::new();
    let a = feed(&s, &mut st, &[(0, ev("a", "u")), (M, ev("b", "u"))]);
    assert!(
        a.is_empty(),
        "an event exactly at the end does not close the window"
    );
    let a = feed(&s, &mut st, &[(M + 1, ev("b", "u"))]);
    assert_eq!(a.len(), 1);
}

#[test]
fn ranges_eq_and_neq() {
    for (cond, counts, expect) in [
        ("{gt: 1, lte: 3}", vec![1, 2, 3, 4], vec![2, 3]),
        ("{eq: 2}", vec![1, 2, 3], vec![2]),
        ("{neq: 2}", vec![1, 2, 3], vec![1, 3]),
        ("{gte: 2, lt: 4}", vec![1, 2, 3, 4, 5], vec![2, 3]),
    ] {
        let s = corr(&format!("  type: event_count\n  rules: [a]\n  group-by: [user.username]\n  timespan: 10s\n  condition: {cond}\n"));
        let mut evs = vec![];
        for (i, n) in counts.iter().enumerate() {
            for k in 0..*n {
                evs.push((k as i64, ev("a", &format!("u{i}"))));
            }
        }
        evs.sort_by_key(|e| e.0);
        let mut got: Vec<u64> = run(&s, &evs).iter().map(|a| a.count).collect();
        got.sort();
        assert_eq!(got, expect, "{cond}");
    }
}

// ---------------------------------------------------------------------------------------------
// value_count

#[test]
fn value_count_counts_distinct_values_in_the_window() {
    let s = corr("  type: value_count\n  rules: [a]\n  group-by: [sourceIPs]\n  timespan: 1m\n  condition: {field: user.username, gte: 3}\n");
    let e = |u: &str, ip: &str| json!({"verb": "a", "user": {"username": u}, "sourceIPs": [ip]});
    let a = run(
        &s,
        &[
            (0, e("root", "1.1.1.1")),
            (S, e("root", "1.1.1.1")),
            (2 * S, e("admin", "1.1.1.1")),
            (3 * S, e("admin", "2.2.2.2")),
            (M + 2 * S, e("git", "1.1.1.1")), // root (last at 1s) has left; admin at 2s is in
            (M + 2 * S, e("oracle", "1.1.1.1")),
        ],
    );
    assert_eq!(a.len(), 1, "{a:#?}");
    assert_eq!(a[0].group, vec![("sourceIPs".into(), json!("1.1.1.1"))]);
    assert_eq!(
        a[0].values,
        vec![json!("admin"), json!("git"), json!("oracle")]
    );
    assert_eq!(a[0].field.as_deref(), Some("user.username"));
    assert_eq!(times(&a[0]), [2 * S, M + 2 * S, M + 2 * S]);
}

#[test]
fn value_count_over_several_fields_and_per_network() {
    // Distinct (user, verb) pairs; and `|net16` reduces addresses to their /16 network.
    let s = corr("  type: value_count\n  rules: [a, b]\n  group-by: [user.username]\n  timespan: 1h\n  condition: {field: 'sourceIPs|net16', gte: 2}\n");
    let e = |ip: &str| json!({"verb": "a", "user": {"username": "alice"}, "sourceIPs": [ip]});
    assert!(run(&s, &[(0, e("203.0.113.7")), (S, e("203.0.200.9"))]).is_empty());
    let a = run(&s, &[(0, e("203.0.113.7")), (S, e("198.51.100.4"))]);
    assert_eq!(
        a[0].values,
        vec![json!("198.51.0.0/16"), json!("203.0.0.0/16")]
    );
    let s = corr("  type: value_count\n  rules: [a, b]\n  group-by: [user.username]\n  timespan: 1h\n  condition: {field: [verb, objectRef.namespace], gt: 2}\n");
    let e = |v: &str, ns: &str| json!({"verb": v, "user": {"username": "u"}, "objectRef": {"namespace": ns}});
    let a = run(
        &s,
        &[
            (0, e("a", "x")),
            (1, e("a", "x")),
            (2, e("b", "x")),
            (3, e("a", "y")),
        ],
    );
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].count, 3);
}

// ---------------------------------------------------------------------------------------------
// temporal, temporal_ordered

#[test]
fn temporal_needs_every_rule_in_any_order_within_the_timespan() {
    let s =
        corr("  type: temporal\n  rules: [a, b, c]\n  group-by: [user.username]\n  timespan: 1m\n");
    let a = run(
        &s,
        &[(0, ev("c", "u")), (S, ev("a", "u")), (M, ev("b", "u"))],
    );
    assert_eq!(a.len(), 1, "exactly a timespan apart: in");
    assert_eq!((a[0].count, a[0].first_ms, a[0].last_ms), (3, 0, M));
    assert!(run(
        &s,
        &[(0, ev("c", "u")), (S, ev("a", "u")), (M + 1, ev("b", "u"))]
    )
    .is_empty());
    assert!(run(
        &s,
        &[(0, ev("c", "u")), (S, ev("a", "v")), (2 * S, ev("b", "u"))]
    )
    .is_empty());
    // The latest match of each rule counts: c at 0 is replaced by c at 30s.
    let a = run(
        &s,
        &[
            (0, ev("c", "u")),
            (30 * S, ev("c", "u")),
            (M + S, ev("a", "u")),
            (M + 2 * S, ev("b", "u")),
        ],
    );
    assert_eq!(times(&a[0]), [30 * S, M + S, M + 2 * S]);
}

#[test]
fn temporal_conditions_count_rules_or_use_an_expression() {
    let s = corr("  type: temporal\n  rules: [a, b, c]\n  group-by: [user.username]\n  timespan: 1m\n  condition: {gte: 2}\n");
    assert_eq!(run(&s, &[(0, ev("a", "u")), (S, ev("c", "u"))]).len(), 1);
    assert!(run(&s, &[(0, ev("a", "u")), (S, ev("a", "u"))]).is_empty());
    // `a and not b`: decided when the window [first, first + 1m] is over.
    let s = corr(
        "  type: temporal\n  group-by: [user.username]\n  timespan: 1m\n  condition: a and not b\n",
    );
    let a = run(
        &s,
        &[
            (0, ev("a", "u")),
            (0, ev("a", "v")),
            (M, ev("b", "u")),     // in u's window: no alert
            (M + 1, ev("b", "v")), // after v's window: v alerts, then opens a window of its own
        ],
    );
    assert_eq!(a.len(), 1, "{a:#?}");
    assert_eq!(a[0].group[0].1, json!("v"));
    // A positive expression slides and alerts at once.
    let s = corr("  type: temporal\n  rules: [a, b, c]\n  group-by: [user.username]\n  timespan: 1m\n  condition: a and (b or c)\n");
    let mut st = CorrelationState::new();
    assert_eq!(
        feed(&s, &mut st, &[(0, ev("c", "u")), (S, ev("a", "u"))]).len(),
        1
    );
}

#[test]
fn temporal_ordered_requires_the_order() {
    let s = corr("  type: temporal_ordered\n  rules: [a, b, c]\n  group-by: [user.username]\n  timespan: 1m\n");
    let a = run(
        &s,
        &[(0, ev("a", "u")), (S, ev("b", "u")), (M, ev("c", "u"))],
    );
    assert_eq!(
        a.len(),
        1,
        "the last step exactly a timespan after the first: in"
    );
    assert_eq!(times(&a[0]), [0, S, M]);
    assert!(run(
        &s,
        &[(0, ev("a", "u")), (S, ev("b", "u")), (M + 1, ev("c", "u"))]
    )
    .is_empty());
    assert!(run(
        &s,
        &[(0, ev("b", "u")), (S, ev("a", "u")), (2 * S, ev("c", "u"))]
    )
    .is_empty());
    // Equal times: arrival order decides.
    assert_eq!(
        run(
            &s,
            &[(5, ev("a", "u")), (5, ev("b", "u")), (5, ev("c", "u"))]
        )
        .len(),
        1
    );
    assert!(run(
        &s,
        &[(5, ev("a", "u")), (5, ev("c", "u")), (5, ev("b", "u"))]
    )
    .is_empty());
    // The chain starting latest survives: a at 0 expires, a at 50s leads b at 70s and c at 100s.
    let a = run(
        &s,
        &[
            (0, ev("a", "u")),
            (50 * S, ev("a", "u")),
            (70 * S, ev("b", "u")),
            (100 * S, ev("c", "u")),
        ],
    );
    assert_eq!(times(&a[0]), [50 * S, 70 * S, 100 * S]);
}

#[test]
fn temporal_ordered_with_a_repeated_rule() {
    let s = corr(
        "  type: temporal_ordered\n  rules: [a, a]\n  group-by: [user.username]\n  timespan: 1m\n",
    );
    assert!(
        run(&s, &[(0, ev("a", "u"))]).is_empty(),
        "one event is not two steps"
    );
    assert_eq!(run(&s, &[(0, ev("a", "u")), (S, ev("a", "u"))]).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// value_sum, value_avg, value_min, value_max, value_percentile, value_median

fn num(verb: &str, user: &str, n: f64) -> Value {
    json!({"verb": verb, "user": {"username": user}, "bytes": n})
}

#[test]
fn value_sum_slides_and_alerts_at_once() {
    let s = corr("  type: value_sum\n  rules: [a]\n  group-by: [user.username]\n  timespan: 1m\n  condition: {field: bytes, gte: 100}\n");
    let mut st = CorrelationState::new();
    let a = feed(
        &s,
        &mut st,
        &[
            (0, num("a", "u", 60.0)),
            (M + 1, num("a", "u", 50.0)),
            (2 * M, num("a", "u", 50.0)),
        ],
    );
    assert_eq!(a.len(), 1);
    assert_eq!(
        (a[0].value, a[0].count, a[0].first_ms),
        (Some(100.0), 2, M + 1)
    );
    // Numbers written as strings count; other values are counted as missing.
    let a = feed(
        &s,
        &mut st,
        &[
            (
                10 * M,
                json!({"verb": "a", "user": {"username": "v"}, "bytes": "150"}),
            ),
            (
                10 * M,
                json!({"verb": "a", "user": {"username": "w"}, "bytes": "lots"}),
            ),
        ],
    );
    assert_eq!(a.len(), 1);
    assert_eq!(st.stats.missing_values, 1);
}

#[test]
fn numeric_aggregates_are_judged_on_the_whole_window() {
    let evs = |xs: &[f64]| -> Vec<(i64, Value)> {
        let mut v: Vec<(i64, Value)> = xs
            .iter()
            .enumerate()
            .map(|(i, x)| (i as i64 * S, num("a", "u", *x)))
            .collect();
        // A window is [first, first + 1m]: this one is in the next window.
        v.push((M + 1, num("a", "u", 1e9)));
        v
    };
    for (kind, cond, xs, value) in [
        (
            "value_avg",
            "{field: bytes, gt: 20}",
            vec![10.0, 20.0, 40.0],
            Some(70.0 / 3.0),
        ),
        (
            "value_avg",
            "{field: bytes, gt: 30}",
            vec![10.0, 20.0, 40.0],
            None,
        ),
        (
            "value_min",
            "{field: bytes, lte: 10}",
            vec![10.0, 20.0, 40.0],
            Some(10.0),
        ),
        (
            "value_max",
            "{field: bytes, gte: 40}",
            vec![10.0, 20.0, 40.0],
            Some(40.0),
        ),
        (
            "value_median",
            "{field: bytes, eq: 15}",
            vec![10.0, 20.0, 40.0, 5.0],
            Some(15.0),
        ),
        (
            "value_percentile",
            "{field: bytes, percentile: 90, gt: 78}",
            vec![10.0, 100.0, 20.0, 30.0],
            Some(79.0),
        ),
        (
            "value_sum",
            "{field: bytes, lt: 100}",
            vec![10.0, 20.0, 40.0],
            Some(70.0),
        ),
    ] {
        let s = corr(&format!("  type: {kind}\n  rules: [a]\n  group-by: [user.username]\n  timespan: 1m\n  condition: {cond}\n"));
        let a = run(&s, &evs(&xs));
        let first: Vec<_> = a.iter().filter(|a| a.first_ms == 0).collect();
        match value {
            Some(v) => {
                assert_eq!(first.len(), 1, "{kind} {cond}: {a:#?}");
                assert!(
                    (first[0].value.unwrap() - v).abs() < 1e-9,
                    "{kind}: {:?}",
                    first[0].value
                );
                assert_eq!(first[0].count, xs.len() as u64);
                assert_eq!(first[0].field.as_deref(), Some("bytes"));
            }
            None => assert!(first.is_empty(), "{kind} {cond}: {a:#?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// aliases, generate, chains, references

const AUTH_AND_ZEEK: &str = "title: ssh ok\nname: ssh_ok\nlogsource: {product: linux, service: auth}\ndetection: {sel: {event.outcome: success}, condition: sel}\n---\ntitle: api conn\nid: 0d2f7a0e-1111-4111-8111-111111111111\nlogsource: {product: zeek, service: conn}\ndetection: {sel: {id.resp_p: 6443}, condition: sel}\n---\n";

#[test]
fn aliases_group_events_of_different_sources_together() {
    let s = set(&format!("{AUTH_AND_ZEEK}title: login then api\ncorrelation:\n  type: temporal_ordered\n  rules: [ssh_ok, 0d2f7a0e-1111-4111-8111-111111111111]\n  group-by: [host]\n  timespan: 5m\n  aliases:\n    host:\n      ssh_ok: host.name\n      0d2f7a0e-1111-4111-8111-111111111111: id.orig_h\n"));
    assert!(!s.rules()[0].alerts && !s.rules()[1].alerts);
    assert_eq!(s.rules()[2].datasets, ["linux.auth", "zeek.conn"]);
    let login = json!({"host": {"name": "10.0.0.5"}, "event": {"outcome": "success"}});
    let conn = |h: &str| json!({"id.orig_h": h, "id.resp_p": 6443, "uid": format!("C{h}")});
    let mut st = CorrelationState::new();
    let mut alerts = vec![];
    let mut out = vec![];
    for (t, ds, doc) in [
        (0, "zeek.conn", conn("10.0.0.5")), // before the login: not in order
        (S, "linux.auth", login.clone()),
        (2 * S, "zeek.conn", conn("10.0.0.9")), // another host
        (3 * S, "zeek.conn", conn("10.0.0.5")),
    ] {
        s.process(
            &Event::new(ds, &doc).at(t).with_ref(t as u64 + 7),
            &mut st,
            &mut out,
            &mut alerts,
        );
    }
    assert!(out.is_empty());
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0].group, vec![("host".into(), json!("10.0.0.5"))]);
    assert_eq!(times(&alerts[0]), [S, 3 * S]);
    assert_eq!(alerts[0].events[1].id.as_deref(), Some("C10.0.0.5"));
    assert_eq!(
        alerts[0]
            .events
            .iter()
            .map(|e| e.origin)
            .collect::<Vec<_>>(),
        [Some(S as u64 + 7), Some(3 * S as u64 + 7)],
        "the caller's references come back"
    );
}

#[test]
fn generate_keeps_referenced_rules_alerting() {
    let base = "title: A\nname: a\nlogsource: {product: kubernetes, service: audit}\ndetection: {sel: {verb: a}, condition: sel}\n---\n";
    for (generate, alerts) in [
        ("", false),
        ("  generate: true\n", true),
        ("  generate: false\n", false),
    ] {
        let s = set(&format!("{base}title: c\ncorrelation:\n  type: event_count\n  rules: [a]\n  timespan: 1m\n  condition: {{gte: 2}}\n{generate}"));
        assert_eq!(s.rules()[0].alerts, alerts, "{generate}");
        let mut out = vec![];
        s.evaluate(&Event::new("k8s.audit", &ev("a", "u")), &mut out);
        assert_eq!(out.len(), usize::from(alerts));
    }
}

#[test]
fn correlations_over_correlations_by_name_or_id_in_any_order() {
    // The outer correlation comes first and names the inner one by id; the inner one names
    // its rule by id. As in the specification's example.
    let s = set(&format!("{BASE}title: many a then b\nid: 11111111-2222-4333-8444-555555555555\ncorrelation:\n  type: temporal_ordered\n  rules: [0e95725d-7320-415d-80f7-004da920fc11, b]\n  group-by: [user.username]\n  timespan: 10m\n  generate: true\nlevel: high\n---\ntitle: many a\nid: 0e95725d-7320-415d-80f7-004da920fc11\nname: many_a\ncorrelation:\n  type: event_count\n  rules: [6a0d6b2e-0000-4000-8000-00000000000a]\n  group-by: [user.username]\n  timespan: 1m\n  condition: {{gte: 3}}\n"));
    let outer = s
        .rules()
        .iter()
        .position(|r| r.title == "many a then b")
        .unwrap();
    let inner = s.rules().iter().position(|r| r.title == "many a").unwrap();
    let a = run(
        &s,
        &[
            (0, ev("a", "u")),
            (S, ev("b", "u")), // before the burst: does not count
            (2 * S, ev("a", "u")),
            (3 * S, ev("a", "u")), // the inner alert, at 3s
            (4 * S, ev("a", "v")),
            (9 * M, ev("b", "u")),
        ],
    );
    let rules: Vec<usize> = a.iter().map(|a| a.rule).collect();
    assert_eq!(
        rules,
        [inner, outer],
        "generate: true keeps the inner alert: {a:#?}"
    );
    assert_eq!(a[1].group, vec![("user.username".into(), json!("u"))]);
    assert_eq!(
        times(&a[1]),
        [0, 2 * S, 3 * S, 9 * M],
        "the inner alert's events, then b"
    );
    assert_eq!((a[1].first_ms, a[1].last_ms), (3 * S, 9 * M));
    // Without generate, only the outer correlation reports.
    let s2 = set(&format!("{BASE}title: outer\ncorrelation:\n  type: temporal_ordered\n  rules: [many_a, b]\n  group-by: [user.username]\n  timespan: 10m\n---\ntitle: many a\nname: many_a\ncorrelation:\n  type: event_count\n  rules: [a]\n  group-by: [user.username]\n  timespan: 1m\n  condition: {{gte: 3}}\n"));
    let a = run(
        &s2,
        &[
            (0, ev("a", "u")),
            (1, ev("a", "u")),
            (2, ev("a", "u")),
            (3, ev("b", "u")),
        ],
    );
    assert_eq!(a.len(), 1);
    assert_eq!(s2.rules()[a[0].rule].title, "outer");
}

#[test]
fn reference_errors_are_reported() {
    for (body, kind, needle) in [
        ("title: x\nname: x\ncorrelation:\n  type: event_count\n  rules: [y]\n  timespan: 1m\n  condition: {gte: 1}\n---\ntitle: y\nname: y\ncorrelation:\n  type: event_count\n  rules: [x]\n  timespan: 1m\n  condition: {gte: 1}\n", RejectKind::UnknownReference, "cycle"),
        ("title: x\ncorrelation:\n  type: temporal\n  rules: [a, b]\n  group-by: [ip]\n  timespan: 1m\n  aliases:\n    ip:\n      a: sourceIPs\n", RejectKind::Invalid, "does not say which field of rule `b`"),
        ("title: x\ncorrelation:\n  type: temporal\n  rules: [a]\n  group-by: [ip]\n  timespan: 1m\n  aliases:\n    ip:\n      zz: sourceIPs\n", RejectKind::UnknownReference, "zz"),
        ("title: x\ncorrelation:\n  type: temporal\n  rules: [a, b]\n  timespan: 1m\n  condition: a and b and c\n", RejectKind::Invalid, "`c`"),
        ("title: x\ncorrelation:\n  type: temporal\n  rules: [a, b]\n  timespan: 1m\n  condition: a\n", RejectKind::Invalid, "`b`"),
        ("title: x\ncorrelation:\n  type: event_count\n  rules: [a]\n  timespan: 1m\n  condition: a\n", RejectKind::Invalid, "only temporal"),
        ("title: x\ncorrelation:\n  type: value_sum\n  rules: [a]\n  timespan: 1m\n  condition: {field: [x, y], gt: 1}\n", RejectKind::Invalid, "one `field`"),
        ("title: x\ncorrelation:\n  type: temporal_ordered\n  rules: [a, b]\n  timespan: 1m\n  condition: {gte: 1}\n", RejectKind::NotYetSupported, "default condition"),
        ("title: x\ncorrelation:\n  type: event_count\n  rules: [a]\n  group-by: ['ip|net99']\n  timespan: 1m\n  condition: {gte: 1}\n", RejectKind::Invalid, "net99"),
        ("title: x\nname: a\ncorrelation:\n  type: event_count\n  rules: [b]\n  timespan: 1m\n  condition: {gte: 1}\n", RejectKind::Duplicate, "`a`"),
        ("title: x\ncorrelation:\n  type: event_count\n  rules: [a]\n  timespan: 1m\n  condition: {gte: 1}\n  generate: maybe\n", RejectKind::Invalid, "generate"),
    ] {
        let (_, e) = compile_with(&format!("{BASE}{body}"), Limits::default());
        assert!(!e.is_empty(), "{body}");
        assert_eq!(e[0].kind, kind, "{body}: {}", e[0]);
        assert!(e[0].reason.contains(needle), "{body}: {}", e[0]);
    }
}

// ---------------------------------------------------------------------------------------------
// event time: lateness, untimed and ungrouped events

#[test]
fn late_events_within_the_allowed_lateness_count_in_their_place() {
    let limits = Limits {
        allowed_lateness_ms: 30 * S,
        ..Limits::default()
    };
    let yaml = format!("{BASE}title: ab\ncorrelation:\n  type: temporal_ordered\n  rules: [a, b]\n  group-by: [user.username]\n  timespan: 10s\n---\ntitle: three\ncorrelation:\n  type: event_count\n  rules: [c]\n  group-by: [user.username]\n  timespan: 10s\n  condition: {{gte: 3}}\n");
    let s = set_with(&yaml, limits);
    let in_order = [
        (0, ev("c", "u")),
        (S, ev("a", "u")),
        (2 * S, ev("b", "u")),
        (9 * S, ev("c", "u")),
        (10 * S, ev("c", "u")),
    ];
    let expected = run(&s, &in_order);
    assert_eq!(expected.len(), 2);
    // The same events, shuffled by up to 20 s.
    let shuffled = [
        (9 * S, ev("c", "u")),
        (2 * S, ev("b", "u")),
        (10 * S, ev("c", "u")),
        (0, ev("c", "u")),
        (S, ev("a", "u")),
    ];
    let mut st = CorrelationState::new();
    let mut got = feed(&s, &mut st, &shuffled);
    assert!(got.is_empty(), "alerts wait for the allowed lateness");
    assert_eq!(st.pending(), 5);
    s.flush(&mut st, i64::MAX, &mut got);
    assert_eq!(got, expected);
    assert_eq!(st.stats.late_events, 0);
    // Too late: more than 30 s behind the latest event time.
    let mut st = CorrelationState::new();
    let mut got = feed(
        &s,
        &mut st,
        &[
            (100 * S, ev("c", "x")),
            (69 * S, ev("c", "x")),
            (70 * S, ev("c", "x")),
        ],
    );
    assert_eq!(st.stats.late_events, 1, "69 s is 31 s late");
    s.flush(&mut st, i64::MAX, &mut got);
    assert!(got.is_empty());
    // With no allowed lateness, a match is released at once and an older one is late.
    let s0 = set(&yaml);
    let mut st = CorrelationState::new();
    let got = feed(
        &s0,
        &mut st,
        &[(S, ev("a", "u")), (0, ev("c", "u")), (2 * S, ev("b", "u"))],
    );
    assert_eq!(got.len(), 1, "alerts at once");
    assert_eq!(st.stats.late_events, 1);
}

#[test]
fn untimed_and_ungrouped_events_are_counted() {
    let s = corr("  type: event_count\n  rules: [a]\n  group-by: [user.username]\n  timespan: 1m\n  condition: {gte: 1}\n");
    let mut st = CorrelationState::new();
    let mut alerts = vec![];
    let mut out = vec![];
    s.process(
        &Event::new("k8s.audit", &ev("a", "u")),
        &mut st,
        &mut out,
        &mut alerts,
    );
    s.process(
        &Event::new("k8s.audit", &json!({"verb": "a"})).at(0),
        &mut st,
        &mut out,
        &mut alerts,
    );
    // The dataset's time field is used when no explicit time is given.
    let timed =
        json!({"verb": "a", "user": {"username": "w"}, "stageTimestamp": "2026-11-20T10:00:00Z"});
    s.process(
        &Event::new("k8s.audit", &timed),
        &mut st,
        &mut out,
        &mut alerts,
    );
    assert_eq!((st.stats.untimed_events, st.stats.ungrouped_events), (1, 1));
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].first_ms, 1_795_168_800_000);
}

// ---------------------------------------------------------------------------------------------
// bounded state, checkpoints

#[test]
fn state_is_bounded_expired_groups_are_swept_and_the_cap_evicts() {
    let s = set_with(
        &format!("{BASE}title: c\ncorrelation:\n  type: value_count\n  rules: [a]\n  group-by: [user.username]\n  timespan: 1m\n  condition: {{field: objectRef.name, gte: 1000}}\n"),
        Limits {
            max_groups: 64,
            max_values_per_group: 10,
            ..Limits::default()
        },
    );
    let mut st = CorrelationState::new();
    let e = |u: usize, n: usize| json!({"verb": "a", "user": {"username": format!("u{u}")}, "objectRef": {"name": format!("n{n}")}});
    let evs: Vec<(i64, Value)> = (0..200).map(|i| (i as i64, e(i, 0))).collect();
    feed(&s, &mut st, &evs);
    assert!(st.groups() <= 64, "{}", st.groups());
    assert!(st.stats.evicted_groups >= 136);
    feed(
        &s,
        &mut st,
        &(0..20).map(|n| (300, e(1000, n))).collect::<Vec<_>>(),
    );
    assert_eq!(st.stats.dropped_values, 10);
    // Two timespans later everything has expired and is swept.
    feed(&s, &mut st, &[(3 * M, e(7, 0))]);
    assert_eq!(st.groups(), 1);
}

#[test]
fn a_checkpoint_mid_stream_gives_identical_alerts() {
    let limits = Limits {
        allowed_lateness_ms: 5 * S,
        ..Limits::default()
    };
    let s = set_with(&format!("{BASE}title: burst\nname: burst\ncorrelation:\n  type: event_count\n  rules: [a]\n  group-by: [user.username]\n  timespan: 10s\n  condition: {{gte: 3}}\n  generate: true\n---\ntitle: burst then b\ncorrelation:\n  type: temporal_ordered\n  rules: [burst, b]\n  group-by: [user.username]\n  timespan: 1m\n---\ntitle: few c\ncorrelation:\n  type: event_count\n  rules: [c]\n  group-by: [user.username]\n  timespan: 20s\n  condition: {{lt: 3}}\n---\ntitle: avg\ncorrelation:\n  type: value_avg\n  rules: [c]\n  group-by: [user.username]\n  timespan: 20s\n  condition: {{field: bytes, gt: 5}}\n"), limits);
    // A pseudo-random stream over 4 users, slightly out of order.
    let mut x: u64 = 42;
    let mut evs = vec![];
    for i in 0..400i64 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let verb = ["a", "a", "b", "c"][(x >> 33) as usize % 4];
        let user = format!("u{}", (x >> 40) % 4);
        let jitter = ((x >> 20) % 3000) as i64;
        evs.push((
            i * 700 + jitter,
            json!({"verb": verb, "user": {"username": user}, "bytes": (x >> 50) % 10}),
        ));
    }
    let expected = run(&s, &evs);
    assert!(expected.len() > 20, "{}", expected.len());
    for cut in [1, 57, 200, 333, 399] {
        let mut st = CorrelationState::new();
        let mut got = feed(&s, &mut st, &evs[..cut]);
        let saved = serde_json::to_string(&st).unwrap();
        let mut restored: CorrelationState = serde_json::from_str(&saved).unwrap();
        got.extend(feed(&s, &mut restored, &evs[cut..]));
        s.flush(&mut restored, i64::MAX, &mut got);
        assert_eq!(got, expected, "cut at {cut}");
    }
}

// ---------------------------------------------------------------------------------------------
// legacy aggregations

#[test]
fn legacy_aggregations_are_correlations() {
    let rule = |cond: &str| {
        format!("title: t\nlogsource: {{product: kubernetes, service: audit}}\ndetection:\n  sel: {{verb: a}}\n  timeframe: 1m\n  condition: sel | {cond}\n")
    };
    for (cond, evs, n) in [
        ("count() by user.username > 2", vec![1.0, 1.0, 1.0], 1),
        ("count() by user.username > 3", vec![1.0, 1.0, 1.0], 0),
        ("count(bytes) by user.username >= 2", vec![1.0, 1.0, 2.0], 1),
        ("sum(bytes) by user.username > 5", vec![1.0, 2.0, 3.0], 1),
        ("avg(bytes) by user.username < 2.5", vec![1.0, 2.0, 3.0], 1),
        ("max(bytes) by user.username >= 3", vec![1.0, 2.0, 3.0], 1),
        ("min(bytes) by user.username > 1", vec![1.0, 2.0, 3.0], 0),
    ] {
        let s = set(&rule(cond));
        assert!(!s.rules()[0].alerts);
        let evs: Vec<(i64, Value)> = evs
            .iter()
            .enumerate()
            .map(|(i, x)| (i as i64, num("a", "u", *x)))
            .collect();
        assert_eq!(run(&s, &evs).len(), n, "{cond}");
    }
}

#[test]
fn matched_fields_are_kept_only_when_asked() {
    let yaml = format!("{BASE}title: c\ncorrelation:\n  type: event_count\n  rules: [a]\n  timespan: 1m\n  condition: {{gte: 2}}\n");
    for keep in [false, true] {
        let s = set_with(
            &yaml,
            Limits {
                keep_matched: keep,
                ..Limits::default()
            },
        );
        let a = run(&s, &[(0, ev("a", "u")), (1, ev("a", "u"))]);
        let matched = &a[0].events[0].matched;
        assert_eq!(matched.is_empty(), !keep, "{matched:?}");
        if keep {
            assert_eq!(matched, &vec![("verb".to_string(), json!("a"))]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// the two halves of `process`

/// `matches` (run anywhere, e.g. on worker threads) then `correlate` (in order) give exactly what
/// `process` gives: the same reported matches, the same correlation alerts at the same events.
#[test]
fn matches_then_correlate_is_process() {
    let s = set(&format!("{BASE}title: corr\nname: corr\ncorrelation:\n  type: event_count\n  rules: [a, b]\n  generate: true\n  group-by: [user.username]\n  timespan: 1m\n  condition: {{gte: 2}}\n---\ntitle: temporal\nname: t\ncorrelation:\n  type: temporal\n  rules: [b, c]\n  group-by: [user.username]\n  timespan: 1m\n"));
    let raws: Vec<(i64, String)> = (0..200i64)
        .map(|i| {
            let verb = ["a", "b", "c", "get"][(i * 7 % 4) as usize];
            let user = ["u", "v", "w"][(i % 3) as usize];
            (i * 7 * S, ev(verb, user).to_string())
        })
        .collect();
    let (mut st1, mut st2) = (CorrelationState::new(), CorrelationState::new());
    let (mut alerts1, mut alerts2) = (vec![], vec![]);
    let (mut out1, mut out2) = (vec![], vec![]);
    let mut found = vec![];
    for (t, raw) in &raws {
        s.process(
            &Event::from_raw("k8s.audit", raw).at(*t),
            &mut st1,
            &mut out1,
            &mut alerts1,
        );
        found.clear();
        let first = Event::from_raw("k8s.audit", raw).at(*t);
        s.matches(&first, true, &mut found);
        // The ordered half sees a fresh event built from the document alone.
        let doc = first.into_doc().unwrap();
        let second = Event::new("k8s.audit", &doc).at(*t);
        s.correlate(&second, &found, &mut st2, &mut alerts2);
        out2.extend(found.drain(..).filter(|m| s.rules()[m.rule].alerts));
    }
    s.flush(&mut st1, i64::MAX, &mut alerts1);
    s.flush(&mut st2, i64::MAX, &mut alerts2);
    assert!(!out1.is_empty() && !alerts1.is_empty());
    assert_eq!(out1, out2);
    assert_eq!(format!("{alerts1:?}"), format!("{alerts2:?}"));
    // Without correlations, `matches` leaves out the rules that only feed them.
    found.clear();
    s.matches(&Event::from_raw("k8s.audit", &raws[0].1), false, &mut found);
    assert!(found.iter().all(|m| s.rules()[m.rule].alerts));
    assert!((0..s.rules().len()).any(|r| s.feeds_correlation(r)));
}

// ---------------------------------------------------------------------------------------------
// carrying state across a rule reload

const COUNT3: &str = "title: corr\nname: corr\ncorrelation:\n  type: event_count\n  rules: [a]\n  group-by: [user.username]\n  timespan: 1m\n  condition: {gte: 3}\n";

#[test]
fn a_reload_that_adds_rules_keeps_the_counts() {
    let old = set(&format!("{BASE}{COUNT3}"));
    let mut st = CorrelationState::new();
    assert!(feed(&old, &mut st, &[(0, ev("a", "u")), (S, ev("a", "u"))]).is_empty());
    let layout = old.state_layout();
    // The new set numbers everything differently: a rule before the others, one more correlation.
    let extra = "title: Z\nname: z\nlogsource: {product: kubernetes, service: audit}\ndetection: {sel: {verb: z}, condition: sel}\n---\n";
    let other = "---\ntitle: other\nname: other\ncorrelation:\n  type: event_count\n  rules: [b]\n  group-by: [user.username]\n  timespan: 1m\n  condition: {gte: 2}\n";
    let new = set(&format!("{extra}{BASE}{COUNT3}{other}"));
    let (mut st, carried) = st.carry_over(&layout, &new);
    assert_eq!((carried.kept, carried.reset), (1, 0));
    let mut a = feed(&new, &mut st, &[(2 * S, ev("a", "u"))]);
    new.flush(&mut st, i64::MAX, &mut a);
    assert_eq!(
        a.len(),
        1,
        "the third event completes the count begun before the reload"
    );
    assert_eq!(times(&a[0]), [0, S, 2 * S]);
    assert_eq!(a[0].events[0].id.as_deref(), Some("a-u"));
}

#[test]
fn a_changed_correlation_starts_empty() {
    let old = set(&format!("{BASE}{COUNT3}"));
    let mut st = CorrelationState::new();
    feed(&old, &mut st, &[(0, ev("a", "u")), (S, ev("a", "u"))]);
    let new = set(&format!(
        "{BASE}{}",
        COUNT3.replace("timespan: 1m", "timespan: 2m")
    ));
    let (mut st, carried) = st.carry_over(&old.state_layout(), &new);
    assert_eq!((carried.kept, carried.reset), (0, 1));
    let mut a = feed(&new, &mut st, &[(2 * S, ev("a", "u"))]);
    new.flush(&mut st, i64::MAX, &mut a);
    assert!(a.is_empty(), "{a:#?}");
}

#[test]
fn buffered_matches_follow_their_rules_across_a_reload() {
    let limits = Limits {
        allowed_lateness_ms: 10 * S,
        ..Limits::default()
    };
    let old = set_with(&format!("{BASE}{COUNT3}"), limits.clone());
    let mut st = CorrelationState::new();
    feed(&old, &mut st, &[(0, ev("a", "u")), (S, ev("a", "u"))]);
    assert!(st.pending() > 0, "held in the reorder buffer");
    let extra = "title: Z\nname: z\nlogsource: {product: kubernetes, service: audit}\ndetection: {sel: {verb: z}, condition: sel}\n---\n";
    let new = set_with(&format!("{extra}{BASE}{COUNT3}"), limits);
    let (mut st, _) = st.carry_over(&old.state_layout(), &new);
    assert_eq!(st.pending(), 2);
    let mut a = feed(&new, &mut st, &[(2 * S, ev("a", "u"))]);
    new.flush(&mut st, i64::MAX, &mut a);
    assert_eq!(a.len(), 1);
    assert_eq!(
        a[0].rule,
        new.rules().iter().position(|r| r.title == "corr").unwrap()
    );
}
