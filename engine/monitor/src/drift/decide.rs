//! Decisions and their sentences: a column's (its test's statistic against its threshold) and
//! the dataset's (the share of drifted columns, critical columns, prediction drift).
//!
//! The dataset rule: `share` = drifted columns ÷ columns that had enough data (columns with
//! `insufficient_data` count on neither side, so a few tiny columns cannot dilute or inflate
//! it). The dataset is drifted when at least one column drifted and `share ≥ drift_share`, or
//! when a critical column drifted, or when a prediction column drifted (the model's output
//! moved: the signal a retraining trigger cares about most). It is `insufficient_data` when no
//! column and no prediction had enough data.

use dagrun_contracts::drift::{ColumnResult, DriftStatus, Method};

use super::measure::{CategoricalMeasures, NumericMeasures};
use super::select::Choice;

/// A number for a sentence: 4 significant digits, trailing zeros dropped, scientific notation
/// below 1e-4 and from 1e6.
pub fn fmt_num(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return if x == 0.0 { "0".into() } else { x.to_string() };
    }
    let magnitude = x.abs().log10().floor() as i32;
    if !(-4..6).contains(&magnitude) {
        let s = format!("{x:.3e}");
        let (mantissa, exponent) = s.split_once('e').unwrap_or((&s, "0"));
        return format!("{}e{exponent}", trim_zeros(mantissa));
    }
    let decimals = (3 - magnitude).max(0) as usize;
    trim_zeros(&format!("{x:.decimals$}")).to_string()
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { s }
}

/// A column's test outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The statistic reported.
    pub statistic: Option<f64>,
    /// The p-value (p-value tests).
    pub p_value: Option<f64>,
    /// Drift or not.
    pub drifted: bool,
    /// Why.
    pub reason: String,
}

fn by_p_value(label: &str, p: f64, statistic: f64, detail: String, threshold: f64) -> Outcome {
    let drifted = p < threshold;
    let op = if drifted { "<" } else { "≥" };
    Outcome {
        statistic: Some(statistic),
        p_value: Some(p),
        drifted,
        reason: format!("{label} p-value {} {op} {} ({detail})", fmt_num(p), fmt_num(threshold)),
    }
}

fn by_distance(method: Method, distance: f64, threshold: f64) -> Outcome {
    let drifted = distance >= threshold;
    let op = if drifted { "≥" } else { "<" };
    Outcome {
        statistic: Some(distance),
        p_value: None,
        drifted,
        reason: format!("{} {} {op} {}", method.label(), fmt_num(distance), fmt_num(threshold)),
    }
}

fn chi2_detail(statistic: f64, dof: usize) -> String {
    format!("χ² = {}, {dof} dof", fmt_num(statistic))
}

/// The outcome of a numeric column's test.
pub fn numeric(m: &NumericMeasures, c: Choice) -> Outcome {
    match c.method {
        Method::Ks => by_p_value("KS", m.ks_pvalue, m.ks, format!("D = {}", fmt_num(m.ks)), c.threshold),
        Method::Wasserstein => match m.wasserstein_normed() {
            Some(w) => by_distance(Method::Wasserstein, w, c.threshold),
            None => Outcome {
                statistic: Some(m.wasserstein),
                p_value: None,
                drifted: true,
                reason: format!(
                    "reference is constant (std 0) and current differs: Wasserstein distance {} (the normed distance is infinite)",
                    fmt_num(m.wasserstein)
                ),
            },
        },
        Method::Psi => by_distance(Method::Psi, m.psi, c.threshold),
        Method::JensenShannon => by_distance(Method::JensenShannon, m.js, c.threshold),
        Method::ChiSquare => {
            let chi = m.chi2.expect("the binned chi-square is computed when it decides");
            let detail = format!("{} over reference-quantile bins", chi2_detail(chi.statistic, chi.dof));
            by_p_value("chi-square", chi.pvalue, chi.statistic, detail, c.threshold)
        }
    }
}

/// The outcome of a categorical column's test (KS and Wasserstein were refused by
/// [`super::select::choose`]).
pub fn categorical(m: &CategoricalMeasures, c: Choice) -> Outcome {
    match c.method {
        Method::ChiSquare => {
            let detail = chi2_detail(m.chi2.statistic, m.chi2.dof);
            by_p_value("chi-square", m.chi2.pvalue, m.chi2.statistic, detail, c.threshold)
        }
        Method::Psi => by_distance(Method::Psi, m.psi, c.threshold),
        Method::JensenShannon => by_distance(Method::JensenShannon, m.js, c.threshold),
        Method::Ks | Method::Wasserstein => unreachable!("select::choose refuses numeric tests on categories"),
    }
}

/// Why a column has too little data.
pub fn insufficient(reference: u64, current: u64, min_rows: u64) -> String {
    let min = min_rows.max(1);
    match (reference < min, current < min) {
        (true, true) => {
            format!("reference and current have {reference} and {current} usable values, fewer than min_rows {min}")
        }
        (true, false) => format!("reference has {reference} usable values, fewer than min_rows {min}"),
        _ => format!("current has {current} usable values, fewer than min_rows {min}"),
    }
}

/// The dataset decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Drift, no drift, insufficient data.
    pub status: DriftStatus,
    /// Which rule fired.
    pub reason: String,
    /// Drifted ÷ decided columns.
    pub share: f64,
    /// The drifted columns, in order.
    pub drifted_columns: Vec<String>,
}

fn names(results: &[&ColumnResult]) -> String {
    results.iter().map(|c| format!("`{}` ({})", c.column, c.reason)).collect::<Vec<_>>().join(", ")
}

/// Decides for the dataset (see the module documentation).
pub fn dataset(columns: &[ColumnResult], predictions: &[ColumnResult], drift_share: f64, min_rows: u64) -> Dataset {
    let is = |s: DriftStatus| move |c: &&ColumnResult| c.decision == s;
    let decided = columns.iter().filter(|c| c.decision != DriftStatus::InsufficientData).count();
    let insufficient = columns.len() - decided;
    let drifted: Vec<&ColumnResult> = columns.iter().filter(is(DriftStatus::Drift)).collect();
    let drifted_columns = drifted.iter().map(|c| c.column.clone()).collect();
    let share = if decided == 0 { 0.0 } else { drifted.len() as f64 / decided as f64 };
    let predictions_decided = predictions.iter().any(|c| c.decision != DriftStatus::InsufficientData);
    if decided == 0 && !predictions_decided {
        let reason = format!(
            "every compared column has fewer than min_rows {} usable values on a side: too little data to judge",
            min_rows.max(1)
        );
        return Dataset { status: DriftStatus::InsufficientData, reason, share, drifted_columns };
    }
    let mut rules = Vec::new();
    let critical: Vec<&ColumnResult> = drifted.iter().copied().filter(|c| c.critical).collect();
    if !critical.is_empty() {
        let s = if critical.len() == 1 { "" } else { "s" };
        rules.push(format!("critical column{s} {} drifted", names(&critical)));
    }
    let counts = format!("{} of {decided} columns drifted", drifted.len());
    if !drifted.is_empty() && share >= drift_share {
        rules.push(format!("{counts} (share {} ≥ drift_share {})", fmt_num(share), fmt_num(drift_share)));
    }
    let moved: Vec<&ColumnResult> = predictions.iter().filter(is(DriftStatus::Drift)).collect();
    if !moved.is_empty() {
        rules.push(format!("the predictions drifted: {}", names(&moved)));
    }
    let status = if rules.is_empty() { DriftStatus::NoDrift } else { DriftStatus::Drift };
    if rules.is_empty() {
        rules.push(format!("{counts} (share {} < drift_share {})", fmt_num(share), fmt_num(drift_share)));
    }
    if insufficient > 0 {
        let s = if insufficient == 1 { " has" } else { "s have" };
        rules.push(format!("{insufficient} more column{s} too little data"));
    }
    Dataset { status, reason: rules.join("; "), share, drifted_columns }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dagrun_contracts::drift::{ColumnKind, Sample};

    fn col(name: &str, decision: DriftStatus, critical: bool) -> ColumnResult {
        ColumnResult {
            column: name.into(),
            kind: ColumnKind::Numeric,
            test: Method::Ks,
            statistic: Some(0.5),
            p_value: Some(0.01),
            threshold: 0.05,
            decision,
            reason: "KS p-value 0.01 < 0.05 (D = 0.5)".into(),
            reference: Sample::default(),
            current: Sample::default(),
            critical,
            stats: Default::default(),
            unseen_categories: vec![],
            histogram: None,
        }
    }

    use DriftStatus::{Drift, InsufficientData as Insufficient, NoDrift};

    #[test]
    fn numbers_read_well() {
        let cases = [
            (0.0, "0"),
            (0.31, "0.31"),
            (0.07000000000000006, "0.07"),
            (2.0, "2"),
            (13.23456, "13.23"),
            (1234.5678, "1235"),
            (0.00012346, "0.0001235"),
            (1.5e-30, "1.5e-30"),
            (2.0e7, "2e7"),
            (-0.5, "-0.5"),
        ];
        for (x, s) in cases {
            assert_eq!(fmt_num(x), s, "{x}");
        }
    }

    #[test]
    fn share_rule_leaves_insufficient_columns_out() {
        let cols = [col("a", Drift, false), col("b", NoDrift, false), col("c", Insufficient, false)];
        let d = dataset(&cols, &[], 0.5, 30);
        assert_eq!(d.status, Drift);
        assert_eq!(d.share, 0.5);
        assert_eq!(d.drifted_columns, ["a"]);
        assert_eq!(d.reason, "1 of 2 columns drifted (share 0.5 ≥ drift_share 0.5); 1 more column has too little data");
        let d = dataset(&cols, &[], 0.6, 30);
        assert_eq!(d.status, NoDrift);
        assert!(d.reason.starts_with("1 of 2 columns drifted (share 0.5 < drift_share 0.6)"), "{}", d.reason);
    }

    #[test]
    fn critical_columns_and_predictions_decide_alone() {
        let cols = [col("a", Drift, true), col("b", NoDrift, false), col("c", NoDrift, false)];
        let d = dataset(&cols, &[], 0.5, 30);
        assert_eq!(d.status, Drift);
        assert_eq!(d.reason, "critical column `a` (KS p-value 0.01 < 0.05 (D = 0.5)) drifted");
        let cols = [col("a", NoDrift, true), col("b", NoDrift, false)];
        let d = dataset(&cols, &[col("prediction", Drift, false)], 0.5, 30);
        assert_eq!(d.status, Drift);
        assert!(d.reason.starts_with("the predictions drifted: `prediction`"), "{}", d.reason);
        assert_eq!(d.share, 0.0);
        let d = dataset(&[col("a", NoDrift, false)], &[], 0.0, 30);
        assert_eq!(d.status, NoDrift, "drift_share 0 still needs one drifted column: {}", d.reason);
    }

    #[test]
    fn all_insufficient_is_insufficient_never_drift() {
        let cols = [col("a", Insufficient, true), col("b", Insufficient, false)];
        let d = dataset(&cols, &[], 0.5, 30);
        assert_eq!(d.status, Insufficient);
        assert_eq!(d.share, 0.0);
        assert!(d.reason.starts_with("every compared column has fewer than min_rows 30"), "{}", d.reason);
    }

    #[test]
    fn reasons_of_tests() {
        let c = Choice { method: Method::Wasserstein, threshold: 0.1 };
        let m = NumericMeasures {
            ks: 0.2,
            ks_pvalue: 0.001,
            wasserstein: 3.1,
            reference_std: 10.0,
            psi: 0.5,
            js: 0.2,
            chi2: None,
        };
        let o = numeric(&m, c);
        assert_eq!((o.statistic, o.drifted, o.reason.as_str()), (Some(0.31), true, "normed Wasserstein 0.31 ≥ 0.1"));
        let constant = NumericMeasures { reference_std: 0.0, ..m.clone() };
        let o = numeric(&constant, c);
        assert!(o.drifted && o.reason.starts_with("reference is constant (std 0) and current differs"), "{o:?}");
        assert_eq!(o.statistic, Some(3.1));
        let same = NumericMeasures { reference_std: 0.0, wasserstein: 0.0, ..m.clone() };
        assert!(!numeric(&same, c).drifted);
        let ks = NumericMeasures { ks_pvalue: 0.2, ..m };
        let o = numeric(&ks, Choice { method: Method::Ks, threshold: 0.05 });
        assert_eq!((o.p_value, o.drifted, o.reason.as_str()), (Some(0.2), false, "KS p-value 0.2 ≥ 0.05 (D = 0.2)"));
        assert_eq!(insufficient(100, 10, 30), "current has 10 usable values, fewer than min_rows 30");
        assert_eq!(insufficient(0, 0, 0), "reference and current have 0 and 0 usable values, fewer than min_rows 1");
    }
}
