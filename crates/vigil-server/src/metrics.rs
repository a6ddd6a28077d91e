//! Counters, gauges and histograms, rendered in the Prometheus text format. Updated per batch,
//! not per event, so one lock is enough.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Inner {
    /// name -> labels text -> value
    counters: BTreeMap<&'static str, BTreeMap<String, f64>>,
    gauges: BTreeMap<&'static str, BTreeMap<String, f64>>,
    histograms: BTreeMap<&'static str, BTreeMap<String, Histogram>>,
}

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

fn help(name: &str) -> &'static str {
    match name {
        "vigil_events_received_total" => "Events received, per source (before dedup and storage).",
        "vigil_events_stored_total" => "Events made durable in the store, per source.",
        "vigil_events_rejected_total" => {
            "Events rejected (malformed, oversize, unparseable), per source and reason."
        }
        "vigil_events_deduplicated_total" => {
            "Events collapsed as duplicates (auditID+stage), per source."
        }
        "vigil_events_dropped_total" => "Events accepted and then lost. Expected to stay 0.",
        "vigil_bytes_received_total" => "Bytes received, per source.",
        "vigil_requests_total" => "Webhook requests, per source and HTTP status.",
        "vigil_oversize_total" => "Oversize events and batches (413), per source.",
        "vigil_alerts_total" => "Alerts raised, per rule.",
        "vigil_alerts_suppressed_total" => "Alerts kept from sinks by a suppression, per rule.",
        "vigil_events_late_total" => {
            "Events that arrived after the allowed lateness (still evaluated)."
        }
        "vigil_queue_events" => "Events accepted and waiting for the store.",
        "vigil_journal_lag_events" => "Events stored and not yet through detection.",
        "vigil_sink_queue_depth" => "Alerts waiting for delivery, per sink.",
        "vigil_sink_failures_total" => "Failed delivery attempts, per sink.",
        "vigil_sink_delivered_total" => "Alerts delivered, per sink.",
        "vigil_ingest_to_alert_seconds" => "From receiving an event to its alert being stored.",
        "vigil_webhook_request_seconds" => {
            "Webhook request handling time (until the acknowledgement)."
        }
        "vigil_store_commit_seconds" => "Group commit time (write + fsync).",
        "vigil_store_commits_total" => "Group commits.",
        "vigil_store_errors_total" => "Store write errors (disk full ...).",
        "vigil_source_silent" => "1 when a source has been silent longer than its silent_after.",
        "vigil_correlation_groups" => "Live correlation groups.",
        "vigil_rules_loaded" => "Rules running.",
        "vigil_rule_reloads_total" => "Rule reloads (SIGHUP), per result.",
        "vigil_token_reloads_total" => {
            "Bearer token reloads (SIGHUP), per webhook source and result."
        }
        _ => "",
    }
}

/// `{k="v",...}` from pairs, values escaped.
pub fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let mut s = String::from("{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let v = v
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = write!(s, "{k}=\"{v}\"");
    }
    s.push('}');
    s
}

impl Metrics {
    pub fn add(&self, name: &'static str, pairs: &[(&str, &str)], v: f64) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *g.counters
            .entry(name)
            .or_default()
            .entry(labels(pairs))
            .or_default() += v;
    }

    pub fn inc(&self, name: &'static str, pairs: &[(&str, &str)]) {
        self.add(name, pairs, 1.0);
    }

    /// Makes a counter appear (at 0) before anything happened.
    pub fn touch(&self, name: &'static str, pairs: &[(&str, &str)]) {
        self.add(name, pairs, 0.0);
    }

    pub fn set(&self, name: &'static str, pairs: &[(&str, &str)], v: f64) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.gauges.entry(name).or_default().insert(labels(pairs), v);
    }

    pub fn observe(&self, name: &'static str, pairs: &[(&str, &str)], v: f64) {
        self.observe_n(name, pairs, v, 1);
    }

    pub fn observe_n(&self, name: &'static str, pairs: &[(&str, &str)], v: f64, n: u64) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let h = g
            .histograms
            .entry(name)
            .or_default()
            .entry(labels(pairs))
            .or_insert_with(|| Histogram {
                bounds: LATENCY_BUCKETS,
                counts: vec![0; LATENCY_BUCKETS.len()],
                sum: 0.0,
                count: 0,
            });
        for (i, b) in h.bounds.iter().enumerate() {
            if v <= *b {
                h.counts[i] += n;
            }
        }
        h.sum += v * n as f64;
        h.count += n;
    }

    /// A counter's value (tests, logs).
    pub fn get(&self, name: &str, pairs: &[(&str, &str)]) -> f64 {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let l = labels(pairs);
        g.counters
            .get(name)
            .and_then(|m| m.get(&l))
            .or_else(|| g.gauges.get(name).and_then(|m| m.get(&l)))
            .copied()
            .unwrap_or(0.0)
    }

    pub fn render(&self) -> String {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        let head = |out: &mut String, name: &str, kind: &str| {
            let h = help(name);
            if !h.is_empty() {
                let _ = writeln!(out, "# HELP {name} {h}");
            }
            let _ = writeln!(out, "# TYPE {name} {kind}");
        };
        for (name, series) in &g.counters {
            head(&mut out, name, "counter");
            for (l, v) in series {
                let _ = writeln!(out, "{name}{l} {v}");
            }
        }
        for (name, series) in &g.gauges {
            head(&mut out, name, "gauge");
            for (l, v) in series {
                let _ = writeln!(out, "{name}{l} {v}");
            }
        }
        for (name, series) in &g.histograms {
            head(&mut out, name, "histogram");
            for (l, h) in series {
                let inner = l.trim_start_matches('{').trim_end_matches('}');
                let sep = if inner.is_empty() { "" } else { "," };
                for (b, c) in h.bounds.iter().zip(&h.counts) {
                    let _ = writeln!(out, "{name}_bucket{{{inner}{sep}le=\"{b}\"}} {c}");
                }
                let _ = writeln!(out, "{name}_bucket{{{inner}{sep}le=\"+Inf\"}} {}", h.count);
                let _ = writeln!(out, "{name}_sum{l} {}", h.sum);
                let _ = writeln!(out, "{name}_count{l} {}", h.count);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.add("vigil_events_received_total", &[("source", "a\"b")], 3.0);
        m.observe("vigil_ingest_to_alert_seconds", &[], 0.003);
        let t = m.render();
        assert!(
            t.contains("vigil_events_received_total{source=\"a\\\"b\"} 3"),
            "{t}"
        );
        assert!(
            t.contains("vigil_ingest_to_alert_seconds_bucket{le=\"0.005\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("vigil_ingest_to_alert_seconds_bucket{le=\"0.001\"} 0"),
            "{t}"
        );
    }
}
