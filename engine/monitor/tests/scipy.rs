//! dagrun's drift statistics against SciPy's own results (issue #11).
//!
//! The cases come from `scripts/scipy-fixtures.py` (pinned SciPy and numpy, see
//! `scripts/scipy-fixtures.sh`). By default the committed small set in
//! `tests/fixtures/scipy/` (samples of at most 1,000 values) is checked. With
//! `DAGRUN_SCIPY_FIXTURES=DIR` the set generated in DIR is checked instead; it must exist and be
//! a full set (samples up to 100,000 values), or the test fails:
//!
//! ```text
//! scripts/scipy-fixtures.sh /tmp/scipy-fixtures
//! DAGRUN_SCIPY_FIXTURES=/tmp/scipy-fixtures cargo test --release -p dagrun-monitor --test scipy -- --nocapture
//! ```
//!
//! Criteria (`ours` against `scipy`):
//! * statistics (KS statistic, Wasserstein, standard deviation, quantile edges, chi-square
//!   statistic, PSI, Jensen–Shannon): `|ours - scipy| ≤ 1e-9 · |scipy|` (so exactly 0 when SciPy
//!   says 0);
//! * p-values (KS, chi-square, `kstwo.sf`): `|ours - scipy| ≤ 1e-6 · |scipy| + 1e-300`, i.e.
//!   relative 1e-6 at every magnitude down to the underflow range;
//! * `gammaincc`: `|ours - exact| ≤ 1e-12 · |exact| + 1e-300` against mpmath's value, and
//!   `1e-11` relative against SciPy's (whose own error reaches 1e-12 for `a` in the thousands);
//! * bin counts and degrees of freedom: equal.

use dagrun_monitor::stats::{self, Ks, KsMethod};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const STATISTIC_TOLERANCE: f64 = 1e-9;
const PVALUE_TOLERANCE: f64 = 1e-6;
const GAMMAINCC_TOLERANCE: f64 = 1e-12;
const GAMMAINCC_SCIPY_TOLERANCE: f64 = 1e-11;
/// Below this, relative errors are not tracked as the worst (the values are subnormal or near).
const REPORTED_MIN: f64 = 1e-290;
const TINY: f64 = 1e-300;

/// The worst relative error seen per quantity, and the failures.
#[derive(Default)]
struct Report {
    worst: BTreeMap<&'static str, (f64, String)>,
    checked: BTreeMap<&'static str, usize>,
    failures: Vec<String>,
}

impl Report {
    /// Checks `ours` against `scipy` within `rel · |scipy| + abs`.
    fn check(&mut self, what: &'static str, case: &str, ours: f64, scipy: f64, rel: f64, abs: f64) {
        let error = (ours - scipy).abs();
        let relative = if error == 0.0 { 0.0 } else { error / scipy.abs() };
        *self.checked.entry(what).or_default() += 1;
        let worst = self.worst.entry(what).or_insert((0.0, String::new()));
        let tracked = scipy.abs() >= REPORTED_MIN || scipy == 0.0;
        if tracked && (relative > worst.0 || (relative.is_nan() && !worst.0.is_nan())) {
            *worst = (relative, case.to_string());
        }
        let within = error <= rel * scipy.abs() + abs; // false for NaN
        if !within {
            self.failures.push(format!("{what} {case}: ours {ours:e}, SciPy {scipy:e} (relative error {relative:e})"));
        }
    }

    fn equal<T: PartialEq + std::fmt::Debug>(&mut self, what: &'static str, case: &str, ours: T, scipy: T) {
        *self.checked.entry(what).or_default() += 1;
        if ours != scipy {
            self.failures.push(format!("{what} {case}: ours {ours:?}, SciPy {scipy:?}"));
        }
    }
}

fn float(v: &Value) -> f64 {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("not a float string: {v}"))
}

fn counts(v: &Value) -> Vec<u64> {
    v.as_array().expect("counts").iter().map(|c| c.as_u64().expect("count")).collect()
}

fn read_sample(dir: &Path, name: &Value) -> Vec<f64> {
    let path = dir.join(name.as_str().expect("file name"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(bytes.len() % 8, 0, "{}", path.display());
    bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect()
}

/// The fixture directory and whether it must be the full set.
fn fixture_dir() -> (PathBuf, bool) {
    match std::env::var_os("DAGRUN_SCIPY_FIXTURES") {
        Some(dir) => (PathBuf::from(dir), true),
        None => (Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scipy"), false),
    }
}

fn load() -> (PathBuf, Value) {
    let (dir, must_be_full) = fixture_dir();
    let path = dir.join("cases.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{}: {e} (generate it with scripts/scipy-fixtures.sh {})", path.display(), dir.display())
    });
    let doc: Value = serde_json::from_str(&text).expect("cases.json");
    if must_be_full {
        let largest = doc["numeric"]
            .as_array()
            .expect("numeric")
            .iter()
            .map(|c| c["n1"].as_u64().unwrap_or(0).max(c["n2"].as_u64().unwrap_or(0)))
            .max()
            .unwrap_or(0);
        assert!(
            doc["small"] == Value::Bool(false) && largest >= 100_000,
            "DAGRUN_SCIPY_FIXTURES={} is not a full set (largest sample {largest}); \
             generate it with scripts/scipy-fixtures.sh {0} (without --small)",
            dir.display()
        );
    }
    (dir, doc)
}

fn check_numeric(dir: &Path, case: &Value, report: &mut Report, timings: &mut Vec<(Duration, String)>) {
    let name = case["name"].as_str().expect("name");
    let mut a = read_sample(dir, &case["a"]);
    let mut b = read_sample(dir, &case["b"]);
    report.equal(
        "sample size",
        name,
        (a.len(), b.len()),
        (case["n1"].as_u64().unwrap() as usize, case["n2"].as_u64().unwrap() as usize),
    );
    report.check("std", name, stats::std_dev(&a), float(&case["std_a"]), STATISTIC_TOLERANCE, 0.0);
    report.check("std", name, stats::std_dev(&b), float(&case["std_b"]), STATISTIC_TOLERANCE, 0.0);
    stats::sort(&mut a);
    stats::sort(&mut b);
    assert!(a.windows(2).all(|w| w[0] <= w[1]) && b.windows(2).all(|w| w[0] <= w[1]), "{name}: not sorted");

    let start = Instant::now();
    let ks: Ks = stats::ks_2samp(&a, &b);
    timings.push((start.elapsed(), format!("{name} ({:?})", ks.method)));
    report.check("ks statistic", name, ks.statistic, float(&case["ks_statistic"]), STATISTIC_TOLERANCE, 0.0);
    report.check("ks pvalue", name, ks.pvalue, float(&case["ks_pvalue"]), PVALUE_TOLERANCE, TINY);
    let expected_method = if a.len().max(b.len()) <= 10_000 { KsMethod::Exact } else { KsMethod::Asymptotic };
    report.equal("ks method", name, ks.method, expected_method);
    let wasserstein = stats::wasserstein(&a, &b);
    report.check("wasserstein", name, wasserstein, float(&case["wasserstein"]), STATISTIC_TOLERANCE, 0.0);
    report.equal("compare", name, stats::compare(&a, &b), stats::Comparison { ks, wasserstein });

    let bins = case["bins"].as_u64().expect("bins") as usize;
    let edges = stats::quantile_edges(&a, bins);
    let scipy_edges: Vec<f64> = case["edges"].as_array().expect("edges").iter().map(float).collect();
    report.equal("edge count", name, edges.len(), scipy_edges.len());
    for (&ours, &scipy) in edges.iter().zip(&scipy_edges) {
        report.check("quantile edge", name, ours, scipy, STATISTIC_TOLERANCE, 0.0);
    }
    let (reference, current) = (stats::bin_counts(&a, &edges), stats::bin_counts(&b, &edges));
    report.equal(
        "bin counts",
        name,
        (&reference, &current),
        (&counts(&case["ref_counts"]), &counts(&case["cur_counts"])),
    );
    report.check("psi", name, stats::psi(&reference, &current), float(&case["psi"]), STATISTIC_TOLERANCE, 0.0);
    report.check("js", name, stats::js_distance(&reference, &current), float(&case["js"]), STATISTIC_TOLERANCE, 0.0);
}

fn check_categorical(case: &Value, report: &mut Report) {
    let name = case["name"].as_str().expect("name");
    let (reference, current) = (counts(&case["ref"]), counts(&case["cur"]));
    let chi2 = stats::chi2_contingency(&reference, &current);
    report.check("chi2 statistic", name, chi2.statistic, float(&case["chi2_statistic"]), STATISTIC_TOLERANCE, 0.0);
    report.check("chi2 pvalue", name, chi2.pvalue, float(&case["chi2_pvalue"]), PVALUE_TOLERANCE, TINY);
    report.equal("chi2 dof", name, chi2.dof as u64, case["chi2_dof"].as_u64().expect("dof"));
    report.check("psi", name, stats::psi(&reference, &current), float(&case["psi"]), STATISTIC_TOLERANCE, 0.0);
    report.check("js", name, stats::js_distance(&reference, &current), float(&case["js"]), STATISTIC_TOLERANCE, 0.0);
}

#[test]
fn statistics_match_scipy() {
    let (dir, doc) = load();
    let mut report = Report::default();
    let mut timings = Vec::new();
    let numeric = doc["numeric"].as_array().expect("numeric");
    for case in numeric {
        check_numeric(&dir, case, &mut report, &mut timings);
    }
    let categorical = doc["categorical"].as_array().expect("categorical");
    for case in categorical {
        check_categorical(case, &mut report);
    }
    let kstwo = doc["kstwo"].as_array().expect("kstwo");
    for case in kstwo {
        let (n, d) = (case["n"].as_u64().expect("n"), float(&case["d"]));
        let label = format!("n={n} d={d:e}");
        let ours = stats::kolmogorov::kstwo_sf(d, n as f64);
        report.check("kstwo.sf", &label, ours, float(&case["sf"]), PVALUE_TOLERANCE, TINY);
    }
    let gamma = doc["gammaincc"].as_array().expect("gammaincc");
    for case in gamma {
        let (a, x) = (float(&case["a"]), float(&case["x"]));
        let ours = stats::special::gammaincc(a, x);
        let label = format!("a={a} x={x}");
        report.check("gammaincc", &label, ours, float(&case["q_mpmath"]), GAMMAINCC_TOLERANCE, TINY);
        report.check("gammaincc/scipy", &label, ours, float(&case["q"]), GAMMAINCC_SCIPY_TOLERANCE, TINY);
    }

    eprintln!(
        "checked {} sample pairs, {} contingency tables, {} kstwo.sf and {} gammaincc values against SciPy {} \
         ({}):",
        numeric.len(),
        categorical.len(),
        kstwo.len(),
        gamma.len(),
        doc["scipy"].as_str().unwrap_or("?"),
        dir.display()
    );
    for (what, (worst, case)) in &report.worst {
        eprintln!("  {what:<16} {:>5} checks, max relative error {worst:.3e} ({case})", report.checked[what]);
    }
    timings.sort();
    for (elapsed, case) in timings.iter().rev().take(5) {
        eprintln!("  slowest ks_2samp: {:>9.3} ms  {case}", elapsed.as_secs_f64() * 1e3);
    }
    assert!(report.failures.is_empty(), "{} mismatches:\n{}", report.failures.len(), report.failures.join("\n"));
}
