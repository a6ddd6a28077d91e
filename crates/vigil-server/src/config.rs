//! `vigil serve` configuration: YAML with `${ENV}` expansion, decoded with serde_norway (which
//! gives the line of type errors and unknown keys) and then checked key by key with the
//! positions of `vigil_model::yaml`, so that every error names its line.
//!
//! The key names are a contract (issue 6): extend, never rename.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use vigil_model::yaml::{parse_document, Node};

/// One configuration error and the line it is on (0 when it is about the whole file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: {}", self.line, self.message)
        } else {
            f.write_str(&self.message)
        }
    }
}

/// A duration written `250ms`, `10s`, `5m`, `2h`, `1d` (or a number of seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Dur {
    pub fn parse(s: &str) -> Result<Dur, String> {
        let s = s.trim();
        let split = s
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: f64 = num.parse().map_err(|_| {
            format!("invalid duration {s:?} (expected e.g. 250ms, 10s, 5m, 1h, 1d)")
        })?;
        let secs = match unit.trim() {
            "ms" => n / 1000.0,
            "" | "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            "d" => n * 86400.0,
            u => {
                return Err(format!(
                    "invalid duration unit {u:?} in {s:?} (expected ms, s, m, h or d)"
                ))
            }
        };
        if !secs.is_finite() || secs < 0.0 {
            return Err(format!("invalid duration {s:?}"));
        }
        Ok(Dur(Duration::from_secs_f64(secs)))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(f64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) if n >= 0.0 && n.is_finite() => Ok(Dur(Duration::from_secs_f64(n))),
            Raw::N(n) => Err(serde::de::Error::custom(format!("invalid duration {n}"))),
            Raw::S(s) => Dur::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by this CA (mTLS).
    pub client_ca: Option<PathBuf>,
}

/// A source entry as written; which keys apply depends on `type` (checked after decoding).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: Option<String>,
    pub listen: Option<String>,
    pub path: Option<String>,
    pub tls: Option<TlsConfig>,
    pub bearer_tokens_file: Option<PathBuf>,
    pub max_event_bytes: Option<usize>,
    pub max_batch_bytes: Option<usize>,
    pub paths: Option<Vec<String>>,
    pub format: Option<String>,
    pub poll_interval: Option<Dur>,
    pub fingerprint_bytes: Option<usize>,
    pub start_at: Option<String>,
    pub max_message_bytes: Option<usize>,
    /// Raise an alert when nothing arrived for this long.
    pub silent_after: Option<Dur>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSink {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: Option<String>,
    pub path: Option<PathBuf>,
    pub url: Option<String>,
    pub format: Option<String>,
    pub min_level: Option<String>,
    /// PEM CA bundle for an https webhook (default: the system's).
    pub ca: Option<PathBuf>,
    pub timeout: Option<Dur>,
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    /// Longest wait between delivery attempts while the sink is down.
    pub max_backoff: Option<Dur>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuppressConfig {
    pub rule: String,
    #[serde(default)]
    pub group_by: Vec<String>,
    pub window: Dur,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How long to wait for out-of-order events before evaluating in event-time order.
    #[serde(default = "default_lateness")]
    pub allowed_lateness: Dur,
    /// How often the correlation state is checkpointed.
    #[serde(default = "default_checkpoint")]
    pub checkpoint_interval: Dur,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        DetectionConfig {
            enabled: true,
            allowed_lateness: default_lateness(),
            checkpoint_interval: default_checkpoint(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    pub listen: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Events accepted but not yet stored (or not yet through detection) before sources are
    /// told to come back later (429).
    #[serde(default = "default_queue")]
    pub queue_events: usize,
    /// Events per group commit (one fsync).
    #[serde(default = "default_commit")]
    pub commit_max_events: usize,
    /// How long SIGTERM waits for in-flight requests and sink deliveries.
    #[serde(default = "default_drain")]
    pub drain_timeout: Dur,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            queue_events: default_queue(),
            commit_max_events: default_commit(),
            drain_timeout: default_drain(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_lateness() -> Dur {
    Dur(Duration::from_secs(2))
}
fn default_checkpoint() -> Dur {
    Dur(Duration::from_secs(10))
}
fn default_queue() -> usize {
    50_000
}
fn default_commit() -> usize {
    20_000
}
fn default_drain() -> Dur {
    Dur(Duration::from_secs(10))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: PathBuf,
    #[serde(default)]
    sources: Vec<RawSource>,
    #[serde(default)]
    rules: Vec<PathBuf>,
    #[serde(default = "yes")]
    builtin_rules: bool,
    placeholders: Option<PathBuf>,
    #[serde(default)]
    detection: DetectionConfig,
    #[serde(default)]
    sinks: Vec<RawSink>,
    #[serde(default)]
    suppress: Vec<SuppressConfig>,
    api: Option<ApiConfig>,
    #[serde(default)]
    limits: LimitsConfig,
}

/// Where a syslog source listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

#[derive(Debug, Clone)]
pub struct WebhookSource {
    pub listen: SocketAddr,
    pub path: String,
    pub tls: TlsConfig,
    pub bearer_tokens_file: Option<PathBuf>,
    pub max_event_bytes: usize,
    pub max_batch_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct FileSource {
    pub paths: Vec<String>,
    /// `None`: detected per file.
    pub format: Option<String>,
    pub poll_interval: Duration,
    pub fingerprint_bytes: usize,
    pub start_at_end: bool,
}

#[derive(Debug, Clone)]
pub struct SyslogSource {
    pub transport: Transport,
    pub listen: SocketAddr,
    pub tls: Option<TlsConfig>,
    pub format: String,
    pub max_message_bytes: usize,
}

#[derive(Debug, Clone)]
pub enum SourceKind {
    Webhook(WebhookSource),
    File(FileSource),
    Syslog(SyslogSource),
}

#[derive(Debug, Clone)]
pub struct Source {
    /// Unique; used in metrics labels and checkpoints.
    pub name: String,
    pub kind: SourceKind,
    pub silent_after: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SinkKind {
    File {
        path: PathBuf,
    },
    Stdout,
    Webhook {
        url: String,
        slack: bool,
        ca: Option<PathBuf>,
        headers: Vec<(String, String)>,
    },
    Syslog {
        transport: Transport,
        addr: String,
    },
}

#[derive(Debug, Clone)]
pub struct Sink {
    pub name: String,
    pub kind: SinkKind,
    /// Rank of `vigil_model::alert::level_rank`; 0 lets everything through.
    pub min_level: u8,
    pub timeout: Duration,
    pub max_backoff: Duration,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub sources: Vec<Source>,
    pub rules: Vec<PathBuf>,
    pub builtin_rules: bool,
    pub placeholders: Option<PathBuf>,
    pub detection: DetectionConfig,
    pub sinks: Vec<Sink>,
    pub suppress: Vec<SuppressConfig>,
    pub api: Option<SocketAddr>,
    pub limits: LimitsConfig,
}

/// Replaces `${NAME}` by the variable's value (`$${` is a literal `${`). An unset variable is
/// an error naming its line.
pub fn expand_env(
    text: &str,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<ConfigError>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        // Comment lines are left alone.
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("${") {
            if at > 0 && rest.as_bytes()[at - 1] == b'$' {
                out.push_str(&rest[..at - 1]);
                out.push_str("${");
                rest = &rest[at + 2..];
                continue;
            }
            out.push_str(&rest[..at]);
            let after = &rest[at + 2..];
            let Some(end) = after.find('}') else {
                errors.push(ConfigError {
                    line: i + 1,
                    message: "unterminated ${...}".into(),
                });
                out.push_str(&rest[at..]);
                rest = "";
                break;
            };
            let name = &after[..end];
            let valid =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            match get(name) {
                Some(v) if valid => {
                    if v.contains('\n') {
                        errors.push(ConfigError {
                            line: i + 1,
                            message: format!(
                                "environment variable {name} holds a line break; put such values in a file"
                            ),
                        });
                    }
                    out.push_str(&v);
                }
                _ if !valid => errors.push(ConfigError {
                    line: i + 1,
                    message: format!("invalid variable name {name:?} in ${{...}}"),
                }),
                _ => errors.push(ConfigError {
                    line: i + 1,
                    message: format!("environment variable {name} is not set"),
                }),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Positions of the YAML tree, looked up by path.
struct Lines<'a> {
    root: Option<&'a Node>,
}

impl Lines<'_> {
    fn item(&self, list: &str, i: usize) -> Option<&Node> {
        self.root?.get(list)?.as_seq()?.get(i)
    }
    /// Line of `list[i].key` (the key's own line), else of the item.
    fn key(&self, list: &str, i: usize, key: &str) -> usize {
        let Some(item) = self.item(list, i) else {
            return 0;
        };
        item.as_map()
            .and_then(|m| {
                m.iter()
                    .find(|(k, _)| k.as_str() == Some(key))
                    .map(|(k, _)| k.line)
            })
            .unwrap_or(item.line)
    }
    fn top(&self, key: &str) -> usize {
        self.root
            .and_then(|r| r.as_map())
            .and_then(|m| {
                m.iter()
                    .find(|(k, _)| k.as_str() == Some(key))
                    .map(|(k, _)| k.line)
            })
            .unwrap_or(0)
    }
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() || base == Path::new(".") {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn resolve_str(base: &Path, p: &str) -> String {
    resolve(base, Path::new(p)).to_string_lossy().into_owned()
}

const FORMATS: &[&str] = &[
    "k8s.audit",
    "linux.auth",
    "auditd",
    "zeek.conn",
    "aws.vpcflow",
];

/// Parses `host:port` (a literal IP address; names are not resolved).
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .map_err(|_| format!("invalid address {s:?} (expected IP:PORT, e.g. 127.0.0.1:8443)"))
}

fn parse_transport_url(s: &str) -> Result<(Transport, String), String> {
    let (scheme, rest) = s.split_once("://").ok_or_else(|| {
        format!("invalid {s:?}: expected udp://IP:PORT, tcp://IP:PORT or tls://IP:PORT")
    })?;
    let t = match scheme {
        "udp" => Transport::Udp,
        "tcp" => Transport::Tcp,
        "tls" => Transport::Tls,
        other => {
            return Err(format!(
                "unknown transport {other:?} in {s:?} (expected udp, tcp or tls)"
            ))
        }
    };
    Ok((t, rest.to_string()))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "TOKENS" => Some("/etc/tokens.txt".into()),
            _ => None,
        }
    }

    const GOOD: &str = r#"data_dir: /var/lib/vigil
sources:
  - type: k8s_audit_webhook
    listen: 0.0.0.0:8443
    path: /audit
    tls: { cert: server.crt, key: server.key, client_ca: ca.crt }
    bearer_tokens_file: ${TOKENS}
    max_event_bytes: 1048576
    max_batch_bytes: 10485760
  - type: file
    paths: ["/var/log/kubernetes/audit/*.log", "/var/log/auth.log"]
    format: auto
  - type: syslog
    listen: udp://0.0.0.0:514
rules: ["/etc/vigil/rules"]
sinks:
  - type: file
    path: /var/lib/vigil/alerts.jsonl
  - type: webhook
    url: https://hooks.example.com/vigil
    min_level: high
api:
  listen: 127.0.0.1:9090
"#;

    #[test]
    fn the_issue_example_loads() {
        let c = parse(GOOD, Path::new("/etc/vigil"), &env).unwrap();
        assert_eq!(c.sources.len(), 3);
        let SourceKind::Webhook(w) = &c.sources[0].kind else {
            panic!()
        };
        assert_eq!(
            w.bearer_tokens_file.as_deref(),
            Some(Path::new("/etc/tokens.txt"))
        );
        assert_eq!(w.tls.cert, Path::new("/etc/vigil/server.crt"));
        assert_eq!(c.sinks[1].min_level, 4);
        assert_eq!(c.api, Some("127.0.0.1:9090".parse().unwrap()));
    }

    #[test]
    fn errors_name_their_line() {
        let bad = GOOD.replace("udp://0.0.0.0:514", "sctp://0.0.0.0:514");
        let e = parse(&bad, Path::new("/"), &env).unwrap_err();
        assert_eq!(e[0].line, 14, "{e:?}");
        let bad = GOOD.replace("min_level: high", "min_level: severe");
        let e = parse(&bad, Path::new("/"), &env).unwrap_err();
        assert_eq!(e[0].line, 21, "{e:?}");
        let bad = GOOD.replace("    format: auto", "    formt: auto");
        let e = parse(&bad, Path::new("/"), &env).unwrap_err();
        assert_eq!(e[0].line, 12, "{e:?}");
        assert!(e[0].message.contains("formt"), "{e:?}");
        let bad = GOOD.replace("${TOKENS}", "${NOPE}");
        let e = parse(&bad, Path::new("/"), &env).unwrap_err();
        assert_eq!(
            (e[0].line, e[0].message.as_str()),
            (7, "environment variable NOPE is not set")
        );
        let bad = GOOD.replace("max_event_bytes: 1048576", "max_event_bytes: lots");
        let e = parse(&bad, Path::new("/"), &env).unwrap_err();
        assert_eq!(e[0].line, 8, "{e:?}");
    }

    #[test]
    fn durations() {
        assert_eq!(Dur::parse("250ms").unwrap().0, Duration::from_millis(250));
        assert_eq!(Dur::parse("5m").unwrap().0, Duration::from_secs(300));
        assert!(Dur::parse("5 fortnights").is_err());
    }
}
