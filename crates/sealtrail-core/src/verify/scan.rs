//! The entry scanner: reads an entry's top-level `seq` and `prev_hash` straight from its bytes,
//! without building a JSON tree.
//!
//! Scanning every entry is, with hashing it, the verifier's whole per-byte cost, so this module
//! has two paths that must always agree. [`scan_entry_links`] first tries a fast path for
//! entries as sealtrail writes them (compact JSON without escapes), which classifies the bytes
//! in blocks of 64 with SIMD compares and bit masks: SSE2 on every x86-64 CPU, AVX2 where the
//! CPU has it (detected at run time), and a byte-at-a-time loop elsewhere. Whenever the fast
//! path cannot be sure of its answer it declines, and a general byte-by-byte scanner walks the
//! top-level object, accepts any JSON and names what is wrong with a malformed entry.
//!
//! The verifier's `unsafe` code is confined to this module: the SIMD intrinsics, and the calls
//! into functions compiled for CPU features that were checked at run time first. The tests
//! compare every classifier with a byte-at-a-time definition and every fast path with the
//! general scanner, on fixed cases and on generated ones.

use std::sync::LazyLock;

use crate::hash::Hash;

/// The two server fields a link check needs, read straight from an entry's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryLinks {
    pub seq: u64,
    pub prev_hash: Hash,
}

/// Reads the top-level `seq` and `prev_hash` of an entry without building a JSON tree: the
/// verifier's hot path. Nested values are skipped, so a `seq` inside `source` or `details` is
/// never mistaken for the entry's own. Accepts any JSON whitespace; a duplicated key, a
/// missing one or a malformed value is an error.
pub fn scan_entry_links(entry: &[u8]) -> Result<EntryLinks, &'static str> {
    if let Some(links) = fast_links(entry) {
        return Ok(links);
    }
    scan_entry_links_slow(entry)
}

/// The general scanner: a byte-by-byte walk of the top-level object that skips nested values.
/// It handles any JSON and names what is wrong with a malformed entry.
fn scan_entry_links_slow(entry: &[u8]) -> Result<EntryLinks, &'static str> {
    let mut scanner = Scanner {
        bytes: entry,
        at: 0,
    };
    let mut seq = None;
    let mut prev_hash = None;
    scanner.skip_ws();
    scanner.expect(b'{', "entry is not a JSON object")?;
    scanner.skip_ws();
    if scanner.peek() == Some(b'}') {
        return Err("entry has no seq");
    }
    loop {
        scanner.skip_ws();
        let key = scanner.string()?;
        scanner.skip_ws();
        scanner.expect(b':', "expected ':' after a key")?;
        scanner.skip_ws();
        match key {
            b"seq" => {
                if seq.replace(scanner.integer()?).is_some() {
                    return Err("seq appears twice");
                }
            }
            b"prev_hash" => {
                let text = scanner.string()?;
                let text = std::str::from_utf8(text).map_err(|_| "prev_hash is not text")?;
                let hash =
                    Hash::from_hex(text).map_err(|_| "prev_hash is not 64 lowercase hex digits")?;
                if prev_hash.replace(hash).is_some() {
                    return Err("prev_hash appears twice");
                }
            }
            _ => scanner.skip_value()?,
        }
        scanner.skip_ws();
        match scanner.next() {
            Some(b',') => continue,
            Some(b'}') => break,
            _ => return Err("expected ',' or '}' after a value"),
        }
    }
    scanner.skip_ws();
    if scanner.at != entry.len() {
        return Err("trailing bytes after the entry object");
    }
    match (seq, prev_hash) {
        (Some(seq), Some(prev_hash)) => Ok(EntryLinks { seq, prev_hash }),
        (None, _) => Err("entry has no seq"),
        (_, None) => Err("entry has no prev_hash"),
    }
}

/// The bytes that change nesting while skipping a value: quotes and brackets.
const STRUCTURAL: [bool; 256] = {
    let mut table = [false; 256];
    table[b'"' as usize] = true;
    table[b'{' as usize] = true;
    table[b'[' as usize] = true;
    table[b'}' as usize] = true;
    table[b']' as usize] = true;
    table
};

/// Substring searchers for the two keys, built once: building one costs more than a search.
static SEQ_KEY: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(b"\"seq\":"));
static PREV_HASH_KEY: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(b"\"prev_hash\":\""));

/// Entries up to this size (most of them) are eligible for [`fast_links`].
const FAST_MAX_BYTES: usize = 4096;

/// The fast path of [`scan_entry_links`], for entries as sealtrail writes them: compact JSON
/// without escapes. It classifies the whole entry with word-at-a-time bit masks — quotes,
/// in-string spans, brackets outside strings — instead of walking it token by token (whose
/// branch mispredictions on short strings cost more than hashing the entry), then accepts a
/// `"seq":` and a `"prev_hash":"` key only where a string starts at nesting depth one.
///
/// It answers `None`, leaving the decision to the general scanner, whenever it cannot be sure:
/// a backslash anywhere, whitespace or anything else around the object, unbalanced quotes or
/// brackets, a field missing, found twice at the top level, or with a malformed value. On every
/// well-formed entry it finds exactly what the general scanner finds (a property test checks
/// this).
fn fast_links(entry: &[u8]) -> Option<EntryLinks> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("popcnt")
    {
        // SAFETY: the CPU was just found to have both features.
        return unsafe { fast_links_avx2(entry) };
    }
    fast_links_with(entry, classify_block)
}

/// [`fast_links`] compiled for CPUs with AVX2 and POPCNT (nearly every x86-64 CPU since 2013):
/// the bytes are classified 32 at a time, and the nesting depth is counted with the `popcnt`
/// instruction instead of the dozen instructions the x86-64 baseline needs for a popcount.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
fn fast_links_avx2(entry: &[u8]) -> Option<EntryLinks> {
    fast_links_with(entry, |bytes| classify_block_avx2(bytes))
}

/// The body of [`fast_links`], inlined into each variant so that it is compiled with that
/// variant's instruction set; `classify` classifies one block of up to 64 bytes.
#[inline(always)]
fn fast_links_with(entry: &[u8], classify: impl Fn(&[u8]) -> BlockMasks) -> Option<EntryLinks> {
    let n = entry.len();
    if !(2..=FAST_MAX_BYTES).contains(&n) || entry[0] != b'{' || entry[n - 1] != b'}' {
        return None;
    }
    // Candidate keys first (usually one `prev_hash` and two `seq`, the entry's and its
    // source's), merged in position order; the single pass over the blocks below then decides
    // which candidates start a string at depth one, looking only at the blocks that hold one.
    let mut candidates = [(usize::MAX, false); 8];
    let mut count = 0;
    for (finder, is_seq) in [(&*SEQ_KEY, true), (&*PREV_HASH_KEY, false)] {
        for (i, p) in finder.find_iter(entry).enumerate() {
            if i == 4 {
                return None;
            }
            candidates[count] = (p, is_seq);
            count += 1;
        }
    }
    let candidates = &mut candidates[..count];
    candidates.sort_unstable();
    let mut next = 0;
    let mut seq_at = None;
    let mut hash_at = None;
    let mut inside = 0u64; // all ones while a string continues across a block boundary
    let mut depth: i64 = 0;
    let mut previous_in_string = false;
    for start in (0..n).step_by(64) {
        let end = n.min(start + 64);
        let masks = classify(&entry[start..end]);
        if masks.backslashes != 0 {
            return None;
        }
        let strings = prefix_xor(masks.quotes) ^ inside;
        let opens = masks.opens & !strings;
        let closes = masks.closes & !strings;
        while let Some(&(p, is_seq)) = candidates.get(next).filter(|(p, _)| *p < end) {
            next += 1;
            let bit = p - start;
            let before = (1u64 << bit) - 1;
            let starts_string = strings >> bit & 1 == 1
                && if bit == 0 {
                    !previous_in_string
                } else {
                    strings >> (bit - 1) & 1 == 0
                };
            let depth_here = depth + i64::from((opens & before).count_ones())
                - i64::from((closes & before).count_ones());
            let found = if is_seq { &mut seq_at } else { &mut hash_at };
            if starts_string && depth_here == 1 && found.replace(p).is_some() {
                return None;
            }
        }
        depth += i64::from(opens.count_ones()) - i64::from(closes.count_ones());
        previous_in_string = strings >> 63 & 1 == 1;
        inside = 0u64.wrapping_sub(strings >> 63);
    }
    if inside != 0 || depth != 0 {
        return None;
    }

    let seq_at = seq_at? + SEQ_KEY.needle().len();
    let digits = entry[seq_at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 || digits > 20 || !matches!(entry[seq_at + digits], b',' | b'}') {
        return None;
    }
    let seq = entry[seq_at..seq_at + digits]
        .iter()
        .try_fold(0u64, |v, d| {
            v.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })?;

    let hash_at = hash_at? + PREV_HASH_KEY.needle().len();
    let hex = entry.get(hash_at..hash_at + 64)?;
    if !matches!(entry.get(hash_at + 64..hash_at + 66)?, [b'"', b',' | b'}']) {
        return None;
    }
    let prev_hash = Hash::from_hex(std::str::from_utf8(hex).ok()?).ok()?;
    Some(EntryLinks { seq, prev_hash })
}

/// Bit masks of one block of up to 64 bytes.
struct BlockMasks {
    quotes: u64,
    backslashes: u64,
    opens: u64,
    closes: u64,
}

/// Classifies up to 64 bytes with SSE2 compares, sixteen bytes per instruction. SSE2 is part
/// of the x86-64 baseline, so no run-time feature check is needed.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn classify_block(bytes: &[u8]) -> BlockMasks {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let mut padded = [b' '; 64];
    let block: &[u8] = if bytes.len() == 64 {
        bytes
    } else {
        padded[..bytes.len()].copy_from_slice(bytes);
        &padded
    };
    let mut masks = BlockMasks {
        quotes: 0,
        backslashes: 0,
        opens: 0,
        closes: 0,
    };
    // SAFETY: these intrinsics only need SSE2, which this function is compiled for only when
    // the target has it (every x86-64 target does); the one load reads exactly the 16 bytes of
    // `chunk` with no alignment requirement.
    unsafe {
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let (brace_open, bracket_open) = (_mm_set1_epi8(b'{' as i8), _mm_set1_epi8(b'[' as i8));
        let (brace_close, bracket_close) = (_mm_set1_epi8(b'}' as i8), _mm_set1_epi8(b']' as i8));
        let bits = |v: __m128i| u64::from(_mm_movemask_epi8(v) as u16);
        for (i, chunk) in block.chunks_exact(16).enumerate() {
            let v = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
            let shift = i * 16;
            masks.quotes |= bits(_mm_cmpeq_epi8(v, quote)) << shift;
            masks.backslashes |= bits(_mm_cmpeq_epi8(v, backslash)) << shift;
            let opens = _mm_or_si128(
                _mm_cmpeq_epi8(v, brace_open),
                _mm_cmpeq_epi8(v, bracket_open),
            );
            masks.opens |= bits(opens) << shift;
            let closes = _mm_or_si128(
                _mm_cmpeq_epi8(v, brace_close),
                _mm_cmpeq_epi8(v, bracket_close),
            );
            masks.closes |= bits(closes) << shift;
        }
    }
    masks
}

/// Classifies up to 64 bytes with AVX2 compares, 32 bytes per instruction. `[` and `{` differ
/// only in bit 5 (0x5B, 0x7B), as do `]` and `}` (0x5D, 0x7D), so setting that bit finds both
/// of a pair with one compare.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn classify_block_avx2(bytes: &[u8]) -> BlockMasks {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256,
        _mm256_set1_epi8,
    };
    let mut padded = [b' '; 64];
    let block: &[u8] = if bytes.len() == 64 {
        bytes
    } else {
        padded[..bytes.len()].copy_from_slice(bytes);
        &padded
    };
    let mut masks = BlockMasks {
        quotes: 0,
        backslashes: 0,
        opens: 0,
        closes: 0,
    };
    let quote = _mm256_set1_epi8(b'"' as i8);
    let backslash = _mm256_set1_epi8(b'\\' as i8);
    let open = _mm256_set1_epi8(b'{' as i8);
    let close = _mm256_set1_epi8(b'}' as i8);
    let bit5 = _mm256_set1_epi8(0x20);
    let bits = |v: __m256i| u64::from(_mm256_movemask_epi8(v) as u32);
    for (i, chunk) in block.chunks_exact(32).enumerate() {
        // SAFETY: reads exactly the 32 bytes of `chunk`, with no alignment requirement.
        let v = unsafe { _mm256_loadu_si256(chunk.as_ptr().cast::<__m256i>()) };
        let folded = _mm256_or_si256(v, bit5);
        let shift = i * 32;
        masks.quotes |= bits(_mm256_cmpeq_epi8(v, quote)) << shift;
        masks.backslashes |= bits(_mm256_cmpeq_epi8(v, backslash)) << shift;
        masks.opens |= bits(_mm256_cmpeq_epi8(folded, open)) << shift;
        masks.closes |= bits(_mm256_cmpeq_epi8(folded, close)) << shift;
    }
    masks
}

/// Classifies up to 64 bytes, a byte at a time, where SSE2 is not available.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn classify_block(bytes: &[u8]) -> BlockMasks {
    let mut masks = BlockMasks {
        quotes: 0,
        backslashes: 0,
        opens: 0,
        closes: 0,
    };
    for (i, &byte) in bytes.iter().enumerate() {
        let bit = 1u64 << i;
        match byte {
            b'"' => masks.quotes |= bit,
            b'\\' => masks.backslashes |= bit,
            b'{' | b'[' => masks.opens |= bit,
            b'}' | b']' => masks.closes |= bit,
            _ => {}
        }
    }
    masks
}

/// Bit i of the result is the XOR of bits 0..=i of `x`: 1 from an opening quote up to (not
/// including) its closing quote.
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// The position of the first `"` or `\\` at or after `from`, eight bytes at a time: entries
/// are mostly short strings, and testing a word per step instead of a byte per step halves the
/// verifier's scanning cost.
fn find_quote_or_backslash(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Marks the bytes of `word` equal to `byte` (and possibly bytes after the first match,
    // which trailing_zeros never looks at).
    let matches = |word: u64, byte: u8| {
        let x = word ^ (ONES * u64::from(byte));
        x.wrapping_sub(ONES) & !x & HIGHS
    };
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let found = matches(word, b'"') | matches(word, b'\\');
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    bytes
        .get(i..)?
        .iter()
        .position(|&b| b == b'"' || b == b'\\')
        .map(|offset| i + offset)
}

struct Scanner<'b> {
    bytes: &'b [u8],
    at: usize,
}

impl<'b> Scanner<'b> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn expect(&mut self, byte: u8, error: &'static str) -> Result<(), &'static str> {
        if self.next() == Some(byte) {
            Ok(())
        } else {
            Err(error)
        }
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// A string's raw bytes between its quotes (escapes left as they are).
    fn string(&mut self) -> Result<&'b [u8], &'static str> {
        self.expect(b'"', "expected a string")?;
        let start = self.at;
        let mut i = start;
        while let Some(at) = find_quote_or_backslash(self.bytes, i) {
            if self.bytes[at] == b'"' {
                self.at = at + 1;
                return Ok(&self.bytes[start..at]);
            }
            i = at + 2;
            if i > self.bytes.len() {
                break;
            }
        }
        Err("unterminated string")
    }

    fn integer(&mut self) -> Result<u64, &'static str> {
        let start = self.at;
        let mut value: u64 = 0;
        while let Some(digit @ b'0'..=b'9') = self.peek() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(digit - b'0')))
                .ok_or("seq does not fit in 64 bits")?;
            self.at += 1;
        }
        if self.at == start {
            return Err("seq is not a non-negative integer");
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return Err("seq is not an integer");
        }
        Ok(value)
    }

    fn skip_value(&mut self) -> Result<(), &'static str> {
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                loop {
                    // Only quotes and brackets matter inside a nested value.
                    let rest = &self.bytes[self.at..];
                    let Some(offset) = rest.iter().position(|&b| STRUCTURAL[b as usize]) else {
                        return Err("unterminated object or array");
                    };
                    self.at += offset;
                    match self.bytes[self.at] {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        _ => {
                            depth -= 1;
                            if depth == 0 {
                                self.at += 1;
                                return Ok(());
                            }
                        }
                    }
                    self.at += 1;
                }
            }
            Some(_) => {
                let start = self.at;
                while !matches!(
                    self.peek(),
                    None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                ) {
                    self.at += 1;
                }
                if self.at == start {
                    Err("expected a value")
                } else {
                    Ok(())
                }
            }
            None => Err("entry ends inside an object"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZEROS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn scanner_reads_only_top_level_fields() {
        let entry = format!(
            r#"{{"details":{{"seq":5,"a":["}}",{{"prev_hash":"x"}}],"s":"\"seq\":9"}},"prev_hash":"{ZEROS}","seq":12,"source":{{"seq":99}}}}"#
        );
        assert_eq!(
            scan_entry_links(entry.as_bytes()),
            Ok(EntryLinks {
                seq: 12,
                prev_hash: Hash::ZERO
            })
        );
        let spaced = format!("  {{ \"seq\" : 3 ,\n \"prev_hash\" : \"{ZEROS}\" }} ");
        assert_eq!(scan_entry_links(spaced.as_bytes()).map(|l| l.seq), Ok(3));
    }

    #[test]
    fn fast_path_takes_compact_entries_and_leaves_the_rest_to_the_general_scanner() {
        let compact = format!(
            r#"{{"a":["{{",{{"seq":1}}],"details":{{"prev_hash":"x"}},"prev_hash":"{ZEROS}","seq":12,"source":{{"seq":99}}}}"#
        );
        let want = EntryLinks {
            seq: 12,
            prev_hash: Hash::ZERO,
        };
        assert_eq!(fast_links(compact.as_bytes()), Some(want));
        // Escapes, whitespace and duplicates are the general scanner's to judge.
        let escaped = compact.replace("\"x\"", "\"\\\"\"");
        assert_eq!(fast_links(escaped.as_bytes()), None);
        assert_eq!(scan_entry_links(escaped.as_bytes()), Ok(want));
        assert_eq!(fast_links(format!(" {compact}").as_bytes()), None);
        let twice = compact.replace(r#""seq":12"#, r#""seq":12,"seq":13"#);
        assert_eq!(fast_links(twice.as_bytes()), None);
        assert_eq!(scan_entry_links(twice.as_bytes()), Err("seq appears twice"));
    }

    /// Every variant of the fast path this machine can run: the portable one and, where the
    /// CPU has them, the AVX2 one (which `fast_links` picks at run time).
    fn fast_variants(entry: &[u8]) -> Vec<Option<EntryLinks>> {
        let mut answers = vec![fast_links_with(entry, classify_block)];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("popcnt")
        {
            // SAFETY: the CPU was just found to have both features.
            answers.push(unsafe { fast_links_avx2(entry) });
        }
        answers
    }

    /// Byte-at-a-time classification, the definition both block classifiers must match.
    fn reference_masks(bytes: &[u8]) -> [u64; 4] {
        let mut masks = [0u64; 4];
        for (i, &byte) in bytes.iter().enumerate() {
            let slot = match byte {
                b'"' => 0,
                b'\\' => 1,
                b'{' | b'[' => 2,
                b'}' | b']' => 3,
                _ => continue,
            };
            masks[slot] |= 1 << i;
        }
        masks
    }

    fn mask_array(masks: BlockMasks) -> [u64; 4] {
        [masks.quotes, masks.backslashes, masks.opens, masks.closes]
    }

    #[test]
    fn block_classifiers_mark_exactly_the_structural_bytes() {
        // Every byte value at every position of blocks of every length: the AVX2 classifier
        // folds `[`/`{` and `]`/`}` together by setting bit 5, so their neighbours in that bit
        // (`;` `=` `Û` `Ý` `û` `ý` …) and UTF-8 bytes must not be taken for brackets.
        let mut block = [b'a'; 64];
        for len in 1..=64 {
            for at in 0..len {
                for byte in 0..=255u8 {
                    block[at] = byte;
                    let bytes = &block[..len];
                    let want = reference_masks(bytes);
                    assert_eq!(
                        mask_array(classify_block(bytes)),
                        want,
                        "{byte:#x} at {at}/{len}"
                    );
                    #[cfg(target_arch = "x86_64")]
                    if std::arch::is_x86_feature_detected!("avx2") {
                        // SAFETY: the CPU was just found to have AVX2.
                        let avx2 = unsafe { classify_block_avx2(bytes) };
                        assert_eq!(mask_array(avx2), want, "avx2: {byte:#x} at {at}/{len}");
                    }
                }
                block[at] = b'a';
            }
        }
    }

    #[test]
    fn every_fast_path_variant_reads_brackets_and_quotes_across_block_boundaries() {
        // Decoy keys and brackets inside strings and nested values, placed so that strings and
        // nesting cross the 32- and 64-byte boundaries the classifiers work in.
        for pad in 0..96 {
            let filler = "x".repeat(pad);
            let entry = format!(
                r#"{{"a":"{filler}[{{seq:7","b":[{{"seq":5,"prev_hash":"{ZEROS}"}},"]"],"prev_hash":"{ZEROS}","s":"}}]{filler}","seq":12,"t":{{"seq":[99]}}}}"#
            );
            let want = Ok(EntryLinks {
                seq: 12,
                prev_hash: Hash::ZERO,
            });
            assert_eq!(scan_entry_links_slow(entry.as_bytes()), want, "{entry}");
            for fast in fast_variants(entry.as_bytes()) {
                assert_eq!(fast.ok_or("declined"), want, "{entry}");
            }
            // The top-level seq changed while a nested decoy keeps the old value: read as the
            // new one, by every path.
            let altered = entry.replace(r#""seq":12,"#, r#""seq":13,"#);
            for fast in fast_variants(altered.as_bytes()) {
                assert_eq!(fast.map(|l| l.seq), Some(13), "{altered}");
            }
            // An unbalanced bracket inside what is no longer a string (a quote removed) is
            // never accepted by a fast path; the general scanner names the problem.
            let broken = entry.replacen(r#""s":"}]"#, r#""s":}]"#, 1);
            assert_ne!(broken, entry);
            for fast in fast_variants(broken.as_bytes()) {
                assert_eq!(fast, None, "{broken}");
            }
            assert!(scan_entry_links(broken.as_bytes()).is_err(), "{broken}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// On any well-formed JSON object every variant of the fast path, when it answers,
        /// agrees with the general scanner.
        #[test]
        fn fast_path_agrees_with_the_general_scanner(value in json_object(), seq in 0u64..u64::MAX) {
            let mut object = value;
            let members = object.as_object_mut().expect("an object");
            // The fields land among the others (keys are sorted), with decoys around them.
            members.insert("seq".into(), serde_json::json!(seq));
            members.insert("prev_hash".into(), serde_json::json!(ZEROS));
            let text = serde_json::to_string(&object).unwrap();
            let general = scan_entry_links_slow(text.as_bytes());
            proptest::prop_assert_eq!(general, Ok(EntryLinks { seq, prev_hash: Hash::ZERO }));
            let answers = fast_variants(text.as_bytes());
            for fast in answers.iter().flatten() {
                proptest::prop_assert_eq!(Ok(*fast), general);
            }
            // The variants decline the same entries, too.
            proptest::prop_assert!(answers.windows(2).all(|w| w[0] == w[1]));
        }

        /// On arbitrary bytes the variants of the fast path give the same answer.
        #[test]
        fn fast_path_variants_agree_on_any_bytes(
            bytes in proptest::collection::vec(
                proptest::sample::select(b"{}[]\"\\,:;=[]{}seqprev_hash0123456789abcdef \x5b\x7b\xdb\xfb".to_vec()),
                0..300,
            )
        ) {
            let mut entry = b"{".to_vec();
            entry.extend_from_slice(&bytes);
            entry.extend_from_slice(format!(r#","seq":1,"prev_hash":"{ZEROS}"}}"#).as_bytes());
            let answers = fast_variants(&entry);
            proptest::prop_assert!(answers.windows(2).all(|w| w[0] == w[1]));
        }
    }

    fn json_object() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let key = prop_oneof![
            Just("seq".to_string()),
            Just("prev_hash".to_string()),
            "[a-z{}\\[\\]\",:]{0,6}",
        ];
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<u32>().prop_map(serde_json::Value::from),
            "[a-z{}\\[\\],:\"\\\\]{0,12}".prop_map(serde_json::Value::from),
        ];
        let nested = leaf.prop_recursive(4, 32, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::from),
                prop::collection::btree_map("[a-z\"{}]{0,4}|seq|prev_hash", inner, 0..5)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        });
        prop::collection::btree_map(key, nested, 0..6)
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()))
    }

    #[test]
    fn scanner_rejects_what_is_not_a_readable_entry() {
        let cases = [
            ("", "entry is not a JSON object"),
            ("[]", "entry is not a JSON object"),
            ("{}", "entry has no seq"),
            (r#"{"seq":1}"#, "entry has no prev_hash"),
            (
                r#"{"prev_hash":"00"}"#,
                "prev_hash is not 64 lowercase hex digits",
            ),
            (r#"{"seq":-1}"#, "seq is not a non-negative integer"),
            (r#"{"seq":1.5}"#, "seq is not an integer"),
            (
                r#"{"seq":99999999999999999999}"#,
                "seq does not fit in 64 bits",
            ),
            (r#"{"seq":1,"seq":2}"#, "seq appears twice"),
            (r#"{"a":"unterminated"#, "unterminated string"),
            (r#"{"a":{"b":1}"#, "expected ',' or '}' after a value"),
            (r#"{"a":[1,2"#, "unterminated object or array"),
        ];
        for (entry, want) in cases {
            assert_eq!(scan_entry_links(entry.as_bytes()), Err(want), "{entry:?}");
        }
        let trailing = format!(r#"{{"seq":1,"prev_hash":"{ZEROS}"}}x"#);
        assert_eq!(
            scan_entry_links(trailing.as_bytes()),
            Err("trailing bytes after the entry object")
        );
    }
}
