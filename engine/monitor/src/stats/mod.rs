//! The statistics behind drift detection, computed exactly as SciPy computes them. Every
//! function takes sorted, finite samples (see [`sort`]) or frequency tables.
//!
//! * [`ks_2samp`]: `scipy.stats.ks_2samp` (two-sided, `method="auto"`): the statistic from one
//!   merge of the samples ([`ks`]), the exact p-value up to 10,000 values a side (`exact`),
//!   `kstwo.sf` beyond ([`kolmogorov`], [`smirnov`]).
//! * [`wasserstein`]: `scipy.stats.wasserstein_distance`; [`compare`] gives both from one merge.
//! * [`quantile_edges`], [`bin_counts`], [`psi`], [`js_distance`]: binned comparisons.
//! * [`chi2_contingency`]: `scipy.stats.chi2_contingency` on two frequency tables, its p-value
//!   from [`special::gammaincc`].
//!
//! Agreement with SciPy 1.17 (`tests/scipy.rs`, fixtures from `scripts/scipy-fixtures.py`): the
//! KS statistic, quantile edges and standard deviation to the last bit, Wasserstein, PSI,
//! Jensen–Shannon and the chi-square statistic to ~1e-14 relative, p-values to ~1e-11
//! relative.

mod chi2;
mod exact;
pub mod kolmogorov;
pub mod ks;
pub mod smirnov;
mod sort;
pub mod special;

/// Sorts finite values ascending (a radix sort: the hot path of drift detection), -0.0 before
/// 0.0. Infinities go to the ends; NaNs too (by sign bit), which the statistics do not expect.
pub fn sort(values: &mut [f64]) {
    sort::radix_sort(values);
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
/// `a` and `b`: sorted, finite, non-empty (panics on an empty one, as SciPy raises).
///
/// The statistic is `max |F_a - F_b|` over the pooled values (ties counted as SciPy's
/// `searchsorted(side="right")` does), bit for bit SciPy's. With both samples of at most
/// 10,000 values the p-value is exact and the statistic is SciPy's `h / lcm(n_a, n_b)`;
/// otherwise (or if the exact computation is not a probability) the p-value is
/// `kstwo.sf(d, round(n_a·n_b / (n_a + n_b)))`.
pub fn ks_2samp(a: &[f64], b: &[f64]) -> Ks {
    compare(a, b).ks
}

/// Wasserstein-1 distance between two samples, as `scipy.stats.wasserstein_distance(a, b)`:
/// `∫|F_a - F_b|`. `a` and `b`: sorted, finite, non-empty.
pub fn wasserstein(a: &[f64], b: &[f64]) -> f64 {
    compare(a, b).wasserstein
}

/// Population standard deviation (`numpy.std`, ddof 0): two passes (mean, then squared
/// deviations), pairwise sums. NaN for no values.
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
/// quantiles at k/bins for k = 1 … bins-1 (`numpy.quantile`'s default "linear" method, bit for
/// bit), sorted with duplicates removed (`numpy.unique`). The outer bins are open:
/// (-inf, e1], (e1, e2], …, (ek, inf). No edges for an empty reference or `bins < 2`.
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

/// Population Stability Index of two frequency tables over the same bins.
///
/// With the proportions `r_i = reference_i / Σ reference` and `c_i = current_i / Σ current`,
/// each proportion that is exactly 0 replaced by [`PSI_EPSILON`] (the others are left as they
/// are, not renormalised):
///
/// `PSI = Σ_i (c_i - r_i) · ln(c_i / r_i)` (natural logarithm; every term ≥ 0).
///
/// A table whose total is 0 counts as all-empty (every proportion ε). Panics if the tables have
/// different lengths.
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
/// bins, as `scipy.spatial.distance.jensenshannon(p, q)`: `p`, `q` normalised to sum 1,
/// `m = (p + q) / 2`, `sqrt((Σ rel_entr(p, m) + Σ rel_entr(q, m)) / 2)`; between 0 and √ln 2.
/// NaN when a table's total is 0 (SciPy divides 0 by 0). Panics if the lengths differ.
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
/// categories, as `scipy.stats.chi2_contingency([reference, current])` with its defaults:
/// expected counts `row total · column total / total`, Pearson's `Σ (o - e)² / e`, Yates'
/// correction (each observed count moved ½ towards its expectation, never past it) when
/// `dof == 1`, p-value `chi2.sf(statistic, dof)`. Categories absent from both must be left out
/// by the caller. One category (or none): statistic 0, p-value 1, dof 0, as SciPy. An empty
/// table (a zero expected count, which SciPy refuses): statistic and p-value NaN. Panics if
/// the lengths differ.
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

/// [`ks_2samp`] and [`wasserstein`] in one merge of the sorted, finite, non-empty samples
/// (the drift check's hot path: for two samples of 10⁶, less time than sorting one of them).
pub fn compare(a: &[f64], b: &[f64]) -> Comparison {
    assert!(!a.is_empty() && !b.is_empty(), "compare: samples must not be empty");
    let (extremes, area) = ks::merge(a, b);
    let wasserstein = area / (a.len() as f64 * b.len() as f64);
    Comparison { ks: ks::ks_from_extremes(&extremes, a.len(), b.len()), wasserstein }
}

/// `numpy.quantile(sorted, q)` (method "linear"): interpolation between the order statistics
/// around `q·(n - 1)`, in numpy's two-sided form. `sorted`: sorted, non-empty.
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

/// `scipy.special.rel_entr(x, y)`: `x ln(x / y)` (0 when `x` is 0), through `ln_1p` of the
/// relative difference when `x` and `y` are close (the terms of a Jensen–Shannon distance
/// between near-identical tables cancel, so their accuracy matters).
fn rel_entr(x: f64, y: f64) -> f64 {
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x <= 0.0 || y <= 0.0 {
        return if x == 0.0 && y >= 0.0 { 0.0 } else { f64::INFINITY };
    }
    let ratio = x / y;
    if 0.5 < ratio && ratio < 2.0 {
        x * ((x - y) / y).ln_1p()
    } else if f64::MIN_POSITIVE < ratio && ratio < f64::INFINITY {
        x * ratio.ln()
    } else {
        x * (x.ln() - y.ln())
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
