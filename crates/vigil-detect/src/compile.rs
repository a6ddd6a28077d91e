//! Compiling Sigma documents into a [`RuleSet`].
//!
//! This module holds the public types, the compiled form the evaluator reads, and the driver
//! (`RuleSet::compile`) that takes the whole set through its steps; `detection` prepares and
//! compiles one detection rule, `selection` one of its selections.

use std::collections::HashMap;

use crate::correlation::{build, CorrelationSpec};
use crate::error::{Problem, RejectKind, RuleError};
use crate::event::FieldPath;
use crate::mapping::{LogSource, Mappings};
use crate::prefilter::{self, Prefilter};
use crate::rule::{self, Body, Doc};
use crate::value::Matcher;

mod detection;
mod selection;

use detection::{compile_detection, filter_applies, prepare, Prepared};
pub(crate) use selection::map_paths;
use selection::Ctx;

/// One rule file (or other text) to compile.
#[derive(Debug, Clone)]
pub struct RuleSource {
    /// Where the text came from (a path), used in errors.
    pub origin: String,
    pub text: String,
}

impl RuleSource {
    pub fn new(origin: impl Into<String>, text: impl Into<String>) -> Self {
        RuleSource {
            origin: origin.into(),
            text: text.into(),
        }
    }
}

/// Compilation settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Values for `|expand` placeholders (`%Admins%` -> `Admins`).
    pub placeholders: HashMap<String, Vec<String>>,
    /// Logsource routing and field mappings; `None` uses the built-in `mappings/` files.
    pub mappings: Option<Mappings>,
    /// Use the sound shortcuts (on by default): the raw-text literal prefilter and the field
    /// dispatch index. Off, every rule of the dataset is evaluated on every event.
    pub prefilter: bool,
    /// Bounds on correlation state.
    pub limits: crate::correlation::Limits,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            placeholders: HashMap::new(),
            mappings: None,
            prefilter: true,
            limits: Default::default(),
        }
    }
}

/// Whether a rule is a detection rule or a correlation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    Detection,
    Correlation,
}

/// What is known about a loaded rule.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleInfo {
    pub kind: RuleKind,
    pub title: String,
    pub id: Option<String>,
    pub name: Option<String>,
    pub status: Option<String>,
    pub level: Option<String>,
    pub description: Option<String>,
    pub author: Option<String>,
    pub tags: Vec<String>,
    pub references: Vec<String>,
    pub falsepositives: Vec<String>,
    pub fields: Vec<String>,
    pub logsource: LogSource,
    /// The datasets the rule reads.
    pub datasets: Vec<String>,
    pub origin: String,
    pub line: usize,
    /// Whether the rule's matches are reported on their own. False for rules that only feed a
    /// correlation (without `generate: true`) and for legacy aggregation rules, whose alerts
    /// come from their correlation.
    pub alerts: bool,
}

/// A compiled rule set: immutable, shareable across threads.
#[derive(Debug)]
pub struct RuleSet {
    pub(crate) rules: Vec<RuleInfo>,
    pub(crate) datasets: Vec<DatasetRules>,
    pub(crate) correlations: Vec<CorrelationSpec>,
    pub(crate) limits: crate::correlation::Limits,
}

#[derive(Debug)]
pub(crate) struct DatasetRules {
    pub name: String,
    pub time_paths: Vec<FieldPath>,
    pub id_path: Option<FieldPath>,
    pub rules: Vec<CompiledRule>,
    /// How many field paths the rules' items read (interned: see `Item::path_ids`).
    pub paths: usize,
    pub prefilter: Option<Prefilter>,
    pub dispatch: Option<crate::dispatch::Dispatch>,
}

#[derive(Debug)]
pub(crate) struct CompiledRule {
    pub rule: usize,
    pub selections: Vec<Selection>,
    pub condition: Cond,
    /// The condition as written (several conditions joined by `or`, filters by `and`).
    pub condition_text: String,
    /// CNF over prefilter pattern ids: each clause needs one of its patterns in the raw text.
    pub required: Vec<prefilter::Clause>,
    /// Correlations this rule feeds.
    pub feeds: Vec<usize>,
}

#[derive(Debug)]
pub(crate) struct Selection {
    pub name: String,
    pub node: SelNode,
}

#[derive(Debug)]
pub(crate) enum SelNode {
    Item(Item),
    And(Vec<SelNode>),
    Or(Vec<SelNode>),
}

#[derive(Debug)]
pub(crate) struct Item {
    /// The key as written (`CommandLine|contains|all`); empty for keywords.
    pub key: String,
    /// The Sigma field name; empty for keywords.
    pub field: String,
    /// Event paths (after field mapping); empty for keywords (search every value).
    pub paths: Vec<FieldPath>,
    /// The dataset-wide ids of `paths`, for the per-event cache.
    pub path_ids: Vec<u32>,
    pub exists: Option<bool>,
    pub all: bool,
    pub negate: bool,
    pub matchers: Vec<Matcher>,
}

#[derive(Debug, Clone)]
pub(crate) enum Cond {
    Sel(usize),
    Not(Box<Cond>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    /// `n of pattern` (`None`: all of).
    Of {
        min: Option<u32>,
        sels: Vec<usize>,
        text: String,
    },
}

impl RuleSet {
    /// Compiles rule files. Every rule that cannot run is reported (with its file, line, title
    /// and id) and left out; the rest form the set.
    pub fn compile(sources: &[RuleSource], cfg: &Config) -> (RuleSet, Vec<RuleError>) {
        let mappings = cfg.mappings.clone().unwrap_or_else(Mappings::builtin);
        let mut docs: Vec<Doc> = Vec::new();
        for s in sources {
            docs.extend(rule::read_file(&s.origin, &s.text));
        }
        let mut errors = Vec::new();
        let err = |d: &Doc, p: Problem| RuleError {
            origin: d.origin.clone(),
            line: p.line,
            title: d.meta.title.clone(),
            id: d.meta.id.clone(),
            kind: p.kind,
            reason: p.reason,
        };

        // Filters.
        let filter_docs: Vec<usize> = docs
            .iter()
            .enumerate()
            .filter(|(_, d)| matches!(d.body, Body::Filter(_)))
            .map(|(i, _)| i)
            .collect();
        let mut filter_used = vec![false; docs.len()];

        // Detection rules: routing and conditions.
        let mut prepared: Vec<Prepared> = Vec::new();
        let mut seen_ids: HashMap<String, usize> = HashMap::new();
        for (di, d) in docs.iter().enumerate() {
            let det = match &d.body {
                Body::Broken(p) => {
                    errors.push(err(d, p.clone()));
                    continue;
                }
                Body::Detection(det) => det,
                _ => continue,
            };
            if let Some(id) = &d.meta.id {
                if let Some(&first) = seen_ids.get(id) {
                    errors.push(err(
                        d,
                        Problem::new(
                            d.line,
                            RejectKind::Duplicate,
                            format!("id {id} is already used by {}", docs[first].origin),
                        ),
                    ));
                    continue;
                }
            }
            match prepare(di, det, &mappings) {
                Ok(mut p) => {
                    for &fi in &filter_docs {
                        if let Body::Filter(f) = &docs[fi].body {
                            if filter_applies(f, &d.meta, &det.logsource) {
                                p.filters.push(fi);
                                filter_used[fi] = true;
                            }
                        }
                    }
                    if let Some(id) = &d.meta.id {
                        seen_ids.insert(id.clone(), di);
                    }
                    prepared.push(p);
                }
                Err(p) => errors.push(err(d, p)),
            }
        }
        for &fi in &filter_docs {
            if !filter_used[fi] {
                if let Body::Filter(f) = &docs[fi].body {
                    if f.rules.is_some() {
                        let line = f
                            .rules
                            .as_ref()
                            .and_then(|r| r.first())
                            .map_or(docs[fi].line, |r| r.1);
                        errors.push(err(
                            &docs[fi],
                            Problem::new(
                                line,
                                RejectKind::UnknownReference,
                                "the filter names no loaded rule (by id, name or title) of its logsource",
                            ),
                        ));
                    }
                }
            }
        }

        // Compile each prepared rule on each of its datasets.
        let mut set = RuleSet {
            rules: Vec::new(),
            datasets: mappings
                .datasets
                .iter()
                .map(|s| DatasetRules {
                    name: s.name.clone(),
                    time_paths: s.time.iter().map(|p| FieldPath::new(p)).collect(),
                    id_path: s.id.as_deref().map(FieldPath::new),
                    rules: Vec::new(),
                    paths: 0,
                    prefilter: None,
                    dispatch: None,
                })
                .collect(),
            correlations: Vec::new(),
            limits: cfg.limits.clone(),
        };
        let mut by_ref: HashMap<String, usize> = HashMap::new();
        for p in &prepared {
            let d = &docs[p.doc_index];
            let Body::Detection(det) = &d.body else {
                continue;
            };
            let mut compiled = Vec::new();
            let mut failed = None;
            for &ds in &p.datasets {
                let cx = Ctx {
                    spec: &mappings.datasets[ds],
                    placeholders: &cfg.placeholders,
                };
                match compile_detection(det, p, &docs, &cx) {
                    Ok(c) => compiled.push((ds, c)),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = failed {
                errors.push(err(d, e));
                continue;
            }
            // Legacy aggregation: the rule feeds a generated correlation.
            let mut corr = None;
            if let Some((agg, _)) = &p.agg {
                let tf = det.timeframe.clone().unwrap_or_default();
                match build::legacy(agg, &tf, &mappings, &p.datasets) {
                    Ok(c) => corr = Some(c),
                    Err(e) => {
                        errors.push(err(d, e));
                        continue;
                    }
                }
            }
            let idx = set.rules.len();
            set.rules.push(RuleInfo {
                kind: RuleKind::Detection,
                title: d.meta.title.clone().unwrap_or_default(),
                id: d.meta.id.clone(),
                name: d.meta.name.clone(),
                status: d.meta.status.clone(),
                level: d.meta.level.clone(),
                description: d.meta.description.clone(),
                author: d.meta.author.clone(),
                tags: d.meta.tags.clone(),
                references: d.meta.references.clone(),
                falsepositives: d.meta.falsepositives.clone(),
                fields: d.meta.fields.clone(),
                logsource: det.logsource.clone(),
                datasets: p
                    .datasets
                    .iter()
                    .map(|&i| mappings.datasets[i].name.clone())
                    .collect(),
                origin: d.origin.clone(),
                line: d.line,
                alerts: corr.is_none(),
            });
            for key in [&d.meta.id, &d.meta.name].into_iter().flatten() {
                by_ref.entry(key.clone()).or_insert(idx);
            }
            let mut feeds = vec![];
            if let Some(mut c) = corr {
                c.rule = idx;
                c.index = set.correlations.len();
                c.sources[0].rule = idx;
                feeds.push(c.index);
                set.correlations.push(c);
            }
            for (ds, (sels, cond, text)) in compiled {
                set.datasets[ds].rules.push(CompiledRule {
                    rule: idx,
                    selections: sels,
                    condition: cond,
                    condition_text: text,
                    required: vec![],
                    feeds: feeds.clone(),
                });
            }
        }

        // Correlation rules (in dependency order: correlations may reference correlations).
        for (di, p) in build::compile_all(&docs, &by_ref, &mut set, &mappings) {
            errors.push(err(&docs[di], p));
        }

        // Intern field paths per dataset, for the per-event cache.
        for ds in &mut set.datasets {
            let mut ids: HashMap<String, u32> = HashMap::new();
            for r in &mut ds.rules {
                for sel in &mut r.selections {
                    intern(&mut sel.node, &mut ids);
                }
            }
            ds.paths = ids.len();
            if cfg.prefilter {
                ds.dispatch = crate::dispatch::build(&ds.rules);
            }
        }

        // Prefilters, and where rules feed correlations, what the correlations read (event
        // time, id, group-by and value fields: see `RuleSet::correlation_doc`).
        if cfg.prefilter {
            for (di, ds) in set.datasets.iter_mut().enumerate() {
                ds.prefilter = prefilter::build(&mut ds.rules);
                let Some(pf) = ds.prefilter.as_mut() else {
                    continue;
                };
                if ds.rules.iter().all(|r| r.feeds.is_empty()) {
                    continue;
                }
                let mut reads = ds.time_paths.clone();
                reads.extend(ds.id_path.clone());
                for c in &set.correlations {
                    for f in c
                        .sources
                        .iter()
                        .flat_map(|s| s.group.iter().chain(&s.value))
                    {
                        reads.extend(f.paths.get(&di).into_iter().flatten().cloned());
                    }
                }
                pf.set_correlation_reads(&reads);
            }
        }
        (set, errors)
    }

    /// Every loaded rule, by index ([`crate::Match::rule`] indexes this).
    pub fn rules(&self) -> &[RuleInfo] {
        &self.rules
    }

    /// The dataset names this set knows (from the mappings), whether or not rules read them.
    pub fn datasets(&self) -> impl Iterator<Item = &str> {
        self.datasets.iter().map(|d| d.name.as_str())
    }

    /// How many rules read `dataset`, and how many of those the prefilter can skip by text.
    pub fn dataset_stats(&self, dataset: &str) -> Option<(usize, usize)> {
        let d = self.datasets.iter().find(|d| d.name == dataset)?;
        Some((
            d.rules.len(),
            d.rules.iter().filter(|r| !r.required.is_empty()).count(),
        ))
    }

    /// The prefilter's literals for `dataset` (diagnostics).
    #[doc(hidden)]
    pub fn prefilter_literals(&self, dataset: &str) -> Vec<String> {
        self.datasets
            .iter()
            .find(|d| d.name == dataset)
            .and_then(|d| d.prefilter.as_ref())
            .map(|p| p.patterns.clone())
            .unwrap_or_default()
    }

    pub(crate) fn dataset_index(&self, name: &str) -> Option<usize> {
        self.datasets.iter().position(|d| d.name == name)
    }
}

fn intern(n: &mut SelNode, ids: &mut HashMap<String, u32>) {
    match n {
        SelNode::Item(i) => {
            i.path_ids = i
                .paths
                .iter()
                .map(|p| {
                    let next = ids.len() as u32;
                    *ids.entry(p.text.clone()).or_insert(next)
                })
                .collect();
        }
        SelNode::And(xs) | SelNode::Or(xs) => xs.iter_mut().for_each(|x| intern(x, ids)),
    }
}
