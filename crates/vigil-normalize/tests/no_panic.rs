//! No parser panics on any input, and every non-empty line is accounted for.
use proptest::prelude::*;
use vigil_normalize::json_mapped::{JsonMappedParser, JsonMapping};
use vigil_normalize::{detect_format, parser_for, Dataset, Options, Parser, YearHint};

fn parsers() -> Vec<Box<dyn Parser>> {
    let opts = Options {
        max_open_events: 4,
        pid_cache_size: 8,
        ..Options::new(YearHint::Year(2024))
    };
    let mut v: Vec<Box<dyn Parser>> = Dataset::BUILTIN
        .iter()
        .map(|d| parser_for(d, &opts).unwrap())
        .collect();
    let m = JsonMapping::from_yaml(
        "dataset: t.x\ntimestamp:\n  field: a.0\n  format: \"%Y %j\"\nfields:\n  source.port: p\n  user.name: u.v.-1\n",
    )
    .unwrap();
    v.push(Box::new(JsonMappedParser::new(m)));
    v
}

/// Lines that look like each source, then get mangled.
fn line() -> impl Strategy<Value = String> {
    let prefix = prop_oneof![
        Just(String::new()),
        Just("Mar  1 12:00:00 host sshd[123]: ".to_string()),
        Just("Feb 29 23:59:60 h su(pam_unix)[1]: ".to_string()),
        Just("<38>1 2019-07-08T17:40:16.954167-04:00 h sshd 5 - - ".to_string()),
        Just("2024-03-01T12:00:00.123456+00:00 h sudo[1]: alice : ".to_string()),
        Just("type=SYSCALL msg=audit(1700000000.123:456): ".to_string()),
        Just("node=n type=EXECVE msg=audit(1.1:1): argc=99999999 a0=".to_string()),
        Just("type=SOCKADDR msg=audit(1.1:2): saddr=".to_string()),
        Just("type=EOE msg=audit(1.1:".to_string()),
        Just("#fields\tts\tid.orig_h\t".to_string()),
        Just("#separator \\x".to_string()),
        Just("2 123 eni-1 ".to_string()),
        Just("{\"verb\":\"get\",\"auditID\":".to_string()),
        Just("{\"a\":[".to_string()),
    ];
    let body = prop_oneof![
        any::<String>(),
        "[ -~\\t\\x1d\\x00]{0,120}",
        "(Failed|Accepted|Invalid|Connection closed by|message repeated 3 times: \\[|pam_unix\\(sshd:auth\\): authentication failure;| from | port |=|\"|'|\\(|\\)|\\[|\\]| |[0-9a-f:.]{1,12}|;|:|key=|a0=|msg='){0,16}",
    ];
    (prefix, body).prop_map(|(p, b)| format!("{p}{b}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn parsers_never_panic(lines in proptest::collection::vec(line(), 1..12)) {
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let _ = detect_format(&refs);
        for mut p in parsers() {
            let mut out = Vec::new();
            for (i, l) in lines.iter().enumerate() {
                p.push_line(l, i + 1, &mut out);
            }
            p.flush(&mut out);
            // One bad line never takes others with it: every result names a fed line.
            for r in &out {
                let n = match r { Ok(x) => x.line, Err(e) => e.line };
                prop_assert!(n >= 1 && n <= lines.len());
            }
        }
    }
}

#[test]
fn auditd_accounts_for_every_record_line() {
    // Lines in = lines in events + rejects, over a mixed, interleaved input.
    let text = "type=SYSCALL msg=audit(1.0:5): syscall=2 pid=1\nbad\ntype=PATH msg=audit(1.0:5): item=0 name=\"/x\"\ntype=USER_AUTH msg=audit(1.0:6): pid=1 msg='op=x res=failed'\ntype=EOE msg=audit(1.0:5): \ntype=EOE msg=audit(1.0:77): \n";
    let mut p = parser_for(&Dataset::Auditd, &Options::new(YearHint::Year(2024))).unwrap();
    let out = vigil_normalize::parse_all(p.as_mut(), text);
    let mut lines = 0;
    for r in &out {
        lines += match r {
            Ok(x) => x.doc["message"].as_str().unwrap().lines().count(),
            Err(_) => 1,
        };
    }
    assert_eq!(lines, 6);
    assert_eq!(out.len(), 4, "{out:#?}");
}
