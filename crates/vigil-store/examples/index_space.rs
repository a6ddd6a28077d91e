//! Bytes of the index per field: `cargo run --release -p vigil-store --example index_space DIR`.

fn main() {
    let dir = std::env::args().nth(1).expect("a data directory");
    let index = tantivy::Index::open_in_dir(std::path::Path::new(&dir).join("index")).unwrap();
    let reader = index.reader().unwrap();
    let searcher = reader.searcher();
    let usage = searcher.space_usage().unwrap();
    let docs = searcher.num_docs().max(1) as f64;
    let mut per_field: std::collections::BTreeMap<String, u64> = Default::default();
    for seg in usage.segments() {
        for (what, fields) in [
            ("postings", seg.postings()),
            ("termdict", seg.termdict()),
            ("fast", seg.fast_fields()),
            ("positions", seg.positions()),
            ("fieldnorms", seg.fieldnorms()),
        ] {
            for u in fields.fields() {
                let name = u.field_name().to_string();
                *per_field.entry(format!("{name} {what}")).or_default() += u.total().get_bytes();
            }
        }
        *per_field.entry("(store)".into()).or_default() += seg.store().total().get_bytes();
    }
    let mut rows: Vec<_> = per_field.into_iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    println!("{} docs, {} bytes", docs, usage.total().get_bytes());
    for (k, v) in rows {
        println!("{:>12} {:>7.2} B/doc  {k}", v, v as f64 / docs);
    }
}
