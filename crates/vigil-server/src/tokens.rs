//! The webhook's bearer tokens. SIGHUP reads `bearer_tokens_file` again and swaps the whole
//! set at once: a request looks at one set from start to end, never half of an old file and
//! half of a new one. A file that cannot be read (or holds no token) on reload leaves the set
//! in use as it was, so that a botched edit never locks kube-apiserver out.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::metrics::Metrics;

/// Why a token file was not taken, with the file.
#[derive(Debug)]
pub enum TokenError {
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    Empty {
        path: PathBuf,
    },
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Read { path, source } => write!(f, "{}: {source}", path.display()),
            TokenError::Empty { path } => write!(f, "{}: no tokens in it", path.display()),
        }
    }
}

impl std::error::Error for TokenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TokenError::Read { source, .. } => Some(source),
            TokenError::Empty { .. } => None,
        }
    }
}

/// Bearer tokens, one per line (`#` comments; a CSV line keeps its first field, as in
/// kube-apiserver's token file). May be empty: callers decide whether that is an error.
pub fn load_tokens(path: &Path) -> Result<HashSet<String>, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(',').next().unwrap_or(l).trim().to_string())
        .filter(|t| !t.is_empty())
        .collect())
}

fn load_nonempty(path: &Path) -> Result<HashSet<String>, TokenError> {
    let set = load_tokens(path)?;
    if set.is_empty() {
        return Err(TokenError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(set)
}

/// What a reload changed; counts only, so that it can be logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenChange {
    pub added: usize,
    pub removed: usize,
    pub total: usize,
}

/// One webhook source's tokens and the file they come from.
#[derive(Debug, Default)]
pub struct Tokens {
    file: Option<PathBuf>,
    current: RwLock<Arc<HashSet<String>>>,
}

impl Tokens {
    /// The tokens of `file` (none without one: then only client certificates get in).
    pub fn load(file: Option<&Path>) -> Result<Tokens, TokenError> {
        let set = match file {
            Some(p) => load_nonempty(p)?,
            None => HashSet::new(),
        };
        Ok(Tokens {
            file: file.map(Path::to_path_buf),
            current: RwLock::new(Arc::new(set)),
        })
    }

    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The set in use now; holding it keeps it alive across a reload.
    pub fn snapshot(&self) -> Arc<HashSet<String>> {
        // A poisoned lock still holds a whole set: the swap is a single assignment.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether `presented` is one of the tokens in use, in constant time per token.
    pub fn accepts(&self, presented: &str) -> bool {
        token_ok(&self.snapshot(), presented)
    }

    /// Reads the file again and swaps the set; `Ok(None)` without a file. On an error the
    /// set in use stays.
    pub fn reload(&self) -> Result<Option<TokenChange>, TokenError> {
        let Some(path) = &self.file else {
            return Ok(None);
        };
        let new = load_nonempty(path)?;
        let mut cur = self.current.write().unwrap_or_else(|e| e.into_inner());
        let change = TokenChange {
            added: new.difference(&cur).count(),
            removed: cur.difference(&new).count(),
            total: new.len(),
        };
        *cur = Arc::new(new);
        Ok(Some(change))
    }
}

/// SIGHUP: every webhook's tokens read again, each file on its own (one bad file keeps only
/// its own source on the old set). Logs counts, never a token.
pub(crate) fn reload_all(webhooks: &[(Arc<str>, Arc<Tokens>)], metrics: &Metrics) {
    for (name, tokens) in webhooks {
        let Some(file) = tokens.file() else { continue };
        let result = match tokens.reload() {
            Ok(Some(c)) => {
                eprintln!(
                    "vigil serve: SIGHUP: {name}: bearer tokens reloaded from {}: {} added, {} removed, {} in use",
                    file.display(),
                    c.added,
                    c.removed,
                    c.total
                );
                "ok"
            }
            Ok(None) => continue,
            Err(e) => {
                eprintln!(
                    "vigil serve: SIGHUP: {name}: bearer tokens not reloaded, the old ones stay in use: {e}"
                );
                "error"
            }
        };
        metrics.inc(
            "vigil_token_reloads_total",
            &[("source", name), ("result", result)],
        );
    }
}

/// Constant-time comparison of a presented token with the known ones.
fn token_ok(tokens: &HashSet<String>, presented: &str) -> bool {
    let mut ok = false;
    for t in tokens {
        let (a, b) = (t.as_bytes(), presented.as_bytes());
        let mut diff = (a.len() != b.len()) as u8;
        for i in 0..a.len().min(b.len()) {
            diff |= a[i] ^ b[i];
        }
        ok |= diff == 0;
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_swaps_the_set_and_keeps_it_on_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens.csv");
        std::fs::write(&p, "# comment\nold,kube-apiserver,1\nkept\n").unwrap();
        let t = Tokens::load(Some(&p)).unwrap();
        assert!(t.accepts("old") && t.accepts("kept") && !t.accepts("new"));
        let before = t.snapshot();

        std::fs::write(&p, "new,kube-apiserver,1\nkept\n").unwrap();
        let change = t.reload().unwrap();
        assert_eq!(
            change,
            Some(TokenChange {
                added: 1,
                removed: 1,
                total: 2
            })
        );
        assert!(t.accepts("new") && t.accepts("kept") && !t.accepts("old"));
        // A request that took the set before the swap still sees the old one whole.
        assert!(before.contains("old") && !before.contains("new"));

        std::fs::write(&p, "# all commented out\n").unwrap();
        let e = t.reload().unwrap_err();
        assert!(matches!(e, TokenError::Empty { .. }), "{e}");
        assert!(e.to_string().contains("tokens.csv"), "{e}");
        assert!(t.accepts("new"), "an empty file keeps the tokens in use");

        std::fs::remove_file(&p).unwrap();
        let e = t.reload().unwrap_err();
        assert!(matches!(e, TokenError::Read { .. }), "{e}");
        assert!(e.to_string().contains("tokens.csv"), "{e}");
        assert!(t.accepts("new"), "a missing file keeps the tokens in use");
    }

    #[test]
    fn no_file_no_tokens_and_nothing_to_reload() {
        let t = Tokens::load(None).unwrap();
        assert!(!t.accepts("") && !t.accepts("anything"));
        assert_eq!(t.reload().unwrap(), None);
    }
}
