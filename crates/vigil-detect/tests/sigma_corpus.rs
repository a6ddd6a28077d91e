//! Loads every SigmaHQ rule of the reference corpus ($VIGIL_SHARED/reference/sigma) and checks
//! that each one either compiles or is rejected for a reason on an explicit list.
//! Skips (and passes) when VIGIL_SHARED is not set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vigil_detect::{Config, RejectKind, RuleSet, RuleSource};

/// Reasons a reference rule may be left out, and why that is right.
const ACCEPTED: &[(RejectKind, &str)] = &[
    (
        RejectKind::NoSource,
        "the logsource (file_event, syslog, cron, Windows-only ...) has no Vigil dataset",
    ),
    (
        RejectKind::NearRemoved,
        "`near` was removed from the Sigma specification (temporal correlations replace it)",
    ),
    (
        RejectKind::NotYetSupported,
        "legacy sum()/avg() aggregations need value_sum/value_avg correlations (next issue)",
    ),
    (
        RejectKind::BadAggregation,
        "legacy aggregations that are not well-formed (no timeframe, `per` syntax)",
    ),
];

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")) {
            out.push(p);
        }
    }
}

#[test]
fn reference_corpus_compiles_or_is_rejected_for_a_listed_reason() {
    let Ok(shared) = std::env::var("VIGIL_SHARED") else {
        println!("VIGIL_SHARED is not set: skipping the SigmaHQ reference corpus test");
        return;
    };
    let root = Path::new(&shared).join("reference/sigma");
    let manifest = std::fs::read_to_string(root.join("MANIFEST.tsv")).expect("MANIFEST.tsv");
    let mut group_of: BTreeMap<String, String> = BTreeMap::new();
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() > 2 {
            group_of.insert(cols[1].to_string(), cols[0].to_string());
        }
    }
    let mut files = Vec::new();
    walk(&root, &mut files);
    assert!(!files.is_empty(), "no rules under {}", root.display());

    // group -> (loaded, rejected by kind)
    let mut table: BTreeMap<String, (usize, BTreeMap<RejectKind, usize>)> = BTreeMap::new();
    let mut bad = Vec::new();
    let mut loaded_total = 0;
    let mut rejected_total = 0;
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(&root).unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(f).unwrap();
        let (set, errors) = RuleSet::compile(&[RuleSource::new(&rel, text)], &Config::default());
        let group = group_of.get(&rel).cloned().unwrap_or_else(|| "?".into());
        let row = table.entry(group).or_default();
        row.0 += set.rules().len();
        loaded_total += set.rules().len();
        for e in &errors {
            rejected_total += 1;
            *row.1.entry(e.kind).or_default() += 1;
            let short: String = e.reason.chars().take(90).collect();
            *reasons.entry(format!("{}: {}", e.kind, short)).or_default() += 1;
            if !ACCEPTED.iter().any(|(k, _)| *k == e.kind) {
                bad.push(e.to_string());
            }
        }
        assert!(
            !set.rules().is_empty() || !errors.is_empty(),
            "{rel}: neither loaded nor rejected"
        );
    }

    println!("\nSigmaHQ reference corpus: {} files", files.len());
    println!(
        "{:<28} {:>6} {:>9} {:>9} {:>6} {:>9} {:>9} {:>7}",
        "group", "loaded", "no-source", "near", "later", "bad-aggr", "invalid", "other"
    );
    for (g, (loaded, rej)) in &table {
        let n = |k: RejectKind| rej.get(&k).copied().unwrap_or(0);
        let other: usize = rej
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k,
                    RejectKind::NoSource
                        | RejectKind::NearRemoved
                        | RejectKind::NotYetSupported
                        | RejectKind::BadAggregation
                        | RejectKind::Invalid
                )
            })
            .map(|(_, v)| v)
            .sum();
        println!(
            "{:<28} {:>6} {:>9} {:>9} {:>6} {:>9} {:>9} {:>7}",
            g,
            loaded,
            n(RejectKind::NoSource),
            n(RejectKind::NearRemoved),
            n(RejectKind::NotYetSupported),
            n(RejectKind::BadAggregation),
            n(RejectKind::Invalid),
            other
        );
    }
    println!("total: {loaded_total} loaded, {rejected_total} rejected");
    println!("rejection reasons:");
    for (r, n) in &reasons {
        println!("  {n:>4}  {r}");
    }
    assert_eq!(
        files.len(),
        group_of.len(),
        "MANIFEST.tsv and the files on disk disagree"
    );
    assert_eq!(
        loaded_total + rejected_total,
        files.len(),
        "one rule per file"
    );
    assert!(
        bad.is_empty(),
        "rules rejected for reasons not on the accepted list:\n{}",
        bad.join("\n")
    );
    // Every Kubernetes audit rule must load.
    let k8s = table.get("k8s_audit").map(|r| r.0).unwrap_or(0);
    assert_eq!(k8s, 16, "all 16 Kubernetes audit rules load");
}
