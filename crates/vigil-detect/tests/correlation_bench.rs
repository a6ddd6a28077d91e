//! Correlation benchmarks (BENCHMARKS.md, "Correlation"): events per second of on-CPU time, and
//! heap per million active groups. Ignored by default; run in release:
//!
//!   cargo test -p vigil-detect --release --test correlation_bench -- --ignored --nocapture --test-threads 1
//!
//! Heap is counted exactly by a counting global allocator (live bytes after the run minus
//! before; the input documents are freed by then; allocator overhead and fragmentation are not
//! included). Event documents are built outside the timed sections.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{json, Value};
use vigil_detect::{builtin, Config, CorrelationState, Event, Limits, RuleSet, RuleSource};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

const T0: i64 = 1_795_168_800_000;

fn failed_login(ip: &str, user: &str) -> Value {
    json!({
        "@timestamp": "2026-11-20T10:00:30Z",
        "event": {"action": "ssh_login", "category": ["authentication"], "dataset": "linux.auth", "outcome": "failure", "type": ["info"]},
        "host": {"name": "10.0.0.5"},
        "message": format!("2026-11-20T10:00:30.000000+00:00 10.0.0.5 sshd[2100]: Failed password for {user} from {ip} port 40000 ssh2"),
        "network": {"transport": "tcp"},
        "process": {"name": "sshd", "pid": 2100},
        "source": {"address": ip, "ip": ip, "port": 40000},
        "ssh": {"method": "password", "protocol": "ssh2"},
        "user": {"name": user}
    })
}

fn ip(i: usize) -> String {
    format!(
        "{}.{}.{}.{}",
        11 + (i >> 24) % 200,
        (i >> 16) & 255,
        (i >> 8) & 255,
        i & 255
    )
}

struct Figures {
    events: usize,
    cpu_s: f64,
    alerts: usize,
    heap: isize,
    groups: usize,
    state_json: usize,
}

/// Feeds `n` events made by `make(i) -> (dataset, doc, time)` in batches; times `process` only.
fn feed(
    set: &RuleSet,
    n: usize,
    make: &dyn Fn(usize) -> (&'static str, Value, i64),
    serialize: bool,
) -> Figures {
    let heap0 = LIVE.load(Ordering::Relaxed) as isize;
    let mut st = CorrelationState::new();
    let (mut out, mut alerts) = (Vec::new(), Vec::new());
    let mut cpu = 0u64;
    let mut n_alerts = 0;
    let mut i = 0;
    while i < n {
        let batch: Vec<(&str, Value, i64)> = (i..(i + 50_000).min(n)).map(make).collect();
        let c0 = cpu_ns();
        for (ds, doc, t) in &batch {
            out.clear();
            set.process(&Event::new(ds, doc).at(*t), &mut st, &mut out, &mut alerts);
            n_alerts += alerts.len();
            alerts.clear();
        }
        cpu += cpu_ns() - c0;
        i += batch.len();
    }
    drop(out);
    drop(alerts);
    let heap = LIVE.load(Ordering::Relaxed) as isize - heap0;
    let state_json = if serialize {
        serde_json::to_vec(&st).map_or(0, |v| v.len())
    } else {
        0
    };
    Figures {
        events: n,
        cpu_s: cpu as f64 / 1e9,
        alerts: n_alerts,
        heap,
        groups: st.groups(),
        state_json,
    }
}

fn compile(sources: Vec<RuleSource>, limits: Limits) -> RuleSet {
    let cfg = Config {
        placeholders: builtin::placeholders(),
        limits,
        ..Config::default()
    };
    let (set, errors) = RuleSet::compile(&sources, &cfg);
    assert!(errors.is_empty(), "{errors:#?}");
    set
}

fn big_limits(lateness: i64) -> Limits {
    Limits {
        max_groups: 4_000_000,
        allowed_lateness_ms: lateness,
        ..Limits::default()
    }
}

/// Throughput of the built-in pack on an SSH brute-force storm: 1M failed logins from 10,000
/// addresses trying 50 user names, 2,000 per second of event time. Every event is evaluated by
/// every linux.auth rule and feeds `ssh-brute-force` and `ssh-password-spraying`.
#[test]
#[ignore]
fn throughput_builtin_pack() {
    for lateness in [0, 60_000] {
        let set = compile(builtin::rules(), big_limits(lateness));
        let users: Vec<String> = (0..50).map(|u| format!("user{u}")).collect();
        let f = feed(
            &set,
            1_000_000,
            &|i| {
                let doc = failed_login(&ip(i % 10_000), &users[(i / 10_000) % 50]);
                ("linux.auth", doc, T0 + (i as i64) / 2)
            },
            false,
        );
        println!(
            "builtin pack, failed-login storm, lateness {} s: {:.0} events/s ({} events, {:.2} s CPU, {} alerts, {} live groups)",
            lateness / 1000,
            f.events as f64 / f.cpu_s,
            f.events,
            f.cpu_s,
            f.alerts,
            f.groups
        );
    }
}

const BASE: &str = "title: failed\nname: failed\nlogsource: {product: linux, service: sshd}\ndetection: {sel: {event.outcome: failure}, condition: sel}\n---\ntitle: accepted\nname: accepted\nlogsource: {product: linux, service: sshd}\ndetection: {sel: {event.outcome: success}, condition: sel}\n---\n";

fn one(correlation: &str, lateness: i64) -> RuleSet {
    compile(
        vec![RuleSource::new(
            "bench.yml",
            format!("{BASE}title: c\ncorrelation:\n{correlation}"),
        )],
        big_limits(lateness),
    )
}

/// Per correlation type: throughput with 100,000 groups, and heap per million groups (1M
/// distinct addresses, one event each, all inside the timespan so that none expires).
#[test]
#[ignore]
fn per_type_throughput_and_memory_per_million_groups() {
    let kinds = [
        ("event_count (sliding, gte 10)", "  type: event_count\n  rules: [failed]\n  group-by: [source.ip]\n  timespan: 1h\n  condition: {gte: 10}\n"),
        ("value_count (sliding, gte 5)", "  type: value_count\n  rules: [failed]\n  group-by: [source.ip]\n  timespan: 1h\n  condition: {field: user.name, gte: 5}\n"),
        ("temporal_ordered (2 rules)", "  type: temporal_ordered\n  rules: [failed, accepted]\n  group-by: [source.ip]\n  timespan: 1h\n"),
        ("value_avg (anchored window)", "  type: value_avg\n  rules: [failed]\n  group-by: [source.ip]\n  timespan: 1h\n  condition: {field: source.port, gt: 100000}\n"),
        ("event_count lt 3 (anchored window)", "  type: event_count\n  rules: [failed]\n  group-by: [source.ip]\n  timespan: 1h\n  condition: {lt: 3}\n"),
    ];
    println!("| correlation | events/s (100k groups) | heap per 1M groups | checkpoint JSON per 1M groups |");
    println!("|---|---|---|---|");
    for (name, yaml) in kinds {
        let set = one(yaml, 0);
        let users: Vec<String> = (0..50).map(|u| format!("user{u}")).collect();
        // Throughput: 1M events over 100k addresses, 50 per second of event time.
        let t = feed(
            &set,
            1_000_000,
            &|i| {
                let doc = failed_login(&ip(i % 100_000), &users[(i / 100_000) % 50]);
                ("linux.auth", doc, T0 + (i as i64) * 20)
            },
            false,
        );
        // Memory: 1M groups of one event each, 1 ms apart (17 min < 1 h: all live).
        let set = one(yaml, 0);
        let m = feed(
            &set,
            1_000_000,
            &|i| ("linux.auth", failed_login(&ip(i), "root"), T0 + i as i64),
            true,
        );
        assert_eq!(m.groups, 1_000_000, "{name}");
        println!(
            "| {name} | {:.0} | {:.0} MB | {:.0} MB |",
            t.events as f64 / t.cpu_s,
            m.heap as f64 / 1e6,
            m.state_json as f64 / 1e6
        );
    }
}
