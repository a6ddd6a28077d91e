//! Replay: the `vigil serve` pipeline over log files, run until they are consumed, then stopped
//! as SIGTERM stops the service. The same parts as [`crate::run`] (file tailers, the writer
//! thread with its group commits, offsets and checkpoints, streaming detection in event time,
//! alerts stored as records), without listeners, signals or sinks. `vigil demo` uses it; so can
//! anything that wants "what would `vigil serve` have stored and raised for these files".

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;

use tokio::sync::oneshot;
use vigil_store::Store;

use crate::config::{Config, SourceKind};
use crate::detect::{DetectMsg, RulesLoader};
use crate::files::Tailer;
use crate::writer::{self, Offsets, Shared, Submission, Writer, WriterMsg};

/// What one source of a replay did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceCounts {
    pub name: String,
    pub received: u64,
    pub stored: u64,
    pub duplicates: u64,
    pub rejected: u64,
}

/// What a replay did, per source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replayed {
    pub sources: Vec<SourceCounts>,
}

/// Runs the service's pipeline over the file sources of `cfg` until every file they match has
/// been read to its last complete line, stored, and evaluated by detection (when `loader` is
/// given and detection is enabled), then drains and stops. Alerts are stored in the data
/// directory as `vigil serve` stores them; sinks are not delivered to (a configuration with
/// sinks, or with sources other than files, is refused). Detection waits
/// `detection.allowed_lateness` for out-of-order events as the service does; everything still
/// buffered is evaluated, in event-time order, when the replay drains.
pub fn replay_files(cfg: Config, loader: Option<RulesLoader>) -> Result<Replayed, String> {
    for s in &cfg.sources {
        if !matches!(s.kind, SourceKind::File(_)) {
            return Err(format!(
                "source {}: a replay reads file sources only",
                s.name
            ));
        }
    }
    if !cfg.sinks.is_empty() {
        return Err("a replay delivers to no sinks: remove `sinks:`".into());
    }
    let dir = cfg.data_dir.clone();
    let state_dir = dir.join("server");
    std::fs::create_dir_all(&state_dir).map_err(|e| format!("{}: {e}", state_dir.display()))?;
    let store = Store::open(&dir, crate::store_options()).map_err(|e| e.to_string())?;
    let counts = writer::partition_counts(&dir).map_err(|e| e.to_string())?;
    let offsets = Offsets::open(&state_dir, &counts).map_err(|e| format!("offsets.log: {e}"))?;
    let shared = Arc::new(Shared::new(cfg.limits.queue_events, state_dir.clone()));

    let (wtx, wrx) = mpsc::channel::<WriterMsg>();
    let (dtx, detect_thread) =
        crate::start_detection(&cfg, loader.as_ref(), &dir, &state_dir, &shared, &wtx)?;
    let w = Writer::new(
        store,
        dir.clone(),
        crate::store_options,
        counts,
        offsets,
        shared.clone(),
        dtx.clone(),
        Vec::new(),
        cfg.limits.commit_max_events,
    );
    let saved = w.offsets.states.clone();
    let writer_thread = std::thread::Builder::new()
        .name("writer".into())
        .spawn(move || w.run(wrx))
        .map_err(|e| e.to_string())?;

    // Read every source until a whole round reads nothing.
    let mut tailers: Vec<Tailer> = cfg
        .sources
        .iter()
        .filter_map(|s| match &s.kind {
            SourceKind::File(f) => Some(Tailer::new(
                Arc::from(s.name.as_str()),
                f.clone(),
                shared.clone(),
                wtx.clone(),
                saved.get(&s.name),
            )),
            _ => None,
        })
        .collect();
    loop {
        let mut busy = false;
        for t in &mut tailers {
            while t.poll() {
                busy = true;
            }
        }
        if !busy {
            break;
        }
    }
    drop(tailers);

    // The writer answers in order: once this empty batch is answered, every batch before it
    // has been stored and handed to detection.
    let (tx, rx) = oneshot::channel();
    let synced = wtx
        .send(WriterMsg::Submit(Submission {
            source: Arc::from("replay"),
            records: Vec::new(),
            offsets: None,
            alerts: Some(Vec::new()),
            reply: Some(tx),
            received_us: 0,
        }))
        .is_ok()
        && rx.blocking_recv().is_ok();

    shared.shutting_down.store(true, Ordering::SeqCst);
    match &dtx {
        Some(d) => {
            let _ = d.send(DetectMsg::Drain);
        }
        None => {
            let _ = wtx.send(WriterMsg::DetectionDone);
        }
    }
    drop(wtx);
    drop(dtx);
    if let Some(h) = detect_thread {
        let _ = h.join();
    }
    let _ = writer_thread.join();
    if !synced {
        return Err("the writer stopped before the replay was stored".into());
    }
    if !shared.store_ok.load(Ordering::SeqCst) {
        return Err(format!(
            "{}: the store refused writes (disk full or failed): the replay is incomplete; run it again to resume",
            dir.display()
        ));
    }

    let m = &shared.metrics;
    let get = |name: &str, src: &str| m.get(name, &[("source", src)]) as u64;
    Ok(Replayed {
        sources: cfg
            .sources
            .iter()
            .map(|s| SourceCounts {
                name: s.name.clone(),
                received: get("vigil_events_received_total", &s.name),
                stored: get("vigil_events_stored_total", &s.name),
                duplicates: get("vigil_events_deduplicated_total", &s.name),
                rejected: m.get(
                    "vigil_events_rejected_total",
                    &[("source", &s.name), ("reason", "malformed")],
                ) as u64,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config;

    fn cfg(dir: &Path, logs: &Path) -> Config {
        let text = format!(
            "data_dir: {}\nsources:\n  - type: file\n    name: k8s\n    paths: [\"{}/*.jsonl\"]\n  - type: file\n    name: auth\n    paths: [\"{}/auth.log\"]\n    format: linux.auth\ndetection:\n  allowed_lateness: 1h\n",
            dir.display(),
            logs.display(),
            logs.display()
        );
        config::parse(&text, dir, &|_| None).expect("config")
    }

    fn k8s_line(id: &str, verb: &str, resource: &str) -> String {
        format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"{id}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/shop/{resource}","verb":"{verb}","user":{{"username":"mallory"}},"sourceIPs":["10.0.0.5"],"objectRef":{{"resource":"{resource}","namespace":"shop","apiVersion":"v1"}},"responseStatus":{{"code":200}},"requestReceivedTimestamp":"2026-11-20T10:00:00.000000Z","stageTimestamp":"2026-11-20T10:00:00.100000Z"}}"#
        )
    }

    #[test]
    fn replays_files_to_the_end_through_detection_and_resumes_without_repeats() {
        let data = tempfile::tempdir().unwrap();
        let logs = tempfile::tempdir().unwrap();
        std::fs::write(
            logs.path().join("audit.jsonl"),
            format!(
                "{}\n{}\n",
                k8s_line("a1", "list", "secrets"),
                k8s_line("a2", "get", "pods")
            ),
        )
        .unwrap();
        std::fs::write(
            logs.path().join("auth.log"),
            "2026-11-20T09:59:00+00:00 bastion sshd[1]: Accepted password for alice from 198.51.100.10 port 50022 ssh2\n",
        )
        .unwrap();
        let loader: RulesLoader = Arc::new(|| {
            let cfg = vigil_detect::Config {
                placeholders: vigil_detect::builtin::placeholders(),
                ..Default::default()
            };
            let (set, _) = vigil_detect::RuleSet::compile(&vigil_detect::builtin::rules(), &cfg);
            Ok(crate::detect::Rules::new(
                set,
                &vigil_detect::builtin::rules(),
            ))
        });
        let r = replay_files(cfg(data.path(), logs.path()), Some(loader.clone())).unwrap();
        assert_eq!(r.sources.len(), 2);
        assert_eq!((r.sources[0].received, r.sources[0].stored), (2, 2));
        assert_eq!((r.sources[1].received, r.sources[1].stored), (1, 1));

        let reader = vigil_store::Reader::open(data.path()).unwrap();
        let alerts: u64 = reader
            .parts
            .iter()
            .filter(|p| p.dataset == vigil_store::prepare::ALERT_DATASET)
            .map(|p| p.count)
            .sum();
        // `list secrets` by a user: the secrets enumeration rule fires.
        assert!(alerts >= 1, "no alert stored");

        // Run again: the offsets were committed with the data, nothing is read twice.
        let again = replay_files(cfg(data.path(), logs.path()), Some(loader)).unwrap();
        assert!(again.sources.iter().all(|s| s.received == 0), "{again:?}");
        let reader = vigil_store::Reader::open(data.path()).unwrap();
        let after: u64 = reader
            .parts
            .iter()
            .filter(|p| p.dataset == vigil_store::prepare::ALERT_DATASET)
            .map(|p| p.count)
            .sum();
        assert_eq!(after, alerts);
    }

    #[test]
    fn refuses_listeners_and_sinks() {
        let data = tempfile::tempdir().unwrap();
        let text = format!(
            "data_dir: {}\nsources:\n  - type: syslog\n    name: s\n    listen: udp://127.0.0.1:0\n",
            data.path().display()
        );
        let c = config::parse(&text, data.path(), &|_| None).unwrap();
        assert!(replay_files(c, None)
            .unwrap_err()
            .contains("file sources only"));
    }
}
