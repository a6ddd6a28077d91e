//! Decoding the converted JSON into the `audit.k8s.io/v1` Policy shape, as kube-apiserver's strict
//! decoder does, but keeping going so every problem is reported with its line.
//!
//! What the apiserver does, and so what this reports:
//! - a wrong type in a known field (a string where a list is expected, a number where a string
//!   is) fails the load: an error;
//! - an unknown field (including a known name in the wrong case, since decoding is
//!   case-sensitive) only fails *strict* decoding; the lenient fallback then drops it and the
//!   policy loads: a warning that says what dropping it changes;
//! - JSON `null` is the zero value: `level: ~` is an empty level, `verbs: [~]` is the verb `""`.

mod meta;
mod unknown;

use crate::gojson::{GEntry, GNode, GVal};
use crate::loader::{Diagnostic, Severity};
use meta::{Ty, OBJECT_META};
use unknown::{unknown_field_message, Where};

/// A string and the line it was written on.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Str {
    pub value: String,
    pub line: usize,
}

/// A list of strings; `line` is the key's line (the owner's line when the key is absent).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct StrList {
    pub line: usize,
    pub items: Vec<Str>,
}

impl StrList {
    pub fn values(&self) -> Vec<String> {
        self.items.iter().map(|s| s.value.clone()).collect()
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RawGroupResources {
    pub line: usize,
    pub group: Str,
    pub resources: StrList,
    pub resource_names: StrList,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RawRule {
    pub line: usize,
    /// `""` when missing or null, which validation reports as required.
    pub level: Str,
    pub users: StrList,
    pub user_groups: StrList,
    pub verbs: StrList,
    pub resources_line: usize,
    pub resources: Vec<RawGroupResources>,
    pub namespaces: StrList,
    pub non_resource_urls: StrList,
    pub omit_stages: StrList,
    pub omit_managed_fields: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RawPolicy {
    pub line: usize,
    pub rules_line: usize,
    pub rules: Vec<RawRule>,
    pub omit_stages: StrList,
    pub omit_managed_fields: bool,
}

pub(crate) const POLICY_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "rules",
    "omitStages",
    "omitManagedFields",
];
pub(crate) const RULE_FIELDS: &[&str] = &[
    "level",
    "users",
    "userGroups",
    "verbs",
    "resources",
    "namespaces",
    "nonResourceURLs",
    "omitStages",
    "omitManagedFields",
];
pub(crate) const GROUP_RESOURCES_FIELDS: &[&str] = &["group", "resources", "resourceNames"];

pub(crate) struct Decoder {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
    /// The input was JSON: encoding/json decodes every duplicate key in turn, so a replaced
    /// value's type errors still count (the YAML path drops replaced values before decoding).
    json_mode: bool,
    /// > 0 while re-decoding replaced values: only their errors matter.
    muted: usize,
}

impl Decoder {
    pub fn new(json_mode: bool) -> Decoder {
        Decoder {
            errors: Vec::new(),
            warnings: Vec::new(),
            json_mode,
            muted: 0,
        }
    }

    fn error(&mut self, line: usize, field: &str, message: String) {
        self.errors.push(Diagnostic {
            line,
            field: field.to_string(),
            severity: Severity::Error,
            message,
        });
    }

    fn warn(&mut self, line: usize, field: &str, message: String) {
        if self.muted == 0 {
            self.warnings.push(Diagnostic {
                line,
                field: field.to_string(),
                severity: Severity::Warning,
                message,
            });
        }
    }

    fn type_error(&mut self, node: &GNode, field: &str, expected: &str) {
        let mut msg = format!("expected {expected}, found {}", node.kind_name());
        if expected.starts_with("a list") && matches!(node.v, GVal::Str(_)) {
            msg.push_str(" (write it as a YAML list: [value] or `- value` items)");
        } else if expected == "a string" && !matches!(node.v, GVal::Seq(_) | GVal::Map(_)) {
            msg.push_str(" (quote it to make it a string)");
        }
        self.error(node.line, field, msg);
    }

    /// Decodes one field; in JSON mode, replaced duplicate values are type-checked first.
    fn field<T>(&mut self, e: &GEntry, f: impl Fn(&mut Self, &GNode) -> T) -> T {
        if self.json_mode {
            self.muted += 1;
            for old in &e.earlier {
                f(self, old);
            }
            self.muted -= 1;
        }
        f(self, &e.value)
    }

    /// The known fields of an object, warning about the others; `None` for null (zero value).
    fn object<'a>(
        &mut self,
        node: &'a GNode,
        path: &str,
        at: Where<'_>,
        fields: &[&'static str],
    ) -> Option<Vec<(&'static str, &'a GEntry)>> {
        match &node.v {
            GVal::Null => None,
            GVal::Map(entries) => {
                let mut known = Vec::new();
                for e in entries {
                    match fields.iter().find(|f| **f == e.key) {
                        Some(f) => known.push((*f, e)),
                        None => {
                            let msg = unknown_field_message(&e.key, at, fields);
                            self.warn(e.line, &join(path, &e.key), msg);
                        }
                    }
                }
                Some(known)
            }
            _ => {
                self.type_error(node, path, &format!("a mapping ({})", at.name()));
                None
            }
        }
    }

    fn string(&mut self, node: &GNode, path: &str) -> Str {
        let value = match &node.v {
            GVal::Str(s) => s.clone(),
            GVal::Null => String::new(),
            _ => {
                self.type_error(node, path, "a string");
                String::new()
            }
        };
        Str {
            value,
            line: node.line,
        }
    }

    fn string_list(&mut self, node: &GNode, path: &str, key_line: usize) -> StrList {
        let mut out = StrList {
            line: key_line,
            items: Vec::new(),
        };
        match &node.v {
            GVal::Null => {}
            GVal::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let s = self.string(item, &format!("{path}[{i}]"));
                    out.items.push(s);
                }
            }
            _ => self.type_error(node, path, "a list of strings"),
        }
        out
    }

    fn opt_bool(&mut self, node: &GNode, path: &str) -> Option<bool> {
        match node.v {
            GVal::Bool(b) => Some(b),
            GVal::Null => None,
            _ => {
                self.type_error(node, path, "a boolean (true or false)");
                None
            }
        }
    }

    fn list<'a>(&mut self, node: &'a GNode, path: &str, what: &str) -> &'a [GNode] {
        match &node.v {
            GVal::Seq(items) => items,
            GVal::Null => &[],
            _ => {
                self.type_error(node, path, what);
                &[]
            }
        }
    }

    pub fn policy(&mut self, root: &GNode) -> RawPolicy {
        let mut p = RawPolicy {
            line: root.line,
            rules_line: root.line,
            omit_stages: StrList {
                line: root.line,
                items: Vec::new(),
            },
            ..RawPolicy::default()
        };
        let Some(known) = self.object(root, "", Where::Policy, POLICY_FIELDS) else {
            return p;
        };
        for (name, e) in known {
            match name {
                // Checked by the loader, which reads them the way the apiserver's type sniffing does.
                "apiVersion" | "kind" => {}
                "metadata" => self.field(e, |d, v| d.check(v, "metadata", Ty::Obj(OBJECT_META))),
                "rules" => {
                    p.rules_line = e.line;
                    p.rules = self.field(e, |d, v| {
                        let items = d.list(v, "rules", "a list of rules");
                        items
                            .iter()
                            .enumerate()
                            .map(|(i, r)| d.rule(r, i))
                            .collect()
                    });
                }
                "omitStages" => {
                    p.omit_stages = self.field(e, |d, v| d.string_list(v, "omitStages", e.line));
                }
                _ => {
                    p.omit_managed_fields = self
                        .field(e, |d, v| d.opt_bool(v, "omitManagedFields"))
                        .unwrap_or(false);
                }
            }
        }
        p
    }

    fn rule(&mut self, node: &GNode, index: usize) -> RawRule {
        let path = format!("rules[{index}]");
        let empty = |line| StrList {
            line,
            items: Vec::new(),
        };
        let line = node.line;
        let mut r = RawRule {
            line,
            level: Str {
                value: String::new(),
                line,
            },
            users: empty(line),
            user_groups: empty(line),
            verbs: empty(line),
            resources_line: line,
            resources: Vec::new(),
            namespaces: empty(line),
            non_resource_urls: empty(line),
            omit_stages: empty(line),
            omit_managed_fields: None,
        };
        let at = Where::Rule(node.entries().unwrap_or(&[]));
        let Some(known) = self.object(node, &path, at, RULE_FIELDS) else {
            return r;
        };
        for (name, e) in known {
            let p = join(&path, name);
            let list = |d: &mut Self| d.field(e, |d, v| d.string_list(v, &p, e.line));
            match name {
                "level" => r.level = self.field(e, |d, v| d.string(v, &p)),
                "users" => r.users = list(self),
                "userGroups" => r.user_groups = list(self),
                "verbs" => r.verbs = list(self),
                "namespaces" => r.namespaces = list(self),
                "nonResourceURLs" => r.non_resource_urls = list(self),
                "omitStages" => r.omit_stages = list(self),
                "omitManagedFields" => {
                    r.omit_managed_fields = self.field(e, |d, v| d.opt_bool(v, &p))
                }
                _ => {
                    r.resources_line = e.line;
                    let rule_entries = node.entries().unwrap_or(&[]);
                    r.resources = self.field(e, |d, v| {
                        let items = d.list(v, &p, "a list of resources entries");
                        items
                            .iter()
                            .enumerate()
                            .map(|(i, gr)| {
                                d.group_resources(gr, &format!("{p}[{i}]"), rule_entries)
                            })
                            .collect()
                    });
                }
            }
        }
        r
    }

    fn group_resources(&mut self, node: &GNode, path: &str, rule: &[GEntry]) -> RawGroupResources {
        let line = node.line;
        let mut g = RawGroupResources {
            line,
            group: Str {
                value: String::new(),
                line,
            },
            resources: StrList {
                line,
                items: Vec::new(),
            },
            resource_names: StrList {
                line,
                items: Vec::new(),
            },
        };
        let at = Where::GroupResources(rule);
        let Some(known) = self.object(node, path, at, GROUP_RESOURCES_FIELDS) else {
            return g;
        };
        for (name, e) in known {
            let p = join(path, name);
            match name {
                "group" => g.group = self.field(e, |d, v| d.string(v, &p)),
                "resources" => g.resources = self.field(e, |d, v| d.string_list(v, &p, e.line)),
                _ => g.resource_names = self.field(e, |d, v| d.string_list(v, &p, e.line)),
            }
        }
        g
    }
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}
