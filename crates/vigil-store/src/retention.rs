//! Retention per source: `DIR/retention` holds lines `DATASET: 400d` (and `default: 400d`;
//! `retention: 400d` is the same as `default`). Partitions whose whole day is older than
//! their dataset's retention are removed, and the removal is signed and logged.

use std::collections::BTreeMap;
use std::path::Path;

use crate::timeparse::{parse_span, Span};
use crate::StoreError;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    pub default: Option<Span>,
    pub per_dataset: BTreeMap<String, Span>,
}

pub const FILE: &str = "retention";

impl Retention {
    pub fn parse(text: &str) -> Result<Retention, String> {
        let mut r = Retention::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (k, v) = line
                .split_once(':')
                .ok_or_else(|| format!("line {}: expected `DATASET: 400d`", i + 1))?;
            let span = parse_span(v).ok_or_else(|| {
                format!("line {}: {:?} is not a duration like 400d", i + 1, v.trim())
            })?;
            match k.trim() {
                "default" | "retention" => r.default = Some(span),
                ds => {
                    r.per_dataset.insert(ds.to_string(), span);
                }
            }
        }
        Ok(r)
    }

    pub fn load(dir: &Path) -> Result<Retention, StoreError> {
        let path = dir.join(FILE);
        match std::fs::read_to_string(&path) {
            Ok(t) => Retention::parse(&t)
                .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Retention::default()),
            Err(e) => Err(StoreError::io(&path, e)),
        }
    }

    pub fn save(&self, dir: &Path) -> Result<(), StoreError> {
        let path = dir.join(FILE);
        std::fs::write(&path, self.to_text()).map_err(|e| StoreError::io(&path, e))
    }

    pub fn to_text(&self) -> String {
        let mut s =
            String::from("# Retention per dataset (`vigil ingest --retention [DATASET=]400d`).\n");
        if let Some(d) = &self.default {
            s.push_str(&format!("default: {}\n", d.text));
        }
        for (k, v) in &self.per_dataset {
            s.push_str(&format!("{k}: {}\n", v.text));
        }
        s
    }

    /// `400d` (the default) or `k8s.audit=30d`.
    pub fn set(&mut self, arg: &str) -> Result<(), String> {
        let (ds, span) = match arg.split_once('=') {
            Some((ds, s)) => (Some(ds.trim()), s),
            None => (None, arg),
        };
        let span = parse_span(span)
            .ok_or_else(|| format!("--retention {arg}: expected [DATASET=]400d"))?;
        match ds {
            Some(ds) if ds != "default" => {
                self.per_dataset.insert(ds.to_string(), span);
            }
            _ => self.default = Some(span),
        }
        Ok(())
    }

    pub fn for_dataset(&self, ds: &str) -> Option<&Span> {
        self.per_dataset.get(ds).or(self.default.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        let r = Retention::parse("retention: 400d\nk8s.audit: 30d # short\n\n").unwrap();
        assert_eq!(r.default.as_ref().unwrap().text, "400d");
        assert_eq!(r.for_dataset("k8s.audit").unwrap().text, "30d");
        assert_eq!(r.for_dataset("linux.auth").unwrap().text, "400d");
        assert_eq!(Retention::parse(&r.to_text()).unwrap(), r);
        assert!(Retention::parse("k8s.audit: soon").is_err());
        let mut r = Retention::default();
        r.set("linux.auth=7d").unwrap();
        assert!(r.for_dataset("k8s.audit").is_none());
        assert!(r.set("x=").is_err());
    }
}
