//! `vigil serve` configuration: YAML with `${ENV}` expansion, decoded with serde_norway (which
//! gives the line of type errors and unknown keys) and then checked key by key with the
//! positions of `vigil_model::yaml`, so that every error names its line.
//!
//! The key names are a contract (issue 6): extend, never rename.

mod env;
mod fields;
mod raw;
mod validate;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use env::expand_env;
pub use fields::parse_addr;
pub use raw::{
    ApiConfig, DetectionConfig, Dur, LimitsConfig, RawSink, RawSource, SuppressConfig, TlsConfig,
};
pub use validate::{load, parse};

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
