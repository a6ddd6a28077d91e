//! `vigil serve`: the always-on service. Takes Kubernetes audit events as kube-apiserver's
//! webhook backend, follows log files, listens for syslog, stores everything durably in the
//! event store, runs detection on the live stream in event time, delivers alerts to sinks, and
//! reports on `/metrics`. This crate holds all of Vigil's async code; the core crates stay
//! free of I/O.
//!
//! ```text
//!  webhook (hyper+rustls) ─┐                         ┌─▶ detection thread ─ alerts ─┐
//!  syslog (udp/tcp/tls) ───┼─▶ writer thread (Store) ┤   (event time, reorder)      │
//!  file tailers (threads) ─┘   group commit + fsync  └◀─────────────────────────────┘
//!        ▲ ack after fsync          │ stored alerts ─▶ durable sink queues ─▶ sink threads
//! ```
//! State of the service lives in `DATA_DIR/server/`: `offsets.log` (file sources, committed
//! with the data), `detect.json` (correlation state and journal position), `sinks/NAME/`.

pub mod client;
pub mod config;
pub mod detect;
pub mod files;
pub mod http;
pub mod metrics;
pub mod replay;
pub mod sinks;
pub mod syslog;
pub mod tls;
pub mod tokens;
pub mod writer;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use vigil_store::{Store, StoreOptions};

use crate::config::{Config, SourceKind, Transport};
use crate::detect::{DetectMsg, Detection, RulesLoader};
use crate::writer::{Offsets, Shared, Writer, WriterMsg};

fn store_options() -> StoreOptions {
    // The service commits the index every so often rather than at the end of an import.
    let mut opts = StoreOptions {
        index_commit_docs: 200_000,
        index_memory: 64 << 20,
        ..StoreOptions::default()
    };
    // Testing hook: a disk that is full after this many bytes.
    if let Some(n) = std::env::var("VIGIL_TEST_DISK_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        opts.fault = Some(vigil_store::disk_full_after(n));
    }
    opts
}

/// Checks what the configuration points at (TLS material, token files), beyond its syntax.
pub fn check_files(cfg: &Config) -> Vec<String> {
    let mut errors = Vec::new();
    for s in &cfg.sources {
        match &s.kind {
            SourceKind::Webhook(w) => {
                if let Err(e) = tls::server_config(&w.tls, true) {
                    errors.push(format!("source {}: tls: {e}", s.name));
                }
                if let Some(p) = &w.bearer_tokens_file {
                    match tokens::Tokens::load(Some(p)) {
                        Ok(_) => {}
                        Err(e @ tokens::TokenError::Empty { .. }) => {
                            errors.push(format!("source {}: {e}", s.name))
                        }
                        Err(e) => {
                            errors.push(format!("source {}: bearer_tokens_file: {e}", s.name))
                        }
                    }
                }
            }
            SourceKind::Syslog(sy) => {
                if let Some(t) = &sy.tls {
                    if let Err(e) = tls::server_config(t, false) {
                        errors.push(format!("source {}: tls: {e}", s.name));
                    }
                }
            }
            SourceKind::File(_) => {}
        }
    }
    errors
}

/// Runs the service until SIGTERM (or SIGINT); returns once everything is drained and closed.
pub fn run(cfg: Config, loader: Option<RulesLoader>) -> Result<(), String> {
    let problems = check_files(&cfg);
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    let dir = cfg.data_dir.clone();
    let state_dir = dir.join("server");
    std::fs::create_dir_all(&state_dir).map_err(|e| format!("{}: {e}", state_dir.display()))?;
    let store = Store::open(&dir, store_options()).map_err(|e| e.to_string())?;
    let counts = writer::partition_counts(&dir).map_err(|e| e.to_string())?;
    let offsets = Offsets::open(&state_dir, &counts).map_err(|e| format!("offsets.log: {e}"))?;
    let shared = Arc::new(Shared::new(cfg.limits.queue_events, state_dir.clone()));
    for s in &cfg.sources {
        for name in [
            "vigil_events_received_total",
            "vigil_events_stored_total",
            "vigil_events_deduplicated_total",
            "vigil_events_dropped_total",
            "vigil_bytes_received_total",
        ] {
            shared.metrics.touch(name, &[("source", &s.name)]);
        }
        shared.metrics.touch(
            "vigil_events_rejected_total",
            &[("source", &s.name), ("reason", "malformed")],
        );
    }

    // Sinks and their queues.
    let mut queues = Vec::new();
    let stop_sinks = Arc::new(AtomicBool::new(false));
    let drain_until = Arc::new(Mutex::new(None));
    let mut sink_threads = Vec::new();
    for s in &cfg.sinks {
        let q = Arc::new(
            sinks::SinkQueue::open(&state_dir, &s.name)
                .map_err(|e| format!("sink {}: {e}", s.name))?,
        );
        let out = sinks::deliverer(s).map_err(|e| format!("sink {}: {e}", s.name))?;
        let (q2, sh, stop, until, backoff) = (
            q.clone(),
            shared.clone(),
            stop_sinks.clone(),
            drain_until.clone(),
            s.max_backoff,
        );
        sink_threads.push(
            std::thread::Builder::new()
                .name(format!("sink-{}", s.name))
                .spawn(move || sinks::run_sink(q2, out, backoff, sh, stop, until))
                .map_err(|e| e.to_string())?,
        );
        queues.push(q);
    }

    let (wtx, wrx) = mpsc::channel::<WriterMsg>();
    // Detection.
    let (dtx, detect_thread) =
        start_detection(&cfg, loader.as_ref(), &dir, &state_dir, &shared, &wtx)?;
    let w = Writer::new(
        store,
        dir.clone(),
        store_options,
        counts,
        offsets,
        shared.clone(),
        dtx.clone(),
        queues,
        cfg.limits.commit_max_events,
    );
    let saved_offsets = w.offsets.states.clone();
    let writer_thread = std::thread::Builder::new()
        .name("writer".into())
        .spawn(move || w.run(wrx))
        .map_err(|e| e.to_string())?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let inflight = Arc::new(AtomicUsize::new(0));
    let stop_files = Arc::new(AtomicBool::new(false));
    let mut file_threads = Vec::new();
    let mut webhook_tokens = Vec::new();

    let started: Result<(), String> = rt.block_on(async {
        for s in &cfg.sources {
            let name: Arc<str> = Arc::from(s.name.as_str());
            match &s.kind {
                SourceKind::Webhook(wcfg) => {
                    let tokens = Arc::new(
                        tokens::Tokens::load(wcfg.bearer_tokens_file.as_deref())
                            .map_err(|e| format!("source {}: {e}", s.name))?,
                    );
                    webhook_tokens.push((name.clone(), tokens.clone()));
                    let acceptor = TlsAcceptor::from(tls::server_config(&wcfg.tls, true)?);
                    let listener = tokio::net::TcpListener::bind(wcfg.listen)
                        .await
                        .map_err(|e| format!("source {}: {}: {e}", s.name, wcfg.listen))?;
                    eprintln!(
                        "vigil serve: {}: audit webhook on https://{}{}",
                        s.name,
                        listener.local_addr().map_err(|e| e.to_string())?,
                        wcfg.path
                    );
                    let ctx = Arc::new(http::WebhookCtx {
                        name,
                        cfg: wcfg.clone(),
                        tokens,
                        shared: shared.clone(),
                        writer: wtx.clone(),
                        inflight: inflight.clone(),
                    });
                    tokio::spawn(http::serve_webhook(
                        listener,
                        acceptor,
                        ctx,
                        stop_rx.clone(),
                    ));
                }
                SourceKind::Syslog(scfg) => {
                    let ctx = Arc::new(syslog::SyslogCtx {
                        name,
                        max_message: scfg.max_message_bytes,
                        shared: shared.clone(),
                        writer: wtx.clone(),
                    });
                    match scfg.transport {
                        Transport::Udp => {
                            let sock = tokio::net::UdpSocket::bind(scfg.listen)
                                .await
                                .map_err(|e| format!("source {}: {}: {e}", s.name, scfg.listen))?;
                            eprintln!("vigil serve: {}: syslog on udp://{}", s.name, scfg.listen);
                            tokio::spawn(syslog::serve_udp(sock, ctx, stop_rx.clone()));
                        }
                        t => {
                            let listener = tokio::net::TcpListener::bind(scfg.listen)
                                .await
                                .map_err(|e| format!("source {}: {}: {e}", s.name, scfg.listen))?;
                            let acc = match (&scfg.tls, t) {
                                (Some(tc), Transport::Tls) => {
                                    Some(TlsAcceptor::from(tls::server_config(tc, false)?))
                                }
                                _ => None,
                            };
                            let scheme = if acc.is_some() { "tls" } else { "tcp" };
                            eprintln!(
                                "vigil serve: {}: syslog on {scheme}://{}",
                                s.name, scfg.listen
                            );
                            tokio::spawn(syslog::serve_tcp(listener, acc, ctx, stop_rx.clone()));
                        }
                    }
                }
                SourceKind::File(fcfg) => {
                    let t = files::Tailer::new(
                        name,
                        fcfg.clone(),
                        shared.clone(),
                        wtx.clone(),
                        saved_offsets.get(&s.name),
                    );
                    let stop = stop_files.clone();
                    eprintln!(
                        "vigil serve: {}: following {}",
                        s.name,
                        fcfg.paths.join(", ")
                    );
                    file_threads.push(
                        std::thread::Builder::new()
                            .name(format!("file-{}", s.name))
                            .spawn(move || t.run(stop))
                            .map_err(|e| e.to_string())?,
                    );
                }
            }
        }
        if let Some(addr) = cfg.api {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("api.listen {addr}: {e}"))?;
            eprintln!("vigil serve: /metrics, /healthz, /readyz on http://{addr}");
            let ctx = Arc::new(http::ApiCtx {
                shared: shared.clone(),
            });
            tokio::spawn(http::serve_api(listener, ctx, stop_rx.clone()));
        }
        Ok(())
    });

    if let Err(e) = &started {
        eprintln!("vigil serve: {e}");
    } else {
        eprintln!("vigil serve: ready (data in {})", dir.display());
        rt.block_on(wait_for_signals(
            &cfg,
            &shared,
            &webhook_tokens,
            loader.clone(),
            dtx.clone(),
        ));
        eprintln!("vigil serve: stopping: draining in-flight requests");
    }

    // Shutdown: refuse new work, let in-flight requests finish, drain detection and the writer.
    shared.shutting_down.store(true, Ordering::SeqCst);
    let _ = stop_tx.send(true);
    let deadline = Instant::now() + cfg.limits.drain_timeout.0;
    while inflight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop_files.store(true, Ordering::SeqCst);
    for t in file_threads {
        let _ = t.join();
    }
    match &dtx {
        Some(d) => {
            let _ = d.send(DetectMsg::Drain);
        }
        None => {
            let _ = wtx.send(WriterMsg::DetectionDone);
        }
    }
    drop(wtx);
    if let Some(h) = detect_thread {
        let _ = h.join();
    }
    let _ = writer_thread.join();
    if let Ok(mut d) = drain_until.lock() {
        *d = Some(Instant::now() + cfg.limits.drain_timeout.0);
    }
    stop_sinks.store(true, Ordering::SeqCst);
    for t in sink_threads {
        let _ = t.join();
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    eprintln!("vigil serve: stopped");
    started
}

/// Until SIGTERM/SIGINT: reloads bearer tokens and rules on SIGHUP, watches for silent
/// sources.
async fn wait_for_signals(
    cfg: &Config,
    shared: &Arc<Shared>,
    webhook_tokens: &[(Arc<str>, Arc<tokens::Tokens>)],
    loader: Option<RulesLoader>,
    dtx: Option<mpsc::Sender<DetectMsg>>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        eprintln!("vigil serve: cannot install signal handlers");
        return;
    };
    let start = Instant::now();
    let mut silent: HashMap<String, bool> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => {
                // Tokens first: cheap, and not held up by a slow rule compile.
                tokio::task::block_in_place(|| tokens::reload_all(webhook_tokens, &shared.metrics));
                match (&loader, &dtx) {
                    (Some(load), Some(d)) => match tokio::task::block_in_place(|| load()) {
                        Ok(rules) => {
                            let _ = d.send(DetectMsg::Reload(rules));
                            shared.metrics.inc("vigil_rule_reloads_total", &[("result", "ok")]);
                        }
                        Err(e) => {
                            eprintln!("vigil serve: SIGHUP: rules not reloaded, the old ones keep running: {e}");
                            shared.metrics.inc("vigil_rule_reloads_total", &[("result", "error")]);
                        }
                    },
                    _ => eprintln!("vigil serve: SIGHUP: detection is off; no rules to reload"),
                }
            }
            _ = tick.tick() => {
                for s in &cfg.sources {
                    let Some(limit) = s.silent_after else { continue };
                    let last = shared.last_seen.lock().ok().and_then(|m| m.get(&s.name).copied()).unwrap_or(start);
                    let quiet = last.elapsed() >= limit;
                    let was = silent.get(&s.name).copied().unwrap_or(false);
                    if quiet && !was {
                        eprintln!("vigil serve: source {} silent for {}s", s.name, last.elapsed().as_secs());
                        if let Some(d) = &dtx {
                            let _ = d.send(DetectMsg::Internal(detect::silent_alert(&s.name, last.elapsed())));
                        }
                    }
                    shared.metrics.set("vigil_source_silent", &[("source", &s.name)], if quiet { 1.0 } else { 0.0 });
                    silent.insert(s.name.clone(), quiet);
                }
            }
        }
    }
}

/// Whether `path` looks like a Vigil data directory in use by a running service.
pub fn state_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("server")
}

/// The detection thread's input and handle (both `None` when detection is off).
type DetectionThread = (
    Option<mpsc::Sender<DetectMsg>>,
    Option<std::thread::JoinHandle<()>>,
);

/// The detection thread over `dir`: the rules, the correlation checkpoint of `state_dir`
/// restored, and the events stored after it evaluated again. Shared by `vigil serve` and
/// `replay` so both run one pipeline.
pub(crate) fn start_detection(
    cfg: &Config,
    loader: Option<&RulesLoader>,
    dir: &Path,
    state_dir: &Path,
    shared: &Arc<Shared>,
    wtx: &mpsc::Sender<WriterMsg>,
) -> Result<DetectionThread, String> {
    let (Some(load), true) = (loader, cfg.detection.enabled) else {
        return Ok((None, None));
    };
    let rules = load()?;
    let ckpt_path = state_dir.join("detect.json");
    let restored: Option<detect::Checkpoint> = std::fs::read(&ckpt_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let first_start = restored.is_none();
    let positions = restored
        .as_ref()
        .map(|c| c.positions.clone())
        .unwrap_or_default();
    let (items, start) = detect::replay_items(dir, &positions, first_start)?;
    if !items.is_empty() {
        eprintln!(
            "vigil serve: detection: {} stored events after the last checkpoint are evaluated again",
            items.len()
        );
    }
    let mut d = Detection::new(
        rules,
        restored,
        cfg.detection.allowed_lateness.0,
        cfg.detection.checkpoint_interval.0,
        cfg.sinks.clone(),
        cfg.suppress.clone(),
        shared.clone(),
        wtx.clone(),
    );
    d.set_positions(start);
    d.replay(items);
    writer::write_atomic(&ckpt_path, &d.checkpoint_bytes())
        .map_err(|e| format!("{}: {e}", ckpt_path.display()))?;
    let (dtx, drx) = mpsc::channel();
    let h = std::thread::Builder::new()
        .name("detect".into())
        .spawn(move || d.run(drx))
        .map_err(|e| e.to_string())?;
    Ok((Some(dtx), Some(h)))
}
