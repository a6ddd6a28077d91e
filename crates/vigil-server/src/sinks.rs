//! Alert sinks. Each sink has a durable queue on disk (`server/sinks/NAME/queue.jsonl` and a
//! delivered-up-to `cursor`): alerts are queued (and synced) by the writer once stored, and a
//! thread per sink delivers them in order, retrying with exponential backoff while the sink is
//! down. No alert is lost while a sink is down; one may be delivered twice after a crash.

use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::Client;
use crate::config::{Sink, SinkKind, Transport};
use crate::metrics::Metrics;

/// An alert on its way to the sinks.
#[derive(Clone, Debug)]
pub struct QueuedAlert {
    pub id: String,
    /// The alert JSON (the `vigil detect` contract plus `id`).
    pub json: String,
    /// Indexes of the sinks it goes to.
    pub sinks: Vec<usize>,
    /// When the triggering event was received (µs), for the ingest-to-alert latency.
    pub received_us: Option<i64>,
}

struct Inner {
    file: File,
    len: u64,
    cursor: u64,
    depth: u64,
    seen: HashSet<String>,
    seen_order: VecDeque<String>,
    /// When the cursor was last written (it is written at most every 200 ms, and whenever the
    /// queue is drained: a crash re-delivers at most that much).
    cursor_saved: Instant,
    /// A reader of the queue file and where it stands.
    rd: Option<(BufReader<File>, u64)>,
}

pub struct SinkQueue {
    pub name: String,
    dir: PathBuf,
    inner: Mutex<Inner>,
    wake: Condvar,
}

const SEEN_CAP: usize = 65_536;

fn id_of(line: &str) -> Option<String> {
    serde_json::from_str::<Value>(line)
        .ok()?
        .get("id")?
        .as_str()
        .map(str::to_string)
}

impl SinkQueue {
    pub fn open(state_dir: &Path, name: &str) -> std::io::Result<SinkQueue> {
        let dir = state_dir.join("sinks").join(name);
        std::fs::create_dir_all(&dir)?;
        let qpath = dir.join("queue.jsonl");
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&qpath)?;
        let cursor: u64 = std::fs::read_to_string(dir.join("cursor"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        // A torn last line (crash mid-append) is cut; ids seen are remembered for dedup.
        let mut text = Vec::new();
        file.seek(SeekFrom::Start(0))?;
        file.read_to_end(&mut text)?;
        let good = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if good < text.len() {
            file.set_len(good as u64)?;
        }
        let mut seen = HashSet::new();
        let mut seen_order = VecDeque::new();
        let mut depth = 0;
        let mut at = 0u64;
        for line in text[..good].split(|b| *b == b'\n') {
            if line.is_empty() {
                continue;
            }
            if let Some(id) = id_of(&String::from_utf8_lossy(line)) {
                seen.insert(id.clone());
                seen_order.push_back(id);
            }
            if at >= cursor {
                depth += 1;
            }
            at += line.len() as u64 + 1;
        }
        if let Ok(extra) = std::fs::read_to_string(dir.join("seen")) {
            for id in extra.lines() {
                if seen.insert(id.to_string()) {
                    seen_order.push_front(id.to_string());
                }
            }
        }
        Ok(SinkQueue {
            name: name.to_string(),
            dir,
            inner: Mutex::new(Inner {
                file,
                len: good as u64,
                cursor: cursor.min(good as u64),
                depth,
                seen,
                seen_order,
                cursor_saved: Instant::now(),
                rd: None,
            }),
            wake: Condvar::new(),
        })
    }

    /// Appends alerts not queued before (by id) and syncs.
    pub fn push(&self, alerts: &[&QueuedAlert]) -> std::io::Result<()> {
        if alerts.is_empty() {
            return Ok(());
        }
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut buf = String::new();
        let mut n = 0;
        for a in alerts {
            if !g.seen.insert(a.id.clone()) {
                continue;
            }
            g.seen_order.push_back(a.id.clone());
            if g.seen_order.len() > SEEN_CAP {
                if let Some(old) = g.seen_order.pop_front() {
                    g.seen.remove(&old);
                }
            }
            buf.push_str(&a.json);
            buf.push('\n');
            n += 1;
        }
        if n == 0 {
            return Ok(());
        }
        g.file.write_all(buf.as_bytes())?;
        g.file.sync_data()?;
        g.len += buf.len() as u64;
        g.depth += n;
        drop(g);
        self.wake.notify_all();
        Ok(())
    }

    pub fn depth(&self) -> u64 {
        self.inner.lock().map(|g| g.depth).unwrap_or(0)
    }

    /// The next undelivered alert and where it ends, waiting up to `wait`.
    fn next(&self, wait: Duration) -> Option<(String, u64)> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.cursor >= g.len {
            g = self
                .wake
                .wait_timeout(g, wait)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        if g.cursor >= g.len {
            return None;
        }
        let cursor = g.cursor;
        if g.rd.as_ref().is_none_or(|(_, at)| *at != cursor) {
            let mut f = File::open(self.dir.join("queue.jsonl")).ok()?;
            f.seek(SeekFrom::Start(cursor)).ok()?;
            g.rd = Some((BufReader::new(f), cursor));
        }
        let (rd, at) = g.rd.as_mut()?;
        let mut line = String::new();
        if rd.read_line(&mut line).is_err() || !line.ends_with('\n') {
            g.rd = None;
            return None;
        }
        *at += line.len() as u64;
        let end = cursor + line.len() as u64;
        Some((line.trim_end().to_string(), end))
    }

    fn delivered(&self, end: u64) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.cursor = end;
        g.depth = g.depth.saturating_sub(1);
        // Everything delivered and the file is large: start it afresh (ids kept in `seen`).
        if g.cursor == g.len && g.len > (1 << 20) {
            let ids: Vec<String> = g.seen_order.iter().cloned().collect();
            let _ = std::fs::write(self.dir.join("seen"), ids.join("\n") + "\n");
            if g.file.set_len(0).is_ok() {
                g.len = 0;
                g.cursor = 0;
                g.rd = None;
            }
        }
        if g.cursor == g.len || g.cursor_saved.elapsed() >= Duration::from_millis(200) {
            let _ = std::fs::write(self.dir.join("cursor"), g.cursor.to_string());
            g.cursor_saved = Instant::now();
        }
    }
}

/// Delivers one alert to a sink.
pub trait Deliver: Send {
    fn deliver(&mut self, alert_json: &str) -> Result<(), String>;
}

struct FileSink {
    path: PathBuf,
    file: Option<File>,
}

impl Deliver for FileSink {
    fn deliver(&mut self, alert: &str) -> Result<(), String> {
        if self.file.is_none() {
            if let Some(d) = self.path.parent() {
                let _ = std::fs::create_dir_all(d);
            }
            self.file = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
                    .map_err(|e| format!("{}: {e}", self.path.display()))?,
            );
        }
        let f = self.file.as_mut().ok_or("no file")?;
        let r = f
            .write_all(format!("{alert}\n").as_bytes())
            .and_then(|()| f.flush());
        if let Err(e) = r {
            self.file = None;
            return Err(format!("{}: {e}", self.path.display()));
        }
        Ok(())
    }
}

struct StdoutSink;

impl Deliver for StdoutSink {
    fn deliver(&mut self, alert: &str) -> Result<(), String> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{alert}")
            .and_then(|()| out.flush())
            .map_err(|e| e.to_string())
    }
}

struct WebhookSink {
    client: Client,
    slack: bool,
    headers: Vec<(String, String)>,
}

/// A Slack-compatible message (`{"text": ...}`) for an alert.
pub fn slack_text(alert: &Value) -> Value {
    let s = |p: &str| alert.pointer(p).and_then(Value::as_str).unwrap_or("");
    let mut text = format!(
        "*[{}]* {} (`{}`) at {}",
        s("/rule/level").to_uppercase(),
        s("/rule/title"),
        s("/rule/id"),
        s("/time")
    );
    if let Some(m) = alert.get("matched").and_then(Value::as_object) {
        for (k, v) in m.iter().take(8) {
            text.push_str(&format!("\n• {k}: {v}"));
        }
    }
    if let Some(g) = alert.get("group").and_then(Value::as_object) {
        for (k, v) in g {
            text.push_str(&format!("\n• {k} = {v}"));
        }
    }
    serde_json::json!({ "text": text })
}

impl Deliver for WebhookSink {
    fn deliver(&mut self, alert: &str) -> Result<(), String> {
        let body = if self.slack {
            let v: Value = serde_json::from_str(alert).map_err(|e| e.to_string())?;
            slack_text(&v).to_string()
        } else {
            alert.to_string()
        };
        let mut headers: Vec<(&str, &str)> = vec![
            ("Content-Type", "application/json"),
            ("User-Agent", "vigil"),
        ];
        for (k, v) in &self.headers {
            headers.push((k, v));
        }
        let r = self.client.request("POST", &headers, body.as_bytes())?;
        if (200..300).contains(&r.status) {
            Ok(())
        } else {
            Err(format!(
                "HTTP {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
            ))
        }
    }
}

struct SyslogSink {
    transport: Transport,
    addr: String,
    tcp: Option<TcpStream>,
    udp: Option<UdpSocket>,
    timeout: Duration,
}

/// RFC 5424 severity for a Sigma level.
fn severity(level: &str) -> u8 {
    match vigil_model::alert::level_rank(level) {
        5 => 2,
        4 => 3,
        3 => 4,
        2 => 5,
        _ => 6,
    }
}

/// An alert as an RFC 5424 message (facility auth), the alert JSON as its text.
pub fn syslog_message(alert: &str) -> String {
    let v: Value = serde_json::from_str(alert).unwrap_or(Value::Null);
    let level = v
        .pointer("/rule/level")
        .and_then(Value::as_str)
        .unwrap_or("");
    let pri = 4 * 8 + severity(level);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let host = hostname();
    format!("<{pri}>1 {now} {host} vigil - alert - {alert}")
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "-".into())
}

impl Deliver for SyslogSink {
    fn deliver(&mut self, alert: &str) -> Result<(), String> {
        let msg = syslog_message(alert);
        match self.transport {
            Transport::Udp => {
                if self.udp.is_none() {
                    let bind = if self.addr.starts_with('[') {
                        "[::]:0"
                    } else {
                        "0.0.0.0:0"
                    };
                    let s = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
                    s.connect(&self.addr)
                        .map_err(|e| format!("{}: {e}", self.addr))?;
                    self.udp = Some(s);
                }
                let s = self.udp.as_ref().ok_or("no socket")?;
                s.send(msg.as_bytes()).map_err(|e| {
                    self.udp = None;
                    format!("{}: {e}", self.addr)
                })?;
                Ok(())
            }
            _ => {
                if self.tcp.is_none() {
                    let s = TcpStream::connect(&self.addr)
                        .map_err(|e| format!("{}: {e}", self.addr))?;
                    s.set_write_timeout(Some(self.timeout)).ok();
                    self.tcp = Some(s);
                }
                let s = self.tcp.as_mut().ok_or("no socket")?;
                // RFC 6587 octet counting.
                let framed = format!("{} {msg}", msg.len());
                s.write_all(framed.as_bytes()).map_err(|e| {
                    self.tcp = None;
                    format!("{}: {e}", self.addr)
                })
            }
        }
    }
}

pub fn deliverer(sink: &Sink) -> Result<Box<dyn Deliver>, String> {
    Ok(match &sink.kind {
        SinkKind::File { path } => Box::new(FileSink {
            path: path.clone(),
            file: None,
        }),
        SinkKind::Stdout => Box::new(StdoutSink),
        SinkKind::Webhook {
            url,
            slack,
            ca,
            headers,
        } => {
            let tls = if url.starts_with("https://") {
                Some(crate::tls::client_config(ca.as_deref(), None)?)
            } else {
                None
            };
            Box::new(WebhookSink {
                client: Client::new(url, tls, sink.timeout)?,
                slack: *slack,
                headers: headers.clone(),
            })
        }
        SinkKind::Syslog { transport, addr } => Box::new(SyslogSink {
            transport: *transport,
            addr: addr.clone(),
            tcp: None,
            udp: None,
            timeout: sink.timeout,
        }),
    })
}

/// Delivers a sink's queue until `stop` (then until the queue is empty or `drain_until`).
pub fn run_sink(
    queue: Arc<SinkQueue>,
    mut out: Box<dyn Deliver>,
    max_backoff: Duration,
    metrics: Arc<crate::writer::Shared>,
    stop: Arc<AtomicBool>,
    drain_until: Arc<Mutex<Option<Instant>>>,
) {
    let m: &Metrics = &metrics.metrics;
    let name = queue.name.clone();
    m.touch("vigil_sink_failures_total", &[("sink", &name)]);
    m.touch("vigil_sink_delivered_total", &[("sink", &name)]);
    let past_deadline = || {
        drain_until
            .lock()
            .map(|d| d.is_some_and(|t| Instant::now() >= t))
            .unwrap_or(true)
    };
    loop {
        m.set(
            "vigil_sink_queue_depth",
            &[("sink", &name)],
            queue.depth() as f64,
        );
        let Some((line, end)) = queue.next(Duration::from_millis(200)) else {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            continue;
        };
        let mut backoff = Duration::from_millis(500);
        loop {
            match out.deliver(&line) {
                Ok(()) => {
                    queue.delivered(end);
                    m.inc("vigil_sink_delivered_total", &[("sink", &name)]);
                    break;
                }
                Err(e) => {
                    m.inc("vigil_sink_failures_total", &[("sink", &name)]);
                    eprintln!(
                        "vigil serve: sink {name}: delivery failed ({e}); retrying in {:.1}s",
                        backoff.as_secs_f64()
                    );
                    let until = Instant::now() + backoff;
                    while Instant::now() < until {
                        if stop.load(Ordering::Relaxed) && past_deadline() {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    backoff = (backoff * 2).min(max_backoff);
                }
            }
        }
        if stop.load(Ordering::Relaxed) && past_deadline() {
            return;
        }
    }
}
