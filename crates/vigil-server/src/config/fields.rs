//! Helpers of validation: the lines of YAML keys (`Lines`), paths resolved against the
//! configuration's directory, the known source formats, and address and transport parsing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use vigil_model::yaml::Node;

use super::Transport;

/// Positions of the YAML tree, looked up by path.
pub(super) struct Lines<'a> {
    pub(super) root: Option<&'a Node>,
}

impl Lines<'_> {
    fn item(&self, list: &str, i: usize) -> Option<&Node> {
        self.root?.get(list)?.as_seq()?.get(i)
    }
    /// Line of `list[i].key` (the key's own line), else of the item.
    pub(super) fn key(&self, list: &str, i: usize, key: &str) -> usize {
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
    pub(super) fn top(&self, key: &str) -> usize {
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

pub(super) fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() || base == Path::new(".") {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

pub(super) fn resolve_str(base: &Path, p: &str) -> String {
    resolve(base, Path::new(p)).to_string_lossy().into_owned()
}

pub(super) const FORMATS: &[&str] = &[
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

pub(super) fn parse_transport_url(s: &str) -> Result<(Transport, String), String> {
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
