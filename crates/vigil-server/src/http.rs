//! HTTP: the kube-apiserver audit webhook backend (TLS, mTLS or bearer tokens) and the
//! operations API (`/metrics`, `/healthz`, `/readyz`).
//!
//! The webhook contract (../shared/reference/kubernetes-audit.md §d): kube-apiserver POSTs an
//! `audit.k8s.io/v1` EventList; any 2xx is success, anything else is retried (5 attempts with
//! backoff, then the batch is dropped). So: 200 only once every event of the batch is durable;
//! 429 (queue full) or 503 (store unavailable, shutting down) when we cannot take it now, so
//! that it comes back; 413 for oversize batches (and events: the rest of the batch is stored
//! first); a malformed event is rejected alone, named in the response body, and counted.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{json, value::RawValue, Value};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio_rustls::TlsAcceptor;
use vigil_store::prepare;

use crate::config::WebhookSource;
pub use crate::tokens::load_tokens;
use crate::tokens::Tokens;
use crate::writer::{Refused, Shared, Submission, WriterMsg};

pub struct WebhookCtx {
    pub name: Arc<str>,
    pub cfg: WebhookSource,
    /// Swapped whole on SIGHUP; a request checks against one set.
    pub tokens: Arc<Tokens>,
    pub shared: Arc<Shared>,
    pub writer: Sender<WriterMsg>,
    pub inflight: Arc<AtomicUsize>,
}

type Resp = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string() + "\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        r.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from_static("1"),
        );
    }
    r
}

fn error(status: StatusCode, message: &str) -> Resp {
    reply(status, json!({ "error": message }))
}

/// Reads a body of at most `max` bytes. A longer one is read on (and thrown away, up to a
/// bound) so that the client, still sending, gets to see the 413: `Err(Some(bytes seen))`.
async fn read_body(mut body: Incoming, max: usize) -> Result<Bytes, Option<usize>> {
    const DRAIN: usize = 64 << 20;
    let mut buf = Vec::new();
    let mut seen = 0usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(f))) => f,
            Ok(None) => break,
            Ok(Some(Err(_))) | Err(_) => return Err((seen > max).then_some(seen)),
        };
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen <= max {
                buf.extend_from_slice(&data);
            } else {
                buf = Vec::new();
                if seen > DRAIN {
                    break;
                }
            }
        }
    }
    if seen > max {
        return Err(Some(seen));
    }
    Ok(Bytes::from(buf))
}

#[derive(Deserialize)]
struct EventListIn<'a> {
    kind: Option<String>,
    #[serde(borrow)]
    items: Option<Vec<&'a RawValue>>,
}

async fn webhook(req: Request<Incoming>, ctx: Arc<WebhookCtx>, client_cert: bool) -> Resp {
    let src: &str = &ctx.name;
    let m = &ctx.shared.metrics;
    if req.uri().path() != ctx.cfg.path {
        return error(StatusCode::NOT_FOUND, "not found");
    }
    let authed = (ctx.cfg.tls.client_ca.is_some() && client_cert)
        || req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| ctx.tokens.accepts(t.trim()));
    if !authed {
        return error(
            StatusCode::UNAUTHORIZED,
            "authentication required: a client certificate or a bearer token",
        );
    }
    if req.method() != Method::POST {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST an audit.k8s.io/v1 EventList",
        );
    }
    if ctx.shared.shutting_down.load(Ordering::Relaxed) {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down; retry later",
        );
    }
    let max = ctx.cfg.max_batch_bytes;
    let body = match read_body(req.into_body(), max).await {
        Ok(b) => b,
        Err(Some(n)) => {
            m.inc(
                "vigil_oversize_total",
                &[("source", src), ("kind", "batch")],
            );
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("batch of {n}+ bytes is over max_batch_bytes ({max})"),
            );
        }
        Err(None) => return error(StatusCode::BAD_REQUEST, "reading the body failed"),
    };
    m.add(
        "vigil_bytes_received_total",
        &[("source", src)],
        body.len() as f64,
    );
    let received = prepare::now_micros();
    let text = match std::str::from_utf8(&body) {
        Ok(t) => t,
        Err(e) => {
            m.inc(
                "vigil_events_rejected_total",
                &[("source", src), ("reason", "malformed")],
            );
            return error(StatusCode::BAD_REQUEST, &format!("body is not UTF-8: {e}"));
        }
    };
    let items: Vec<&RawValue> = match serde_json::from_str::<EventListIn>(text) {
        Ok(EventListIn {
            items: Some(items), ..
        }) => items,
        Ok(EventListIn { kind: Some(k), .. }) if k == "Event" => {
            match serde_json::from_str::<&RawValue>(text) {
                Ok(r) => vec![r],
                Err(e) => {
                    return error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}"));
                }
            }
        }
        Ok(_) => {
            m.inc(
                "vigil_events_rejected_total",
                &[("source", src), ("reason", "malformed")],
            );
            return error(
                StatusCode::BAD_REQUEST,
                "expected an audit.k8s.io/v1 EventList (an object with `items`)",
            );
        }
        Err(e) => {
            m.inc(
                "vigil_events_rejected_total",
                &[("source", src), ("reason", "malformed")],
            );
            return error(
                StatusCode::BAD_REQUEST,
                &format!("invalid EventList JSON: {e}"),
            );
        }
    };
    m.add(
        "vigil_events_received_total",
        &[("source", src)],
        items.len() as f64,
    );
    let mut records = Vec::with_capacity(items.len());
    let mut rejected = Vec::new();
    let mut oversize = Vec::new();
    for (i, raw) in items.iter().enumerate() {
        let raw = raw.get();
        if raw.len() > ctx.cfg.max_event_bytes {
            m.inc(
                "vigil_oversize_total",
                &[("source", src), ("kind", "event")],
            );
            m.inc(
                "vigil_events_rejected_total",
                &[("source", src), ("reason", "oversize")],
            );
            oversize.push(json!({"index": i, "error": format!(
                "event of {} bytes is over max_event_bytes ({})", raw.len(), ctx.cfg.max_event_bytes)}));
            continue;
        }
        match prepare::k8s_event(raw, src, received) {
            Ok(r)
                if r.doc()
                    .get("auditID")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty()) =>
            {
                records.push(r)
            }
            Ok(_) => {
                m.inc(
                    "vigil_events_rejected_total",
                    &[("source", src), ("reason", "malformed")],
                );
                rejected.push(json!({"index": i, "error": "not an audit event: no auditID"}));
            }
            Err(e) => {
                m.inc(
                    "vigil_events_rejected_total",
                    &[("source", src), ("reason", "malformed")],
                );
                rejected.push(json!({"index": i, "error": format!("malformed event: {e}")}));
            }
        }
    }
    if !rejected.is_empty() {
        eprintln!(
            "vigil serve: {src}: rejected {} malformed event(s) of a batch of {}: {}",
            rejected.len(),
            items.len(),
            rejected[0]["error"].as_str().unwrap_or("")
        );
    }
    let mut committed = crate::writer::Committed::default();
    if !records.is_empty() {
        let n = records.len();
        if !ctx.shared.admit(n) {
            m.inc(
                "vigil_refused_total",
                &[("source", src), ("reason", "queue_full")],
            );
            return error(StatusCode::TOO_MANY_REQUESTS, "queue full; retry later");
        }
        ctx.shared.pending.fetch_add(n, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let sent = ctx.writer.send(WriterMsg::Submit(Submission {
            source: ctx.name.clone(),
            records,
            offsets: None,
            alerts: None,
            reply: Some(tx),
            received_us: received,
        }));
        if sent.is_err() {
            ctx.shared.pending.fetch_sub(n, Ordering::Relaxed);
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting down; retry later",
            );
        }
        match rx.await {
            Ok(Ok(c)) => committed = c,
            Ok(Err(Refused::DiskFull(e))) => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("cannot store now: {e}"),
                )
            }
            Ok(Err(Refused::Unavailable(e))) => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("cannot store now: {e}"),
                )
            }
            Err(_) => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "shutting down; retry later",
                )
            }
        }
        ctx.shared.seen(src);
    }
    let body = json!({
        "stored": committed.stored,
        "duplicates": committed.duplicates,
        "rejected": rejected,
        "oversize": oversize,
    });
    if oversize.is_empty() {
        reply(StatusCode::OK, body)
    } else {
        reply(StatusCode::PAYLOAD_TOO_LARGE, body)
    }
}

/// Serves the webhook until `stop` turns true; then lets in-flight requests finish.
pub async fn serve_webhook(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ctx: Arc<WebhookCtx>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (tcp, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("vigil serve: {}: accept: {e}", ctx.name);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let ctx = ctx.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    _ => return,
                };
            let client_cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .is_some_and(|c| !c.is_empty());
            let svc_ctx = ctx.clone();
            let svc = service_fn(move |req: Request<Incoming>| {
                let ctx = svc_ctx.clone();
                async move {
                    ctx.inflight.fetch_add(1, Ordering::SeqCst);
                    let started = Instant::now();
                    let resp = webhook(req, ctx.clone(), client_cert).await;
                    let code = resp.status().as_u16().to_string();
                    ctx.shared.metrics.inc(
                        "vigil_requests_total",
                        &[("source", &ctx.name), ("code", &code)],
                    );
                    ctx.shared.metrics.observe(
                        "vigil_webhook_request_seconds",
                        &[("source", &ctx.name)],
                        started.elapsed().as_secs_f64(),
                    );
                    ctx.inflight.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, Infallible>(resp)
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(tls), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}

pub struct ApiCtx {
    pub shared: Arc<Shared>,
}

async fn api(req: Request<Incoming>, ctx: Arc<ApiCtx>) -> Resp {
    let text = |status: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        r
    };
    match req.uri().path() {
        "/metrics" => text(StatusCode::OK, ctx.shared.metrics.render()),
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => {
            let s = &ctx.shared;
            if s.shutting_down.load(Ordering::Relaxed) {
                text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".into())
            } else if !s.store_ok.load(Ordering::Relaxed) {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store unavailable\n".into(),
                )
            } else if !s.admit(1) {
                text(StatusCode::SERVICE_UNAVAILABLE, "queue full\n".into())
            } else {
                text(StatusCode::OK, "ready\n".into())
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: /metrics, /healthz, /readyz\n".into(),
        ),
    }
}

pub async fn serve_api(listener: TcpListener, ctx: Arc<ApiCtx>, mut stop: watch::Receiver<bool>) {
    loop {
        let (tcp, _): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            r = listener.accept() => match r { Ok(c) => c, Err(_) => continue },
            _ = stop.changed() => break,
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(api(req, ctx).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}
