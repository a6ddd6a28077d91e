//! Unit tests of the prefilter's helpers: the poison list's premise, the fractional-number
//! check, the clean runs literals are cut from, and the anchor search loop with each searcher.

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

mod searchers {
    use super::super::{anchor, Searcher};
    use proptest::prelude::*;

    /// Every (anchor, start) the scan's loop visits with this searcher.
    fn visits(s: &Searcher, anchors: &[Vec<u8>], text: &[u8]) -> Vec<(usize, usize)> {
        let restart = anchor::restarts(anchors);
        let mut out = Vec::new();
        let mut at = 0;
        while let Some((a, start)) = s.find(text, at) {
            out.push((a, start));
            at = start + restart[a];
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// The scan's loop reports every anchor occurrence, with Teddy (where the CPU has it)
        /// and with the automaton used elsewhere.
        #[test]
        fn every_anchor_occurrence_is_visited(
            anchors in prop::collection::hash_set("[abc\"]{4}", 1..40),
            text in "[abc\"x]{0,300}",
        ) {
            let anchors: Vec<Vec<u8>> = anchors.into_iter().map(String::into_bytes).collect();
            let text = text.as_bytes();
            let mut want = Vec::new();
            for start in 0..text.len() {
                for (a, p) in anchors.iter().enumerate() {
                    if text[start..].starts_with(p) {
                        want.push((a, start));
                    }
                }
            }
            let auto = Searcher::Automaton(
                aho_corasick::AhoCorasick::builder()
                    .match_kind(aho_corasick::MatchKind::LeftmostFirst)
                    .build(&anchors)
                    .unwrap(),
            );
            prop_assert_eq!(visits(&auto, &anchors, text), want.clone());
            for fat in [None, Some(true)] {
                let packed = aho_corasick::packed::Config::new()
                    .only_teddy_fat(fat)
                    .builder()
                    .extend(&anchors)
                    .build();
                if let Some(p) = packed {
                    prop_assert_eq!(visits(&Searcher::Packed(p), &anchors, text), want.clone());
                }
            }
        }
    }
}

mod short_compare {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The inlined comparison agrees with `==`, for equal strings and for strings that
        /// differ in one byte anywhere (the first and last words overlap for 8-16 bytes).
        #[test]
        fn same_bytes_is_equality(
            a in prop::collection::vec(any::<u8>(), 0..40),
            flip in any::<prop::sample::Index>(),
            other in prop::collection::vec(any::<u8>(), 0..40),
        ) {
            prop_assert!(super::super::same_bytes(&a, &a));
            prop_assert_eq!(super::super::same_bytes(&a, &other), a == other);
            if !a.is_empty() {
                let mut b = a.clone();
                let i = flip.index(b.len());
                b[i] ^= 1;
                prop_assert!(!super::super::same_bytes(&a, &b));
            }
        }
    }
}
