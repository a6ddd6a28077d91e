//! Validation: decodes the expanded text and checks it key by key, every error with its line,
//! into the `Config` that `vigil serve` runs.

use std::path::Path;
use std::time::Duration;

use vigil_model::yaml::parse_document;

use super::fields::{parse_transport_url, resolve, resolve_str, Lines, FORMATS};
use super::raw::RawConfig;
use super::{
    expand_env, parse_addr, Config, ConfigError, FileSource, Sink, SinkKind, Source, SourceKind,
    SyslogSource, TlsConfig, Transport, WebhookSource,
};

/// Loads and checks a configuration file.
pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError {
            line: 0,
            message: format!("cannot read {}: {e}", path.display()),
        }]
    })?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    parse(&text, base, &|k| std::env::var(k).ok())
}

/// Parses configuration text; relative paths are taken from `base`.
pub fn parse(
    text: &str,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<ConfigError>> {
    let text = expand_env(text, env)?;
    let tree = parse_document(&text).map_err(|e| {
        vec![ConfigError {
            line: e.line,
            message: e.message.clone(),
        }]
    })?;
    let raw: RawConfig = serde_norway::from_str(&text).map_err(|e| {
        let line = e.location().map_or(0, |l| l.line());
        vec![ConfigError {
            line,
            message: e
                .to_string()
                .split(" at line ")
                .next()
                .unwrap_or("")
                .to_string(),
        }]
    })?;
    let lines = Lines {
        root: tree.as_ref(),
    };
    let mut errors = Vec::new();
    let mut err = |line: usize, message: String| errors.push(ConfigError { line, message });

    let mut sources = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, s) in raw.sources.iter().enumerate() {
        let at = |key: &str| lines.key("sources", i, key);
        let name = s
            .name
            .clone()
            .unwrap_or_else(|| format!("{}-{}", s.kind, i));
        if !names.insert(name.clone()) {
            err(
                at("name"),
                format!("sources[{i}]: duplicate source name {name:?}"),
            );
        }
        let allowed: &[&str] = match s.kind.as_str() {
            "k8s_audit_webhook" => &[
                "listen",
                "path",
                "tls",
                "bearer_tokens_file",
                "max_event_bytes",
                "max_batch_bytes",
            ],
            "file" => &[
                "paths",
                "format",
                "poll_interval",
                "fingerprint_bytes",
                "start_at",
            ],
            "syslog" => &["listen", "tls", "format", "max_message_bytes"],
            other => {
                err(
                    at("type"),
                    format!(
                        "sources[{i}]: unknown source type {other:?} (expected k8s_audit_webhook, file or syslog)"
                    ),
                );
                continue;
            }
        };
        let present: Vec<(&str, bool)> = vec![
            ("listen", s.listen.is_some()),
            ("path", s.path.is_some()),
            ("tls", s.tls.is_some()),
            ("bearer_tokens_file", s.bearer_tokens_file.is_some()),
            ("max_event_bytes", s.max_event_bytes.is_some()),
            ("max_batch_bytes", s.max_batch_bytes.is_some()),
            ("paths", s.paths.is_some()),
            ("format", s.format.is_some()),
            ("poll_interval", s.poll_interval.is_some()),
            ("fingerprint_bytes", s.fingerprint_bytes.is_some()),
            ("start_at", s.start_at.is_some()),
            ("max_message_bytes", s.max_message_bytes.is_some()),
        ];
        for (key, set) in present {
            if set && !allowed.contains(&key) {
                err(
                    at(key),
                    format!(
                        "sources[{i}]: `{key}` does not apply to a {} source",
                        s.kind
                    ),
                );
            }
        }
        let tls = s.tls.clone().map(|t| TlsConfig {
            cert: resolve(base, &t.cert),
            key: resolve(base, &t.key),
            client_ca: t.client_ca.map(|c| resolve(base, &c)),
        });
        let kind = match s.kind.as_str() {
            "k8s_audit_webhook" => {
                let listen = match s.listen.as_deref().map(parse_addr) {
                    Some(Ok(a)) => Some(a),
                    Some(Err(e)) => {
                        err(at("listen"), format!("sources[{i}].listen: {e}"));
                        None
                    }
                    None => {
                        err(
                            at("type"),
                            format!("sources[{i}]: a k8s_audit_webhook source needs `listen`"),
                        );
                        None
                    }
                };
                let path = s.path.clone().unwrap_or_else(|| "/audit".into());
                if !path.starts_with('/') {
                    err(
                        at("path"),
                        format!("sources[{i}].path: {path:?} must start with /"),
                    );
                }
                if tls.is_none() {
                    err(
                        at("type"),
                        format!("sources[{i}]: a k8s_audit_webhook source needs `tls` (cert and key; client_ca for mTLS)"),
                    );
                }
                let tokens = s.bearer_tokens_file.as_ref().map(|p| resolve(base, p));
                if tls.as_ref().is_some_and(|t| t.client_ca.is_none()) && tokens.is_none() {
                    err(
                        at("tls"),
                        format!("sources[{i}]: clients must authenticate: set tls.client_ca (mTLS) or bearer_tokens_file"),
                    );
                }
                let max_event = s.max_event_bytes.unwrap_or(1 << 20);
                let max_batch = s.max_batch_bytes.unwrap_or(10 << 20);
                if max_event == 0 || max_batch == 0 {
                    err(
                        at("max_event_bytes"),
                        format!("sources[{i}]: limits must be > 0"),
                    );
                }
                if max_event > max_batch {
                    err(
                        at("max_event_bytes"),
                        format!("sources[{i}]: max_event_bytes ({max_event}) is larger than max_batch_bytes ({max_batch})"),
                    );
                }
                match (listen, tls.clone()) {
                    (Some(listen), Some(tls)) => Some(SourceKind::Webhook(WebhookSource {
                        listen,
                        path,
                        tls,
                        bearer_tokens_file: tokens,
                        max_event_bytes: max_event,
                        max_batch_bytes: max_batch,
                    })),
                    _ => None,
                }
            }
            "file" => {
                let paths = s.paths.clone().unwrap_or_default();
                if paths.is_empty() {
                    err(
                        at("type"),
                        format!("sources[{i}]: a file source needs `paths` (globs)"),
                    );
                }
                for p in &paths {
                    if let Err(e) = glob::Pattern::new(p) {
                        err(at("paths"), format!("sources[{i}].paths: {p:?}: {e}"));
                    }
                }
                let format = match s.format.as_deref() {
                    None | Some("auto") => None,
                    Some(f) if FORMATS.contains(&f) => Some(f.to_string()),
                    Some(f) => {
                        err(
                            at("format"),
                            format!(
                                "sources[{i}].format: unknown format {f:?} (expected auto, {})",
                                FORMATS.join(", ")
                            ),
                        );
                        None
                    }
                };
                let start_at_end = match s.start_at.as_deref() {
                    None | Some("beginning") => false,
                    Some("end") => true,
                    Some(o) => {
                        err(
                            at("start_at"),
                            format!("sources[{i}].start_at: {o:?} (expected beginning or end)"),
                        );
                        false
                    }
                };
                Some(SourceKind::File(FileSource {
                    paths: paths.iter().map(|p| resolve_str(base, p)).collect(),
                    format,
                    poll_interval: s.poll_interval.map_or(Duration::from_millis(250), |d| d.0),
                    fingerprint_bytes: s.fingerprint_bytes.unwrap_or(1024).clamp(16, 1 << 20),
                    start_at_end,
                }))
            }
            _ => {
                let parsed = match s.listen.as_deref().map(parse_transport_url) {
                    Some(Ok((t, addr))) => match parse_addr(&addr) {
                        Ok(a) => Some((t, a)),
                        Err(e) => {
                            err(at("listen"), format!("sources[{i}].listen: {e}"));
                            None
                        }
                    },
                    Some(Err(e)) => {
                        err(at("listen"), format!("sources[{i}].listen: {e}"));
                        None
                    }
                    None => {
                        err(at("type"), format!("sources[{i}]: a syslog source needs `listen` (udp://, tcp:// or tls://)"));
                        None
                    }
                };
                if let Some((t, _)) = parsed {
                    if t == Transport::Tls && tls.is_none() {
                        err(
                            at("listen"),
                            format!("sources[{i}]: tls:// needs `tls` (cert and key)"),
                        );
                    }
                    if t != Transport::Tls && tls.is_some() {
                        err(
                            at("tls"),
                            format!("sources[{i}]: `tls` is only used with tls://"),
                        );
                    }
                }
                let format = s.format.clone().unwrap_or_else(|| "linux.auth".into());
                if format != "linux.auth" {
                    err(at("format"), format!("sources[{i}].format: syslog messages are read as linux.auth (RFC 3164 and 5424), not {format:?}"));
                }
                parsed.map(|(transport, listen)| {
                    SourceKind::Syslog(SyslogSource {
                        transport,
                        listen,
                        tls: tls.clone(),
                        format,
                        max_message_bytes: s.max_message_bytes.unwrap_or(64 << 10),
                    })
                })
            }
        };
        if let Some(kind) = kind {
            sources.push(Source {
                name,
                kind,
                silent_after: s.silent_after.map(|d| d.0),
            });
        }
    }

    let mut sinks = Vec::new();
    let mut sink_names = std::collections::HashSet::new();
    for (i, s) in raw.sinks.iter().enumerate() {
        let at = |key: &str| lines.key("sinks", i, key);
        let name = s
            .name
            .clone()
            .unwrap_or_else(|| format!("{}-{}", s.kind, i));
        if !sink_names.insert(name.clone())
            || name.contains(['/', '\\', '\0'])
            || name.starts_with('.')
        {
            err(
                at("name"),
                format!("sinks[{i}]: invalid or duplicate sink name {name:?}"),
            );
        }
        let min_level = match s.min_level.as_deref() {
            None => 0,
            Some(l) => match vigil_model::alert::level_rank(l) {
                0 => {
                    err(
                        at("min_level"),
                        format!("sinks[{i}].min_level: {l:?} (expected informational, low, medium, high or critical)"),
                    );
                    0
                }
                r => r,
            },
        };
        let used: &[&str] = match s.kind.as_str() {
            "file" => &["path"],
            "stdout" => &[],
            "webhook" => &["url", "format", "ca", "headers"],
            "syslog" => &["url"],
            other => {
                err(
                    at("type"),
                    format!("sinks[{i}]: unknown sink type {other:?} (expected file, stdout, webhook or syslog)"),
                );
                continue;
            }
        };
        for (key, set) in [
            ("path", s.path.is_some()),
            ("url", s.url.is_some()),
            ("format", s.format.is_some()),
            ("ca", s.ca.is_some()),
            ("headers", s.headers.is_some()),
        ] {
            if set && !used.contains(&key) {
                err(
                    at(key),
                    format!("sinks[{i}]: `{key}` does not apply to a {} sink", s.kind),
                );
            }
        }
        let kind = match s.kind.as_str() {
            "file" => match &s.path {
                Some(p) => Some(SinkKind::File {
                    path: resolve(base, p),
                }),
                None => {
                    err(at("type"), format!("sinks[{i}]: a file sink needs `path`"));
                    None
                }
            },
            "stdout" => Some(SinkKind::Stdout),
            "webhook" => {
                let slack = match s.format.as_deref() {
                    None | Some("json") => false,
                    Some("slack") => true,
                    Some(f) => {
                        err(
                            at("format"),
                            format!("sinks[{i}].format: {f:?} (expected json or slack)"),
                        );
                        false
                    }
                };
                match s.url.as_deref() {
                    Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                        Some(SinkKind::Webhook {
                            url: u.to_string(),
                            slack,
                            ca: s.ca.as_ref().map(|c| resolve(base, c)),
                            headers: s.headers.clone().unwrap_or_default().into_iter().collect(),
                        })
                    }
                    Some(u) => {
                        err(
                            at("url"),
                            format!("sinks[{i}].url: {u:?} must start with http:// or https://"),
                        );
                        None
                    }
                    None => {
                        err(
                            at("type"),
                            format!("sinks[{i}]: a webhook sink needs `url`"),
                        );
                        None
                    }
                }
            }
            _ => match s.url.as_deref().map(parse_transport_url) {
                Some(Ok((Transport::Tls, _))) => {
                    err(
                        at("url"),
                        format!("sinks[{i}].url: the syslog sink speaks udp:// or tcp://"),
                    );
                    None
                }
                Some(Ok((t, addr))) => Some(SinkKind::Syslog { transport: t, addr }),
                Some(Err(e)) => {
                    err(at("url"), format!("sinks[{i}].url: {e}"));
                    None
                }
                None => {
                    err(at("type"), format!("sinks[{i}]: a syslog sink needs `url` (udp://HOST:PORT or tcp://HOST:PORT)"));
                    None
                }
            },
        };
        if let Some(kind) = kind {
            sinks.push(Sink {
                name,
                kind,
                min_level,
                timeout: s.timeout.map_or(Duration::from_secs(10), |d| d.0),
                max_backoff: s.max_backoff.map_or(Duration::from_secs(60), |d| d.0),
            });
        }
    }
    for (i, s) in raw.suppress.iter().enumerate() {
        if s.window.0.is_zero() {
            err(
                lines.key("suppress", i, "window"),
                format!("suppress[{i}].window must be > 0"),
            );
        }
    }
    let api = match &raw.api {
        Some(a) => match parse_addr(&a.listen) {
            Ok(addr) => Some(addr),
            Err(e) => {
                err(lines.top("api") + 1, format!("api.listen: {e}"));
                None
            }
        },
        None => None,
    };
    if raw.limits.queue_events == 0 || raw.limits.commit_max_events == 0 {
        err(lines.top("limits"), "limits: values must be > 0".into());
    }
    if raw.sources.is_empty() {
        err(
            lines.top("sources"),
            "no sources: nothing to collect".into(),
        );
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.line);
        return Err(errors);
    }
    Ok(Config {
        data_dir: resolve(base, &raw.data_dir),
        sources,
        rules: raw.rules.iter().map(|p| resolve(base, p)).collect(),
        builtin_rules: raw.builtin_rules,
        placeholders: raw.placeholders.as_ref().map(|p| resolve(base, p)),
        detection: raw.detection,
        sinks,
        suppress: raw.suppress,
        api,
        limits: raw.limits,
    })
}
