//! The statistics behind drift detection, computed exactly as SciPy computes them. Every
//! function takes sorted, finite samples (see [`sort`]) or frequency tables.

/// Sorts finite values ascending (a radix sort: the hot path of drift detection).
pub fn sort(values: &mut [f64]) {
    let _ = values;
    todo!()
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
    let _ = (a, b);
    todo!()
}

/// Wasserstein-1 distance between two samples, as `scipy.stats.wasserstein_distance(a, b)`.
/// `a` and `b`: sorted, finite, non-empty.
pub fn wasserstein(a: &[f64], b: &[f64]) -> f64 {
    let _ = (a, b);
    todo!()
}

/// Population standard deviation (`numpy.std`, ddof 0).
pub fn std_dev(values: &[f64]) -> f64 {
    let _ = values;
    todo!()
}

/// Number of bins [`quantile_edges`] aims for by default.
pub const DEFAULT_BINS: usize = 10;

/// The inner bin edges for PSI and Jensen–Shannon on a numeric column: the reference's
/// quantiles at 1/bins, 2/bins, …, (bins-1)/bins (linear interpolation, `numpy.quantile`'s
/// default), duplicates removed. The outer bins are open: (-inf, e1], (e1, e2], …, (ek, inf).
pub fn quantile_edges(reference_sorted: &[f64], bins: usize) -> Vec<f64> {
    let _ = (reference_sorted, bins);
    todo!()
}

/// How many of the sorted values fall in each bin of `edges` (right-closed bins, as
/// documented at [`quantile_edges`]): `edges.len() + 1` counts.
pub fn bin_counts(sorted: &[f64], edges: &[f64]) -> Vec<u64> {
    let _ = (sorted, edges);
    todo!()
}

/// The proportion that stands in for an empty bin in [`psi`], so the logarithm stays finite.
pub const PSI_EPSILON: f64 = 1e-4;

/// Population Stability Index of two frequency tables over the same bins:
/// `sum((c_i - r_i) * ln(c_i / r_i))` over the proportions, an empty bin counting as
/// [`PSI_EPSILON`].
pub fn psi(reference: &[u64], current: &[u64]) -> f64 {
    let _ = (reference, current);
    todo!()
}

/// Jensen–Shannon distance (natural logarithm) between two frequency tables over the same
/// bins, as `scipy.spatial.distance.jensenshannon(p, q)`.
pub fn js_distance(reference: &[u64], current: &[u64]) -> f64 {
    let _ = (reference, current);
    todo!()
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
    let _ = (reference, current);
    todo!()
}
