//! One column compared: its kind (numeric, categorical, or the two sides disagree), its test,
//! its measures and its decision, as a [`ColumnResult`].
//!
//! * A numeric column whose reference holds at most 5 distinct values is compared as
//!   categories (the counts of its values), as Evidently does, unless its own test is KS or
//!   Wasserstein.
//! * Fewer than `min_rows` usable values on either side: `insufficient_data`, never drift (the
//!   measures are still computed when both sides have a value).
//! * Type mismatch (numbers in one file, text in the other): the column is reported as drifted
//!   with a reason naming a text value, without a statistic: the data changed shape, which no
//!   distance measures honestly, and comparing numbers as text would be decided by formatting
//!   ("1" vs "1.0"). Declaring the column `categorical` compares both sides as text instead.
//! * NaN, infinities and empty cells never reach a test; they are counted in `missing`.

use dagrun_contracts::drift::{ColumnKind, ColumnResult, DriftStatus, Missing, Sample};
use dagrun_table::{Column, ColumnData};

use super::decide::{self, Outcome};
use super::histogram;
use super::measure::{CategoricalMeasures, Contingency, NumericMeasures, few_distinct};
use super::select::{self, Choice, LOW_CARDINALITY};
use super::{DriftError, DriftOptions};
use crate::stats;

fn sample(c: &Column) -> Sample {
    let m = c.missing;
    Sample { values: c.data.len(), missing: Missing { empty: m.empty, nan: m.nan, inf: m.inf } }
}

fn kind_of(data: &ColumnData) -> ColumnKind {
    match data {
        ColumnData::Numeric(_) => ColumnKind::Numeric,
        ColumnData::Categorical(_) => ColumnKind::Categorical,
    }
}

struct Base<'a> {
    name: &'a str,
    samples: (Sample, Sample),
    critical: bool,
}

impl Base<'_> {
    fn result(&self, kind: ColumnKind, choice: Choice) -> ColumnResult {
        ColumnResult {
            column: self.name.to_string(),
            kind,
            test: choice.method,
            statistic: None,
            p_value: None,
            threshold: choice.threshold,
            decision: DriftStatus::InsufficientData,
            reason: String::new(),
            reference: self.samples.0,
            current: self.samples.1,
            critical: self.critical,
            stats: Default::default(),
            unseen_categories: vec![],
            histogram: None,
        }
    }

    fn enough(&self, min_rows: u64) -> bool {
        let min = min_rows.max(1);
        self.samples.0.values >= min && self.samples.1.values >= min
    }

    /// Sets the decision: the test's outcome, unless a side has too little data.
    fn decide(&self, r: &mut ColumnResult, outcome: Option<Outcome>, min_rows: u64) {
        if let Some(o) = &outcome {
            (r.statistic, r.p_value) = (o.statistic, o.p_value);
        }
        match outcome {
            Some(o) if self.enough(min_rows) => {
                r.decision = if o.drifted { DriftStatus::Drift } else { DriftStatus::NoDrift };
                r.reason = o.reason;
            }
            _ => r.reason = decide::insufficient(self.samples.0.values, self.samples.1.values, min_rows),
        }
    }
}

/// Compares one column (both sides read with the same options). `critical`: whether the
/// column was configured as critical.
pub fn compare(
    reference: Column,
    current: Column,
    critical: bool,
    opts: &DriftOptions,
) -> Result<ColumnResult, DriftError> {
    let base = Base { name: &reference.name, samples: (sample(&reference), sample(&current)), critical };
    match (reference.data, current.data) {
        (ColumnData::Numeric(mut a), ColumnData::Numeric(mut b)) => {
            stats::sort(&mut a);
            stats::sort(&mut b);
            if !a.is_empty() && !select::wants_numeric(base.name, opts) && few_distinct(&a, LOW_CARDINALITY) {
                categorical(&base, &Contingency::from_sorted(&a, &b), opts)
            } else {
                numeric(&base, &a, &b, opts)
            }
        }
        (ColumnData::Categorical(r), ColumnData::Categorical(c)) => {
            categorical(&base, &Contingency::from_maps(&r, &c), opts)
        }
        (r, c) => mismatch(&base, &r, &c, opts),
    }
}

fn numeric(base: &Base<'_>, a: &[f64], b: &[f64], opts: &DriftOptions) -> Result<ColumnResult, DriftError> {
    let choice = select::choose(base.name, ColumnKind::Numeric, a.len() as u64, opts)?;
    let mut r = base.result(ColumnKind::Numeric, choice);
    let outcome = (!a.is_empty() && !b.is_empty()).then(|| {
        let m = NumericMeasures::compute(a, b, choice.method, opts.bins);
        r.stats = m.to_map();
        r.histogram = Some(histogram::numeric(a, b));
        decide::numeric(&m, choice)
    });
    base.decide(&mut r, outcome, opts.min_rows);
    Ok(r)
}

fn categorical(base: &Base<'_>, t: &Contingency<'_>, opts: &DriftOptions) -> Result<ColumnResult, DriftError> {
    let reference_values = base.samples.0.values;
    let choice = select::choose(base.name, ColumnKind::Categorical, reference_values, opts)?;
    let mut r = base.result(ColumnKind::Categorical, choice);
    let outcome = (reference_values > 0 && base.samples.1.values > 0).then(|| {
        let m = CategoricalMeasures::compute(t);
        r.stats = m.to_map();
        r.histogram = Some(histogram::categorical(t));
        r.unseen_categories = m.unseen.clone();
        decide::categorical(&m, choice)
    });
    base.decide(&mut r, outcome, opts.min_rows);
    Ok(r)
}

/// The first text value of a categorical side that is not a number (what made it text).
fn text_example(data: &ColumnData) -> Option<&str> {
    match data {
        ColumnData::Categorical(m) => m.keys().map(String::as_str).find(|k| k.trim().parse::<f64>().is_err()),
        ColumnData::Numeric(_) => None,
    }
}

fn mismatch(
    base: &Base<'_>,
    reference: &ColumnData,
    current: &ColumnData,
    opts: &DriftOptions,
) -> Result<ColumnResult, DriftError> {
    let kind = kind_of(reference);
    let choice = select::choose(base.name, kind, reference.len(), opts)?;
    let mut r = base.result(kind, choice);
    let (text_side, example) = match kind {
        ColumnKind::Numeric => ("current", text_example(current)),
        ColumnKind::Categorical => ("reference", text_example(reference)),
    };
    let number_side = if text_side == "current" { "reference" } else { "current" };
    let example = example.map(|e| format!(" (e.g. {e:?})")).unwrap_or_default();
    let outcome = Outcome {
        statistic: None,
        p_value: None,
        drifted: true,
        reason: format!(
            "type changed: numbers in the {number_side}, text in the {text_side}{example}; declare it `categorical` to compare both as text"
        ),
    };
    base.decide(&mut r, Some(outcome), opts.min_rows);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dagrun_contracts::drift::Method;
    use std::collections::BTreeMap;

    fn num(name: &str, values: Vec<f64>) -> Column {
        Column { name: name.into(), data: ColumnData::Numeric(values), missing: Default::default() }
    }

    fn cat(name: &str, counts: &[(&str, u64)]) -> Column {
        let map: BTreeMap<String, u64> = counts.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        Column { name: name.into(), data: ColumnData::Categorical(map), missing: Default::default() }
    }

    fn spread(n: usize, shift: f64) -> Vec<f64> {
        (0..n).map(|i| (i * 7919 % n) as f64 / n as f64 * 10.0 + shift).collect()
    }

    #[test]
    fn low_cardinality_numbers_are_categories_unless_a_numeric_test_is_asked() {
        let values: Vec<f64> = (0..200).map(|i| f64::from(i % 3)).collect();
        let r = compare(num("x", values.clone()), num("x", values.clone()), false, &DriftOptions::default()).unwrap();
        assert_eq!((r.kind, r.test, r.decision), (ColumnKind::Categorical, Method::ChiSquare, DriftStatus::NoDrift));
        let mut opts = DriftOptions::default();
        opts.tests.insert("x".into(), super::super::TestSpec { method: Some(Method::Ks), threshold: None });
        let r = compare(num("x", values.clone()), num("x", values), false, &opts).unwrap();
        assert_eq!((r.kind, r.test), (ColumnKind::Numeric, Method::Ks));
    }

    #[test]
    fn a_small_side_is_insufficient_even_when_shifted() {
        let r = compare(num("x", spread(500, 0.0)), num("x", spread(10, 100.0)), true, &DriftOptions::default());
        let r = r.unwrap();
        assert_eq!(r.decision, DriftStatus::InsufficientData);
        assert_eq!(r.reason, "current has 10 usable values, fewer than min_rows 30");
        assert!(r.statistic.is_some() && r.critical, "measured anyway: {r:?}");
        let r = compare(num("x", vec![]), num("x", vec![]), false, &DriftOptions::default()).unwrap();
        assert_eq!((r.decision, r.statistic), (DriftStatus::InsufficientData, None));
    }

    #[test]
    fn type_mismatch_is_drift_with_a_reason() {
        let r = compare(num("x", spread(100, 0.0)), cat("x", &[("1", 50), ("oops", 50)]), false, &Default::default());
        let r = r.unwrap();
        assert_eq!((r.kind, r.decision, r.statistic), (ColumnKind::Numeric, DriftStatus::Drift, None));
        assert_eq!(
            r.reason,
            "type changed: numbers in the reference, text in the current (e.g. \"oops\"); declare it `categorical` to compare both as text"
        );
        let small = compare(num("x", spread(5, 0.0)), cat("x", &[("a", 50)]), false, &Default::default()).unwrap();
        assert_eq!(small.decision, DriftStatus::InsufficientData, "too little data wins");
    }

    #[test]
    fn categories_report_unseen_values_and_refuse_numeric_tests() {
        let r =
            compare(cat("c", &[("a", 60), ("b", 40)]), cat("c", &[("a", 50), ("z", 50)]), false, &Default::default());
        let r = r.unwrap();
        assert_eq!((r.test, r.decision), (Method::ChiSquare, DriftStatus::Drift));
        assert_eq!(r.unseen_categories, ["z"]);
        assert_eq!(r.stats["unseen_share"], 0.5);
        let mut opts = DriftOptions::default();
        opts.tests.insert("c".into(), super::super::TestSpec { method: Some(Method::Ks), threshold: None });
        let e = compare(cat("c", &[("a", 60)]), cat("c", &[("a", 50)]), false, &opts).unwrap_err();
        assert!(matches!(e, DriftError::Options(_)), "{e}");
    }
}
