//! The search index (tantivy): which fields are indexed and how, the documents built from
//! records, and the translation of a `Query` into a tantivy query.
//!
//! Nothing is stored in the index but fast fields: `loc` (partition id << 40 | record number)
//! points back into the journal, `ts` is the event time in microseconds. Keyword fields are
//! indexed untokenized and case-sensitive; `text` holds the free text of the document
//! (tokenized, lowercased, document ids only: no positions, so phrases are checked on the
//! record). Auditd/k8s ids are not in the index: `event.id` is answered from the partitions'
//! id files (see `Reader::locate_id`).

use std::net::Ipv6Addr;
use std::ops::Bound;

use serde_json::Value;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, Occur, Query as TQuery, RangeQuery, RegexQuery, TermQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader, TantivyDocument, Term};

use crate::query::{self, ip_range, ip_value, lookup, Query, Val};

/// Keyword fields: indexed untokenized, exact and case-sensitive.
pub const KEYWORDS: &[&str] = &[
    "vigil.kind",
    "vigil.redacted",
    "event.dataset",
    "event.action",
    "event.outcome",
    "user.name",
    "user.effective.name",
    "user.groups",
    "related.user",
    "related.hosts",
    "host.name",
    "process.name",
    "objectRef.resource",
    "objectRef.subresource",
    "objectRef.namespace",
    "objectRef.name",
    "objectRef.apiGroup",
    "stage",
    "level",
    "rule.id",
    "rule.level",
];

/// Address fields: indexed as IP addresses (exact, CIDR, ranges).
pub const ADDRESSES: &[&str] = &["source.ip", "destination.ip", "related.ip"];

/// Integer fields.
pub const INTEGERS: &[&str] = &["http.response.status_code", "destination.port"];

pub struct Fields {
    pub schema: Schema,
    pub loc: Field,
    pub pid: Field,
    pub ts: Field,
    pub text: Field,
    pub keywords: Vec<(&'static str, Field)>,
    pub addresses: Vec<(&'static str, Field)>,
    pub integers: Vec<(&'static str, Field)>,
}

impl Fields {
    pub fn new() -> Fields {
        let mut b = Schema::builder();
        let loc = b.add_u64_field("loc", NumericOptions::default().set_fast());
        let pid = b.add_u64_field("pid", NumericOptions::default().set_indexed());
        let ts = b.add_i64_field("ts", NumericOptions::default().set_fast());
        let text = b.add_text_field(
            "text",
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer("default")
                    .set_index_option(IndexRecordOption::Basic)
                    .set_fieldnorms(false),
            ),
        );
        let kw_opts = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("raw")
                .set_index_option(IndexRecordOption::Basic)
                .set_fieldnorms(false),
        );
        let keywords = KEYWORDS
            .iter()
            .map(|k| (*k, b.add_text_field(k, kw_opts.clone())))
            .collect();
        let addresses = ADDRESSES
            .iter()
            .map(|k| {
                (
                    *k,
                    b.add_ip_addr_field(k, tantivy::schema::IpAddrOptions::default().set_indexed()),
                )
            })
            .collect();
        let integers = INTEGERS
            .iter()
            .map(|k| {
                (
                    *k,
                    b.add_i64_field(k, NumericOptions::default().set_indexed()),
                )
            })
            .collect();
        Fields {
            schema: b.build(),
            loc,
            pid,
            ts,
            text,
            keywords,
            addresses,
            integers,
        }
    }

    pub fn from_schema(schema: Schema) -> Result<Fields, String> {
        let f = Fields::new();
        let json = |s: &Schema| serde_json::to_value(s).unwrap_or_default();
        if json(&f.schema) != json(&schema) {
            return Err("the index was made by another version of Vigil".into());
        }
        Ok(f)
    }

    fn keyword(&self, name: &str) -> Option<Field> {
        self.keywords.iter().find(|k| k.0 == name).map(|k| k.1)
    }
    fn address(&self, name: &str) -> Option<Field> {
        self.addresses.iter().find(|k| k.0 == name).map(|k| k.1)
    }
    fn integer(&self, name: &str) -> Option<Field> {
        self.integers.iter().find(|k| k.0 == name).map(|k| k.1)
    }

    /// The index document of one record.
    pub fn document(&self, doc: &Value, loc: u64, pid: u32, ts: i64) -> TantivyDocument {
        let mut d = TantivyDocument::new();
        d.add_u64(self.loc, loc);
        d.add_u64(self.pid, u64::from(pid));
        d.add_i64(self.ts, ts);
        let mut values = Vec::new();
        for (name, field) in &self.keywords {
            match *name {
                "vigil.kind" => {
                    let kind = doc
                        .pointer("/vigil/kind")
                        .and_then(Value::as_str)
                        .unwrap_or("event");
                    d.add_text(*field, kind)
                }
                _ => {
                    values.clear();
                    lookup(doc, name, &mut values);
                    for v in &values {
                        match v {
                            Value::String(s) => d.add_text(*field, s),
                            Value::Number(n) => d.add_text(*field, n.to_string()),
                            Value::Bool(b) => d.add_text(*field, b.to_string()),
                            _ => {}
                        }
                    }
                }
            }
        }
        for (name, field) in &self.addresses {
            values.clear();
            lookup(doc, name, &mut values);
            for v in values
                .iter()
                .filter_map(|v| v.as_str())
                .filter_map(ip_value)
            {
                d.add_ip_addr(*field, Ipv6Addr::from(v));
            }
        }
        for (name, field) in &self.integers {
            values.clear();
            lookup(doc, name, &mut values);
            for v in values.iter().filter_map(|v| v.as_i64()) {
                d.add_i64(*field, v);
            }
        }
        let text = query::text_values(doc).join("\n");
        d.add_text(self.text, text);
        d
    }
}

impl Default for Fields {
    fn default() -> Self {
        Fields::new()
    }
}

/// A tantivy query for a `Query`, and whether it answers exactly (else every hit is checked
/// against the record with `query::matches`).
pub struct Plan {
    pub query: Box<dyn TQuery>,
    pub exact: bool,
}

fn all() -> Plan {
    Plan {
        query: Box::new(AllQuery),
        exact: false,
    }
}

fn exact(q: impl TQuery) -> Plan {
    Plan {
        query: Box::new(q),
        exact: true,
    }
}

fn regex_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
}

/// A glob (`*`, `?`, `\` escapes) as a regular expression.
pub fn glob_regex(p: &str) -> String {
    let mut out = String::new();
    let mut it = p.chars();
    while let Some(c) = it.next() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '\\' => {
                if let Some(n) = it.next() {
                    regex_escape(&n.to_string(), &mut out)
                }
            }
            c => regex_escape(&c.to_string(), &mut out),
        }
    }
    out
}

fn map_bound<T>(b: &Bound<String>, f: impl Fn(&str) -> Option<T>) -> Option<Bound<T>> {
    Some(match b {
        Bound::Unbounded => Bound::Unbounded,
        Bound::Included(v) => Bound::Included(f(v)?),
        Bound::Excluded(v) => Bound::Excluded(f(v)?),
    })
}

fn range(lo: Bound<Term>, hi: Bound<Term>) -> Plan {
    if matches!((&lo, &hi), (Bound::Unbounded, Bound::Unbounded)) {
        return all();
    }
    exact(RangeQuery::new(lo, hi))
}

/// Candidate record locations for an id (from the id files); `None`: not an id query.
pub type IdLookup<'a> = &'a dyn Fn(&str) -> Vec<u64>;

pub fn translate(f: &Fields, q: &Query, ids: IdLookup) -> Plan {
    match q {
        Query::All => exact(AllQuery),
        Query::Not(x) => {
            let inner = translate(f, x, ids);
            if !inner.exact {
                return all();
            }
            exact(BooleanQuery::new(vec![
                (Occur::Must, Box::new(AllQuery)),
                (Occur::MustNot, inner.query),
            ]))
        }
        Query::And(xs) | Query::Or(xs) => {
            let occur = if matches!(q, Query::And(_)) {
                Occur::Must
            } else {
                Occur::Should
            };
            let plans: Vec<Plan> = xs.iter().map(|x| translate(f, x, ids)).collect();
            let exact_all = plans.iter().all(|p| p.exact);
            Plan {
                query: Box::new(BooleanQuery::new(
                    plans.into_iter().map(|p| (occur, p.query)).collect(),
                )),
                exact: exact_all,
            }
        }
        Query::Match { field: None, value } => text_plan(f, value),
        Query::Match {
            field: Some(name),
            value,
        } => field_plan(f, name, value, ids),
    }
}

fn text_plan(f: &Fields, value: &Val) -> Plan {
    match value {
        Val::Exists => exact(AllQuery),
        Val::Term(t) | Val::Phrase(t) => {
            let toks: Vec<String> = query::tokens(t).collect();
            if toks.is_empty() {
                return Plan {
                    query: Box::new(EmptyQuery),
                    exact: true,
                };
            }
            let one = toks.len() == 1;
            let q = BooleanQuery::new(
                toks.iter()
                    .map(|t| {
                        let q: Box<dyn TQuery> = Box::new(TermQuery::new(
                            Term::from_field_text(f.text, t),
                            IndexRecordOption::Basic,
                        ));
                        (Occur::Must, q)
                    })
                    .collect(),
            );
            Plan {
                query: Box::new(q),
                exact: one,
            }
        }
        Val::Wildcard(p) => {
            let lower = p.to_lowercase();
            let simple = lower
                .chars()
                .all(|c| c.is_alphanumeric() || c == '*' || c == '?');
            match RegexQuery::from_pattern(&glob_regex(&lower), f.text) {
                Ok(q) if simple => exact(q),
                _ => all(),
            }
        }
        Val::Range { .. } => Plan {
            query: Box::new(EmptyQuery),
            exact: true,
        },
    }
}

fn field_plan(f: &Fields, name: &str, value: &Val, ids: IdLookup) -> Plan {
    if name == "event.id" {
        if let Val::Term(t) | Val::Phrase(t) = value {
            let locs = ids(t);
            if locs.is_empty() {
                return Plan {
                    query: Box::new(EmptyQuery),
                    exact: true,
                };
            }
            let q = BooleanQuery::new(
                locs.into_iter()
                    .map(|l| {
                        let t = Term::from_field_u64(f.loc, l);
                        let q: Box<dyn TQuery> = Box::new(RangeQuery::new(
                            Bound::Included(t.clone()),
                            Bound::Included(t),
                        ));
                        (Occur::Should, q)
                    })
                    .collect(),
            );
            return Plan {
                query: Box::new(q),
                exact: false,
            };
        }
        return all();
    }
    if name == "@timestamp" {
        if let Val::Range { lo, hi } = value {
            let t = |s: &str| query::time_value(s).map(|v| Term::from_field_i64(f.ts, v));
            if let (Some(lo), Some(hi)) = (map_bound(lo, t), map_bound(hi, t)) {
                return range(lo, hi);
            }
        }
        return all();
    }
    if let Some(field) = f.keyword(name) {
        return match value {
            Val::Term(t) | Val::Phrase(t) => exact(TermQuery::new(
                Term::from_field_text(field, t),
                IndexRecordOption::Basic,
            )),
            Val::Wildcard(p) => match RegexQuery::from_pattern(&glob_regex(p), field) {
                Ok(q) => exact(q),
                Err(_) => all(),
            },
            Val::Exists => match RegexQuery::from_pattern(".*", field) {
                Ok(q) => Plan {
                    query: Box::new(q),
                    exact: false,
                },
                Err(_) => all(),
            },
            Val::Range { lo, hi } => {
                let t = |s: &str| Some(Term::from_field_text(field, s));
                match (map_bound(lo, t), map_bound(hi, t)) {
                    (Some(lo), Some(hi)) => {
                        let mut p = range(lo, hi);
                        // Numbers compare as numbers in `matches`, as text here.
                        p.exact = false;
                        p
                    }
                    _ => all(),
                }
            }
        };
    }
    if let Some(field) = f.address(name) {
        let term = |v: u128| Term::from_field_ip_addr(field, Ipv6Addr::from(v));
        return match value {
            Val::Term(t) | Val::Phrase(t) => match ip_range(t) {
                Some((lo, hi)) if lo == hi => {
                    exact(TermQuery::new(term(lo), IndexRecordOption::Basic))
                }
                Some((lo, hi)) => range(Bound::Included(term(lo)), Bound::Included(term(hi))),
                None => Plan {
                    query: Box::new(EmptyQuery),
                    exact: true,
                },
            },
            Val::Range { lo, hi } => match (map_bound(lo, ip_value), map_bound(hi, ip_value)) {
                (Some(lo), Some(hi)) => {
                    let m = |b: Bound<u128>| match b {
                        Bound::Included(v) => Bound::Included(term(v)),
                        Bound::Excluded(v) => Bound::Excluded(term(v)),
                        Bound::Unbounded => Bound::Unbounded,
                    };
                    range(m(lo), m(hi))
                }
                _ => all(),
            },
            _ => all(),
        };
    }
    if let Some(field) = f.integer(name) {
        let num = |s: &str| {
            s.parse::<i64>()
                .ok()
                .map(|v| Term::from_field_i64(field, v))
        };
        return match value {
            Val::Term(t) | Val::Phrase(t) => match num(t) {
                Some(term) => exact(TermQuery::new(term, IndexRecordOption::Basic)),
                None => all(),
            },
            Val::Range { lo, hi } => match (map_bound(lo, num), map_bound(hi, num)) {
                (Some(lo), Some(hi)) => range(lo, hi),
                _ => all(),
            },
            _ => all(),
        };
    }
    all()
}

/// One hit: event time and location.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hit {
    pub ts: i64,
    pub loc: u64,
}

/// Collects (ts, loc) of every hit within a time window.
pub struct HitCollector {
    pub since: Option<i64>,
    pub until: Option<i64>,
}

pub struct HitSegmentCollector {
    ts: Column<i64>,
    loc: Column<u64>,
    since: Option<i64>,
    until: Option<i64>,
    hits: Vec<Hit>,
}

impl Collector for HitCollector {
    type Fruit = Vec<Hit>;
    type Child = HitSegmentCollector;

    fn for_segment(
        &self,
        _ord: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<HitSegmentCollector> {
        let ff = segment.fast_fields();
        Ok(HitSegmentCollector {
            ts: ff.i64("ts")?,
            loc: ff.u64("loc")?,
            since: self.since,
            until: self.until,
            hits: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<Hit>>) -> tantivy::Result<Vec<Hit>> {
        Ok(fruits.into_iter().flatten().collect())
    }
}

impl SegmentCollector for HitSegmentCollector {
    type Fruit = Vec<Hit>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        let (Some(ts), Some(loc)) = (self.ts.first(doc), self.loc.first(doc)) else {
            return;
        };
        if self.since.is_some_and(|s| ts < s) || self.until.is_some_and(|u| ts >= u) {
            return;
        }
        self.hits.push(Hit { ts, loc });
    }

    fn harvest(self) -> Vec<Hit> {
        self.hits
    }
}

pub const LOC_SHIFT: u32 = 40;

pub fn loc(pid: u32, seq: u64) -> u64 {
    (u64::from(pid) << LOC_SHIFT) | seq
}

pub fn unloc(loc: u64) -> (u32, u64) {
    ((loc >> LOC_SHIFT) as u32, loc & ((1 << LOC_SHIFT) - 1))
}
