//! `simulate`: replaying recorded events through a policy. Sizes are checked against a plain
//! reference (clone the event, trim it as kube-apiserver would at the new level, serialize it).

use proptest::prelude::*;
use serde_json::{json, Value};
use vigil_model::{Event, Level, Stage};
use vigil_policy::simulate::{Simulation, SimulationReport, MAX_KEYS, NO_USER, OTHER};
use vigil_policy::{GroupResources, Policy, PolicyRule};

// ---- events ---------------------------------------------------------------------------------

fn managed() -> Value {
    json!([{"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}}])
}

fn object(name: &str) -> Value {
    json!({"kind": "ConfigMap", "apiVersion": "v1",
           "metadata": {"name": name, "namespace": "prod", "managedFields": managed(), "uid": "u-1"},
           "data": {"k": "v"}})
}

/// A resource event as the log backend writes it at `level` (bodies present up to that level).
#[allow(clippy::too_many_arguments)]
fn resource_event(
    user: &str,
    verb: &str,
    group: &str,
    resource: &str,
    sub: &str,
    stage: &str,
    level: &str,
    request: Option<Value>,
    response: Option<Value>,
) -> Value {
    let prefix = if group.is_empty() {
        "/api/v1".to_string()
    } else {
        format!("/apis/{group}/v1")
    };
    let mut uri = format!("{prefix}/namespaces/prod/{resource}/x");
    if !sub.is_empty() {
        uri = format!("{uri}/{sub}");
    }
    let mut ev = json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": level,
        "auditID": "0b5f1c3e-1111-2222-3333-444455556666", "stage": stage,
        "requestURI": uri, "verb": verb,
        "user": {"username": user, "groups": ["system:authenticated"]},
        "sourceIPs": ["10.0.0.1"], "userAgent": "kubectl/v1.31.0",
        "objectRef": {"resource": resource, "namespace": "prod", "name": "x", "apiGroup": group,
                      "apiVersion": "v1", "subresource": sub},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": "2026-01-01T00:00:00.000000Z",
        "stageTimestamp": "2026-01-01T00:00:00.100000Z",
        "annotations": {"authorization.k8s.io/decision": "allow"}
    });
    if let Some(r) = request {
        ev["requestObject"] = r;
    }
    if let Some(r) = response {
        ev["responseObject"] = r;
    }
    ev
}

fn non_resource_event(user: &str, path: &str) -> Value {
    json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": "a", "stage": "ResponseComplete", "requestURI": path, "verb": "get",
        "user": {"username": user, "groups": ["system:unauthenticated"]},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": "2026-01-01T00:00:00.000000Z",
        "stageTimestamp": "2026-01-01T00:00:00.000100Z"
    })
}

/// The event and its compact JSON line's length, as kube-apiserver's log backend writes it.
fn line(v: &Value) -> (Event, usize) {
    let ev: Event = serde_json::from_value(v.clone()).unwrap();
    let text = serde_json::to_string(&ev).unwrap();
    let ev: Event = serde_json::from_str(&text).unwrap();
    (ev, text.len())
}

fn simulate(policy: &Policy, events: &[Value]) -> SimulationReport {
    let mut sim = Simulation::new(policy);
    for v in events {
        let (ev, len) = line(v);
        sim.add(&ev, len);
    }
    sim.report()
}

// ---- policies -------------------------------------------------------------------------------

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn one_level(level: Level, omit_managed_fields: bool) -> Policy {
    Policy {
        rules: vec![PolicyRule {
            level,
            ..Default::default()
        }],
        omit_stages: vec![],
        omit_managed_fields,
        rule_lines: vec![5],
    }
}

// ---- the reference ----------------------------------------------------------------------------

fn strip_managed_fields(obj: &mut Value) {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    if let Some(items) = obj.get_mut("items").and_then(Value::as_array_mut) {
        items.iter_mut().for_each(strip_managed_fields);
    }
    if let Some(rows) = obj.get_mut("rows").and_then(Value::as_array_mut) {
        for row in rows {
            if let Some(o) = row.get_mut("object") {
                strip_managed_fields(o);
            }
        }
    }
}

/// What the brief defines: drop what the new level does not write, strip managedFields, set
/// the level, `serde_json::to_vec` the Event.
fn reference_size(v: &Value, level: Level, omit_managed_fields: bool) -> usize {
    let mut v = v.clone();
    let o = v.as_object_mut().unwrap();
    let resource = o.contains_key("objectRef");
    if level < Level::Request || !resource {
        o.remove("requestObject");
    }
    if level < Level::RequestResponse || !resource {
        o.remove("responseObject");
    }
    if omit_managed_fields {
        if o.get("verb") != Some(&json!("patch")) {
            if let Some(r) = o.get_mut("requestObject") {
                strip_managed_fields(r);
            }
        }
        if let Some(r) = o.get_mut("responseObject") {
            strip_managed_fields(r);
        }
    }
    o.insert("level".into(), json!(level.as_str()));
    let ev: Event = serde_json::from_value(v).unwrap();
    serde_json::to_vec(&ev).unwrap().len()
}

// ---- sizes ----------------------------------------------------------------------------------

#[test]
fn sizes_equal_the_reserialized_trimmed_event() {
    let list = json!({"kind": "ConfigMapList", "apiVersion": "v1", "metadata": {"resourceVersion": "9"},
                      "items": [object("a"), object("b"), {"metadata": {"name": "c"}}]});
    let table = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "columnDefinitions": [],
                       "rows": [{"cells": ["a"], "object": object("a")}]});
    let patch = json!({"metadata": {"managedFields": managed(), "labels": {"a": "b"}}});
    let events = [
        resource_event(
            "jane",
            "create",
            "",
            "configmaps",
            "",
            "ResponseComplete",
            "RequestResponse",
            Some(object("a")),
            Some(object("a")),
        ),
        resource_event(
            "jane",
            "update",
            "apps",
            "deployments",
            "",
            "ResponseComplete",
            "RequestResponse",
            Some(object("a")),
            Some(object("a")),
        ),
        resource_event(
            "jane",
            "list",
            "",
            "configmaps",
            "",
            "ResponseComplete",
            "RequestResponse",
            None,
            Some(list),
        ),
        resource_event(
            "jane",
            "list",
            "",
            "configmaps",
            "",
            "ResponseComplete",
            "RequestResponse",
            None,
            Some(table),
        ),
        resource_event(
            "jane",
            "patch",
            "",
            "configmaps",
            "",
            "ResponseComplete",
            "RequestResponse",
            Some(patch),
            Some(object("a")),
        ),
        resource_event(
            "jane",
            "get",
            "",
            "pods",
            "log",
            "ResponseComplete",
            "RequestResponse",
            None,
            None,
        ),
        resource_event(
            "jane",
            "create",
            "",
            "pods",
            "exec",
            "ResponseStarted",
            "RequestResponse",
            None,
            None,
        ),
    ];
    for v in &events {
        for level in [Level::Metadata, Level::Request, Level::RequestResponse] {
            for omf in [false, true] {
                let r = simulate(&one_level(level, omf), std::slice::from_ref(v));
                assert_eq!(r.totals.events_kept, 1);
                assert_eq!(
                    r.totals.bytes_kept as usize,
                    reference_size(v, level, omf),
                    "{} {} at {level}, omitManagedFields {omf}",
                    v["verb"],
                    v["objectRef"]["resource"]
                );
                assert_eq!(r.totals.under_recorded, 0);
            }
        }
    }
}

#[test]
fn lowering_the_level_shrinks_and_patches_keep_their_managed_fields() {
    let v = resource_event(
        "jane",
        "update",
        "",
        "configmaps",
        "",
        "ResponseComplete",
        "RequestResponse",
        Some(object("a")),
        Some(object("a")),
    );
    let size = |level, omf| {
        simulate(&one_level(level, omf), std::slice::from_ref(&v))
            .totals
            .bytes_kept
    };
    let (_, raw) = line(&v);
    assert_eq!(
        size(Level::RequestResponse, false),
        raw as u64,
        "nothing changes"
    );
    assert!(size(Level::RequestResponse, true) < size(Level::RequestResponse, false));
    assert!(size(Level::Request, false) < size(Level::RequestResponse, false));
    assert!(size(Level::Metadata, false) < size(Level::Request, false));
    assert_eq!(
        size(Level::Metadata, true),
        size(Level::Metadata, false),
        "no bodies, nothing to strip"
    );

    let patch = json!([{"op": "add", "path": "/metadata/managedFields", "value": managed()}]);
    let v = resource_event(
        "jane",
        "patch",
        "",
        "configmaps",
        "",
        "ResponseComplete",
        "Request",
        Some(patch),
        None,
    );
    let r = simulate(&one_level(Level::Request, true), std::slice::from_ref(&v));
    assert_eq!(
        r.totals.bytes_kept, r.totals.bytes_in,
        "patch bodies are not touched"
    );
}

#[test]
fn unchanged_events_keep_their_recorded_bytes_whatever_the_formatting() {
    let v = resource_event(
        "jane",
        "create",
        "",
        "configmaps",
        "",
        "ResponseComplete",
        "RequestResponse",
        Some(object("a")),
        Some(object("a")),
    );
    let pretty = serde_json::to_string_pretty(&v).unwrap();
    let ev: Event = serde_json::from_str(&pretty).unwrap();
    let mut sim = Simulation::new(&one_level(Level::RequestResponse, false));
    sim.add(&ev, pretty.len());
    let r = sim.report();
    assert_eq!(r.totals.bytes_kept, pretty.len() as u64);
    assert_eq!(r.totals.reduction_percent, 0.0);
}

#[test]
fn under_recorded_events_are_counted_and_keep_their_size() {
    let meta = resource_event(
        "jane",
        "create",
        "",
        "configmaps",
        "",
        "ResponseComplete",
        "Metadata",
        None,
        None,
    );
    let (_, raw) = line(&meta);
    let r = simulate(
        &one_level(Level::RequestResponse, true),
        std::slice::from_ref(&meta),
    );
    assert_eq!(
        (r.totals.under_recorded, r.totals.bytes_kept),
        (1, raw as u64)
    );

    // A non-resource request has no bodies at any level: never under-recorded.
    let probe = non_resource_event("system:anonymous", "/healthz");
    let r = simulate(
        &one_level(Level::RequestResponse, true),
        std::slice::from_ref(&probe),
    );
    assert_eq!(r.totals.under_recorded, 0);
    assert_eq!(r.totals.events_kept, 1);

    // Without a `level` field the recorded level is inferred from the bodies.
    let mut unlabelled = resource_event(
        "jane",
        "create",
        "",
        "configmaps",
        "",
        "ResponseComplete",
        "Request",
        Some(object("a")),
        None,
    );
    unlabelled.as_object_mut().unwrap().remove("level");
    let r = simulate(
        &one_level(Level::Request, false),
        std::slice::from_ref(&unlabelled),
    );
    assert_eq!(r.totals.under_recorded, 0);
    assert_eq!(
        r.totals.bytes_kept as usize,
        reference_size(&unlabelled, Level::Request, false)
    );
    let r = simulate(
        &one_level(Level::RequestResponse, false),
        std::slice::from_ref(&unlabelled),
    );
    assert_eq!(r.totals.under_recorded, 1);
}

// ---- what is kept ---------------------------------------------------------------------------

/// The brief's kind of policy: probes dropped, RequestReceived omitted, secrets at Metadata,
/// exec at RequestResponse, Metadata for the rest.
fn policy() -> Policy {
    let gr = |group: &str, resources: &[&str]| GroupResources {
        group: group.into(),
        resources: s(resources),
        resource_names: vec![],
    };
    Policy {
        rules: vec![
            PolicyRule {
                level: Level::None,
                non_resource_urls: s(&["/healthz*"]),
                ..Default::default()
            },
            PolicyRule {
                level: Level::Metadata,
                resources: vec![gr("", &["configmaps"])],
                ..Default::default()
            },
            PolicyRule {
                level: Level::RequestResponse,
                resources: vec![gr("", &["pods/exec"])],
                ..Default::default()
            },
            PolicyRule {
                level: Level::None,
                users: s(&["system:kube-proxy"]),
                ..Default::default()
            },
            PolicyRule {
                level: Level::Request,
                resources: vec![gr("apps", &[])],
                ..Default::default()
            },
        ],
        omit_stages: vec![Stage::RequestReceived],
        omit_managed_fields: true,
        rule_lines: vec![10, 12, 16, 20, 22],
    }
}

fn recorded() -> Vec<Value> {
    let cm = || Some(object("a"));
    vec![
        resource_event(
            "jane",
            "create",
            "",
            "configmaps",
            "",
            "RequestReceived",
            "RequestResponse",
            cm(),
            None,
        ),
        resource_event(
            "jane",
            "create",
            "",
            "configmaps",
            "",
            "ResponseComplete",
            "RequestResponse",
            cm(),
            cm(),
        ),
        resource_event(
            "jane",
            "create",
            "",
            "pods",
            "exec",
            "ResponseStarted",
            "RequestResponse",
            None,
            None,
        ),
        resource_event(
            "jane",
            "create",
            "",
            "pods",
            "exec",
            "ResponseComplete",
            "RequestResponse",
            None,
            None,
        ),
        resource_event(
            "system:kube-proxy",
            "watch",
            "",
            "endpoints",
            "",
            "ResponseComplete",
            "RequestResponse",
            None,
            None,
        ),
        resource_event(
            "bob",
            "update",
            "apps",
            "deployments",
            "scale",
            "ResponseComplete",
            "RequestResponse",
            cm(),
            cm(),
        ),
        resource_event(
            "bob",
            "get",
            "example.com",
            "widgets",
            "",
            "ResponseComplete",
            "RequestResponse",
            None,
            cm(),
        ),
        non_resource_event("", "/healthz"),
        non_resource_event("", "/healthz/etcd"),
    ]
}

#[test]
fn totals_and_breakdowns() {
    let events = recorded();
    let r = simulate(&policy(), &events);
    let size = |i: usize| line(&events[i]).1 as u64;
    let bytes_in: u64 = (0..events.len()).map(size).sum();
    let kept = [
        reference_size(&events[1], Level::Metadata, true),
        reference_size(&events[2], Level::RequestResponse, true),
        reference_size(&events[3], Level::RequestResponse, true),
        reference_size(&events[5], Level::Request, true),
    ];
    let bytes_kept: u64 = kept.iter().map(|k| *k as u64).sum();
    assert_eq!((r.totals.events_in, r.totals.events_kept), (9, 4));
    assert_eq!(
        (r.totals.bytes_in, r.totals.bytes_kept),
        (bytes_in, bytes_kept)
    );
    let expected = 100.0 * (1.0 - bytes_kept as f64 / bytes_in as f64);
    assert!((r.totals.reduction_percent - expected).abs() < 0.01);
    assert_eq!(r.totals.events_reduction_percent, 55.56);

    // Rows: (key, events in, events kept).
    let rows = |rows: &[vigil_policy::simulate::Row]| -> Vec<(String, u64, u64)> {
        rows.iter()
            .map(|r| (r.key.clone(), r.counts.events_in, r.counts.events_kept))
            .collect()
    };
    let owned = |v: &[(&str, u64, u64)]| -> Vec<(String, u64, u64)> {
        v.iter().map(|(k, a, b)| (k.to_string(), *a, *b)).collect()
    };
    assert_eq!(
        rows(&r.by_level),
        owned(&[
            ("None", 4, 0),
            ("Metadata", 2, 1),
            ("Request", 1, 1),
            ("RequestResponse", 2, 2)
        ])
    );
    assert_eq!(
        rows(&r.by_stage),
        owned(&[
            ("RequestReceived", 1, 0),
            ("ResponseStarted", 1, 1),
            ("ResponseComplete", 7, 3)
        ])
    );
    let mut by_resource = rows(&r.by_resource);
    by_resource.sort();
    assert_eq!(
        by_resource,
        owned(&[
            ("/healthz", 1, 0),
            ("/healthz/etcd", 1, 0),
            ("apps/deployments/scale", 1, 1),
            ("core/configmaps", 2, 1),
            ("core/endpoints", 1, 0),
            ("core/pods/exec", 2, 2),
            ("example.com/widgets", 1, 0),
        ])
    );
    let mut by_user = rows(&r.by_user);
    by_user.sort();
    assert_eq!(
        by_user,
        owned(&[
            (NO_USER, 2, 0),
            ("bob", 2, 1),
            ("jane", 4, 3),
            ("system:kube-proxy", 1, 0)
        ])
    );
    for w in r.by_user.windows(2) {
        assert!(
            w[0].counts.bytes_in >= w[1].counts.bytes_in,
            "largest first"
        );
    }
    type RuleRow = (Option<usize>, Option<usize>, Level, u64, u64);
    let by_rule: Vec<RuleRow> = r
        .by_rule
        .iter()
        .map(|x| {
            (
                x.rule,
                x.line,
                x.level,
                x.counts.events_in,
                x.counts.events_kept,
            )
        })
        .collect();
    assert_eq!(
        by_rule,
        [
            (Some(0), Some(10), Level::None, 2, 0),
            (Some(1), Some(12), Level::Metadata, 2, 1),
            (Some(2), Some(16), Level::RequestResponse, 2, 2),
            (Some(3), Some(20), Level::None, 1, 0),
            (Some(4), Some(22), Level::Request, 1, 1),
            (None, None, Level::None, 1, 0),
        ]
    );
    // Every breakdown partitions the totals.
    for part in [&r.by_level, &r.by_stage, &r.by_resource, &r.by_user] {
        assert_eq!(
            part.iter().map(|x| x.counts.bytes_kept).sum::<u64>(),
            r.totals.bytes_kept
        );
        assert_eq!(
            part.iter().map(|x| x.counts.bytes_in).sum::<u64>(),
            r.totals.bytes_in
        );
    }
}

#[test]
fn report_json_shape() {
    let r = simulate(&policy(), &recorded()[..3]);
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("fixtures/snapshots");
    settings.bind(|| insta::assert_json_snapshot!(r));
}

#[test]
fn key_cardinality_is_bounded() {
    let mut sim = Simulation::new(&one_level(Level::Metadata, false));
    let extra = 25;
    for i in 0..MAX_KEYS + extra {
        let (ev, len) = line(&non_resource_event(
            &format!("scanner-{i}"),
            &format!("/probe-{i}"),
        ));
        sim.add(&ev, len);
    }
    let r = sim.report();
    for rows in [&r.by_user, &r.by_resource] {
        assert_eq!(rows.len(), MAX_KEYS + 1);
        let last = rows.last().unwrap();
        assert_eq!(
            (last.key.as_str(), last.counts.events_in),
            (OTHER, extra as u64)
        );
    }
}

#[test]
fn an_empty_simulation_reports_zeroes() {
    let r = Simulation::new(&Policy::default()).report();
    assert_eq!(
        (
            r.totals.events_in,
            r.totals.reduction_percent,
            r.totals.events_reduction_percent
        ),
        (0, 0.0, 0.0)
    );
    assert!(r.by_rule.is_empty() && r.by_stage.is_empty() && r.by_user.is_empty());
    assert_eq!(r.by_level.len(), 4);
}

// ---- properties -----------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Any decodable event, any length: no panic, and the breakdowns add up.
    #[test]
    fn never_panics_and_always_adds_up(
        events in proptest::collection::vec(
            (
                prop_oneof![Just("create"), Just("get"), Just("patch"), Just("list"), Just("")],
                prop_oneof![Just(""), Just("apps"), Just("example.com")],
                prop_oneof![Just("configmaps"), Just("pods"), Just("")],
                prop_oneof![Just(""), Just("exec")],
                prop_oneof![Just("RequestReceived"), Just("ResponseComplete"), Just("Panic")],
                prop_oneof![Just("Metadata"), Just("Request"), Just("RequestResponse")],
                prop_oneof![Just(None), Just(Some(json!([1, 2]))), Just(Some(object("a"))), Just(Some(json!("managedFields"))), Just(Some(json!({"metadata": {"managedFields": null}})))],
                any::<bool>(),
                0usize..10,
            ),
            0..20,
        ),
        level in prop_oneof![Just(Level::None), Just(Level::Metadata), Just(Level::Request), Just(Level::RequestResponse)],
    ) {
        let mut sim = Simulation::new(&one_level(level, true));
        for (verb, group, resource, sub, stage, recorded, body, non_resource, len) in events {
            let v = if non_resource {
                non_resource_event("u", "/apis")
            } else {
                resource_event("u", verb, group, resource, sub, stage, recorded, body.clone(), body)
            };
            let ev: Event = serde_json::from_value(v).unwrap();
            sim.add(&ev, len);
        }
        let r = sim.report();
        prop_assert!(r.totals.events_kept <= r.totals.events_in);
        for part in [&r.by_level, &r.by_stage, &r.by_resource, &r.by_user] {
            prop_assert_eq!(part.iter().map(|x| x.counts.events_in).sum::<u64>(), r.totals.events_in);
            prop_assert_eq!(part.iter().map(|x| x.counts.bytes_kept).sum::<u64>(), r.totals.bytes_kept);
        }
        prop_assert_eq!(r.by_rule.iter().map(|x| x.counts.events_kept).sum::<u64>(), r.totals.events_kept);
    }
}

// ---- throughput -----------------------------------------------------------------------------

/// `cargo test --release -p vigil-policy --test simulate_cases -- --ignored --nocapture`
#[test]
#[ignore = "a measurement, not a test"]
fn throughput() {
    let policy = vigil_policy::load_policy(vigil_policy::baseline::BASELINE)
        .unwrap()
        .policy;
    let shapes = [
        ("get", "", "pods", "", false, true),
        ("list", "", "pods", "", false, true),
        ("watch", "", "endpoints", "", false, false),
        ("update", "apps", "deployments", "", true, true),
        ("create", "", "events", "", true, false),
        ("update", "coordination.k8s.io", "leases", "", true, false),
        ("get", "", "secrets", "", false, false),
        ("create", "", "pods", "exec", false, false),
        ("patch", "", "nodes", "status", true, false),
    ];
    let users = [
        "jane",
        "system:node:n1",
        "system:kube-controller-manager",
        "system:kube-proxy",
    ];
    let mut lines = Vec::new();
    for i in 0..100_000 {
        let (verb, group, resource, sub, req, resp) = shapes[i % shapes.len()];
        let stage = if i % 2 == 0 {
            "RequestReceived"
        } else {
            "ResponseComplete"
        };
        let v = resource_event(
            users[(i / 3) % users.len()],
            verb,
            group,
            resource,
            sub,
            stage,
            "RequestResponse",
            req.then(|| object(&format!("o{i}"))),
            resp.then(|| object(&format!("o{i}"))),
        );
        lines.push(serde_json::to_string(&v).unwrap());
    }
    let bytes: usize = lines.iter().map(String::len).sum();
    let events: Vec<(Event, usize)> = lines
        .iter()
        .map(|l| (serde_json::from_str(l).unwrap(), l.len()))
        .collect();
    let start = std::time::Instant::now();
    let mut sim = Simulation::new(&policy);
    for (ev, len) in &events {
        sim.add(ev, *len);
    }
    let r = sim.report();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} events ({:.0} MB) in {:.3} s: {:.0} events/s, {:.0} MB/s; {}% of bytes saved",
        events.len(),
        bytes as f64 / 1e6,
        secs,
        events.len() as f64 / secs,
        bytes as f64 / 1e6 / secs,
        r.totals.reduction_percent
    );
}
