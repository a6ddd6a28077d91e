//! Unit tests of the prefilter's helpers: the poison list's premise, the fractional-number
//! check and the clean runs literals are cut from.

use super::cnf::clean_run;
use super::scan::has_odd_numbers;

#[test]
fn only_two_characters_lowercase_into_ascii() {
    // The poison list relies on this: no other non-ASCII character has a lowercase form
    // containing an ASCII character.
    let mut found = Vec::new();
    for c in (0u32..=0x10FFFF).filter_map(char::from_u32) {
        if !c.is_ascii() && c.to_lowercase().any(|l| l.is_ascii()) {
            found.push(c);
        }
    }
    assert_eq!(found, vec!['\u{130}', '\u{212A}']);
}

#[test]
fn odd_numbers() {
    assert!(!has_odd_numbers(r#"{"a":401,"b":"4.01e2","c":[1,-2]}"#));
    assert!(has_odd_numbers(r#"{"a":4.01e2}"#));
    assert!(has_odd_numbers(r#"{"a":401.0}"#));
    assert!(has_odd_numbers(r#"{"a":1234567890123456789}"#));
    assert!(!has_odd_numbers(r#"{"a":"x\"1.5","b":true}"#));
}

#[test]
fn clean_runs() {
    assert_eq!(clean_run("ab\"cdef").as_deref(), Some("cdef"));
    assert_eq!(
        clean_run("C:\\Windows\\system32").as_deref(),
        Some("system32")
    );
    assert_eq!(clean_run("é"), None);
    assert_eq!(clean_run("ÉcoleX"), Some("colex".into()));
}
