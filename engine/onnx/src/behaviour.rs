//! How differently two models behave on the same data: [`behaviour`] compares, row by row, the
//! predictions two evaluations kept ([`EvalOptions::keep_outputs`](crate::EvalOptions::keep_outputs)),
//! e.g. a candidate's and the deployed champion's, without reading the data again.
//!
//! * `changed` (classifiers): rows whose predicted label differs; `changed_share` = changed / rows.
//! * `mean_abs_change`: regressors, the mean over rows of |candidate − champion|; classifiers with
//!   probabilities, the mean over rows of the total variation distance between the two probability
//!   vectors, ½ Σ_class |p_candidate − p_champion| (in [0, 1]; for a binary classifier it is the mean
//!   |Δ| of P(positive class), since each row's two probabilities sum to 1).
//!
//! A comparison that means nothing is an error ([`Error::Incomparable`]), not a number: different
//! rows scored, a classifier against a regressor, or different class lists (the same classes in
//! another order are matched by label).

use crate::error::{Error, Result};
use crate::metrics::KahanSum;
use crate::model::{ClassLabel, ModelKind, Predictions};

pub use dagrun_contracts::Behaviour;

/// What a model predicted for each row an evaluation scored, in data order (rows skipped as unlabelled
/// are not in it): [`Evaluation::outputs`](crate::Evaluation::outputs), with
/// [`EvalOptions::keep_outputs`](crate::EvalOptions::keep_outputs). About 8 bytes per row for a regressor;
/// for a classifier `8 × (1 + classes)` bytes per row, which the metrics hold anyway.
#[derive(Debug, Clone, PartialEq)]
pub struct Outputs {
    /// Digest of the data row indexes scored, in order: two evaluations compare only if they scored
    /// the same rows.
    row_digest: u64,
    kept: Kept,
}

#[derive(Debug, Clone, PartialEq)]
enum Kept {
    /// A classifier: its classes, the predicted class index per row, and the `rows × classes`
    /// probabilities in class order, if the model has them.
    Classes { classes: Vec<ClassLabel>, predicted: Vec<usize>, probabilities: Option<Vec<f64>> },
    /// A regressor: the predicted value per row.
    Values(Vec<f64>),
}

impl Outputs {
    /// Rows kept.
    pub fn rows(&self) -> u64 {
        match &self.kept {
            Kept::Classes { predicted, .. } => predicted.len() as u64,
            Kept::Values(v) => v.len() as u64,
        }
    }

    /// Classifier or regressor.
    pub fn kind(&self) -> ModelKind {
        match self.kept {
            Kept::Classes { .. } => ModelKind::Classifier,
            Kept::Values(_) => ModelKind::Regressor,
        }
    }
}

/// Collects, batch by batch, what [`Outputs`] needs beyond what the metrics keep: the row digest and a
/// regressor's values.
#[derive(Debug, Clone)]
pub(crate) struct Keeper {
    row_digest: u64,
    values: Vec<f64>,
}

/// FNV-1a's offset basis and prime, over the row indexes (64-bit words).
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fold(digest: u64, row: u64) -> u64 {
    (digest ^ row).wrapping_mul(FNV_PRIME)
}

impl Default for Keeper {
    fn default() -> Keeper {
        Keeper { row_digest: FNV_OFFSET, values: Vec::new() }
    }
}

impl Keeper {
    /// One batch: its data row indexes and the model's predictions for them.
    pub(crate) fn add(&mut self, row_ids: &[u64], preds: &Predictions) {
        self.row_digest = row_ids.iter().fold(self.row_digest, |d, &r| fold(d, r));
        if let Predictions::Values { values, .. } = preds {
            self.values.extend_from_slice(values);
        }
    }

    /// A regressor's outputs.
    pub(crate) fn values(self) -> Outputs {
        Outputs { row_digest: self.row_digest, kept: Kept::Values(self.values) }
    }

    /// A classifier's outputs (the vectors its metrics were computed from).
    pub(crate) fn classes(
        self,
        classes: Vec<ClassLabel>,
        predicted: Vec<usize>,
        probabilities: Option<Vec<f64>>,
    ) -> Outputs {
        Outputs { row_digest: self.row_digest, kept: Kept::Classes { classes, predicted, probabilities } }
    }
}

fn incomparable(reason: impl Into<String>) -> Error {
    Error::Incomparable(reason.into())
}

/// How differently `candidate` behaves from `champion` (see the module docs for the measures). Errors if
/// they scored different rows, are not the same kind of model, or do not have the same classes.
pub fn behaviour(candidate: &Outputs, champion: &Outputs) -> Result<Behaviour> {
    let rows = candidate.rows();
    if rows != champion.rows() {
        return Err(incomparable(format!("the candidate scored {rows} rows and the champion {}", champion.rows())));
    }
    if candidate.row_digest != champion.row_digest {
        return Err(incomparable(format!("the two models scored different rows ({rows} each)")));
    }
    if rows == 0 {
        return Err(incomparable("no rows were scored"));
    }
    let n = rows as f64;
    match (&candidate.kept, &champion.kept) {
        (Kept::Values(a), Kept::Values(b)) => {
            let mut sum = KahanSum::default();
            a.iter().zip(b).for_each(|(x, y)| sum.add((x - y).abs()));
            Ok(Behaviour { rows, changed: None, changed_share: None, mean_abs_change: Some(sum.value() / n) })
        }
        (
            Kept::Classes { classes, predicted, probabilities },
            Kept::Classes { classes: their_classes, predicted: their_predicted, probabilities: their_probabilities },
        ) => {
            // order[i]: the champion's index of the candidate's class i.
            let order = class_order(classes, their_classes)?;
            let changed = predicted.iter().zip(their_predicted).filter(|&(&p, &q)| order[p] != q).count() as u64;
            let mean_abs_change = match (probabilities, their_probabilities) {
                (Some(p), Some(q)) => Some(mean_total_variation(p, q, &order) / n),
                _ => None,
            };
            Ok(Behaviour { rows, changed: Some(changed), changed_share: Some(changed as f64 / n), mean_abs_change })
        }
        (a, _) => {
            let (x, y) =
                if matches!(a, Kept::Values(_)) { ("regressor", "classifier") } else { ("classifier", "regressor") };
            Err(incomparable(format!("the candidate is a {x} and the champion a {y}")))
        }
    }
}

/// The sum over rows of ½ Σ_class |p − q|, `q`'s columns taken in `order`.
fn mean_total_variation(p: &[f64], q: &[f64], order: &[usize]) -> f64 {
    let c = order.len();
    let mut sum = KahanSum::default();
    for (pr, qr) in p.chunks(c).zip(q.chunks(c)) {
        let l1: f64 = order.iter().enumerate().map(|(i, &j)| (pr[i] - qr[j]).abs()).sum();
        sum.add(0.5 * l1);
    }
    sum.value()
}

/// For each of `ours`, its index in `theirs`, matched by label as written (`1` is the class 1 whether the
/// model stores it as a number or a string); an error unless both hold the same classes.
fn class_order(ours: &[ClassLabel], theirs: &[ClassLabel]) -> Result<Vec<usize>> {
    let differ = || {
        let list = |c: &[ClassLabel]| c.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        incomparable(format!("the candidate's classes ({}) are not the champion's ({})", list(ours), list(theirs)))
    };
    if ours.len() != theirs.len() {
        return Err(differ());
    }
    let names: Vec<String> = theirs.iter().map(ToString::to_string).collect();
    ours.iter().map(|c| names.iter().position(|n| *n == c.to_string()).ok_or_else(differ)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The digest of rows `0..n`.
    fn first_rows(n: usize) -> u64 {
        (0..n as u64).fold(FNV_OFFSET, fold)
    }

    fn classes(labels: &[i64], predicted: &[usize], probabilities: Option<&[f64]>) -> Outputs {
        let classes = labels.iter().map(|&l| ClassLabel::Int(l)).collect();
        let kept =
            Kept::Classes { classes, predicted: predicted.to_vec(), probabilities: probabilities.map(<[f64]>::to_vec) };
        Outputs { row_digest: first_rows(predicted.len()), kept }
    }

    fn values(v: &[f64]) -> Outputs {
        let mut k = Keeper::default();
        k.add(
            &(0..v.len() as u64).collect::<Vec<_>>(),
            &Predictions::Values { values: v.to_vec(), single_precision: false },
        );
        let out = k.values();
        assert_eq!(out.row_digest, first_rows(v.len()));
        out
    }

    #[test]
    fn equal_labels_change_nothing() {
        let a = classes(&[0, 1], &[0, 1, 1, 0], None);
        let b = behaviour(&a, &a.clone()).unwrap();
        assert_eq!(b, Behaviour { rows: 4, changed: Some(0), changed_share: Some(0.0), mean_abs_change: None });
    }

    #[test]
    fn one_label_in_four_changes() {
        let a = classes(&[0, 1], &[0, 1, 1, 0], None);
        let b = classes(&[0, 1], &[0, 1, 0, 0], None);
        let got = behaviour(&a, &b).unwrap();
        assert_eq!(got, Behaviour { rows: 4, changed: Some(1), changed_share: Some(0.25), mean_abs_change: None });
    }

    #[test]
    fn binary_probabilities_give_the_mean_change_of_the_positive_class() {
        // P(1): 0.9, 0.2 vs 0.6, 0.3: |Δ| 0.3 and 0.1, mean 0.2; the labels agree.
        let a = classes(&[0, 1], &[1, 0], Some(&[0.1, 0.9, 0.8, 0.2]));
        let b = classes(&[0, 1], &[1, 0], Some(&[0.4, 0.6, 0.7, 0.3]));
        let got = behaviour(&a, &b).unwrap();
        assert_eq!((got.changed, got.changed_share), (Some(0), Some(0.0)));
        assert!((got.mean_abs_change.unwrap() - 0.2).abs() < 1e-12, "{got:?}");
        // Probabilities on one side only: no mean change.
        assert_eq!(behaviour(&a, &classes(&[0, 1], &[1, 0], None)).unwrap().mean_abs_change, None);
    }

    #[test]
    fn multiclass_probabilities_give_the_total_variation() {
        // Row 0: ½(0.5 + 0.25 + 0.25) = 0.5 and the label changes (0 → 1); row 1: equal, 0. Mean 0.25.
        let a = classes(&[1, 2, 3], &[0, 2], Some(&[0.5, 0.25, 0.25, 0.0, 0.0, 1.0]));
        let b = classes(&[1, 2, 3], &[1, 2], Some(&[0.0, 0.5, 0.5, 0.0, 0.0, 1.0]));
        let got = behaviour(&a, &b).unwrap();
        assert_eq!(got, Behaviour { rows: 2, changed: Some(1), changed_share: Some(0.5), mean_abs_change: Some(0.25) });
    }

    #[test]
    fn the_same_classes_in_another_order_are_matched_by_label() {
        // The champion lists its classes as 1, 0: index 0 is the class 1.
        let a = classes(&[0, 1], &[0, 1, 1], Some(&[0.9, 0.1, 0.2, 0.8, 0.4, 0.6]));
        let mut b = classes(&[1, 0], &[1, 0, 1], Some(&[0.1, 0.9, 0.8, 0.2, 0.4, 0.6]));
        let got = behaviour(&a, &b).unwrap();
        assert_eq!(got.changed, Some(1), "row 2: class 1 vs class 0");
        assert!((got.mean_abs_change.unwrap() - (0.2 / 3.0)).abs() < 1e-12, "{got:?}");
        // A string class written as the number it is matches too.
        if let Kept::Classes { classes, .. } = &mut b.kept {
            classes[0] = ClassLabel::Str("1".into());
        }
        assert_eq!(behaviour(&a, &b).unwrap(), got);
    }

    #[test]
    fn regressors_give_the_mean_absolute_change() {
        let got = behaviour(&values(&[1.0, 2.0, 3.0, 4.0]), &values(&[1.5, 2.0, 2.0, 4.0])).unwrap();
        assert_eq!(got, Behaviour { rows: 4, changed: None, changed_share: None, mean_abs_change: Some(0.375) });
    }

    #[test]
    fn meaningless_comparisons_are_errors() {
        let e = |a: &Outputs, b: &Outputs| behaviour(a, b).unwrap_err().to_string();
        assert_eq!(
            e(&values(&[1.0, 2.0]), &values(&[1.0, 2.0, 3.0])),
            "cannot compare the two models' predictions: the candidate scored 2 rows and the champion 3"
        );
        let mut shifted = values(&[1.0, 2.0]);
        shifted.row_digest = fold(fold(FNV_OFFSET, 0), 2);
        assert!(e(&values(&[1.0, 2.0]), &shifted).ends_with("the two models scored different rows (2 each)"));
        assert!(
            e(&values(&[1.0]), &classes(&[0, 1], &[1], None))
                .ends_with("the candidate is a regressor and the champion a classifier")
        );
        assert!(
            e(&classes(&[0, 1], &[1], None), &classes(&[0, 1, 2], &[1], None))
                .ends_with("the candidate's classes (0, 1) are not the champion's (0, 1, 2)")
        );
        assert!(
            e(&classes(&[0, 1], &[1], None), &classes(&[0, 2], &[1], None))
                .contains("(0, 1) are not the champion's (0, 2)")
        );
        assert!(e(&values(&[]), &values(&[])).ends_with("no rows were scored"));
    }
}
