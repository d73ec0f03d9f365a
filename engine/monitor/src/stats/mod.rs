//! The statistics behind drift detection, computed exactly as SciPy computes them. Every
//! function takes sorted, finite samples (see [`sort`]) or frequency tables.
//!
//! * [`ks_2samp`]: `scipy.stats.ks_2samp` (two-sided, `method="auto"`), exact p-values up to
//!   10,000 values a side ([`ks`]), `kstwo.sf` beyond ([`kolmogorov`]).
//! * [`wasserstein`]: `scipy.stats.wasserstein_distance`; [`compare`] computes both in one pass.
//! * [`quantile_edges`], [`bin_counts`], [`psi`], [`js_distance`]: binned comparisons.
//! * [`chi2_contingency`]: `scipy.stats.chi2_contingency` on two frequency tables ([`chi2`]),
//!   its p-value from [`special::gammaincc`].

mod chi2;
pub mod kolmogorov;
pub mod ks;
pub mod special;

/// Sorts finite values ascending (a radix sort: the hot path of drift detection).
pub fn sort(values: &mut [f64]) {
    radsort::sort(values);
}

/// Which way [`ks_2samp`] computed its p-value (SciPy's `method="auto"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KsMethod {
    /// The exact distribution (both samples ≤ 10,000 values).
    Exact,
    /// The asymptotic one (`kstwo.sf` at the effective sample size).
    Asymptotic,
}

/// The result of [`ks_2samp`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ks {
    /// The largest distance between the two empirical distribution functions.
    pub statistic: f64,
    /// The two-sided p-value.
    pub pvalue: f64,
    /// How the p-value was computed.
    pub method: KsMethod,
}

/// Two-sample Kolmogorov–Smirnov test, two-sided, as `scipy.stats.ks_2samp(a, b)`.
/// `a` and `b`: sorted, finite, non-empty.
pub fn ks_2samp(a: &[f64], b: &[f64]) -> Ks {
    ks::ks_from_extremes(&ks::ks_extremes(a, b), a.len(), b.len())
}

/// Wasserstein-1 distance between two samples, as `scipy.stats.wasserstein_distance(a, b)`.
/// `a` and `b`: sorted, finite, non-empty.
pub fn wasserstein(a: &[f64], b: &[f64]) -> f64 {
    compare(a, b).wasserstein
}

/// Population standard deviation (`numpy.std`, ddof 0).
pub fn std_dev(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let n = values.len() as f64;
    let mean = pairwise_sum_by(values, |x| x) / n;
    (pairwise_sum_by(values, |x| (x - mean) * (x - mean)) / n).sqrt()
}

/// Number of bins [`quantile_edges`] aims for by default.
pub const DEFAULT_BINS: usize = 10;

/// The inner bin edges for PSI and Jensen–Shannon on a numeric column: the reference's
/// quantiles at 1/bins, 2/bins, …, (bins-1)/bins (linear interpolation, `numpy.quantile`'s
/// default), duplicates removed. The outer bins are open: (-inf, e1], (e1, e2], …, (ek, inf).
pub fn quantile_edges(reference_sorted: &[f64], bins: usize) -> Vec<f64> {
    if reference_sorted.is_empty() || bins < 2 {
        return Vec::new();
    }
    let mut edges: Vec<f64> = (1..bins).map(|k| quantile_sorted(reference_sorted, k as f64 / bins as f64)).collect();
    edges.sort_by(f64::total_cmp);
    edges.dedup_by(|a, b| a == b);
    edges
}

/// How many of the sorted values fall in each bin of `edges` (right-closed bins, as
/// documented at [`quantile_edges`]): `edges.len() + 1` counts.
pub fn bin_counts(sorted: &[f64], edges: &[f64]) -> Vec<u64> {
    let mut counts = Vec::with_capacity(edges.len() + 1);
    let mut below = 0usize;
    for &edge in edges {
        let upto = sorted.partition_point(|&v| v <= edge).max(below);
        counts.push((upto - below) as u64);
        below = upto;
    }
    counts.push((sorted.len() - below) as u64);
    counts
}

/// The proportion that stands in for an empty bin in [`psi`], so the logarithm stays finite.
pub const PSI_EPSILON: f64 = 1e-4;

/// Population Stability Index of two frequency tables over the same bins:
/// `sum((c_i - r_i) * ln(c_i / r_i))` over the proportions, an empty bin counting as
/// [`PSI_EPSILON`].
pub fn psi(reference: &[u64], current: &[u64]) -> f64 {
    assert_eq!(reference.len(), current.len(), "psi: the two tables must have the same bins");
    let reference = proportions(reference);
    let current = proportions(current);
    let terms: Vec<f64> = reference
        .iter()
        .zip(&current)
        .map(|(&r, &c)| {
            let (r, c) = (if r == 0.0 { PSI_EPSILON } else { r }, if c == 0.0 { PSI_EPSILON } else { c });
            (c - r) * (c / r).ln()
        })
        .collect();
    sum(&terms)
}

/// Jensen–Shannon distance (natural logarithm) between two frequency tables over the same
/// bins, as `scipy.spatial.distance.jensenshannon(p, q)`.
pub fn js_distance(reference: &[u64], current: &[u64]) -> f64 {
    assert_eq!(reference.len(), current.len(), "js_distance: the two tables must have the same bins");
    let p = proportions(reference);
    let q = proportions(current);
    if reference.iter().sum::<u64>() == 0 || current.iter().sum::<u64>() == 0 {
        return f64::NAN;
    }
    let m: Vec<f64> = p.iter().zip(&q).map(|(&p, &q)| (p + q) / 2.0).collect();
    let left: Vec<f64> = p.iter().zip(&m).map(|(&x, &y)| rel_entr(x, y)).collect();
    let right: Vec<f64> = q.iter().zip(&m).map(|(&x, &y)| rel_entr(x, y)).collect();
    ((sum(&left) + sum(&right)) / 2.0).sqrt()
}

/// The result of [`chi2_contingency`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chi2 {
    /// The chi-square statistic (Yates-corrected when `dof == 1`, as SciPy's default).
    pub statistic: f64,
    /// Its p-value.
    pub pvalue: f64,
    /// Degrees of freedom: categories − 1.
    pub dof: usize,
}

/// Chi-square test of independence on the 2×k table of two frequency tables over the same
/// categories, as `scipy.stats.chi2_contingency([reference, current])`. Categories absent from
/// both must be left out by the caller.
pub fn chi2_contingency(reference: &[u64], current: &[u64]) -> Chi2 {
    chi2::chi2_contingency(reference, current)
}

/// [`ks_2samp`] and [`wasserstein`] of the same two samples, from one pass over them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// The Kolmogorov–Smirnov test.
    pub ks: Ks,
    /// The Wasserstein-1 distance.
    pub wasserstein: f64,
}

/// Terms summed plainly before they join the compensated total (keeps the loop fast and the
/// rounding error far below 1e-12 relative).
const BLOCK: usize = 256;

/// [`ks_2samp`] and [`wasserstein`] in one merge of the sorted, finite, non-empty samples.
pub fn compare(a: &[f64], b: &[f64]) -> Comparison {
    assert!(!a.is_empty() && !b.is_empty(), "compare: samples must not be empty");
    let (n1, n2) = (a.len() as i64, b.len() as i64);
    let mut extremes = ks::KsExtremes::new(a.len(), b.len());
    // ∫|F_a - F_b| = Σ |i·n2 - j·n1| · gap / (n1·n2) over the distinct pooled values.
    let mut total = Neumaier::default();
    let mut block = 0.0;
    let mut in_block = 0usize;
    ks::walk_pooled(a, b, |i, j, gap| {
        let diff = i as i64 * n2 - j as i64 * n1;
        extremes.observe(diff, i, j);
        block += diff.unsigned_abs() as f64 * gap;
        in_block += 1;
        if in_block == BLOCK {
            total.add(block);
            block = 0.0;
            in_block = 0;
        }
    });
    total.add(block);
    let wasserstein = total.value() / (n1 as f64 * n2 as f64);
    Comparison { ks: ks::ks_from_extremes(&extremes, a.len(), b.len()), wasserstein }
}

/// `numpy.quantile(sorted, q)` (method "linear"): interpolation between the order statistics
/// around `q·(n - 1)`, in numpy's two-sided form.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    let virtual_index = (n - 1) as f64 * q;
    if virtual_index >= (n - 1) as f64 {
        return sorted[n - 1];
    }
    if virtual_index <= 0.0 {
        return sorted[0];
    }
    let previous = virtual_index.floor();
    let gamma = virtual_index - previous;
    let (lo, hi) = (sorted[previous as usize], sorted[previous as usize + 1]);
    let diff = hi - lo;
    if gamma >= 0.5 { hi - diff * (1.0 - gamma) } else { lo + diff * gamma }
}

/// Each count over the table's total (all zeros when the total is zero).
fn proportions(counts: &[u64]) -> Vec<f64> {
    let total = counts.iter().sum::<u64>();
    if total == 0 {
        return vec![0.0; counts.len()];
    }
    counts.iter().map(|&c| c as f64 / total as f64).collect()
}

/// `scipy.special.rel_entr(x, y)`: `x ln(x / y)`, 0 when `x` is 0.
fn rel_entr(x: f64, y: f64) -> f64 {
    if x > 0.0 && y > 0.0 {
        x * (x / y).ln()
    } else if x == 0.0 && y >= 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

/// Neumaier's compensated sum.
#[derive(Debug, Default, Clone, Copy)]
struct Neumaier {
    sum: f64,
    compensation: f64,
}

impl Neumaier {
    fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.compensation += (self.sum - t) + x;
        } else {
            self.compensation += (x - t) + self.sum;
        }
        self.sum = t;
    }

    fn value(&self) -> f64 {
        self.sum + self.compensation
    }
}

/// The compensated sum of `values`.
pub(crate) fn sum(values: &[f64]) -> f64 {
    let mut total = Neumaier::default();
    values.iter().for_each(|&x| total.add(x));
    total.value()
}

/// Pairwise summation of `f(x)` over `values` (eight running sums in blocks of 128, as numpy
/// does): fast, and an error that grows with `log n`.
fn pairwise_sum_by(values: &[f64], f: impl Fn(f64) -> f64 + Copy) -> f64 {
    const LEAF: usize = 128;
    if values.len() <= LEAF {
        let mut acc = [0.0; 8];
        let chunks = values.chunks_exact(8);
        let rest = chunks.remainder();
        for chunk in chunks {
            for (a, &x) in acc.iter_mut().zip(chunk) {
                *a += f(x);
            }
        }
        let mut total = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for &x in rest {
            total += f(x);
        }
        return total;
    }
    let half = values.len() / 2 / 8 * 8;
    pairwise_sum_by(&values[..half], f) + pairwise_sum_by(&values[half..], f)
}

#[cfg(test)]
mod tests;
