//! Unit tests of values and modifiers: encodings, windash, regular expressions and flags,
//! CIDR, numbers, comparisons and time parts, placeholders, modifier validation, and the
//! folded string sets.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::encoding::{base64, base64_offsets};
use super::*;

fn m(mods: &[&str], vals: &[RawValue]) -> Compiled {
    compile(
        &mods.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        vals,
        false,
        &HashMap::new(),
    )
    .unwrap()
}
fn s(x: &str) -> RawValue {
    RawValue::Str(x.into())
}
fn hit(c: &Compiled, v: Value) -> bool {
    c.matchers.iter().any(|m| m.matches(&v, &json!({})))
}

#[test]
fn base64_reference_values() {
    assert_eq!(base64(b"cmd"), "Y21k");
    assert_eq!(base64(b"ab"), "YWI=");
    assert_eq!(base64(b"a"), "YQ==");
    // pySigma's base64offset of "/bin/bash"
    assert_eq!(
        base64_offsets(b"/bin/bash"),
        vec!["L2Jpbi9iYXNo", "9iaW4vYmFza", "vYmluL2Jhc2"]
    );
    // Length not a multiple of three.
    assert_eq!(base64_offsets(b"ping"), vec!["cGluZ", "Bpbm", "waW5n"]);
}

#[test]
fn base64offset_contains_finds_value_anywhere() {
    let c = m(&["base64offset", "contains"], &[s("http://")]);
    for prefix in ["", "x", "xy", "xyz"] {
        let enc = base64(format!("{prefix}http://evil").as_bytes());
        assert!(hit(&c, json!(format!("cmd -e {enc}"))), "{prefix}");
    }
    assert!(!hit(&c, json!(base64(b"ftp://evil"))));
    // base64 output is case-sensitive
    let c = m(&["base64"], &[s("cmd")]);
    assert!(hit(&c, json!("Y21k")));
    assert!(!hit(&c, json!("y21k")));
}

#[test]
fn utf16_then_base64() {
    // "cmd" UTF-16LE = 63 00 6d 00 64 00 -> base64 "YwBtAGQA"
    let c = m(&["utf16le", "base64"], &[s("cmd")]);
    assert!(hit(&c, json!("YwBtAGQA")));
    let c = m(&["wide", "base64offset", "contains"], &[s("cmd")]);
    assert!(hit(
        &c,
        json!(format!(
            "-enc {}",
            base64(&[b'x', 0, b'c', 0, b'm', 0, b'd', 0, b'!', 0])
        ))
    ));
    // utf16 adds the FF FE byte order mark
    let c = m(&["utf16", "base64"], &[s("cmd")]);
    assert!(hit(
        &c,
        json!(base64(&[0xff, 0xfe, b'c', 0, b'm', 0, b'd', 0]))
    ));
    let c = m(&["utf16be", "base64"], &[s("cmd")]);
    assert!(hit(&c, json!(base64(&[0, b'c', 0, b'm', 0, b'd']))));
    assert!(compile(&["base64".into()], &[s("a*")], false, &HashMap::new()).is_err());
}

#[test]
fn windash_variants() {
    let c = m(&["windash", "contains"], &[s(" -exec ")]);
    for d in ["-", "/", "\u{2013}", "\u{2014}", "\u{2015}"] {
        assert!(hit(&c, json!(format!("find . {d}exec rm"))), "{d}");
    }
    // A dash inside a word is not a flag.
    let c = m(&["windash"], &[s("a-b")]);
    assert!(hit(&c, json!("a-b")));
    assert!(!hit(&c, json!("a/b")));
    // Two flags: 25 variants.
    let c = m(&["windash"], &[s("-a -b")]);
    assert!(hit(&c, json!("/a \u{2014}b")));
}

#[test]
fn regex_and_flags() {
    let c = m(&["re"], &[s("^ab+c$")]);
    assert!(hit(&c, json!("abbc")));
    assert!(
        !hit(&c, json!("ABBC")),
        "regex is case-sensitive by default"
    );
    let c = m(&["re", "i"], &[s("^ab+c$")]);
    assert!(hit(&c, json!("ABBC")));
    let c = m(&["re", "m"], &[s("^x$")]);
    assert!(hit(&c, json!("a\nx\nb")));
    let c = m(&["re"], &[s("^x$")]);
    assert!(!hit(&c, json!("a\nx\nb")));
    let c = m(&["re", "s"], &[s("a.b")]);
    assert!(hit(&c, json!("a\nb")));
    let c = m(&["re"], &[s("a.b")]);
    assert!(!hit(&c, json!("a\nb")));
    // Unanchored search.
    let c = m(&["re"], &[s("b+")]);
    assert!(hit(&c, json!("abbbc")));
    assert!(compile(&["re".into()], &[s("(")], false, &HashMap::new()).is_err());
    assert!(compile(
        &["contains".into(), "re".into()],
        &[s("a")],
        false,
        &HashMap::new()
    )
    .is_err());
}

#[test]
fn cidr_v4_v6() {
    let c = m(&["cidr"], &[s("10.0.0.0/8"), s("fe80::/10")]);
    assert!(hit(&c, json!("10.1.2.3")));
    assert!(!hit(&c, json!("11.1.2.3")));
    assert!(hit(&c, json!("fe80::1")));
    assert!(!hit(&c, json!("fc00::1")));
    assert!(hit(&c, json!("::ffff:10.9.9.9")));
    assert!(!hit(&c, json!("not an ip")));
    assert!(compile(
        &["cidr".into()],
        &[s("10.0.0.0/33")],
        false,
        &HashMap::new()
    )
    .is_err());
}

#[test]
fn numbers_strings_booleans() {
    let c = m(&[], &[RawValue::Num(42.0, "42".into())]);
    assert!(hit(&c, json!(42)));
    assert!(
        !hit(&c, json!(42.0)),
        "integers match integral JSON numbers only"
    );
    assert!(hit(&c, json!("42")));
    assert!(hit(&c, json!(" +42")));
    assert!(!hit(&c, json!("42.0")));
    let c = m(&[], &[RawValue::Num(1.5, "1.5".into())]);
    assert!(hit(&c, json!(1.5)));
    assert!(hit(&c, json!("1.50")));
    assert!(!hit(&c, json!("420")));
    assert!(!hit(&c, json!(43)));
    let c = m(&[], &[s("42")]);
    assert!(hit(&c, json!(42)));
    assert!(hit(&c, json!("42")));
    let c = m(&[], &[RawValue::Bool(true)]);
    assert!(hit(&c, json!(true)));
    assert!(hit(&c, json!("True")));
    assert!(!hit(&c, json!(false)));
    let c = m(&[], &[s("true")]);
    assert!(hit(&c, json!(true)));
}

#[test]
fn comparisons_and_time_parts() {
    let c = m(&["gt"], &[RawValue::Num(10.0, "10".into())]);
    assert!(hit(&c, json!(11)));
    assert!(hit(&c, json!("10.5")));
    assert!(!hit(&c, json!(10)));
    let c = m(&["lte"], &[RawValue::Num(10.0, "10".into())]);
    assert!(hit(&c, json!(10)));
    assert!(!hit(&c, json!("abc")));
    assert!(compile(&["gt".into()], &[s("abc")], false, &HashMap::new()).is_err());
    let c = m(&["hour"], &[RawValue::Num(3.0, "3".into())]);
    assert!(hit(&c, json!("2024-05-06T03:04:05Z")));
    assert!(hit(&c, json!("2024-05-06T05:04:05+02:00")));
    assert!(!hit(&c, json!("2024-05-06T04:04:05Z")));
    let c = m(&["minute"], &[RawValue::Num(4.0, "4".into())]);
    assert!(hit(&c, json!("2024-05-06T03:04:05.123456Z")));
    let c = m(&["day"], &[RawValue::Num(6.0, "6".into())]);
    assert!(hit(&c, json!(1714964645)));
    let c = m(&["month"], &[RawValue::Num(5.0, "5".into())]);
    assert!(hit(&c, json!(1714964645000i64)));
    let c = m(&["year"], &[RawValue::Num(2024.0, "2024".into())]);
    assert!(hit(&c, json!("2024-05-06T03:04:05Z")));
    let c = m(&["week"], &[RawValue::Num(19.0, "19".into())]);
    assert!(hit(&c, json!("2024-05-06T03:04:05Z")));
    let c = m(&["hour", "gte"], &[RawValue::Num(22.0, "22".into())]);
    assert!(hit(&c, json!("2024-05-06T23:00:00Z")));
    assert!(!hit(&c, json!("2024-05-06T21:00:00Z")));
}

#[test]
fn expand_placeholders() {
    let mut ph = HashMap::new();
    ph.insert(
        "Admins".to_string(),
        vec!["root".to_string(), "adm_*".to_string()],
    );
    let c = compile(&["expand".into()], &[s("%Admins%")], false, &ph).unwrap();
    assert!(hit(&c, json!("root")));
    assert!(hit(&c, json!("adm_bob")));
    assert!(!hit(&c, json!("bob")));
    let c = compile(&["expand".into()], &[s(r"\%plain%Admins%")], false, &ph).unwrap();
    assert!(hit(&c, json!("%plainroot")));
    let e = compile(&["expand".into()], &[s("%Nope%")], false, &ph).unwrap_err();
    assert!(e.starts_with("placeholder:"), "{e}");
    // Without expand, percent signs are literal.
    let c = m(&[], &[s("%Admins%")]);
    assert!(hit(&c, json!("%admins%")));
}

#[test]
fn modifiers_are_validated() {
    for (mods, v) in [
        (vec!["nope"], s("x")),
        (vec!["exists", "contains"], RawValue::Bool(true)),
        (vec!["exists"], s("maybe")),
        (vec!["i"], s("x")),
        (vec!["fieldref"], s("a*")),
        (vec!["utf16le"], s("é")),
        (vec!["hour"], s("x")),
    ] {
        let mods: Vec<String> = mods.into_iter().map(String::from).collect();
        assert!(
            compile(&mods, &[v], false, &HashMap::new()).is_err(),
            "{mods:?}"
        );
    }
}

#[test]
fn str_set_matches_like_individual_patterns() {
    let vals: Vec<RawValue> = [
        "alpha", "*beta*", "gamma", "*delta*", "EPS", "*zeta*", "eta*",
    ]
    .iter()
    .map(|x| s(x))
    .collect();
    let c = m(&[], &vals);
    assert!(matches!(c.matchers[0], Matcher::StrSet(_)));
    for (v, want) in [
        ("ALPHA", true),
        ("xxBETAyy", true),
        ("eps", true),
        ("eta-1", true),
        ("zzzetazz", true),
        ("alphab", false),
        ("bet", false),
        ("xdélTAx", false),
        ("xdeltaé", true),
    ] {
        assert_eq!(hit(&c, json!(v)), want, "{v}");
    }
}
