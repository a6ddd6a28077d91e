//! metav1.ObjectMeta: Vigil keeps none of it, but the apiserver type-checks it like any field,
//! so a wrong type there fails the load and an unknown key there is dropped with a warning.

use super::{join, Decoder, Where};
use crate::gojson::{GNode, GVal};

/// The JSON type a Go field has, for metadata (whose values Vigil does not keep but whose
/// types the apiserver still checks).
#[derive(Clone, Copy)]
pub(super) enum Ty {
    Str,
    Int,
    Time,
    OptBool,
    StrList,
    StrMap,
    Obj(&'static [(&'static str, Ty)]),
    ObjList(&'static [(&'static str, Ty)]),
    Any,
}

const OWNER_REFERENCE: &[(&str, Ty)] = &[
    ("apiVersion", Ty::Str),
    ("kind", Ty::Str),
    ("name", Ty::Str),
    ("uid", Ty::Str),
    ("controller", Ty::OptBool),
    ("blockOwnerDeletion", Ty::OptBool),
];
const MANAGED_FIELDS_ENTRY: &[(&str, Ty)] = &[
    ("manager", Ty::Str),
    ("operation", Ty::Str),
    ("apiVersion", Ty::Str),
    ("time", Ty::Time),
    ("fieldsType", Ty::Str),
    ("fieldsV1", Ty::Any),
    ("subresource", Ty::Str),
];
/// metav1.ObjectMeta.
pub(super) const OBJECT_META: &[(&str, Ty)] = &[
    ("name", Ty::Str),
    ("generateName", Ty::Str),
    ("namespace", Ty::Str),
    ("selfLink", Ty::Str),
    ("uid", Ty::Str),
    ("resourceVersion", Ty::Str),
    ("generation", Ty::Int),
    ("creationTimestamp", Ty::Time),
    ("deletionTimestamp", Ty::Time),
    ("deletionGracePeriodSeconds", Ty::Int),
    ("labels", Ty::StrMap),
    ("annotations", Ty::StrMap),
    ("ownerReferences", Ty::ObjList(OWNER_REFERENCE)),
    ("finalizers", Ty::StrList),
    ("managedFields", Ty::ObjList(MANAGED_FIELDS_ENTRY)),
];

/// RFC 3339 as Go's `time.Parse(time.RFC3339, s)` accepts it (fractional seconds allowed).
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(r)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| std::str::from_utf8(part).ok()?.parse().ok())?
    };
    let (Some(year), Some(month), Some(day), Some(h), Some(m), Some(sec)) = (
        num(0..4),
        num(5..7),
        num(8..10),
        num(11..13),
        num(14..16),
        num(17..19),
    ) else {
        return false;
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return false;
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    if day == 0 || day > days || h > 23 || m > 59 || sec > 59 {
        return false;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match b.get(i) {
        Some(b'Z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            i + 6 == b.len()
                && b[i + 3] == b':'
                && num(i + 1..i + 3).is_some_and(|h| h < 24)
                && num(i + 4..i + 6).is_some_and(|m| m < 60)
        }
        _ => false,
    }
}

impl Decoder {
    /// Type-checks a value Vigil does not keep (metadata).
    pub(super) fn check(&mut self, node: &GNode, path: &str, ty: Ty) {
        if matches!(node.v, GVal::Null) {
            return; // null is the zero value for every Go type here
        }
        match ty {
            Ty::Any => {}
            Ty::Str => {
                self.string(node, path);
            }
            Ty::OptBool => {
                self.opt_bool(node, path);
            }
            Ty::Int => {
                let ok = match node.v {
                    GVal::Int(i) => i64::try_from(i).is_ok(),
                    // YAML-to-JSON prints an integral float without a fraction, so 3.0 decodes.
                    GVal::Float(f) => !self.json_mode && f.fract() == 0.0 && f.abs() < 9.2e18,
                    _ => false,
                };
                if !ok {
                    self.type_error(node, path, "an integer");
                }
            }
            Ty::Time => match &node.v {
                GVal::Str(s) if is_rfc3339(s) => {}
                GVal::Str(s) => self.error(
                    node.line,
                    path,
                    format!("{s:?} is not an RFC 3339 time (e.g. 2024-01-02T15:04:05Z)"),
                ),
                _ => self.type_error(node, path, "an RFC 3339 time string"),
            },
            Ty::StrList => {
                self.string_list(node, path, node.line);
            }
            Ty::StrMap => match &node.v {
                GVal::Map(entries) => {
                    for e in entries {
                        let p = join(path, &e.key);
                        self.field(e, |d, v| d.string(v, &p));
                    }
                }
                _ => self.type_error(node, path, "a mapping of strings"),
            },
            Ty::Obj(fields) => {
                let names: Vec<&'static str> = fields.iter().map(|(n, _)| *n).collect();
                let Some(known) = self.object(node, path, Where::Other("metadata"), &names) else {
                    return;
                };
                for (name, e) in known {
                    let ty = fields.iter().find(|(n, _)| *n == name).map(|(_, t)| *t);
                    let p = join(path, name);
                    if let Some(ty) = ty {
                        self.field(e, |d, v| d.check(v, &p, ty));
                    }
                }
            }
            Ty::ObjList(fields) => {
                for (i, item) in self.list(node, path, "a list").iter().enumerate() {
                    self.check(item, &format!("{path}[{i}]"), Ty::Obj(fields));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert!(is_rfc3339("2024-02-29T23:59:59Z"));
        assert!(is_rfc3339("2024-01-02T03:04:05.123+01:00"));
        assert!(!is_rfc3339("2023-02-29T00:00:00Z"));
        assert!(!is_rfc3339("2024-01-02"));
        assert!(!is_rfc3339("2024-01-02t03:04:05Z"));
        assert!(!is_rfc3339(""));
    }
}
