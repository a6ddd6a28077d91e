//! The table form of an alert (`vigil detect --format table`).

use serde_json::Value;
use vigil_model::alert::Alert;

/// A table row for people: time, level, rule, who, what, where (read from the event when known).
pub fn alert_line_table(a: &Alert, doc: Option<&Value>) -> Vec<String> {
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    let from_doc = |pointers: &[&str]| {
        doc.and_then(|d| pointers.iter().find_map(|p| d.pointer(p)))
            .map(text)
            .unwrap_or_default()
    };
    let who = match from_doc(&["/user/username", "/user/name", "/source/ip"]) {
        w if w.is_empty() => a.group.values().map(text).collect::<Vec<_>>().join(" "),
        w => w,
    };
    let what = match doc.and_then(|d| d.get("objectRef")) {
        Some(obj) => {
            let part = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("");
            let mut s = format!("{} {}", from_doc(&["/verb"]), part("resource"));
            for k in ["subresource"] {
                if !part(k).is_empty() {
                    s = format!("{s}/{}", part(k));
                }
            }
            if !part("namespace").is_empty() || !part("name").is_empty() {
                s = format!("{s} {}/{}", part("namespace"), part("name"));
            }
            s
        }
        None if doc.is_none() => a
            .matched
            .iter()
            .map(|(k, v)| match v {
                Value::Array(xs) => {
                    format!("{k}: {}", xs.iter().map(text).collect::<Vec<_>>().join(","))
                }
                v => format!("{k}: {}", text(v)),
            })
            .collect::<Vec<_>>()
            .join("  "),
        None => from_doc(&["/event/action", "/verb", "/message"]),
    };
    let where_ = a
        .events
        .first()
        .map(|e| format!("{}:{}", e.file, e.line))
        .unwrap_or_default();
    vec![
        a.time.clone(),
        a.rule.level.clone(),
        a.rule.title.clone(),
        who,
        what,
        where_,
    ]
}
