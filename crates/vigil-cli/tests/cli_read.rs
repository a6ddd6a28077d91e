//! How `vigil detect` reads its inputs: mapped into memory or read, the same records.

mod common;

use common::{text, vigil, EXAMPLE, SCENARIO};

/// Input files are memory-mapped unless `--no-mmap` says otherwise; both ways read the same
/// records: the same alerts, rejections and summary, on one thread or several.
#[test]
fn mapped_and_read_inputs_give_the_same_output() {
    let dir = tempfile::tempdir().unwrap();
    // Every kind of line the general path reads: CRLF ends, blank lines, a pretty-printed
    // EventList, invalid UTF-8, a line that is not JSON, a line cut short after a `}` (a torn
    // write) before a pretty-printed event, and a last line without its end.
    let example =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(EXAMPLE))
            .unwrap();
    let lines: Vec<&str> = example.lines().collect();
    let mut edge = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        match i % 7 {
            0 => edge.extend_from_slice(format!("{line}\r\n").as_bytes()),
            1 => edge.extend_from_slice(
                format!("{{\n  \"kind\": \"EventList\",\n  \"items\": [\n    {line}\n  ]\n}}\n")
                    .as_bytes(),
            ),
            2 => edge.extend_from_slice(b"\n  \n{\"auditID\":\"\xff\"}\nnot json\n"),
            3 => {
                let torn = &line[..=line.find('}').unwrap()];
                let pretty = line.replace(",\"", ",\n  \"");
                edge.extend_from_slice(format!("{torn}\n{pretty}\n{torn}\r\n{line}\n").as_bytes())
            }
            _ => edge.extend_from_slice(format!("{line}\n").as_bytes()),
        }
    }
    edge.extend_from_slice(lines[0].as_bytes());
    let edge_path = dir.path().join("edge.jsonl");
    std::fs::write(&edge_path, &edge).unwrap();
    let edge_path = edge_path.to_str().unwrap();
    let scenario = SCENARIO;
    let cases: Vec<Vec<&str>> = vec![
        vec![EXAMPLE],
        vec![edge_path],
        vec!["tests/fixtures/mixed-audit.log"],
        scenario.to_vec(),
        vec![EXAMPLE, edge_path],
    ];
    for case in cases {
        for threads in ["1", "2"] {
            let run = |extra: &[&str]| {
                let mut args = vec!["detect", "--threads", threads];
                args.extend(extra);
                args.extend(&case);
                vigil(&args)
            };
            let (mapped, read) = (run(&[]), run(&["--no-mmap"]));
            assert!(!mapped.stdout.is_empty(), "{case:?} raises alerts");
            assert!(
                mapped.stdout == read.stdout,
                "{case:?} --threads {threads}: mapped and read outputs differ"
            );
            assert_eq!(text(&mapped.stderr), text(&read.stderr), "{case:?}");
            assert_eq!(mapped.status.code(), read.status.code(), "{case:?}");
        }
    }
}
