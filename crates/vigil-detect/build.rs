//! Embeds the built-in rule pack (`rules/`) and its fixtures into the library, so the `vigil`
//! binary carries them: the list is generated here because Rust has no `include_dir!`.

use std::fmt::Write;
use std::path::{Path, PathBuf};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("rules");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    walk(&root, &mut files);
    let mut rules = String::from("pub static RULES: &[(&str, &str)] = &[\n");
    let mut fixtures = String::from("pub static FIXTURES: &[(&str, &str, &str)] = &[\n");
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let rel = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        // Opt-in rules (noisy until configured) ship as files, not in the default pack.
        if rel.starts_with("optional/") {
            continue;
        }
        let abs = path.display().to_string();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let parts: Vec<&str> = rel.split('/').collect();
        if let Some(pos) = parts.iter().position(|p| *p == "tests") {
            // rules/<pack>/tests/<rule file stem>/<fixture>.json (one event) or .jsonl (a
            // sequence of events, for correlations)
            if (ext == "json" || ext == "jsonl") && parts.len() == pos + 3 {
                let rule = format!("{}/{}.yml", parts[..pos].join("/"), parts[pos + 1]);
                writeln!(
                    fixtures,
                    "    ({rule:?}, {:?}, include_str!({abs:?})),",
                    parts[pos + 2]
                )
                .unwrap();
            }
        } else if (ext == "yml" || ext == "yaml") && rel != "placeholders.yaml" {
            writeln!(rules, "    ({rel:?}, include_str!({abs:?})),").unwrap();
        }
    }
    rules.push_str("];\n");
    fixtures.push_str("];\n");
    let placeholders = format!(
        "pub static PLACEHOLDERS: &str = include_str!({:?});\n",
        root.join("placeholders.yaml").display().to_string()
    );
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("builtin_rules.rs");
    std::fs::write(out, rules + &fixtures + &placeholders).unwrap();
}
