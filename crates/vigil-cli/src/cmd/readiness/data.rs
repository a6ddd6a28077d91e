//! What the data directory says: whether each configured source delivers, the clock skew
//! between sources, and retention against PCI DSS 10.5.1.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use vigil_server::config::{Config, SourceKind};
use vigil_store::retention::Retention;
use vigil_store::Reader;

use super::{Finding, Sev};

const DAY_US: i64 = 86_400_000_000;
/// Records read from the end of each partition looked at.
const TAIL: u64 = 512;
/// Without `silent_after`, a source quiet for longer than this is reported.
const DEFAULT_SILENT: Duration = Duration::from_secs(24 * 3600);

/// What the store shows of one source (a configured source, or a `source` value of records).
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub events: u64,
    pub last_received: i64,
    /// received - event time, µs, of the newest records.
    pub delays: Vec<i64>,
    pub datasets: BTreeSet<String>,
}

impl Seen {
    fn median_delay(&self) -> Option<i64> {
        let mut d = self.delays.clone();
        d.sort_unstable();
        d.get(d.len() / 2).copied()
    }
}

/// `*` and `?` glob matching (`*` crosses `/`, as the file source's globs do for one level).
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// The newest records of each dataset, grouped by their `source` (file path or source name).
fn tail_by_source(reader: &Reader) -> BTreeMap<String, Seen> {
    let mut latest: BTreeMap<&str, Vec<&vigil_store::reader::PartInfo>> = BTreeMap::new();
    for p in &reader.parts {
        if p.dataset == vigil_store::prepare::ALERT_DATASET {
            continue;
        }
        latest.entry(&p.dataset).or_default().push(p);
    }
    let mut out: BTreeMap<String, Seen> = BTreeMap::new();
    for parts in latest.values_mut() {
        parts.sort_by(|a, b| b.day.cmp(&a.day));
        for p in parts.iter().take(2) {
            let from = p.count.saturating_sub(TAIL);
            let _ = reader.scan_partition(p, from, &mut |e| {
                let s = out.entry(e.record.source.clone()).or_default();
                s.events += 1;
                s.last_received = s.last_received.max(e.record.received);
                s.delays.push(e.record.received - e.record.event_time);
                s.datasets.insert(e.dataset.clone());
                Ok(true)
            });
        }
    }
    out
}

fn human(us: i64) -> String {
    let s = us.unsigned_abs() / 1_000_000;
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// Sources (configured ones when there is a config, else every `source` value) and clock skew.
pub fn sources(
    dir: &Path,
    reader: &Reader,
    cfg: Option<&Config>,
    now_us: i64,
    out: &mut Vec<Finding>,
) {
    let tail = tail_by_source(reader);
    let mut per_source: Vec<(String, Seen, Option<Duration>)> = Vec::new();
    match cfg {
        Some(cfg) => {
            for s in &cfg.sources {
                let mut seen = Seen::default();
                for (src, t) in &tail {
                    let mine = match &s.kind {
                        SourceKind::File(f) => f.paths.iter().any(|p| glob_match(p, src)),
                        _ => *src == s.name,
                    };
                    if mine {
                        seen.events += t.events;
                        seen.last_received = seen.last_received.max(t.last_received);
                        seen.delays.extend(&t.delays);
                        seen.datasets.extend(t.datasets.iter().cloned());
                    }
                }
                per_source.push((s.name.clone(), seen, s.silent_after));
            }
        }
        None => {
            for (src, t) in tail {
                per_source.push((src, t, None));
            }
        }
    }
    if per_source.is_empty() {
        out.push(Finding::new(
            "no-sources",
            Sev::Error,
            match cfg {
                Some(_) => "the configuration has no sources: nothing is collected".to_string(),
                None => format!("{} holds no events", dir.display()),
            },
            "add sources (k8s_audit_webhook for kube-apiserver, file or syslog for hosts) and run `vigil serve`",
        ));
        return;
    }
    let mut live: Vec<(String, i64)> = Vec::new();
    for (name, seen, silent_after) in &per_source {
        if seen.events == 0 {
            out.push(Finding::new(
                "source-silent",
                Sev::Error,
                format!(
                    "source {name}: no event from it in {} (never delivered, or only long ago)",
                    dir.display()
                ),
                "check that it is sending: for the webhook, kube-apiserver's --audit-webhook-config-file and its logs; for files, the paths and permissions; for syslog, the forwarder's target",
            ));
            continue;
        }
        let quiet = now_us - seen.last_received;
        let limit = silent_after.unwrap_or(DEFAULT_SILENT);
        if quiet > limit.as_micros() as i64 {
            out.push(Finding::new(
                "source-silent",
                Sev::Warning,
                format!(
                    "source {name}: last event received {} ago (limit {})",
                    human(quiet),
                    human(limit.as_micros() as i64)
                ),
                "find out why it stopped (sender down, rotated away, network); set silent_after on the source so that `vigil serve` alerts on it",
            ));
        } else if cfg.is_some() && silent_after.is_none() {
            out.push(Finding::new(
                "source-no-silent-after",
                Sev::Info,
                format!(
                    "source {name}: no silent_after: a source that stops will not raise an alert"
                ),
                "add `silent_after: 10m` (or what suits its volume) to the source",
            ));
        }
        let Some(delay) = seen.median_delay() else {
            continue;
        };
        if delay < -5_000_000 {
            live.push((name.clone(), delay));
            out.push(Finding::new(
                "clock-skew",
                Sev::Warning,
                format!(
                    "source {name}: events are stamped {} in the future of their arrival: its clock is ahead",
                    human(delay)
                ),
                "synchronize the sender's clock (chrony/NTP); timelines across sources depend on it",
            ));
        } else if delay > 3_600_000_000 {
            out.push(Finding::new(
                "clock-skew-unmeasured",
                Sev::Info,
                format!(
                    "source {name}: events arrived {} after their time (imported afterwards, or lagging): its clock skew cannot be measured from them",
                    human(delay)
                ),
                "measure again once it delivers live events",
            ));
        } else {
            live.push((name.clone(), delay));
        }
    }
    if live.len() >= 2 {
        let (lo, hi) = (
            live.iter()
                .min_by_key(|(_, d)| *d)
                .cloned()
                .unwrap_or_default(),
            live.iter()
                .max_by_key(|(_, d)| *d)
                .cloned()
                .unwrap_or_default(),
        );
        let spread = hi.1 - lo.1;
        if spread > 60_000_000 {
            out.push(Finding::new(
                "clock-skew",
                Sev::Warning,
                format!(
                    "sources {} and {} disagree by about {} (median delay from event time to arrival)",
                    lo.0,
                    hi.0,
                    human(spread)
                ),
                "synchronize the clocks of the hosts behind these sources (chrony/NTP), or find the queue that delays one of them",
            ));
        } else {
            out.push(Finding::new(
                "clock-skew",
                Sev::Info,
                format!(
                    "{} live sources agree within {} (median delay from event time to arrival)",
                    live.len(),
                    human(spread)
                ),
                "nothing to do",
            ));
        }
    }
}

/// Retention of the data directory against PCI DSS 10.5.1 (12 months kept, 3 immediately
/// available). Every stored event stays searchable until retention removes it, so the online
/// requirement holds whenever the retention does.
pub fn retention(dir: &Path, datasets: &BTreeSet<String>, out: &mut Vec<Finding>) {
    let r = match Retention::load(dir) {
        Ok(r) => r,
        Err(e) => {
            out.push(Finding::new(
                "retention",
                Sev::Error,
                format!("{e}"),
                format!(
                    "fix {}/retention: lines `DATASET: 400d` or `default: 400d`",
                    dir.display()
                ),
            ));
            return;
        }
    };
    let mut names: BTreeSet<String> = datasets.clone();
    names.extend(r.per_dataset.keys().cloned());
    if r.default.is_none() && r.per_dataset.is_empty() {
        out.push(Finding::new(
            "retention",
            Sev::Info,
            format!(
                "no retention set in {}: events are kept until removed by hand (PCI DSS 10.5.1: 12 months kept, 3 months online: met, but the disk only grows)",
                dir.display()
            ),
            format!(
                "set one: `vigil ingest --data-dir {} --retention 400d` (or write `default: 400d` in {}/retention)",
                dir.display(),
                dir.display()
            ),
        ));
        return;
    }
    let mut checked: Vec<(String, String, i64)> = Vec::new();
    if let Some(d) = &r.default {
        checked.push(("default".into(), d.text.clone(), d.micros));
    }
    for n in &names {
        if let Some(s) = r.per_dataset.get(n) {
            checked.push((n.clone(), s.text.clone(), s.micros));
        } else if r.default.is_none() {
            out.push(Finding::new(
                "retention",
                Sev::Info,
                format!("{n}: no retention: kept until removed by hand"),
                format!(
                    "add `{n}: 400d` (or `default: 400d`) to {}/retention",
                    dir.display()
                ),
            ));
        }
    }
    let mut ok = Vec::new();
    for (name, text, micros) in checked {
        if micros < 90 * DAY_US {
            out.push(Finding::new(
                "retention-short",
                Sev::Error,
                format!(
                    "{name}: retention {text} is under 3 months: PCI DSS 10.5.1 wants 12 months kept and the last 3 immediately available"
                ),
                format!("set `{name}: 400d` in {}/retention (or `vigil ingest --retention {}400d`)", dir.display(), if name == "default" { String::new() } else { format!("{name}=") }),
            ));
        } else if micros < 365 * DAY_US {
            out.push(Finding::new(
                "retention-short",
                Sev::Error,
                format!(
                    "{name}: retention {text} is under 12 months: PCI DSS 10.5.1 wants 12 months kept (3 immediately available: met, everything stored is searchable)"
                ),
                format!("set `{name}: 400d` in {}/retention (or archive partitions elsewhere before they are removed)", dir.display()),
            ));
        } else {
            ok.push(format!("{name} {text}"));
        }
    }
    if !ok.is_empty() {
        out.push(Finding::new(
            "retention",
            Sev::Info,
            format!(
                "retention meets PCI DSS 10.5.1 (12 months kept, 3 months online): {}",
                ok.join(", ")
            ),
            "nothing to do",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("/var/log/auth.log*", "/var/log/auth.log.1"));
        assert!(glob_match("/d/*.log", "/d/a.log"));
        assert!(!glob_match("/d/*.log", "/d/a.txt"));
        assert!(glob_match("a?c", "abc"));
    }

    #[test]
    fn short_retention_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("retention"),
            "default: 30d\nk8s.audit: 400d\n",
        )
        .unwrap();
        let mut out = Vec::new();
        retention(
            dir.path(),
            &BTreeSet::from(["k8s.audit".to_string()]),
            &mut out,
        );
        assert_eq!(
            out.iter().filter(|f| f.severity == Sev::Error).count(),
            1,
            "{out:?}"
        );
        assert!(out[0].what.contains("default: retention 30d"));
    }
}
