//! The string-aware bracket count behind `LineAssembler`'s completeness shortcut, 64 bytes at a
//! time: per block, bit masks of quotes, backslashes and brackets (SSE2 on x86_64), the inside
//! of strings by a prefix XOR of the quotes, and only the few brackets outside strings visited
//! one by one. A block holding a backslash (rare in audit logs) is walked byte by byte, which
//! also carries an escape across the block's end. Same answer as [`closes_at_end_bytewise`],
//! the plain definition, which a property test compares it with.

/// Whether `text` is `{`, then anything whose string-aware bracket count first returns to zero
/// at its last non-blank byte (see `closes_at_end` in the parent module).
pub(super) fn closes_at_end(text: &str) -> bool {
    let b = text.trim_end().as_bytes();
    if b.first() != Some(&b'{') {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("pclmulqdq")
        && std::arch::is_x86_feature_detected!("popcnt")
    {
        // SAFETY: the CPU has AVX2, PCLMULQDQ and POPCNT.
        return unsafe { count_avx2(b) };
    }
    count(b, masks, prefix_xor)
}

/// [`count`] with 32-byte masks, a carry-less multiplication for the prefix XOR, and the
/// POPCNT instruction for `count_ones` (without it, a dozen instructions each).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,pclmulqdq,popcnt")]
unsafe fn count_avx2(b: &[u8]) -> bool {
    // SAFETY: the caller checked that the CPU has AVX2, PCLMULQDQ and POPCNT.
    count(
        b,
        |block| unsafe { masks_avx2(block) },
        |x| unsafe { prefix_xor_clmul(x) },
    )
}

/// The count over `b` (starting with `{`), block by block; `pxor` is [`prefix_xor`].
#[inline(always)]
fn count(b: &[u8], masks: impl Fn(&[u8]) -> Masks, pxor: impl Fn(u64) -> u64) -> bool {
    let mut st = State::default();
    let mut blocks = b.chunks_exact(64);
    let mut base = 0;
    for block in blocks.by_ref() {
        if let Some(end) = st.block(block, masks(block), base, &pxor) {
            return end + 1 == b.len();
        }
        base += 64;
    }
    let rest = blocks.remainder();
    if !rest.is_empty() {
        // Blanks are neither quotes, backslashes nor brackets.
        let mut last = [b' '; 64];
        last[..rest.len()].copy_from_slice(rest);
        if let Some(end) = st.block(&last, masks(&last), base, &pxor) {
            return end + 1 == b.len();
        }
    }
    false
}

#[derive(Default)]
struct State {
    depth: usize,
    in_string: bool,
    /// The previous byte was a backslash inside a string.
    escape: bool,
}

/// Per byte of a 64-byte block, one bit: quotes, backslashes, `{` or `[`, `}` or `]`.
#[derive(Default)]
struct Masks {
    quote: u64,
    backslash: u64,
    open: u64,
    close: u64,
}

impl Masks {
    /// Adds the masks of the part of the block starting at byte `at`.
    #[inline(always)]
    fn add(&mut self, at: usize, [quote, backslash, open, close]: [u64; 4]) {
        self.quote |= quote << at;
        self.backslash |= backslash << at;
        self.open |= open << at;
        self.close |= close << at;
    }
}

#[cfg(target_arch = "x86_64")]
fn masks(block: &[u8]) -> Masks {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let mut m = Masks::default();
    for (i, part) in block.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is part of the x86_64 baseline; `part` is 16 readable bytes and the
        // load has no alignment requirement.
        let found = unsafe {
            let v = _mm_loadu_si128(part.as_ptr().cast::<__m128i>());
            // `[` and `]` are `{` and `}` without the 0x20 bit; no other byte becomes one
            // with it.
            let folded = _mm_or_si128(v, _mm_set1_epi8(0x20));
            [(v, b'"'), (v, b'\\'), (folded, b'{'), (folded, b'}')].map(|(x, c)| {
                u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8(c as i8))) as u16)
            })
        };
        m.add(16 * i, found);
    }
    m
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn masks_avx2(block: &[u8]) -> Masks {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256,
        _mm256_set1_epi8,
    };
    let mut m = Masks::default();
    for (i, part) in block.chunks_exact(32).enumerate() {
        // SAFETY: `part` is 32 readable bytes; the load has no alignment requirement.
        let v = unsafe { _mm256_loadu_si256(part.as_ptr().cast::<__m256i>()) };
        // As in `masks`: `[` and `]` are `{` and `}` without the 0x20 bit.
        let folded = _mm256_or_si256(v, _mm256_set1_epi8(0x20));
        let found = [(v, b'"'), (v, b'\\'), (folded, b'{'), (folded, b'}')].map(|(x, c)| {
            u64::from(_mm256_movemask_epi8(_mm256_cmpeq_epi8(x, _mm256_set1_epi8(c as i8))) as u32)
        });
        m.add(32 * i, found);
    }
    m
}

#[cfg(not(target_arch = "x86_64"))]
fn masks(block: &[u8]) -> Masks {
    let mut m = Masks::default();
    for (i, &c) in block.iter().enumerate() {
        let bit = 1u64 << i;
        match c {
            b'"' => m.quote |= bit,
            b'\\' => m.backslash |= bit,
            b'{' | b'[' => m.open |= bit,
            b'}' | b']' => m.close |= bit,
            _ => {}
        }
    }
    m
}

/// Each bit set when an odd number of bits at or below it are set in `x`.
fn prefix_xor(mut x: u64) -> u64 {
    for s in [1, 2, 4, 8, 16, 32] {
        x ^= x << s;
    }
    x
}

/// [`prefix_xor`] in one instruction instead of a chain of twelve: bit `i` of the carry-less
/// product of `x` and all ones is the XOR of bits `0..=i` of `x`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq")]
#[inline]
unsafe fn prefix_xor_clmul(x: u64) -> u64 {
    use std::arch::x86_64::{
        _mm_clmulepi64_si128, _mm_cvtsi128_si64, _mm_set1_epi8, _mm_set_epi64x,
    };
    let product = _mm_clmulepi64_si128(_mm_set_epi64x(0, x as i64), _mm_set1_epi8(-1), 0);
    _mm_cvtsi128_si64(product) as u64
}

impl State {
    /// Runs one 64-byte block starting at `base`; the position where the depth returns to zero,
    /// if it does in this block.
    #[inline(always)]
    fn block(
        &mut self,
        block: &[u8],
        m: Masks,
        base: usize,
        pxor: impl Fn(u64) -> u64,
    ) -> Option<usize> {
        if m.backslash != 0 || self.escape {
            return self.bytewise(block, base);
        }
        // Bits inside strings: from an opening quote (included) to its closing one (excluded).
        let mut inside = pxor(m.quote);
        if self.in_string {
            inside = !inside;
        }
        self.in_string = inside >> 63 != 0;
        let open = m.open & !inside;
        let close = m.close & !inside;
        let closes = close.count_ones() as usize;
        // The depth can only return to zero at a close, so a block with fewer closes than the
        // depth is skipped whole. Otherwise each close is visited with the depth after it:
        // the opens before it less the closes up to it. (Visiting every bracket and branching
        // on its kind mispredicted about once a bracket.)
        if closes >= self.depth {
            let mut rest = close;
            let mut closed = 0;
            while rest != 0 {
                let i = rest.trailing_zeros() as usize;
                closed += 1;
                let opened = (open & ((1u64 << i) - 1)).count_ones() as usize;
                if self.depth + opened == closed {
                    return Some(base + i);
                }
                rest &= rest - 1;
            }
        }
        // No return to zero: every close left the depth above it, so this cannot underflow.
        self.depth = self.depth + open.count_ones() as usize - closes;
        None
    }

    fn bytewise(&mut self, block: &[u8], base: usize) -> Option<usize> {
        for (i, &c) in block.iter().enumerate() {
            if self.escape {
                self.escape = false;
            } else if self.in_string {
                match c {
                    b'\\' => self.escape = true,
                    b'"' => self.in_string = false,
                    _ => {}
                }
            } else {
                match c {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => {
                        self.depth -= 1;
                        if self.depth == 0 {
                            return Some(base + i);
                        }
                    }
                    _ => {}
                }
            }
        }
        None
    }
}

/// The definition, one byte at a time (kept for the property test).
#[cfg(test)]
fn closes_at_end_bytewise(text: &str) -> bool {
    let b = text.trim_end().as_bytes();
    if b.first() != Some(&b'{') {
        return false;
    }
    let mut st = State::default();
    st.bytewise(b, 0).is_some_and(|end| end + 1 == b.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn strings_escapes_and_blocks() {
        let long = "x".repeat(70);
        // Ends in the upper half of a block, and a bracket in every half.
        let (mid, list) = ("x".repeat(40), "[1],".repeat(25));
        for (text, want) in [
            (r#"{"a":"}"}"#.to_string(), true),
            (r#"{"a":"}"#.to_string(), false),
            (r#"{"a":"\"}"}"#.to_string(), true),
            (r#"{"a":"\\"}"#.to_string(), true),
            (r#"{"a":[1,{}]} "#.to_string(), true),
            (r#"{"a":1}}"#.to_string(), false),
            (format!(r#"{{"a":"{long}\"{long}"}}"#), true),
            (format!(r#"{{"a":"{long}"}}"#), true),
            (format!(r#"{{"a":"{long}}}"#), false),
            ("[]".to_string(), false),
            (format!(r#"{{"a":"{mid}"}}"#), true),
            (format!(r#"{{"a":"{mid}"}}}}"#), false),
            (format!(r#"{{"a":[{list}1]}}"#), true),
            (format!(r#"{{"a":[{list}1]}} }}"#), false),
        ] {
            assert_eq!(closes_at_end(&text), want, "{text}");
            assert_eq!(closes_at_end_bytewise(&text), want, "{text}");
            if text.starts_with('{') {
                assert_eq!(
                    count(text.trim_end().as_bytes(), masks, prefix_xor),
                    want,
                    "{text}"
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]

        /// Block by block gives the bytewise answer, across block boundaries and escapes.
        #[test]
        fn agrees_with_the_bytewise_definition(
            text in "[{}\\[\\]\"\\\\a é]{0,200}",
            close in "[}\\]\"]{0,6}",
        ) {
            // A random close makes texts that do end balanced common enough to be tested.
            let t = format!("{{{text}{close}");
            prop_assert_eq!(closes_at_end(&t), closes_at_end_bytewise(&t), "{:?}", t);
            // The SSE2 masks too, where AVX2 is what `closes_at_end` uses.
            let b = t.trim_end().as_bytes();
            prop_assert_eq!(count(b, masks, prefix_xor), closes_at_end_bytewise(&t), "{:?}", t);
        }

        /// The same across many blocks without a backslash (a block holding one is walked
        /// byte by byte, so the text above rarely reaches a second block on the masks).
        #[test]
        fn agrees_across_blocks_without_escapes(
            text in "[{}\\[\\]\"a é]{0,300}",
            close in "[}\\]\"]{0,6}",
        ) {
            let t = format!("{{{text}{close}");
            prop_assert_eq!(closes_at_end(&t), closes_at_end_bytewise(&t), "{:?}", t);
            let b = t.trim_end().as_bytes();
            prop_assert_eq!(count(b, masks, prefix_xor), closes_at_end_bytewise(&t), "{:?}", t);
        }

        /// The carry-less multiplication gives the shifts' prefix XOR.
        #[cfg(target_arch = "x86_64")]
        #[test]
        fn clmul_prefix_xor_agrees(x in any::<u64>()) {
            if std::arch::is_x86_feature_detected!("pclmulqdq") {
                // SAFETY: the CPU has PCLMULQDQ.
                prop_assert_eq!(unsafe { prefix_xor_clmul(x) }, prefix_xor(x));
            }
        }
    }
}
