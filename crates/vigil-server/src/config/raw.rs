//! The configuration as written: the serde structs decoded from the YAML (unknown keys refused)
//! and their defaults, before any check.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

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
pub(super) struct RawConfig {
    pub(super) data_dir: PathBuf,
    #[serde(default)]
    pub(super) sources: Vec<RawSource>,
    #[serde(default)]
    pub(super) rules: Vec<PathBuf>,
    #[serde(default = "yes")]
    pub(super) builtin_rules: bool,
    pub(super) placeholders: Option<PathBuf>,
    #[serde(default)]
    pub(super) detection: DetectionConfig,
    #[serde(default)]
    pub(super) sinks: Vec<RawSink>,
    #[serde(default)]
    pub(super) suppress: Vec<SuppressConfig>,
    pub(super) api: Option<ApiConfig>,
    #[serde(default)]
    pub(super) limits: LimitsConfig,
}
