//! Sorting finite `f64`s fast: an LSD radix sort on order-preserving `u64` keys, 8-bit digits
//! (eight passes at most), all histograms from one read, passes whose digit is the same for every
//! value skipped, the key transform fused into the first pass and its inverse into the last.

/// Below this many values a comparison sort is faster than setting up the radix passes.
const SMALL: usize = 512;
const DIGIT_BITS: u32 = 8;
const BUCKETS: usize = 1 << DIGIT_BITS;
const MASK: u64 = (BUCKETS - 1) as u64;
const PASSES: usize = 64usize.div_ceil(DIGIT_BITS as usize);
const SIGN: u64 = 1 << 63;

/// The key whose unsigned order is the floats' order (-0.0 just before 0.0): the sign bit set on
/// non-negative values, every bit flipped on negative ones.
#[inline(always)]
fn key(value: f64) -> u64 {
    let bits = value.to_bits();
    bits ^ ((((bits as i64) >> 63) as u64) | SIGN)
}

/// The inverse of [`key`].
#[inline(always)]
fn unkey(key: u64) -> f64 {
    f64::from_bits(key ^ ((!((key as i64) >> 63) as u64) | SIGN))
}

#[inline(always)]
fn digit(key: u64, pass: usize) -> usize {
    ((key >> (pass as u32 * DIGIT_BITS)) & MASK) as usize
}

/// Sorts finite values ascending (see [`super::sort`]).
pub(crate) fn radix_sort(values: &mut [f64]) {
    let n = values.len();
    if n < SMALL {
        values.sort_unstable_by(f64::total_cmp);
        return;
    }
    let mut histograms = vec![[0u32; BUCKETS]; PASSES];
    for &v in values.iter() {
        let k = key(v);
        for (pass, histogram) in histograms.iter_mut().enumerate() {
            histogram[digit(k, pass)] += 1;
        }
    }
    let first = key(values[0]);
    let active: Vec<usize> = (0..PASSES).filter(|&pass| histograms[pass][digit(first, pass)] as usize != n).collect();
    if active.is_empty() {
        return; // all equal
    }
    let mut buffer = vec![0u64; n];
    for (step, &pass) in active.iter().enumerate() {
        let mut offsets = [0u32; BUCKETS];
        let mut sum = 0u32;
        for (offset, &count) in offsets.iter_mut().zip(histograms[pass].iter()) {
            *offset = sum;
            sum += count;
        }
        let last = step + 1 == active.len();
        // Even steps read `values` (raw floats on the first, keys' bits after) into `buffer`;
        // odd steps read `buffer` back into `values` (as floats again on the last).
        if step % 2 == 0 {
            if step == 0 {
                scatter_from_values::<true>(values, &mut buffer, pass, &mut offsets);
            } else {
                scatter_from_values::<false>(values, &mut buffer, pass, &mut offsets);
            }
        } else if last {
            scatter_into_values::<true>(&buffer, values, pass, &mut offsets);
        } else {
            scatter_into_values::<false>(&buffer, values, pass, &mut offsets);
        }
    }
    if active.len() % 2 == 1 {
        for (v, &k) in values.iter_mut().zip(&buffer) {
            *v = unkey(k);
        }
    }
}

fn scatter_from_values<const FIRST: bool>(src: &[f64], dst: &mut [u64], pass: usize, offsets: &mut [u32; BUCKETS]) {
    for &v in src {
        let k = if FIRST { key(v) } else { v.to_bits() };
        let slot = &mut offsets[digit(k, pass)];
        dst[*slot as usize] = k;
        *slot += 1;
    }
}

fn scatter_into_values<const LAST: bool>(src: &[u64], dst: &mut [f64], pass: usize, offsets: &mut [u32; BUCKETS]) {
    for &k in src {
        let slot = &mut offsets[digit(k, pass)];
        dst[*slot as usize] = if LAST { unkey(k) } else { f64::from_bits(k) };
        *slot += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_preserve_order() {
        let values = [-f64::MAX, -1.5, -1e-300, -0.0, 0.0, 1e-300, 1.0, 2.0, f64::MAX];
        for w in values.windows(2) {
            assert!(key(w[0]) < key(w[1]), "{} {}", w[0], w[1]);
        }
        for &v in &values {
            assert_eq!(unkey(key(v)).to_bits(), v.to_bits());
        }
    }

    #[test]
    fn sorts_like_a_comparison_sort() {
        let mut state = 0x1234_5678_9abc_def0_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for n in [0, 1, 511, 512, 513, 5000, 100_000] {
            for kind in 0..4 {
                let mut v: Vec<f64> = (0..n)
                    .map(|_| match kind {
                        0 => (next() >> 11) as f64 / (1u64 << 53) as f64 - 0.5,
                        1 => ((next() % 7) as f64) - 3.0,
                        2 => 42.0,
                        _ => f64::from_bits(next() >> 2) * if next() % 2 == 0 { 1.0 } else { -1.0 },
                    })
                    .collect();
                let mut expected = v.clone();
                expected.sort_by(f64::total_cmp);
                radix_sort(&mut v);
                assert!(v.iter().zip(&expected).all(|(a, b)| a.to_bits() == b.to_bits()), "n={n} kind={kind}");
            }
        }
    }
}
