//! The two-sample Kolmogorov–Smirnov test as `scipy.stats.ks_2samp` computes it (two-sided,
//! `method="auto"`): the statistic from one merge of the sorted samples, the exact p-value
//! (Hodges' lattice-path counts) up to 10,000 values a side, `kstwo.sf` beyond.

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

    /// Notes the difference `diff = i·n_b - j·n_a` at one distinct pooled value.
    #[inline(always)]
    pub fn observe(&mut self, diff: i64, i: usize, j: usize) {
        if diff >= self.max_diff {
            let float = self.float(i, j);
            if diff > self.max_diff || float > self.max_float {
                self.max_float = float;
            }
            self.max_diff = diff;
        }
        if diff <= self.min_diff {
            let float = self.float(i, j);
            if diff < self.min_diff || float < self.min_float {
                self.min_float = float;
            }
            self.min_diff = diff;
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

/// Walks the distinct values of the pooled sorted samples in order, calling
/// `visit(i, j, gap)` at each: `i`, `j` the numbers of values of `a`, `b` that are ≤ it, `gap`
/// the distance to the next distinct value (0 after the last).
#[inline(always)]
pub(crate) fn walk_pooled(a: &[f64], b: &[f64], mut visit: impl FnMut(usize, usize, f64)) {
    let (n1, n2) = (a.len(), b.len());
    let (mut i, mut j) = (0usize, 0usize);
    while i < n1 && j < n2 {
        let (x, y) = (a[i], b[j]);
        let take_a = x <= y;
        let value = if take_a { x } else { y };
        i += usize::from(take_a);
        j += usize::from(!take_a);
        let next_a = if i < n1 { a[i] } else { f64::INFINITY };
        let next_b = if j < n2 { b[j] } else { f64::INFINITY };
        let next = next_a.min(next_b);
        if next > value {
            let gap = if next.is_finite() { next - value } else { 0.0 };
            visit(i, j, gap);
        }
    }
    // One sample is used up: the rest of the other, value by value.
    while i < n1 {
        let value = a[i];
        i += 1;
        if i == n1 {
            visit(i, j, 0.0);
        } else if a[i] > value {
            visit(i, j, a[i] - value);
        }
    }
    while j < n2 {
        let value = b[j];
        j += 1;
        if j == n2 {
            visit(i, j, 0.0);
        } else if b[j] > value {
            visit(i, j, b[j] - value);
        }
    }
}

/// The extremes of `F_a - F_b` over the pooled values (sorted, non-empty samples).
pub(crate) fn ks_extremes(a: &[f64], b: &[f64]) -> KsExtremes {
    let (n1, n2) = (a.len() as i64, b.len() as i64);
    let mut extremes = KsExtremes::new(a.len(), b.len());
    walk_pooled(a, b, |i, j, _| extremes.observe(i as i64 * n2 - j as i64 * n1, i, j));
    extremes
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

/// `_attempt_exact_2kssamp` (two-sided): `None` when the computation is not a probability
/// (SciPy then falls back to the asymptotic distribution).
pub(crate) fn exact_pvalue(n1: u64, n2: u64, g: u64, h: u64) -> Option<f64> {
    if h == 0 {
        return Some(1.0);
    }
    let prob = if n1 == n2 { prob_outside_square(n1, h) } else { outer_prob_inside_method(n1, n2, g, h) };
    (0.0..=1.0).contains(&prob).then_some(prob)
}

/// `kstwo.sf(d, round(m·n / (m + n)))`, clipped to [0, 1].
pub(crate) fn asymptotic_pvalue(d: f64, n1: usize, n2: usize) -> f64 {
    let (m, n) = if n1 >= n2 { (n1 as f64, n2 as f64) } else { (n2 as f64, n1 as f64) };
    let en = m * n / (m + n);
    kstwo_sf(d, en.round_ties_even()).clamp(0.0, 1.0)
}

/// `_compute_prob_outside_square(n, h)`: `P(D_{n,n} ≥ h/n)` as
/// `2 A0 (1 - A1 (1 - A2 (1 - …)))`, each `Ai` a ratio of binomial coefficients.
pub(crate) fn prob_outside_square(n: u64, h: u64) -> f64 {
    let (n, h) = (n as i64, h as i64);
    let mut p = 0.0;
    let mut k = n / h;
    while k >= 0 {
        let mut p1 = 1.0;
        for j in 0..h {
            p1 = (n - k * h - j) as f64 * p1 / (n + k * h + j + 1) as f64;
        }
        p = p1 * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// `_compute_outer_prob_inside_method(m, n, g, h)`: the proportion of lattice paths from
/// (0, 0) to (m, n) that leave the band `|x/m - y/n| < h / lcm(m, n)`, by Hodges' inside
/// recursion rewritten (Viehmann) to carry `1 - p` directly, one sliding column at a time.
pub(crate) fn outer_prob_inside_method(m: u64, n: u64, g: u64, h: u64) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (m, n, g, h) = (m as i64, n as i64, g as i64, h as i64);
    let (mg, ng) = ((m / g) as f64, (n / g) as f64);
    let hf = h as f64;
    let mut minj: i64 = 0;
    let mut maxj: i64 = ((hf / mg).ceil() as i64).min(n + 1);
    let mut curlen = maxj - minj;
    let len = (2 * maxj + 2).min(n + 1) as usize;
    let mut column = vec![1.0_f64; len];
    column[minj as usize..maxj as usize].fill(0.0);
    for i in 1..=m {
        let (lastminj, lastlen) = (minj, curlen);
        let fi = i as f64;
        minj = ((((ng * fi - hf) / mg).floor() as i64) + 1).max(0).min(n);
        maxj = (((ng * fi + hf) / mg).ceil() as i64).min(n + 1);
        if maxj <= minj {
            return 1.0;
        }
        let mut val = if minj == 0 { 0.0 } else { 1.0 };
        let shift = (minj - lastminj) as usize;
        let width = (maxj - minj) as usize;
        for jj in 0..width {
            let j = (jj as i64 + minj) as f64;
            val = (column[jj + shift] * fi + val * j) / (fi + j);
            column[jj] = val;
        }
        curlen = maxj - minj;
        if lastlen > curlen {
            let end = (width + (lastlen - curlen) as usize).min(len);
            column[width..end].fill(1.0);
        }
    }
    column[(maxj - minj - 1) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_visits_distinct_values_with_right_counts() {
        let a = [1.0, 2.0, 2.0, 5.0];
        let b = [2.0, 3.0, 5.0, 5.0, 7.0];
        let mut seen = Vec::new();
        walk_pooled(&a, &b, |i, j, gap| seen.push((i, j, gap)));
        assert_eq!(seen, vec![(1, 0, 1.0), (3, 1, 1.0), (3, 2, 2.0), (4, 4, 2.0), (4, 5, 0.0)]);
    }

    #[test]
    fn square_and_inside_methods_agree_on_equal_sizes() {
        for (n, h) in [(5, 1), (10, 3), (37, 5), (100, 17), (1000, 40)] {
            let square = prob_outside_square(n, h);
            let inside = outer_prob_inside_method(n, n, n, h);
            assert!(((square - inside) / square).abs() < 1e-12, "n={n} h={h}: {square} vs {inside}");
        }
    }
}
