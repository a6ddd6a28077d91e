//! Logsource routing and field mappings, read from the YAML data files in `mappings/`.

use std::collections::HashMap;

use vigil_model::yaml::{self, Node};

/// The mapping files built into the crate.
pub const BUILTIN_FILES: &[(&str, &str)] = &[
    (
        "logsources.yaml",
        include_str!("../mappings/logsources.yaml"),
    ),
    (
        "kubernetes.yaml",
        include_str!("../mappings/kubernetes.yaml"),
    ),
    ("linux.yaml", include_str!("../mappings/linux.yaml")),
    ("zeek.yaml", include_str!("../mappings/zeek.yaml")),
    (
        "aws_vpcflow.yaml",
        include_str!("../mappings/aws_vpcflow.yaml"),
    ),
];

#[derive(Debug, Clone)]
pub struct Mappings {
    pub datasets: Vec<DatasetSpec>,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
pub struct DatasetSpec {
    pub name: String,
    pub fields: HashMap<String, Vec<String>>,
    pub values: Vec<ValueRewrite>,
    pub time: Vec<String>,
    pub id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ValueRewrite {
    pub field: String,
    /// Compared case-insensitively with the rule's value.
    pub value: String,
    pub to_field: String,
    pub to_value: String,
}

#[derive(Debug, Clone)]
enum Want {
    Absent,
    Any,
    OneOf(Vec<String>),
}

#[derive(Debug, Clone)]
struct Entry {
    product: Want,
    service: Want,
    category: Want,
    datasets: Vec<usize>,
}

/// A rule's logsource (lowercased values).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LogSource {
    pub product: Option<String>,
    pub service: Option<String>,
    pub category: Option<String>,
}

impl std::fmt::Display for LogSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = vec![];
        for (k, v) in [
            ("product", &self.product),
            ("service", &self.service),
            ("category", &self.category),
        ] {
            if let Some(v) = v {
                parts.push(format!("{k}: {v}"));
            }
        }
        if parts.is_empty() {
            f.write_str("(empty)")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

fn want_matches(w: &Want, v: &Option<String>) -> bool {
    match (w, v) {
        (Want::Any, _) => true,
        (Want::Absent, None) => true,
        (Want::Absent, Some(_)) => false,
        (Want::OneOf(_), None) => false,
        (Want::OneOf(list), Some(v)) => list.iter().any(|x| x == v),
    }
}

fn strings(n: &Node) -> Option<Vec<String>> {
    if let Some(s) = n.as_scalar() {
        if s.is_null() {
            return None;
        }
        return Some(vec![s.text.clone()]);
    }
    n.as_seq()?
        .iter()
        .map(|x| x.as_scalar().map(|s| s.text.clone()))
        .collect()
}

impl Mappings {
    /// The built-in mappings.
    pub fn builtin() -> Mappings {
        Mappings::load(BUILTIN_FILES).expect("built-in mapping files are valid")
    }

    /// Loads mappings from `(file name, text)` pairs; one must be `logsources.yaml`.
    pub fn load(files: &[(&str, &str)]) -> Result<Mappings, String> {
        let get = |name: &str| -> Result<Node, String> {
            let text = files
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| *t)
                .ok_or_else(|| format!("mapping file {name} is missing"))?;
            yaml::parse_document(text)
                .map_err(|e| format!("{name}: {e}"))?
                .ok_or_else(|| format!("{name} is empty"))
        };
        let root = get("logsources.yaml")?;
        let ds_node = root
            .get("datasets")
            .and_then(Node::as_map)
            .ok_or("logsources.yaml: `datasets` must be a mapping")?;
        let mut datasets = Vec::new();
        for (k, v) in ds_node {
            let name = k.as_scalar().map(|s| s.text.clone()).unwrap_or_default();
            let mut spec = DatasetSpec {
                name: name.clone(),
                fields: HashMap::new(),
                values: vec![],
                time: v.get("time").and_then(strings).unwrap_or_default(),
                id: v
                    .get("id")
                    .and_then(|n| n.as_scalar())
                    .map(|s| s.text.clone()),
            };
            if let Some(file) = v.get("fields").and_then(|n| n.as_scalar()) {
                let f = get(&file.text)?;
                if let Some(m) = f.get("fields").and_then(Node::as_map) {
                    for (fk, fv) in m {
                        let key = fk.as_scalar().map(|s| s.text.clone()).unwrap_or_default();
                        let paths = strings(fv).ok_or_else(|| {
                            format!(
                                "{}:{}: field {key}: expected a path or list",
                                file.text, fv.line
                            )
                        })?;
                        spec.fields.insert(key, paths);
                    }
                }
                if let Some(vals) = f.get("values").and_then(Node::as_seq) {
                    for r in vals {
                        let s = |n: Option<&Node>| {
                            n.and_then(|x| x.as_scalar()).map(|x| x.text.clone())
                        };
                        let to = r.get("to");
                        match (
                            s(r.get("field")),
                            s(r.get("value")),
                            s(to.and_then(|t| t.get("field"))),
                            s(to.and_then(|t| t.get("value"))),
                        ) {
                            (Some(field), Some(value), Some(to_field), Some(to_value)) => {
                                spec.values.push(ValueRewrite {
                                    field,
                                    value,
                                    to_field,
                                    to_value,
                                })
                            }
                            _ => {
                                return Err(format!(
                                    "{}:{}: a value rewrite needs field, value, to.field, to.value",
                                    file.text, r.line
                                ))
                            }
                        }
                    }
                }
            }
            datasets.push(spec);
        }
        let mut entries = Vec::new();
        for e in root
            .get("logsources")
            .and_then(Node::as_seq)
            .ok_or("logsources.yaml: `logsources` must be a list")?
        {
            let want = |key: &str| match e.get(key) {
                None => Want::Absent,
                Some(n) if n.as_scalar().is_some_and(|s| s.text == "*") => Want::Any,
                Some(n) => Want::OneOf(
                    strings(n)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|s| s.to_lowercase())
                        .collect(),
                ),
            };
            let mut ds = Vec::new();
            for name in e.get("datasets").and_then(strings).unwrap_or_default() {
                let i = datasets
                    .iter()
                    .position(|d: &DatasetSpec| d.name == name)
                    .ok_or_else(|| format!("logsources.yaml:{}: unknown dataset {name}", e.line))?;
                ds.push(i);
            }
            entries.push(Entry {
                product: want("product"),
                service: want("service"),
                category: want("category"),
                datasets: ds,
            });
        }
        Ok(Mappings { datasets, entries })
    }

    /// The datasets a logsource reads (indices into `datasets`), in order, without repeats.
    pub fn route(&self, ls: &LogSource) -> Vec<usize> {
        let mut out = Vec::new();
        for e in &self.entries {
            if want_matches(&e.product, &ls.product)
                && want_matches(&e.service, &ls.service)
                && want_matches(&e.category, &ls.category)
            {
                for &d in &e.datasets {
                    if !out.contains(&d) {
                        out.push(d);
                    }
                }
            }
        }
        out
    }

    pub fn dataset_index(&self, name: &str) -> Option<usize> {
        self.datasets.iter().position(|d| d.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ls(p: Option<&str>, s: Option<&str>, c: Option<&str>) -> LogSource {
        LogSource {
            product: p.map(Into::into),
            service: s.map(Into::into),
            category: c.map(Into::into),
        }
    }

    fn names(m: &Mappings, l: &LogSource) -> Vec<String> {
        m.route(l)
            .into_iter()
            .map(|i| m.datasets[i].name.clone())
            .collect()
    }

    #[test]
    fn builtin_routing() {
        let m = Mappings::builtin();
        assert_eq!(
            names(&m, &ls(Some("kubernetes"), Some("audit"), None)),
            ["k8s.audit"]
        );
        assert_eq!(
            names(
                &m,
                &ls(Some("kubernetes"), Some("audit"), Some("application"))
            ),
            ["k8s.audit"]
        );
        assert_eq!(
            names(&m, &ls(Some("linux"), Some("sshd"), None)),
            ["linux.auth"]
        );
        assert_eq!(
            names(&m, &ls(Some("linux"), Some("auditd"), None)),
            ["auditd"]
        );
        assert_eq!(
            names(&m, &ls(Some("linux"), None, Some("process_creation"))),
            ["auditd"]
        );
        assert_eq!(
            names(&m, &ls(Some("linux"), None, None)),
            ["linux.auth", "auditd"]
        );
        assert!(names(&m, &ls(Some("linux"), None, Some("file_event"))).is_empty());
        assert!(names(&m, &ls(Some("linux"), Some("clamav"), None)).is_empty());
        assert_eq!(
            names(&m, &ls(None, None, Some("firewall"))),
            ["zeek.conn", "aws.vpcflow"]
        );
        assert_eq!(
            names(&m, &ls(Some("linux"), None, Some("network_connection"))),
            ["zeek.conn", "aws.vpcflow"]
        );
        assert!(names(&m, &ls(Some("windows"), None, Some("process_creation"))).is_empty());
        let k = &m.datasets[m.dataset_index("k8s.audit").unwrap()];
        assert_eq!(k.fields["apiGroup"], ["objectRef.apiGroup"]);
        assert_eq!(k.values.len(), 1);
    }
}
