use super::*;

#[test]
fn a_missing_manifest_is_named() {
    let a = archive(&[("events.jsonl".into(), b"{}\n".to_vec())], 0).unwrap();
    let v = verify(&a, None);
    assert_eq!(
        v.problems,
        ["manifest.json: missing (nothing can be checked)"]
    );
    assert!(verify(b"not gzip", None).problems[0].starts_with("not a gzip archive"));
}
