//! `cargo run -p vigil-normalize --example normalize -- FILE [YEAR]`: detects
//! the format from the first lines and prints one JSON document a line
//! (rejects go to standard error).
use vigil_normalize::{detect_format, parse_all, parser_for, Options, YearHint};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: normalize FILE [YEAR]");
        std::process::exit(2);
    };
    let text = std::fs::read(&path).map(|b| String::from_utf8_lossy(&b).into_owned());
    let text = text.unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(1)
    });
    let year = match args.next().and_then(|y| y.parse().ok()) {
        Some(y) => YearHint::Year(y),
        None => YearHint::Reference(chrono::Utc::now()),
    };
    let sample: Vec<&str> = text.lines().take(20).collect();
    let Some(dataset) = detect_format(&sample) else {
        eprintln!("{path}: unknown format");
        std::process::exit(1)
    };
    let mut parser = parser_for(&dataset, &Options::new(year)).expect("built-in dataset");
    for r in parse_all(parser.as_mut(), &text) {
        match r {
            Ok(p) => println!("{}", p.doc),
            Err(e) => eprintln!("{path}: {e}"),
        }
    }
}
