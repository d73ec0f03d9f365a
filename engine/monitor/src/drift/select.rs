//! Which test decides a column, and the checks on the options.
//!
//! The method comes from the column's own entry in `tests`, else the kind's test
//! (`numeric_test` / `categorical_test`), else Evidently's rule by the reference's sample size:
//! numeric ≤ 1,000 values → Kolmogorov–Smirnov (p < 0.05), more → normed Wasserstein (≥ 0.1);
//! categorical ≤ 1,000 → chi-square (p < 0.05), more → Jensen–Shannon (≥ 0.1).
//!
//! The threshold comes from the most specific level that has one, down to the level the
//! method came from: a column's `(threshold: 0.2)` keeps the kind's (or the default) method
//! with 0.2; a column's `(method: Ks)` ignores a `numeric_test` threshold meant for another
//! method and uses KS's default 0.05. A threshold without any method applies to whichever
//! method the sample size picks.

use dagrun_contracts::drift::{ColumnKind, Method};

use super::{DriftError, DriftOptions, TestSpec};

/// Up to this many reference values, p-value tests; above, distances.
pub const SMALL_SAMPLE: u64 = 1000;

/// A numeric column whose reference has at most this many distinct values is compared as
/// categories (unless its own test is KS or Wasserstein).
pub const LOW_CARDINALITY: usize = 5;

/// Largest `bins` accepted.
const MAX_BINS: usize = 10_000;

/// The test of one column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    /// The method.
    pub method: Method,
    /// Its threshold.
    pub threshold: f64,
}

/// Evidently's rule: p-value tests for small samples, distances for large ones.
pub fn default_method(kind: ColumnKind, reference_values: u64) -> Method {
    match (kind, reference_values <= SMALL_SAMPLE) {
        (ColumnKind::Numeric, true) => Method::Ks,
        (ColumnKind::Numeric, false) => Method::Wasserstein,
        (ColumnKind::Categorical, true) => Method::ChiSquare,
        (ColumnKind::Categorical, false) => Method::JensenShannon,
    }
}

/// Whether the column's own test asks for a numeric method (KS, Wasserstein): then a
/// low-cardinality numeric column stays numeric.
pub fn wants_numeric(column: &str, opts: &DriftOptions) -> bool {
    opts.tests.get(column).and_then(|t| t.method).is_some_and(Method::is_numeric_only)
}

/// The test for `column`, compared as `kind` with `reference_values` usable reference values.
pub fn choose(
    column: &str,
    kind: ColumnKind,
    reference_values: u64,
    opts: &DriftOptions,
) -> Result<Choice, DriftError> {
    let own = opts.tests.get(column).copied().unwrap_or_default();
    let for_kind = match kind {
        ColumnKind::Numeric => opts.numeric_test,
        ColumnKind::Categorical => opts.categorical_test,
    }
    .unwrap_or_default();
    let (method, threshold) = match (own.method, for_kind.method) {
        (Some(m), _) => (m, own.threshold),
        (None, Some(m)) => (m, own.threshold.or(for_kind.threshold)),
        (None, None) => (default_method(kind, reference_values), own.threshold.or(for_kind.threshold)),
    };
    if kind == ColumnKind::Categorical && method.is_numeric_only() {
        let from = if own.method.is_some() { "its test in `tests`" } else { "`categorical_test`" };
        return Err(DriftError::Options(format!(
            "column `{column}` is categorical, but {from} is `{method}`, which needs numbers: use chi_square, psi or jensen_shannon for it"
        )));
    }
    let threshold = threshold.unwrap_or(method.default_threshold());
    check_threshold(column, method, threshold)?;
    Ok(Choice { method, threshold })
}

fn check_threshold(column: &str, method: Method, threshold: f64) -> Result<(), DriftError> {
    let ok = if method.is_p_value() {
        threshold > 0.0 && threshold <= 1.0
    } else {
        threshold.is_finite() && threshold >= 0.0
    };
    if ok {
        return Ok(());
    }
    let expected = if method.is_p_value() { "a p-value in (0, 1]" } else { "a finite distance ≥ 0" };
    Err(DriftError::Options(format!("column `{column}`: threshold {threshold} for `{method}` is not {expected}")))
}

/// Checks what does not depend on the data.
pub fn validate(opts: &DriftOptions) -> Result<(), DriftError> {
    if !(0.0..=1.0).contains(&opts.drift_share) {
        return Err(DriftError::Options(format!(
            "drift_share {} is not a share: expected a number from 0 to 1",
            opts.drift_share
        )));
    }
    if !(2..=MAX_BINS).contains(&opts.bins) {
        return Err(DriftError::Options(format!("bins {} must be from 2 to {MAX_BINS}", opts.bins)));
    }
    let specs = [("numeric_test", opts.numeric_test), ("categorical_test", opts.categorical_test)];
    for (name, spec) in specs {
        if let Some(TestSpec { method: Some(m), threshold }) = spec {
            if name == "categorical_test" && m.is_numeric_only() {
                return Err(DriftError::Options(format!(
                    "categorical_test is `{m}`, which needs numbers: use chi_square, psi or jensen_shannon"
                )));
            }
            check_threshold(name, m, threshold.unwrap_or(m.default_threshold()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn spec(method: Option<Method>, threshold: Option<f64>) -> Option<TestSpec> {
        Some(TestSpec { method, threshold })
    }

    fn pick(opts: &DriftOptions, kind: ColumnKind, n: u64) -> Choice {
        choose("x", kind, n, opts).unwrap()
    }

    #[test]
    fn evidently_defaults_by_sample_size() {
        let o = DriftOptions::default();
        assert_eq!(pick(&o, ColumnKind::Numeric, 1000), Choice { method: Method::Ks, threshold: 0.05 });
        assert_eq!(pick(&o, ColumnKind::Numeric, 1001), Choice { method: Method::Wasserstein, threshold: 0.1 });
        assert_eq!(pick(&o, ColumnKind::Categorical, 30), Choice { method: Method::ChiSquare, threshold: 0.05 });
        assert_eq!(pick(&o, ColumnKind::Categorical, 5000).method, Method::JensenShannon);
    }

    #[test]
    fn overrides_column_then_kind_then_default() {
        let mut o = DriftOptions { numeric_test: spec(Some(Method::Psi), Some(0.3)), ..DriftOptions::default() };
        assert_eq!(pick(&o, ColumnKind::Numeric, 10), Choice { method: Method::Psi, threshold: 0.3 });
        assert_eq!(pick(&o, ColumnKind::Categorical, 10).method, Method::ChiSquare, "numeric_test only");
        o.tests = BTreeMap::from([("x".into(), TestSpec { method: None, threshold: Some(0.2) })]);
        assert_eq!(pick(&o, ColumnKind::Numeric, 10), Choice { method: Method::Psi, threshold: 0.2 });
        o.tests = BTreeMap::from([("x".into(), TestSpec { method: Some(Method::Ks), threshold: None })]);
        assert_eq!(
            pick(&o, ColumnKind::Numeric, 5000),
            Choice { method: Method::Ks, threshold: 0.05 },
            "the kind's threshold was for PSI"
        );
        let o = DriftOptions {
            numeric_test: spec(None, Some(0.01)),
            tests: BTreeMap::from([("x".into(), TestSpec { method: None, threshold: Some(0.2) })]),
            ..DriftOptions::default()
        };
        assert_eq!(pick(&o, ColumnKind::Numeric, 5000), Choice { method: Method::Wasserstein, threshold: 0.2 });
        assert_eq!(choose("y", ColumnKind::Numeric, 10, &o).unwrap(), Choice { method: Method::Ks, threshold: 0.01 });
    }

    #[test]
    fn numeric_methods_on_categories_are_refused_with_the_fix() {
        let o = DriftOptions {
            tests: BTreeMap::from([("city".into(), TestSpec { method: Some(Method::Wasserstein), threshold: None })]),
            ..DriftOptions::default()
        };
        let e = choose("city", ColumnKind::Categorical, 10, &o).unwrap_err().to_string();
        assert_eq!(
            e,
            "column `city` is categorical, but its test in `tests` is `wasserstein`, which needs numbers: use chi_square, psi or jensen_shannon for it"
        );
        assert!(wants_numeric("city", &o) && !wants_numeric("other", &o));
        let o = DriftOptions { categorical_test: spec(Some(Method::Ks), None), ..DriftOptions::default() };
        assert!(validate(&o).unwrap_err().to_string().starts_with("categorical_test is `ks`"));
    }

    #[test]
    fn bad_numbers_are_refused() {
        let bad = [
            DriftOptions { drift_share: 1.5, ..DriftOptions::default() },
            DriftOptions { drift_share: f64::NAN, ..DriftOptions::default() },
            DriftOptions { bins: 1, ..DriftOptions::default() },
            DriftOptions { numeric_test: spec(Some(Method::Ks), Some(2.0)), ..DriftOptions::default() },
            DriftOptions { numeric_test: spec(Some(Method::Psi), Some(-1.0)), ..DriftOptions::default() },
        ];
        for o in bad {
            assert!(matches!(validate(&o), Err(DriftError::Options(_))), "{o:?}");
        }
        assert!(validate(&DriftOptions::default()).is_ok());
        let o = DriftOptions {
            tests: BTreeMap::from([("x".into(), TestSpec { method: None, threshold: Some(0.0) })]),
            ..DriftOptions::default()
        };
        let e = choose("x", ColumnKind::Numeric, 10, &o).unwrap_err().to_string();
        assert_eq!(e, "column `x`: threshold 0 for `ks` is not a p-value in (0, 1]");
    }
}
