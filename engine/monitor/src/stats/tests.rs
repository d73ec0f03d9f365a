//! Edge cases of the statistics, with expectations taken from SciPy 1.17 / numpy 2.4.

use super::*;

fn close(actual: f64, expected: f64, rel: f64) -> bool {
    actual == expected || ((actual - expected) / expected).abs() <= rel
}

#[track_caller]
fn assert_close(actual: f64, expected: f64, rel: f64) {
    assert!(close(actual, expected, rel), "{actual} != {expected} (relative tolerance {rel})");
}

#[test]
fn sort_orders_negative_zero_and_extremes() {
    let mut v = vec![3.0, -1.0, 0.0, -0.0, f64::MAX, -f64::MAX, 1e-300, -1e-300, 2.5];
    sort(&mut v);
    assert!(v.windows(2).all(|w| w[0] <= w[1]), "{v:?}");
    assert_eq!(v[0], -f64::MAX);
    assert_eq!(v[8], f64::MAX);
}

#[test]
fn ks_with_ties() {
    let r = ks_2samp(&[1.0, 2.0, 2.0, 3.0, 3.0, 3.0], &[2.0, 3.0, 3.0, 4.0]);
    assert_eq!(r.statistic, 0.25);
    assert_close(r.pvalue, 0.995_238_095_238_095_3, 1e-14);
    assert_eq!(r.method, KsMethod::Exact);
}

#[test]
fn ks_with_one_value() {
    assert_eq!(ks_2samp(&[5.0], &[5.0]), Ks { statistic: 0.0, pvalue: 1.0, method: KsMethod::Exact });
    assert_eq!(ks_2samp(&[1.0], &[2.0]), Ks { statistic: 1.0, pvalue: 1.0, method: KsMethod::Exact });
}

#[test]
fn ks_identical_samples() {
    let a = [1.0, 2.0, 3.0];
    assert_eq!(ks_2samp(&a, &a), Ks { statistic: 0.0, pvalue: 1.0, method: KsMethod::Exact });
    let big: Vec<f64> = (0..20_000).map(f64::from).collect();
    let r = ks_2samp(&big, &big);
    assert_eq!((r.statistic, r.pvalue, r.method), (0.0, 1.0, KsMethod::Asymptotic));
}

#[test]
fn ks_unequal_sizes() {
    let a: Vec<f64> = (0..37).map(|i| f64::from(i) / 37.0).collect();
    let b: Vec<f64> = (0..50).map(|i| f64::from(i) / 50.0 + 0.1).collect();
    let r = ks_2samp(&a, &b);
    assert_eq!(r.statistic, 0.126_486_486_486_486_5);
    assert_close(r.pvalue, 0.827_211_125_230_162_7, 1e-12);
}

#[test]
fn ks_huge_differences() {
    let a: Vec<f64> = (0..20).map(f64::from).collect();
    let b: Vec<f64> = (100..130).map(f64::from).collect();
    let r = ks_2samp(&a, &b);
    assert_eq!(r.statistic, 1.0);
    assert_close(r.pvalue, 4.243_652_513_534_888e-14, 1e-10);
    let a: Vec<f64> = (0..20_000).map(f64::from).collect();
    let b: Vec<f64> = (100_000..130_000).map(f64::from).collect();
    let r = ks_2samp(&a, &b);
    assert_eq!((r.statistic, r.pvalue, r.method), (1.0, 0.0, KsMethod::Asymptotic));
}

#[test]
fn ks_asymptotic_statistic_is_scipys_float() {
    let a: Vec<f64> = (0..15_000).map(f64::from).collect();
    let b: Vec<f64> = (0..15_000).map(|i| f64::from(i) + 300.0).collect();
    let r = ks_2samp(&a, &b);
    assert_eq!(r.statistic, 0.020_000_000_000_000_073);
    assert_close(r.pvalue, 0.004_890_096_322_179_95, 1e-9);
}

#[test]
fn wasserstein_and_compare() {
    let (a, b) = ([1.0, 2.0, 2.0, 3.0, 3.0, 3.0], [2.0, 3.0, 3.0, 4.0]);
    assert_close(wasserstein(&a, &b), 0.666_666_666_666_666_6, 1e-15);
    assert_eq!(wasserstein(&a, &a), 0.0);
    assert_eq!(wasserstein(&[1.0], &[4.0]), 3.0);
    let c = compare(&a, &b);
    assert_eq!(c.ks, ks_2samp(&a, &b));
}

#[test]
fn std_dev_is_population() {
    assert_close(std_dev(&[1.0, 2.0, 3.0, 4.0, 10.0]), 3.162_277_660_168_379_5, 1e-15);
    assert_eq!(std_dev(&[4.0]), 0.0);
    let many: Vec<f64> = (0..1000).map(|i| 1e9 + f64::from(i % 2)).collect();
    assert_close(std_dev(&many), 0.5, 1e-12);
}

#[test]
fn quantiles_and_bins() {
    let r = [1.0, 2.0, 3.0, 4.0, 10.0];
    assert_eq!(quantile_edges(&r, 4), vec![2.0, 3.0, 4.0]);
    // Duplicates removed.
    assert_eq!(quantile_edges(&[1.0, 1.0, 1.0, 1.0, 2.0], 4), vec![1.0]);
    assert_eq!(bin_counts(&[0.5, 1.0, 1.0, 1.5, 2.0, 3.0], &[1.0, 2.0]), vec![3, 2, 1]);
    assert_eq!(bin_counts(&[], &[1.0]), vec![0, 0]);
    assert_eq!(bin_counts(&[1.0, 2.0], &[]), vec![2]);
}

#[test]
fn psi_uses_epsilon_for_empty_bins() {
    assert_eq!(psi(&[10, 20, 30], &[1, 2, 3]), 0.0);
    let (r, c) = (0.5_f64, 0.5_f64);
    let expected = (c - r) * (c / r).ln()
        + (PSI_EPSILON - 0.5) * (PSI_EPSILON / 0.5).ln()
        + (0.5 - PSI_EPSILON) * (0.5 / PSI_EPSILON).ln();
    assert_close(psi(&[5, 5, 0], &[5, 0, 5]), expected, 1e-15);
}

#[test]
fn js_distance_matches_scipy() {
    assert_close(js_distance(&[1, 2, 3], &[3, 2, 1]), 0.295_310_047_172_049_34, 1e-14);
    assert_eq!(js_distance(&[4, 0, 2], &[2, 0, 1]), 0.0);
    assert!(js_distance(&[0, 0], &[1, 1]).is_nan());
}

#[test]
fn chi2_contingency_without_yates() {
    let r = chi2_contingency(&[10, 20, 30], &[30, 20, 10]);
    assert_eq!((r.statistic, r.dof), (20.0, 2));
    assert_close(r.pvalue, 4.539_992_976_248_486e-5, 1e-13);
}
