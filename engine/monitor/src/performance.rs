//! Live performance: a deployed model's metrics on freshly labelled data, compared with the
//! metrics its gate verdict recorded when it was promoted.
//!
//! [`compare`] is the pure decision: for each metric, the change from the baseline, and
//! whether it fell behind by more than its tolerance (absolute). `log_loss`, `rmse`, `mae` and
//! `mse` are lower-is-better; every other metric is higher-is-better. With no tolerance
//! configured, every metric present (and finite) on both sides is compared with a tolerance of
//! [`DEFAULT_TOLERANCE`]; `rows` and `positive_class` are never compared (they are not scores).
//! Fewer than `min_rows` labelled rows is `insufficient_data`, never a regression.

use std::collections::BTreeMap;

pub use dagrun_contracts::performance::{
    MetricComparison, PERFORMANCE_FILE, PERFORMANCE_VERSION, PerformanceReport, PerformanceStatus,
};

use crate::drift::fmt_num;

/// Tolerance of every metric when none is configured.
pub const DEFAULT_TOLERANCE: f64 = 0.05;

/// Labelled rows needed by default.
pub const DEFAULT_MIN_ROWS: u64 = 100;

/// Metrics where a lower value is better.
pub const LOWER_IS_BETTER: [&str; 4] = ["log_loss", "rmse", "mae", "mse"];

/// Numbers in a metrics file that are not scores.
const NOT_METRICS: [&str; 2] = ["rows", "positive_class"];

/// Slack on the tolerance comparison, so that a change of exactly the tolerance (0.88 → 0.83
/// with 0.05) is not a regression through rounding.
const SLACK: f64 = 1e-12;

/// How to compare.
#[derive(Debug, Clone, PartialEq)]
pub struct PerformanceOptions {
    /// How far each metric may fall behind its baseline (absolute); empty: every metric on
    /// both sides, with [`DEFAULT_TOLERANCE`].
    pub tolerance: BTreeMap<String, f64>,
    /// Below this many labelled rows the result is `insufficient_data`.
    pub min_rows: u64,
}

impl Default for PerformanceOptions {
    fn default() -> Self {
        PerformanceOptions { tolerance: BTreeMap::new(), min_rows: DEFAULT_MIN_ROWS }
    }
}

/// Why the metrics could not be compared.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PerformanceError {
    /// A tolerance names a metric that one side does not have.
    #[error(
        "tolerance on `{metric}`, but the {side} has no such metric (available on both sides: {})",
        list(available)
    )]
    UnknownMetric {
        /// The metric.
        metric: String,
        /// `baseline` or `current data`.
        side: &'static str,
        /// Metrics present on both sides.
        available: Vec<String>,
    },
    /// A tolerance that is negative or not a number.
    #[error("tolerance on `{metric}` is {value}: expected a number ≥ 0")]
    InvalidTolerance {
        /// The metric.
        metric: String,
        /// Its tolerance.
        value: f64,
    },
    /// No metric is on both sides.
    #[error("no metric to compare: the baseline has {}, the current metrics have {}", list(baseline), list(current))]
    NothingToCompare {
        /// The baseline's metrics.
        baseline: Vec<String>,
        /// The current metrics.
        current: Vec<String>,
    },
}

fn list(names: &[String]) -> String {
    if names.is_empty() { "none".into() } else { names.join(", ") }
}

/// Whether a lower value of `metric` is better.
pub fn lower_is_better(metric: &str) -> bool {
    LOWER_IS_BETTER.contains(&metric)
}

/// Compares `current` (computed on `rows` labelled rows) with `baseline`.
pub fn compare(
    baseline: &BTreeMap<String, f64>,
    current: &BTreeMap<String, f64>,
    rows: u64,
    opts: &PerformanceOptions,
) -> Result<PerformanceReport, PerformanceError> {
    let usable = |m: &BTreeMap<String, f64>| -> Vec<String> {
        m.iter().filter(|(k, v)| v.is_finite() && !NOT_METRICS.contains(&k.as_str())).map(|(k, _)| k.clone()).collect()
    };
    let (in_baseline, in_current) = (usable(baseline), usable(current));
    let common: Vec<String> = in_baseline.iter().filter(|m| in_current.contains(m)).cloned().collect();
    let tolerances: Vec<(String, f64)> = if opts.tolerance.is_empty() {
        common.iter().map(|m| (m.clone(), DEFAULT_TOLERANCE)).collect()
    } else {
        check_tolerances(&opts.tolerance, &in_baseline, &in_current, &common)?
    };
    if tolerances.is_empty() {
        return Err(PerformanceError::NothingToCompare { baseline: in_baseline, current: in_current });
    }
    let metrics: Vec<MetricComparison> =
        tolerances.into_iter().map(|(m, tol)| compare_metric(&m, baseline[&m], current[&m], tol)).collect();
    let (status, reason) = decide(&metrics, rows, opts.min_rows);
    Ok(PerformanceReport {
        version: PERFORMANCE_VERSION,
        status,
        regressed: status == PerformanceStatus::Regressed,
        reason,
        rows,
        metrics,
    })
}

fn check_tolerances(
    tolerance: &BTreeMap<String, f64>,
    in_baseline: &[String],
    in_current: &[String],
    common: &[String],
) -> Result<Vec<(String, f64)>, PerformanceError> {
    let mut out = Vec::with_capacity(tolerance.len());
    for (metric, &value) in tolerance {
        if !(value.is_finite() && value >= 0.0) {
            return Err(PerformanceError::InvalidTolerance { metric: metric.clone(), value });
        }
        let side = if !in_baseline.contains(metric) {
            Some("baseline")
        } else if !in_current.contains(metric) {
            Some("current data")
        } else {
            None
        };
        if let Some(side) = side {
            return Err(PerformanceError::UnknownMetric { metric: metric.clone(), side, available: common.to_vec() });
        }
        out.push((metric.clone(), value));
    }
    Ok(out)
}

fn compare_metric(metric: &str, baseline: f64, current: f64, tolerance: f64) -> MetricComparison {
    let change = current - baseline;
    let behind = if lower_is_better(metric) { change } else { -change };
    MetricComparison {
        metric: metric.to_string(),
        baseline,
        current,
        change,
        tolerance,
        regressed: behind > tolerance + SLACK * baseline.abs().max(1.0),
    }
}

fn decide(metrics: &[MetricComparison], rows: u64, min_rows: u64) -> (PerformanceStatus, String) {
    if rows < min_rows.max(1) {
        let reason = format!("only {rows} labelled rows, fewer than min_rows {min_rows}: too few to judge");
        return (PerformanceStatus::InsufficientData, reason);
    }
    let regressed: Vec<&MetricComparison> = metrics.iter().filter(|m| m.regressed).collect();
    if regressed.is_empty() {
        let each: Vec<String> = metrics.iter().map(|m| format!("{} {}", m.metric, describe(m))).collect();
        return (PerformanceStatus::Ok, format!("every metric within tolerance: {}", each.join("; ")));
    }
    let each: Vec<String> = regressed
        .iter()
        .map(|m| {
            let direction = if lower_is_better(&m.metric) { "rose" } else { "fell" };
            let side = if lower_is_better(&m.metric) { "above" } else { "below" };
            format!(
                "{} {} {direction} {} {side} the baseline {} (tolerance {})",
                m.metric,
                fmt_num(m.current),
                fmt_num(m.change.abs()),
                fmt_num(m.baseline),
                fmt_num(m.tolerance)
            )
        })
        .collect();
    (PerformanceStatus::Regressed, each.join("; "))
}

fn describe(m: &MetricComparison) -> String {
    format!("{} (baseline {}, tolerance {})", fmt_num(m.current), fmt_num(m.baseline), fmt_num(m.tolerance))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn tol(pairs: &[(&str, f64)]) -> PerformanceOptions {
        PerformanceOptions { tolerance: map(pairs), ..PerformanceOptions::default() }
    }

    #[test]
    fn a_drop_beyond_the_tolerance_regresses() {
        let base = map(&[("accuracy", 0.88), ("f1", 0.80)]);
        let cur = map(&[("accuracy", 0.81), ("f1", 0.79)]);
        let r = compare(&base, &cur, 500, &PerformanceOptions::default()).unwrap();
        assert_eq!(r.status, PerformanceStatus::Regressed);
        assert!(r.regressed);
        assert_eq!(r.metrics.len(), 2);
        assert!(r.metrics[0].regressed && !r.metrics[1].regressed, "{:?}", r.metrics);
        assert_eq!(r.reason, "accuracy 0.81 fell 0.07 below the baseline 0.88 (tolerance 0.05)");
        assert!((r.metrics[0].change + 0.07).abs() < 1e-12);
    }

    #[test]
    fn exactly_the_tolerance_is_not_a_regression_and_gains_never_are() {
        let base = map(&[("accuracy", 0.88), ("rmse", 1.0)]);
        let cur = map(&[("accuracy", 0.83), ("rmse", 0.5)]);
        let r = compare(&base, &cur, 500, &PerformanceOptions::default()).unwrap();
        assert_eq!(r.status, PerformanceStatus::Ok, "{}", r.reason);
        assert!(r.reason.starts_with("every metric within tolerance: accuracy 0.83 (baseline 0.88"), "{}", r.reason);
        let better = compare(&base, &map(&[("accuracy", 0.99), ("rmse", 0.1)]), 500, &PerformanceOptions::default());
        assert!(!better.unwrap().regressed);
    }

    #[test]
    fn lower_is_better_metrics_regress_upwards() {
        let base = map(&[("rmse", 2.0), ("mae", 1.0), ("log_loss", 0.3), ("r2", 0.9)]);
        let cur = map(&[("rmse", 2.2), ("mae", 0.5), ("log_loss", 0.3), ("r2", 0.95)]);
        let r = compare(&base, &cur, 500, &tol(&[("rmse", 0.1), ("mae", 0.1), ("r2", 0.01)])).unwrap();
        assert!(r.regressed);
        let by: BTreeMap<&str, bool> = r.metrics.iter().map(|m| (m.metric.as_str(), m.regressed)).collect();
        assert_eq!(by, BTreeMap::from([("mae", false), ("r2", false), ("rmse", true)]));
        assert_eq!(r.reason, "rmse 2.2 rose 0.2 above the baseline 2 (tolerance 0.1)");
    }

    #[test]
    fn too_few_rows_is_insufficient_not_a_regression() {
        let base = map(&[("accuracy", 0.9)]);
        let r = compare(&base, &map(&[("accuracy", 0.1)]), 40, &PerformanceOptions::default()).unwrap();
        assert_eq!(r.status, PerformanceStatus::InsufficientData);
        assert!(!r.regressed);
        assert_eq!(r.reason, "only 40 labelled rows, fewer than min_rows 100: too few to judge");
        assert!(r.metrics[0].regressed, "the metric itself still says how it moved");
    }

    #[test]
    fn default_tolerance_covers_metrics_on_both_sides_but_not_counts() {
        let base = map(&[("accuracy", 0.9), ("roc_auc", 0.8), ("rows", 1000.0), ("log_loss", f64::NAN)]);
        let cur = map(&[("accuracy", 0.9), ("rows", 10.0), ("log_loss", 0.2), ("r2", 0.5)]);
        let r = compare(&base, &cur, 500, &PerformanceOptions::default()).unwrap();
        let names: Vec<&str> = r.metrics.iter().map(|m| m.metric.as_str()).collect();
        assert_eq!(names, ["accuracy"]);
        assert_eq!(r.metrics[0].tolerance, DEFAULT_TOLERANCE);
    }

    #[test]
    fn bad_tolerances_are_errors_that_list_the_metrics() {
        let base = map(&[("accuracy", 0.9), ("f1", 0.8)]);
        let cur = map(&[("accuracy", 0.9), ("roc_auc", 0.7)]);
        let e = compare(&base, &cur, 500, &tol(&[("f1", 0.1)])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "tolerance on `f1`, but the current data has no such metric (available on both sides: accuracy)"
        );
        let e = compare(&base, &cur, 500, &tol(&[("rmse", 0.1)])).unwrap_err();
        assert!(e.to_string().starts_with("tolerance on `rmse`, but the baseline has no such metric"), "{e}");
        let e = compare(&base, &cur, 500, &tol(&[("accuracy", -0.1)])).unwrap_err();
        assert_eq!(e, PerformanceError::InvalidTolerance { metric: "accuracy".into(), value: -0.1 });
        let e = compare(&map(&[("f1", 0.8)]), &map(&[("r2", 0.1)]), 500, &PerformanceOptions::default());
        assert_eq!(
            e.unwrap_err().to_string(),
            "no metric to compare: the baseline has f1, the current metrics have r2"
        );
    }

    #[test]
    fn the_report_serializes_as_the_contract() {
        let r = compare(&map(&[("accuracy", 0.9)]), &map(&[("accuracy", 0.9)]), 100, &PerformanceOptions::default());
        let r = r.unwrap();
        assert_eq!(r.version, PERFORMANCE_VERSION);
        let back = PerformanceReport::from_json(r.to_json().as_bytes()).unwrap();
        assert_eq!(back, r);
    }
}
