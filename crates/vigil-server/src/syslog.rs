//! The syslog source: UDP (a datagram is a message), TCP and TLS (RFC 6587: octet counting
//! `LEN SP MSG`, or newline framing; decided per message by its first byte), RFC 3164 and
//! RFC 5424, read with the `linux.auth` parser (syslog_loose).

use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{oneshot, watch};
use tokio_rustls::TlsAcceptor;
use vigil_normalize::linux_auth::parse_line;
use vigil_normalize::YearHint;
use vigil_store::prepare::{self, Record};

use crate::writer::{Shared, Submission, WriterMsg};

pub struct SyslogCtx {
    pub name: Arc<str>,
    pub max_message: usize,
    pub shared: Arc<Shared>,
    pub writer: Sender<WriterMsg>,
}

impl SyslogCtx {
    /// A message into a record (None: not syslog; counted).
    fn record(&self, msg: &[u8], peer: &str) -> Option<Record> {
        let text = String::from_utf8_lossy(msg);
        let text = text.trim_end_matches(['\n', '\r', '\0']);
        if text.trim().is_empty() {
            return None;
        }
        let src: &str = &self.name;
        self.shared.metrics.add(
            "vigil_bytes_received_total",
            &[("source", src)],
            msg.len() as f64,
        );
        self.shared
            .metrics
            .inc("vigil_events_received_total", &[("source", src)]);
        match parse_line(text, YearHint::Reference(chrono::Utc::now())) {
            Some(mut doc) => {
                let mut log = serde_json::Map::new();
                let mut source = serde_json::Map::new();
                source.insert("address".into(), Value::from(peer));
                log.insert("source".into(), Value::Object(source));
                doc.entry("log")
                    .or_insert_with(|| Value::Object(serde_json::Map::new()));
                if let Some(Value::Object(l)) = doc.get_mut("log") {
                    l.extend(log);
                }
                Some(prepare::parsed_event(
                    "linux.auth",
                    Value::Object(doc),
                    src,
                    prepare::now_micros(),
                ))
            }
            None => {
                self.shared.metrics.inc(
                    "vigil_events_rejected_total",
                    &[("source", src), ("reason", "malformed")],
                );
                None
            }
        }
    }

    /// Stores records; waits while the queue is full or the store refuses (disk full): TCP
    /// pushes back on the sender meanwhile; UDP cannot (the kernel's buffer overflows). Only
    /// records still held at shutdown are given up, and counted as dropped.
    async fn submit(&self, records: Vec<Record>) -> bool {
        if records.is_empty() {
            return true;
        }
        let n = records.len();
        loop {
            while !self.shared.admit(n) && !self.shared.shutting_down.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            self.shared.pending.fetch_add(n, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            if self
                .writer
                .send(WriterMsg::Submit(Submission {
                    source: self.name.clone(),
                    records: records.clone(),
                    offsets: None,
                    alerts: None,
                    reply: Some(tx),
                    received_us: prepare::now_micros(),
                }))
                .is_err()
            {
                self.shared.pending.fetch_sub(n, Ordering::Relaxed);
                self.drop_count(n);
                return false;
            }
            match rx.await {
                Ok(Ok(_)) => {
                    self.shared.seen(&self.name);
                    return true;
                }
                _ if self.shared.shutting_down.load(Ordering::Relaxed) => {
                    self.drop_count(n);
                    return false;
                }
                _ => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    }

    fn drop_count(&self, n: usize) {
        self.shared.metrics.add(
            "vigil_events_dropped_total",
            &[("source", &self.name)],
            n as f64,
        );
    }
}

pub async fn serve_udp(sock: UdpSocket, ctx: Arc<SyslogCtx>, mut stop: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, peer) = tokio::select! {
            r = sock.recv_from(&mut buf) => match r { Ok(x) => x, Err(_) => continue },
            _ = stop.changed() => return,
        };
        let peer = peer.ip().to_string();
        let mut records: Vec<Record> = ctx
            .record(&buf[..n.min(ctx.max_message)], &peer)
            .into_iter()
            .collect();
        // Whatever else is already waiting goes in the same batch.
        while records.len() < 2048 {
            match sock.try_recv_from(&mut buf) {
                Ok((n, p)) => {
                    records.extend(ctx.record(&buf[..n.min(ctx.max_message)], &p.ip().to_string()))
                }
                Err(_) => break,
            }
        }
        ctx.submit(records).await;
    }
}

/// Reads one framed message; None at the end of the stream.
async fn read_message<R: AsyncRead + Unpin>(
    r: &mut BufReader<R>,
    max: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let first = loop {
        let buf = r.fill_buf().await?;
        match buf.first() {
            None => return Ok(None),
            // Stray separators between messages.
            Some(b'\n' | b'\r' | b' ') => r.consume(1),
            Some(b) => break *b,
        }
    };
    if first.is_ascii_digit() {
        let mut digits = Vec::new();
        r.read_until(b' ', &mut digits).await?;
        let len = std::str::from_utf8(&digits)
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok());
        if let Some(len) = len {
            let mut msg = vec![0u8; len.min(max)];
            r.read_exact(&mut msg).await?;
            if len > max {
                // Skip what is over the limit.
                let mut rest = (&mut *r).take((len - max) as u64);
                tokio::io::copy(&mut rest, &mut tokio::io::sink()).await?;
            }
            return Ok(Some(msg));
        }
        // Not a length after all: a message starting with a digit, newline-framed.
        let mut rest = Vec::new();
        r.read_until(b'\n', &mut rest).await?;
        digits.extend(rest);
        digits.truncate(max);
        return Ok(Some(digits));
    }
    let mut msg = Vec::new();
    (&mut *r)
        .take(max as u64 + 1)
        .read_until(b'\n', &mut msg)
        .await?;
    if msg.len() > max && !msg.ends_with(b"\n") {
        let mut skip = Vec::new();
        r.read_until(b'\n', &mut skip).await?;
        msg.truncate(max);
    }
    Ok(Some(msg))
}

async fn serve_stream<S: AsyncRead + Unpin>(stream: S, peer: String, ctx: Arc<SyslogCtx>) {
    let mut r = BufReader::with_capacity(64 << 10, stream);
    loop {
        let mut records = Vec::new();
        let msg = match read_message(&mut r, ctx.max_message).await {
            Ok(Some(m)) => m,
            _ => return,
        };
        records.extend(ctx.record(&msg, &peer));
        // Batch what is already buffered.
        while records.len() < 2048 && !r.buffer().is_empty() {
            match read_message(&mut r, ctx.max_message).await {
                Ok(Some(m)) => records.extend(ctx.record(&m, &peer)),
                _ => break,
            }
        }
        if !ctx.submit(records).await {
            return;
        }
    }
}

pub async fn serve_tcp(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    ctx: Arc<SyslogCtx>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
            _ = stop.changed() => return,
        };
        let ctx = ctx.clone();
        let tls = tls.clone();
        let peer = peer.ip().to_string();
        tokio::spawn(async move {
            match tls {
                Some(acc) => {
                    if let Ok(Ok(s)) =
                        tokio::time::timeout(Duration::from_secs(10), acc.accept(tcp)).await
                    {
                        serve_stream(s, peer, ctx).await;
                    }
                }
                None => serve_stream(tcp, peer, ctx).await,
            }
        });
    }
}
