//! The reference matcher: whether a document matches a `Query`, and the fields a query names.

use serde_json::Value;

use super::values::{as_text, cmp_in_range, map_bound};
use super::{glob, ip_range, ip_value, is_address_field, lookup, text_values, time_value, tokens};
use super::{Query, Val};

fn field_matches(field: &str, value: &Val, values: &[&Value]) -> bool {
    let addr = is_address_field(field);
    match value {
        Val::Exists => !values.is_empty(),
        Val::Term(t) | Val::Phrase(t) => {
            if addr {
                if let Some((lo, hi)) = ip_range(t) {
                    return values
                        .iter()
                        .filter_map(|v| v.as_str())
                        .any(|v| ip_value(v).is_some_and(|x| x >= lo && x <= hi));
                }
            }
            values.iter().any(|v| match v {
                Value::Number(n) => t.parse::<f64>().ok() == n.as_f64(),
                v => as_text(v).as_deref() == Some(t.as_str()),
            })
        }
        Val::Wildcard(p) => values
            .iter()
            .filter_map(|v| as_text(v))
            .any(|v| glob(p, &v)),
        Val::Range { lo, hi } => values.iter().any(|v| {
            let text = as_text(v).unwrap_or_default();
            if field == "@timestamp" {
                if let (Some(l), Some(h), Some(x)) = (
                    map_bound(lo, time_value),
                    map_bound(hi, time_value),
                    time_value(&text),
                ) {
                    return cmp_in_range(&x, &l, &h);
                }
            }
            if addr {
                if let (Some(l), Some(h), Some(x)) = (
                    map_bound(lo, ip_value),
                    map_bound(hi, ip_value),
                    ip_value(&text),
                ) {
                    return cmp_in_range(&x, &l, &h);
                }
            }
            let num = |s: &str| s.parse::<f64>().ok();
            if let (Some(l), Some(h), Some(x)) =
                (map_bound(lo, num), map_bound(hi, num), num(&text))
            {
                return cmp_in_range(&x, &l, &h);
            }
            cmp_in_range(&text, lo, hi)
        }),
    }
}

fn text_matches(value: &Val, doc: &Value) -> bool {
    let strings = text_values(doc);
    match value {
        Val::Exists => true,
        Val::Term(t) | Val::Phrase(t) => {
            let want: Vec<String> = tokens(t).collect();
            if want.is_empty() {
                return false;
            }
            strings.iter().any(|s| {
                let have: Vec<String> = tokens(s).collect();
                have.windows(want.len()).any(|w| w == want.as_slice())
            })
        }
        Val::Wildcard(p) => {
            let p = p.to_lowercase();
            strings.iter().any(|s| tokens(s).any(|t| glob(&p, &t)))
        }
        Val::Range { .. } => false,
    }
}

/// Whether `doc` (a normalized document) matches `q`.
pub fn matches(q: &Query, doc: &Value) -> bool {
    match q {
        Query::All => true,
        Query::Not(x) => !matches(x, doc),
        Query::And(xs) => xs.iter().all(|x| matches(x, doc)),
        Query::Or(xs) => xs.iter().any(|x| matches(x, doc)),
        Query::Match { field: None, value } => text_matches(value, doc),
        Query::Match {
            field: Some(f),
            value,
        } => {
            let mut values = Vec::new();
            lookup(doc, f, &mut values);
            field_matches(f, value, &values)
        }
    }
}

/// Every field a query names.
pub fn fields(q: &Query, out: &mut Vec<String>) {
    match q {
        Query::All => {}
        Query::Not(x) => fields(x, out),
        Query::And(xs) | Query::Or(xs) => xs.iter().for_each(|x| fields(x, out)),
        Query::Match { field, .. } => {
            if let Some(f) = field {
                out.push(f.clone())
            }
        }
    }
}
