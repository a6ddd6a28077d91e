//! Rules in, alerts out: loading rule files, running the engine over items, and turning
//! matches into the alert contract (`vigil_model::alert::Alert`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{Map, Value};
use vigil_detect::{
    builtin, AlertDedup, ContributingEvent, CorrelationAlert, CorrelationState, Event, Match,
    RuleError, RuleInfo, RuleSet, RuleSource,
};
use vigil_model::alert::{Alert, AlertRule, EvidenceRef};
use vigil_model::yaml::{parse_documents, Node};

use crate::input::Item;

mod head;
mod sink;
mod table;
#[cfg(test)]
mod tests;

pub use sink::{AlertSink, JsonLines, SingleAlert};
pub use table::alert_line_table;

pub struct RuleOptions {
    pub paths: Vec<PathBuf>,
    pub builtin: bool,
    pub placeholders: Option<PathBuf>,
}

pub struct LoadedRules {
    pub set: RuleSet,
    pub errors: Vec<RuleError>,
    pub sources: Vec<RuleSource>,
}

/// Rule files under `path` (a file, or a directory searched recursively; `tests/` fixture
/// folders and `placeholders.yaml` are not rules).
pub fn rule_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let entries = std::fs::read_dir(path)
        .with_context(|| format!("cannot read rules at {}", path.display()))?;
    let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() {
            if name != "tests" && !name.starts_with('.') {
                out.extend(rule_files(&p)?);
            }
        } else if (name.ends_with(".yml") || name.ends_with(".yaml")) && name != "placeholders.yaml"
        {
            out.push(p);
        }
    }
    Ok(out)
}

/// Loads and compiles rules. Rules that cannot run are returned in `errors` (and the others
/// still run): one bad rule must not blind the rest. Correlations take events in order (no
/// allowed lateness): see [`load_rules_with_lateness`].
pub fn load_rules(opts: &RuleOptions) -> Result<LoadedRules> {
    load_rules_with_lateness(opts, 0)
}

/// Like [`load_rules`], with correlations accepting events up to `lateness_ms` behind the
/// latest event time (their alerts then come that much later, or at [`Detector::finish`]).
pub fn load_rules_with_lateness(opts: &RuleOptions, lateness_ms: i64) -> Result<LoadedRules> {
    let mut sources = if opts.builtin {
        builtin::rules()
    } else {
        Vec::new()
    };
    for path in &opts.paths {
        for file in rule_files(path)? {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read rule file {}", file.display()))?;
            sources.push(RuleSource::new(file.display().to_string(), text));
        }
    }
    let mut cfg = vigil_detect::Config {
        placeholders: builtin::placeholders(),
        ..Default::default()
    };
    cfg.limits.allowed_lateness_ms = lateness_ms;
    if let Some(p) = &opts.placeholders {
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("cannot read placeholders file {}", p.display()))?;
        let extra = builtin::parse_placeholders(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
        cfg.placeholders.extend(extra);
    }
    let (mut set, errors) = RuleSet::compile(&sources, &cfg);
    // Alerts read the event's id and time: kept in the document the rules read (`evaluate`).
    set.keep_fields(&head::KEYS);
    for e in &errors {
        eprintln!("vigil: rule not loaded: {e}");
    }
    Ok(LoadedRules {
        set,
        errors,
        sources,
    })
}

/// Which rules test the `stage` field: they alert per stage; the others once per request.
fn stage_rules(set: &RuleSet, sources: &HashMap<&str, &str>) -> Vec<bool> {
    set.rules()
        .iter()
        .map(|info| {
            let origin = info.origin.as_str();
            let Some(text) = sources.get(origin) else {
                return false;
            };
            let Ok(docs) = parse_documents(text) else {
                return false;
            };
            docs.iter()
                .rfind(|d| d.line <= info.line)
                .and_then(|d| d.root.get("detection"))
                .is_some_and(mentions_stage)
        })
        .collect()
}

fn mentions_stage(node: &Node) -> bool {
    match (node.as_map(), node.as_seq()) {
        (Some(entries), _) => entries.iter().any(|(k, v)| {
            k.as_scalar()
                .is_some_and(|s| s.text == "stage" || s.text.starts_with("stage|"))
                || mentions_stage(v)
        }),
        (_, Some(items)) => items.iter().any(mentions_stage),
        _ => false,
    }
}

/// What the stateless stage found in one event: every rule that matched (those that only feed
/// correlations included) and what alerts and correlations read from the document. Reused from
/// event to event where one thread does both stages ([`Detector::process_to`]), so that its
/// buffers are allocated once.
#[derive(Default)]
pub struct Evaluated {
    matches: Vec<Match>,
    /// The whole document, when the item brought none and a match feeds a correlation or the
    /// caller asked for it (table output shows fields of the event).
    doc: Option<Value>,
    /// The event's id (when it has one: `id_len`) followed by its time: one buffer instead of
    /// two strings per matched event.
    text: String,
    id_len: Option<usize>,
}

impl Evaluated {
    fn set_head(&mut self, id: Option<&str>, time: &str) {
        self.text.clear();
        self.text.push_str(id.unwrap_or_default());
        self.text.push_str(time);
        self.id_len = id.map(str::len);
    }
}

/// The stateless stage of detection, safe to run on any thread: every rule over one item.
/// `keep_doc`: keep the parsed document for the caller whenever a rule matched.
pub fn evaluate(set: &RuleSet, item: &Item, keep_doc: bool) -> Evaluated {
    let mut done = Evaluated::default();
    evaluate_into(set, item, keep_doc, &mut done);
    done
}

/// [`evaluate`] into `done` (what it held before is replaced).
pub fn evaluate_into(set: &RuleSet, item: &Item, keep_doc: bool, done: &mut Evaluated) {
    done.matches.clear();
    done.doc = None;
    done.text.clear();
    done.id_len = None;
    let ev = match (item.raw, item.doc) {
        (Some(raw), Some(doc)) => Event::with_raw(item.dataset, doc, raw),
        (Some(raw), None) => Event::from_raw(item.dataset, raw),
        (None, Some(doc)) => Event::new(item.dataset, doc),
        (None, None) => return,
    };
    let pruned = set.matches_doc(&ev, true, &mut done.matches);
    if done.matches.is_empty() {
        return;
    }
    let feeds = done.matches.iter().any(|m| set.feeds_correlation(m.rule));
    let pruned = pruned.filter(|_| !keep_doc && item.doc.is_none());
    let head = match (item.raw, item.doc, &pruned) {
        (Some(raw), None, None) if !keep_doc && !feeds && !ev.is_parsed() => head::Head::parse(raw),
        _ => None,
    };
    if let Some(doc) = item.doc {
        done.set_head(event_id(item.dataset, doc), event_time(doc));
    } else if let Some(doc) = pruned {
        // The document the rules read keeps the id and the time (see
        // `load_rules_with_lateness`) and, when a match feeds a correlation, what correlations
        // read (see `RuleSet::matches_doc`): no second parse, and not the whole event.
        done.set_head(event_id(item.dataset, &doc), event_time(&doc));
        if feeds {
            done.doc = Some(doc);
        }
    } else if let Some(head) = head {
        // Only the id and the time are needed: no document is built.
        let id = id_key(item.dataset).and_then(|k| head.str(k));
        let time = TIME_KEYS.iter().find_map(|k| head.str(k));
        done.set_head(id, time.unwrap_or_default());
    } else if let Some(doc) = ev.into_doc() {
        done.set_head(event_id(item.dataset, &doc), event_time(&doc));
        if keep_doc || feeds {
            done.doc = Some(doc);
        }
    }
}

pub struct Detector<'r> {
    set: &'r RuleSet,
    state: CorrelationState,
    corr: Vec<CorrelationAlert>,
    seen: AlertDedup,
    per_stage: Vec<bool>,
    /// Per rule: the rule's part of its alerts.
    alert_rules: Vec<AlertRule>,
    /// Whether `emit` is given the event's document (else `None` for single-event alerts
    /// too, and documents are not built just for it).
    docs: bool,
    /// Where correlated events come from: an event's reference is the index of its
    /// (dataset, file) here, shifted left by [`LINE_BITS`], plus its line.
    origins: Vec<(String, String)>,
    origin_index: HashMap<(String, String), u64>,
    /// [`Detector::process_to`]'s evaluation of the current event, reused.
    scratch: Evaluated,
}

/// Bits of an event reference that hold the line number.
const LINE_BITS: u32 = 40;

impl<'r> Detector<'r> {
    pub fn new(rules: &'r LoadedRules) -> Self {
        let sources: HashMap<&str, &str> = rules
            .sources
            .iter()
            .map(|s| (s.origin.as_str(), s.text.as_str()))
            .collect();
        Detector {
            set: &rules.set,
            state: CorrelationState::new(),
            corr: Vec::new(),
            seen: AlertDedup::new(1 << 20),
            per_stage: stage_rules(&rules.set, &sources),
            alert_rules: rules.set.rules().iter().map(alert_rule).collect(),
            docs: true,
            origins: Vec::new(),
            origin_index: HashMap::new(),
            scratch: Evaluated::default(),
        }
    }

    /// `emit` will not read the event's document (JSON output): it is then built only when a
    /// correlation needs it.
    pub fn without_docs(mut self) -> Self {
        self.docs = false;
        self
    }

    /// The reference of an event: its (dataset, file) and line, in one number.
    fn reference(&mut self, dataset: &str, file: &str, line: usize) -> u64 {
        let idx = match self.origins.last() {
            Some((d, f)) if d == dataset && f == file => self.origins.len() as u64 - 1,
            _ => {
                let key = (dataset.to_string(), file.to_string());
                match self.origin_index.get(&key) {
                    Some(&i) => i,
                    None => {
                        let i = self.origins.len() as u64;
                        self.origins.push(key.clone());
                        self.origin_index.insert(key, i);
                        i
                    }
                }
            }
        };
        (idx << LINE_BITS) | (line as u64 & ((1 << LINE_BITS) - 1))
    }

    /// The dataset, file and line an event reference stands for.
    fn evidence(&self, e: &ContributingEvent) -> EvidenceRef {
        let known = e
            .origin
            .and_then(|r| self.origins.get((r >> LINE_BITS) as usize).map(|o| (o, r)));
        match known {
            Some(((dataset, file), r)) => EvidenceRef {
                dataset: dataset.clone(),
                file: file.clone(),
                line: (r & ((1 << LINE_BITS) - 1)) as usize,
                id: e.id.clone(),
            },
            None => EvidenceRef {
                dataset: self.set.rules()[e.rule]
                    .datasets
                    .first()
                    .cloned()
                    .unwrap_or_default(),
                file: String::new(),
                line: 0,
                id: e.id.clone(),
            },
        }
    }

    pub fn process(
        &mut self,
        item: Item,
        emit: &mut impl FnMut(Alert, Option<&Value>) -> Result<()>,
    ) -> Result<()> {
        self.process_to(item, emit)
    }

    /// [`Detector::process`] into any [`AlertSink`].
    pub fn process_to(&mut self, item: Item, emit: &mut impl AlertSink) -> Result<()> {
        let mut done = std::mem::take(&mut self.scratch);
        evaluate_into(self.set, &item, self.docs, &mut done);
        let applied = self.apply(&item, &mut done, emit);
        self.scratch = done;
        applied
    }

    /// The ordered stage: feeds correlations with what [`evaluate`] found in `item` and emits
    /// the alerts (taking `done`'s matches). Items must come in input order (the order
    /// [`Detector::process`] sees them).
    pub fn apply(
        &mut self,
        item: &Item,
        done: &mut Evaluated,
        emit: &mut impl AlertSink,
    ) -> Result<()> {
        let Evaluated {
            matches,
            doc: own_doc,
            text,
            id_len,
        } = done;
        let doc = item.doc.or(own_doc.as_ref());
        // Correlations need the document only for matches (and then it was kept).
        let ev = match doc {
            Some(doc) => Event::new(item.dataset, doc),
            None => Event::from_raw(item.dataset, ""),
        };
        let ev = match item.time_ms {
            Some(t) => ev.at(t),
            None => ev,
        };
        // Only matches carry the reference into correlations.
        let ev = if matches.is_empty() {
            ev
        } else {
            ev.with_ref(self.reference(item.dataset, item.file, item.line))
        };
        self.corr.clear();
        // Without a match or an explicit time, an event changes no correlation state: nothing
        // to feed, event time stays, and the previous event already released what it could.
        if !matches.is_empty() || ev.explicit_time_ms().is_some() {
            self.set
                .correlate(&ev, matches, &mut self.state, &mut self.corr);
        }
        let id = id_len.map(|n| &text[..n]);
        let time = &text[id_len.unwrap_or(0)..];
        for m in matches.drain(..) {
            if !self.set.rules()[m.rule].alerts {
                continue;
            }
            if let Some(id) = id {
                if !self.per_stage[m.rule] && !self.seen.first_time(m.rule, id) {
                    continue;
                }
            }
            emit.single(
                SingleAlert {
                    rule_index: m.rule,
                    rule: &self.alert_rules[m.rule],
                    time,
                    dataset: item.dataset,
                    file: item.file,
                    line: item.line,
                    id,
                    matched: m.matched,
                },
                doc,
            )?;
        }
        self.emit_correlations(emit)
    }

    fn emit_correlations(&mut self, emit: &mut impl AlertSink) -> Result<()> {
        for c in std::mem::take(&mut self.corr) {
            emit.alert(self.correlation_alert(&c), None)?;
        }
        Ok(())
    }

    /// End of input: correlation windows still open are judged, matches held for late events
    /// are released, and what correlations could not use is reported on stderr.
    pub fn finish(&mut self, emit: &mut impl AlertSink) -> Result<()> {
        self.corr.clear();
        self.set.flush(&mut self.state, i64::MAX, &mut self.corr);
        self.emit_correlations(emit)?;
        let st = &self.state.stats;
        let mut notes = vec![];
        for (n, what) in [
            (st.late_events, "arrived later than the allowed lateness"),
            (st.untimed_events, "had no time"),
            (
                st.forced_releases,
                "were released early (reorder buffer full)",
            ),
        ] {
            if n > 0 {
                notes.push(format!("{n} matches {what}"));
            }
        }
        if st.evicted_groups > 0 {
            notes.push(format!("{} groups evicted at the cap", st.evicted_groups));
        }
        if st.dropped_values > 0 {
            notes.push(format!(
                "{} values dropped at per-group caps",
                st.dropped_values
            ));
        }
        if !notes.is_empty() {
            eprintln!("vigil: correlations: {} (not correlated)", notes.join(", "));
        }
        Ok(())
    }

    fn correlation_alert(&self, c: &CorrelationAlert) -> Alert {
        let info = &self.set.rules()[c.rule];
        let time = chrono::DateTime::from_timestamp_millis(c.last_ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            .unwrap_or_default();
        let mut matched = Map::new();
        matched.insert("count".into(), Value::from(c.count));
        if let Some(v) = c.value {
            let kind = self
                .set
                .correlation_kind(c.rule)
                .map_or("value", |k| k.as_str());
            matched.insert(kind.into(), Value::from(v));
        }
        if let Some(field) = &c.field {
            if !c.values.is_empty() {
                matched.insert(field.clone(), Value::Array(c.values.clone()));
            }
        }
        Alert {
            rule: alert_rule(info),
            time,
            group: c.group.iter().cloned().collect(),
            events: c.events.iter().map(|e| self.evidence(e)).collect(),
            matched,
        }
    }
}

pub fn alert_rule(info: &RuleInfo) -> AlertRule {
    AlertRule {
        id: info
            .id
            .clone()
            .or_else(|| info.name.clone())
            .unwrap_or_else(|| info.title.clone()),
        title: info.title.clone(),
        level: info.level.clone().unwrap_or_else(|| "medium".into()),
        tags: info.tags.clone(),
    }
}

/// The key of the event's own id: a Kubernetes auditID, a Zeek uid.
fn id_key(dataset: &str) -> Option<&'static str> {
    match dataset {
        "k8s.audit" => Some("auditID"),
        d if d.starts_with("zeek.") => Some("uid"),
        _ => None,
    }
}

fn event_id<'d>(dataset: &str, doc: &'d Value) -> Option<&'d str> {
    let key = id_key(dataset)?;
    doc.get(key).and_then(Value::as_str)
}

/// Where the event's time is written (RFC 3339), by preference.
const TIME_KEYS: [&str; 4] = [
    "stageTimestamp",
    "requestReceivedTimestamp",
    "timestamp",
    "@timestamp",
];

fn event_time(doc: &Value) -> &str {
    TIME_KEYS
        .iter()
        .find_map(|k| doc.get(*k).and_then(Value::as_str))
        .unwrap_or_default()
}
