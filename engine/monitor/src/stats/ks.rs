//! The two-sample Kolmogorov–Smirnov test as `scipy.stats.ks_2samp` computes it (two-sided,
//! `method="auto"`): the statistic (and Wasserstein's area) from one merge of the sorted
//! samples, the exact p-value (Hodges' lattice-path counts, `stats/exact.rs`) up to 10,000
//! values a side, `kstwo.sf` ([`super::kolmogorov`]) beyond.

use super::exact::exact_pvalue;
use super::kolmogorov::kstwo_sf;
use super::{Ks, KsMethod};

/// `method="auto"` computes the exact p-value when both samples have at most this many values.
pub const MAX_EXACT_N: usize = 10_000;

/// Where the two empirical distribution functions are furthest apart. At a point where `i`
/// values of `a` and `j` of `b` are ≤ it, `F_a - F_b = (i·n_b - j·n_a) / (n_a·n_b)`: the extremes
/// are found on that exact integer, and among the points that reach it, the extreme of SciPy's
/// floating-point `i/n_a - j/n_b` is kept (so the statistic is SciPy's to the last bit).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KsExtremes {
    n1: f64,
    n2: f64,
    /// Largest `i·n_b - j·n_a` (≥ 0: it is 0 past the last value) and SciPy's largest float there.
    pub max_diff: i64,
    max_float: f64,
    /// Smallest `i·n_b - j·n_a` (≤ 0) and SciPy's smallest float there.
    pub min_diff: i64,
    min_float: f64,
}

impl KsExtremes {
    pub fn new(n1: usize, n2: usize) -> Self {
        Self { n1: n1 as f64, n2: n2 as f64, max_diff: 0, max_float: 0.0, min_diff: 0, min_float: 0.0 }
    }

    /// SciPy's `cdf1 - cdf2` at a point.
    #[inline(always)]
    fn float(&self, i: usize, j: usize) -> f64 {
        i as f64 / self.n1 - j as f64 / self.n2
    }

    /// Notes the difference `diff = i·n_b - j·n_a` at a point of the pooled sample, which only
    /// counts when it is the last of its value (`boundary`).
    #[inline(always)]
    fn observe(&mut self, boundary: bool, diff: i64, i: usize, j: usize) {
        let high = if boundary { diff } else { i64::MIN };
        if high >= self.max_diff {
            self.new_max(diff, i, j);
        }
        let low = if boundary { diff } else { i64::MAX };
        if low <= self.min_diff {
            self.new_min(diff, i, j);
        }
    }

    #[cold]
    fn new_max(&mut self, diff: i64, i: usize, j: usize) {
        let float = if diff == 0 { 0.0 } else { self.float(i, j) };
        if diff > self.max_diff || float > self.max_float {
            self.max_float = float;
        }
        self.max_diff = diff;
    }

    #[cold]
    fn new_min(&mut self, diff: i64, i: usize, j: usize) {
        let float = if diff == 0 { 0.0 } else { self.float(i, j) };
        if diff < self.min_diff || float < self.min_float {
            self.min_float = float;
        }
        self.min_diff = diff;
    }

    /// Merges the extremes seen over another part of the same samples.
    fn combine(&mut self, other: &KsExtremes) {
        if other.max_diff > self.max_diff || (other.max_diff == self.max_diff && other.max_float > self.max_float) {
            (self.max_diff, self.max_float) = (other.max_diff, other.max_float);
        }
        if other.min_diff < self.min_diff || (other.min_diff == self.min_diff && other.min_float < self.min_float) {
            (self.min_diff, self.min_float) = (other.min_diff, other.min_float);
        }
    }

    /// The statistic as SciPy computes it: `max(cdf1 - cdf2)` or `clip(-min(cdf1 - cdf2), 0, 1)`,
    /// whichever is larger (the maximum on a tie).
    pub fn statistic(&self) -> f64 {
        let min = (-self.min_float).clamp(0.0, 1.0);
        if min > self.max_float { min } else { self.max_float }
    }

    /// `max |i·n_b - j·n_a|`.
    pub fn largest(&self) -> i64 {
        self.max_diff.max(-self.min_diff)
    }
}

/// Terms summed plainly before they join the compensated total (keeps the loop fast and the
/// rounding error far below 1e-12 relative).
const BLOCK: u32 = 1024;

/// Σ of non-negative terms: plain sums over blocks, Neumaier's compensated sum of the blocks.
#[derive(Debug, Default)]
struct BlockSum {
    block: f64,
    in_block: u32,
    total: f64,
    compensation: f64,
}

impl BlockSum {
    #[inline(always)]
    fn add(&mut self, x: f64) {
        self.block += x;
        self.in_block += 1;
        if self.in_block == BLOCK {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let (x, t) = (self.block, self.total + self.block);
        self.compensation += if self.total.abs() >= x.abs() { (self.total - t) + x } else { (x - t) + self.total };
        self.total = t;
        self.block = 0.0;
        self.in_block = 0;
    }

    fn value(mut self) -> f64 {
        self.flush();
        self.total + self.compensation
    }
}

/// One direction of the merge of the two sorted samples: the last value taken, `i·n_b - j·n_a`
/// for the values taken so far (`i` of `a`, `j` of `b`, counted from its end), and what it saw.
struct Merge {
    previous: f64,
    diff: i64,
    extremes: KsExtremes,
    area: BlockSum,
}

impl Merge {
    fn new(first: f64, n1: usize, n2: usize) -> Self {
        Merge { previous: first, diff: 0, extremes: KsExtremes::new(n1, n2), area: BlockSum::default() }
    }

    /// A point of both ECDFs when `gap > 0`: `F_a - F_b = diff / (n_a·n_b)` there (counts `i`,
    /// `j` of values ≤ it), constant over the `gap` up to the next distinct value.
    #[inline(always)]
    fn visit(&mut self, gap: f64, diff: i64, i: usize, j: usize) {
        self.area.add(diff.abs() as f64 * gap);
        self.extremes.observe(gap > 0.0, diff, i, j);
    }

    /// Forward: takes `value`, the next larger in pooled order, `i` and `j` values having been
    /// taken before it. When it is larger than the previous value, the previous one was the
    /// last of its value: a point of both ECDFs with the counts taken so far.
    #[inline(always)]
    fn take_up(&mut self, value: f64, i: usize, j: usize) {
        let gap = value - self.previous;
        self.previous = value;
        self.visit(gap, self.diff, i, j);
    }

    /// Backward: takes `value`, the next smaller in pooled order, after `ib` of `a` and `jb` of
    /// `b` from their ends. When it is smaller than the previous value, it is the last of its
    /// value in forward order: a point of both ECDFs whose counts are all but those taken.
    #[inline(always)]
    fn take_down(&mut self, value: f64, ib: usize, jb: usize, (n1, n2): (usize, usize)) {
        let gap = self.previous - value;
        self.previous = value;
        self.visit(gap, -self.diff, n1 - ib, n2 - jb);
    }
}

/// One merge of the sorted, finite, non-empty samples: the extremes of `F_a - F_b` and
/// `∫|F_a - F_b| · n_a·n_b` (the Wasserstein-1 distance times `n_a·n_b`), each distinct pooled
/// value once, as SciPy's searchsorted(side="right") sees them.
///
/// The pooled order is by value, `a` before `b` among equal values. One cursor takes the lower
/// half of it from the front, another the upper half from the back, in the same loop: two
/// independent dependency chains (each step waits on the previous comparison), twice the work
/// per cycle.
pub(crate) fn merge(a: &[f64], b: &[f64]) -> (KsExtremes, f64) {
    let (n1, n2) = (a.len(), b.len());
    let (up, down) = (n2 as i64, n1 as i64);
    let half = (n1 + n2) / 2;
    let mut front = Merge::new(a[0].min(b[0]), n1, n2);
    let mut back = Merge::new(a[n1 - 1].max(b[n2 - 1]), n1, n2);
    let (mut i, mut j, mut ib, mut jb) = (0usize, 0usize, 0usize, 0usize);
    // Which sample the next value comes from is a coin flip on similar samples: no branches.
    while i + j < half && i < n1 && j < n2 && ib < n1 && jb < n2 {
        let (x, y) = (a[i], b[j]);
        let t = x <= y;
        front.take_up(std::hint::select_unpredictable(t, x, y), i, j);
        let t = usize::from(t);
        front.diff += (t as i64) * (up + down) - down;
        i += t;
        j += 1 - t;
        let (x, y) = (a[n1 - 1 - ib], b[n2 - 1 - jb]);
        let t = x > y;
        back.take_down(std::hint::select_unpredictable(t, x, y), ib, jb, (n1, n2));
        let t = usize::from(t);
        back.diff += (t as i64) * (up + down) - down;
        ib += t;
        jb += 1 - t;
    }
    while i + j < half {
        let t = j >= n2 || (i < n1 && a[i] <= b[j]);
        front.take_up(if t { a[i] } else { b[j] }, i, j);
        front.diff += if t { up } else { -down };
        (i, j) = if t { (i + 1, j) } else { (i, j + 1) };
    }
    while ib + jb < n1 + n2 - half {
        let t = jb >= n2 || (ib < n1 && a[n1 - 1 - ib] > b[n2 - 1 - jb]);
        back.take_down(if t { a[n1 - 1 - ib] } else { b[n2 - 1 - jb] }, ib, jb, (n1, n2));
        back.diff += if t { up } else { -down };
        (ib, jb) = if t { (ib + 1, jb) } else { (ib, jb + 1) };
    }
    // Where the halves meet: the front's last value is a point of the ECDFs that neither saw,
    // unless the back's last value equals it (the back then saw it).
    front.visit(back.previous - front.previous, front.diff, i, j);
    let mut extremes = front.extremes;
    extremes.combine(&back.extremes);
    // The last value: diff is 0 there, which the extremes start from.
    (extremes, front.area.value() + back.area.value())
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `ks_2samp` from the extremes of the two samples' ECDF difference.
pub(crate) fn ks_from_extremes(extremes: &KsExtremes, n1: usize, n2: usize) -> Ks {
    let mut statistic = extremes.statistic();
    if n1.max(n2) <= MAX_EXACT_N {
        let g = gcd(n1 as u64, n2 as u64);
        let lcm = (n1 as u64 / g) * n2 as u64;
        // SciPy rounds d·lcm to the lattice step h; here it is known exactly.
        let h = extremes.largest() as u64 / g;
        statistic = h as f64 / lcm as f64;
        if let Some(pvalue) = exact_pvalue(n1 as u64, n2 as u64, g, h) {
            return Ks { statistic, pvalue, method: KsMethod::Exact };
        }
    }
    Ks { statistic, pvalue: asymptotic_pvalue(statistic, n1, n2), method: KsMethod::Asymptotic }
}

/// `kstwo.sf(d, round(m·n / (m + n)))`, clipped to [0, 1].
pub(crate) fn asymptotic_pvalue(d: f64, n1: usize, n2: usize) -> f64 {
    let (m, n) = if n1 >= n2 { (n1 as f64, n2 as f64) } else { (n2 as f64, n1 as f64) };
    let en = m * n / (m + n);
    kstwo_sf(d, en.round_ties_even()).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The merge in one direction only, front to back.
    fn reference_merge(a: &[f64], b: &[f64]) -> (KsExtremes, f64) {
        let (n1, n2) = (a.len(), b.len());
        let (up, down) = (n2 as i64, n1 as i64);
        let mut m = Merge::new(a[0].min(b[0]), n1, n2);
        let (mut i, mut j) = (0usize, 0usize);
        while i < n1 && j < n2 {
            let (x, y) = (a[i], b[j]);
            // Which sample the next value comes from is a coin flip on similar samples: no branch.
            let take_a = x <= y;
            m.take_up(std::hint::select_unpredictable(take_a, x, y), i, j);
            let t = usize::from(take_a);
            m.diff += (t as i64) * (up + down) - down;
            i += t;
            j += 1 - t;
        }
        for &x in &a[i..] {
            m.take_up(x, i, j);
            m.diff += up;
            i += 1;
        }
        for &y in &b[j..] {
            m.take_up(y, i, j);
            m.diff -= down;
            j += 1;
        }
        // The last value: diff is 0 there, which the extremes start from.
        (m.extremes, m.area.value())
    }

    #[test]
    fn both_directions_agree_with_one() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |m: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % m
        };
        for case in 0..3000 {
            let (n1, n2) = (1 + next(40) as usize, 1 + next(40) as usize);
            let (levels, shift) = (1 + next(if case % 3 == 0 { 4 } else { 1000 }), next(20) as f64 - 10.0);
            let mut a: Vec<f64> = (0..n1).map(|_| next(levels) as f64).collect();
            let mut b: Vec<f64> = (0..n2).map(|_| next(levels) as f64 + shift).collect();
            a.sort_by(f64::total_cmp);
            b.sort_by(f64::total_cmp);
            let ((e, area), (r, reference_area)) = (merge(&a, &b), reference_merge(&a, &b));
            assert_eq!((e.max_diff, e.min_diff), (r.max_diff, r.min_diff), "{a:?} {b:?}");
            assert_eq!(e.statistic().to_bits(), r.statistic().to_bits(), "{a:?} {b:?}");
            assert!((area - reference_area).abs() <= 1e-12 * reference_area, "{a:?} {b:?}: {area} {reference_area}");
        }
    }

    #[test]
    fn merge_sees_each_distinct_value_once() {
        let a = [1.0, 2.0, 2.0, 5.0];
        let b = [2.0, 3.0, 5.0, 5.0, 7.0];
        // F_a - F_b at 1, 2, 3, 5, 7: 1/4, 3/4 - 1/5, 3/4 - 2/5, 1 - 4/5, 0; times 20.
        let (extremes, area) = merge(&a, &b);
        assert_eq!((extremes.max_diff, extremes.min_diff), (11, 0));
        assert_eq!(extremes.statistic(), 0.75 - 0.2);
        // ∫|F_a - F_b| · 20 = 5·1 + 11·1 + 7·2 + 4·2.
        assert_eq!(area, 38.0);
    }
}
