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

/// The state of one merge of the two sorted samples: the last value taken, how many of each
/// sample were taken, and `i·n_b - j·n_a` for those.
struct Merge {
    previous: f64,
    diff: i64,
    extremes: KsExtremes,
    area: BlockSum,
}

impl Merge {
    /// Takes `value` (the next in pooled order), `i` and `j` values having been taken before it.
    /// When it is larger than the previous value, the previous one was the last of its value:
    /// a point of both ECDFs, and the start of a stretch `value - previous` wide over which
    /// `|F_a - F_b| = |diff| / (n_a·n_b)`.
    #[inline(always)]
    fn take(&mut self, value: f64, i: usize, j: usize) {
        let gap = value - self.previous;
        self.previous = value;
        self.area.add(self.diff.abs() as f64 * gap);
        self.extremes.observe(gap > 0.0, self.diff, i, j);
    }
}

/// One merge of the sorted, finite, non-empty samples: the extremes of `F_a - F_b` and
/// `∫|F_a - F_b| · n_a·n_b` (the Wasserstein-1 distance times `n_a·n_b`), each distinct pooled
/// value once, as SciPy's searchsorted(side="right") sees them.
pub(crate) fn merge(a: &[f64], b: &[f64]) -> (KsExtremes, f64) {
    let (n1, n2) = (a.len(), b.len());
    let (up, down) = (n2 as i64, n1 as i64);
    let mut m =
        Merge { previous: a[0].min(b[0]), diff: 0, extremes: KsExtremes::new(n1, n2), area: BlockSum::default() };
    let (mut i, mut j) = (0usize, 0usize);
    while i < n1 && j < n2 {
        let (x, y) = (a[i], b[j]);
        // Which sample the next value comes from is a coin flip on similar samples: no branch.
        let take_a = x <= y;
        m.take(std::hint::select_unpredictable(take_a, x, y), i, j);
        let t = usize::from(take_a);
        m.diff += (t as i64) * (up + down) - down;
        i += t;
        j += 1 - t;
    }
    for &x in &a[i..] {
        m.take(x, i, j);
        m.diff += up;
        i += 1;
    }
    for &y in &b[j..] {
        m.take(y, i, j);
        m.diff -= down;
        j += 1;
    }
    // The last value: diff is 0 there, which the extremes start from.
    (m.extremes, m.area.value())
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
