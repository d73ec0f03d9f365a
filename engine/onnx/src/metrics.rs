//! Classification and regression metrics, defined as scikit-learn defines them (with `zero_division=0`).
//!
//! * precision / recall / F1 of a class: from the confusion matrix; 0 where the denominator is 0.
//! * macro averages: the unweighted mean over the classes that occur in the true or the predicted labels.
//! * ROC AUC: the Mann–Whitney statistic with ties counted as ½ (equal to the area under the ROC curve);
//!   multiclass: the mean over classes of the one-vs-rest AUC. Undefined (`None`) without both positives and
//!   negatives.
//! * log loss: mean of `-ln(clip(p_true, 1e-15, 1 - 1e-15))`.
//! * RMSE, MAE, R² (`1 - SS_res / SS_tot`; when `SS_tot = 0`: 1 if `SS_res = 0`, else 0).

use crate::model::ClassLabel;

/// Probabilities are clipped to `[LOG_LOSS_EPS, 1 - LOG_LOSS_EPS]` for the log loss.
pub const LOG_LOSS_EPS: f64 = 1e-15;

/// Metrics of one evaluation; serialised as `metrics.json` (`task` first, keys in a fixed order).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum Metrics {
    /// A classifier's metrics.
    Classification(ClassificationMetrics),
    /// A regressor's metrics.
    Regression(RegressionMetrics),
}

impl Metrics {
    /// A metric by name (`accuracy`, `precision`, `recall`, `f1`, `precision_macro`, `recall_macro`,
    /// `f1_macro`, `roc_auc`, `log_loss`, `rmse`, `mae`, `r2`); `None` if this task has no such metric or it is
    /// undefined for this data.
    pub fn get(&self, name: &str) -> Option<f64> {
        match self {
            Metrics::Classification(m) => match name {
                "accuracy" => Some(m.accuracy),
                "precision" => Some(m.precision),
                "recall" => Some(m.recall),
                "f1" => Some(m.f1),
                "precision_macro" => Some(m.precision_macro),
                "recall_macro" => Some(m.recall_macro),
                "f1_macro" => Some(m.f1_macro),
                "roc_auc" => m.roc_auc,
                "log_loss" => m.log_loss,
                _ => None,
            },
            Metrics::Regression(m) => match name {
                "rmse" => Some(m.rmse),
                "mae" => Some(m.mae),
                "r2" => Some(m.r2),
                _ => None,
            },
        }
    }

    /// Number of rows evaluated.
    pub fn rows(&self) -> u64 {
        match self {
            Metrics::Classification(m) => m.rows,
            Metrics::Regression(m) => m.rows,
        }
    }
}

/// The metric names of a task, in `metrics.json` order.
pub const CLASSIFICATION_METRICS: [&str; 9] =
    ["accuracy", "precision", "recall", "f1", "precision_macro", "recall_macro", "f1_macro", "roc_auc", "log_loss"];
/// The metric names of a regression, in `metrics.json` order.
pub const REGRESSION_METRICS: [&str; 3] = ["rmse", "mae", "r2"];

/// Whether a larger value of the metric is better (`log_loss`, `rmse`, `mae`: no); `None` for unknown names.
pub fn higher_is_better(metric: &str) -> Option<bool> {
    match metric {
        "log_loss" | "rmse" | "mae" => Some(false),
        m if CLASSIFICATION_METRICS.contains(&m) || REGRESSION_METRICS.contains(&m) => Some(true),
        _ => None,
    }
}

/// A classifier's metrics.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClassificationMetrics {
    /// Rows evaluated.
    pub rows: u64,
    /// The classes, in probability-column order.
    pub classes: Vec<ClassLabel>,
    /// Binary problems: the class precision, recall and F1 are about (`1` if it is a class, else the larger).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub positive_class: Option<ClassLabel>,
    /// Fraction of rows predicted right.
    pub accuracy: f64,
    /// Binary: of the positive class; multiclass: macro average.
    pub precision: f64,
    /// Binary: of the positive class; multiclass: macro average.
    pub recall: f64,
    /// Binary: of the positive class; multiclass: macro average.
    pub f1: f64,
    /// Macro average over the classes present in the true or predicted labels.
    pub precision_macro: f64,
    /// Macro average over the classes present in the true or predicted labels.
    pub recall_macro: f64,
    /// Macro average (of per-class F1) over the classes present in the true or predicted labels.
    pub f1_macro: f64,
    /// Binary: from the positive-class probability; multiclass: macro one-vs-rest. `None` (null) when the
    /// model gives no probabilities or the data has a single class.
    pub roc_auc: Option<f64>,
    /// `None` (null) when the model gives no probabilities.
    pub log_loss: Option<f64>,
    /// Per class, in class order.
    pub per_class: Vec<ClassScores>,
    /// `confusion_matrix[true][predicted]`, in class order.
    pub confusion_matrix: Vec<Vec<u64>>,
}

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClassScores {
    /// The class.
    pub class: ClassLabel,
    /// tp / (tp + fp), 0 if nothing was predicted as this class.
    pub precision: f64,
    /// tp / (tp + fn), 0 if the class does not occur.
    pub recall: f64,
    /// 2 tp / (2 tp + fp + fn), 0 if that is 0 / 0.
    pub f1: f64,
    /// Number of rows whose true label is this class.
    pub support: u64,
}

/// A regressor's metrics.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RegressionMetrics {
    /// Rows evaluated.
    pub rows: u64,
    /// Root mean squared error.
    pub rmse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Coefficient of determination.
    pub r2: f64,
}

/// Counts of (true class, predicted class).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    n: usize,
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An empty matrix for `n` classes.
    pub fn new(n: usize) -> ConfusionMatrix {
        ConfusionMatrix { n, counts: vec![0; n * n] }
    }

    /// Counts one row.
    pub fn add(&mut self, truth: usize, predicted: usize) {
        self.counts[truth * self.n + predicted] += 1;
    }

    /// Rows counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Count of rows of true class `t` predicted as `p`.
    pub fn get(&self, t: usize, p: usize) -> u64 {
        self.counts[t * self.n + p]
    }

    /// Fraction of rows on the diagonal (0 for no rows).
    pub fn accuracy(&self) -> f64 {
        let total = self.total();
        if total == 0 {
            return 0.0;
        }
        let right: u64 = (0..self.n).map(|i| self.get(i, i)).sum();
        right as f64 / total as f64
    }

    /// (tp, fp, fn) of class `k`.
    pub fn tp_fp_fn(&self, k: usize) -> (u64, u64, u64) {
        let tp = self.get(k, k);
        let predicted: u64 = (0..self.n).map(|t| self.get(t, k)).sum();
        let actual: u64 = (0..self.n).map(|p| self.get(k, p)).sum();
        (tp, predicted - tp, actual - tp)
    }

    /// Precision, recall, F1 of class `k` (zero_division = 0).
    pub fn scores(&self, k: usize) -> (f64, f64, f64) {
        let (tp, fp, fnn) = self.tp_fp_fn(k);
        (ratio(tp, tp + fp), ratio(tp, tp + fnn), ratio(2 * tp, 2 * tp + fp + fnn))
    }

    /// Macro precision, recall, F1 over the classes that occur as a true or predicted label.
    pub fn macro_scores(&self) -> (f64, f64, f64) {
        let present: Vec<usize> = (0..self.n)
            .filter(|&k| {
                let (tp, fp, fnn) = self.tp_fp_fn(k);
                tp + fp + fnn > 0
            })
            .collect();
        if present.is_empty() {
            return (0.0, 0.0, 0.0);
        }
        let (mut p, mut r, mut f) = (0.0, 0.0, 0.0);
        for &k in &present {
            let (a, b, c) = self.scores(k);
            p += a;
            r += b;
            f += c;
        }
        let n = present.len() as f64;
        (p / n, r / n, f / n)
    }

    /// The matrix as rows (`[true][predicted]`).
    pub fn to_rows(&self) -> Vec<Vec<u64>> {
        self.counts.chunks(self.n.max(1)).map(<[u64]>::to_vec).collect()
    }
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 { 0.0 } else { num as f64 / den as f64 }
}

/// Area under the ROC curve of `scores` for the rows where `positive` is true, vs the others. Ties count ½.
/// `None` if there are no positives, no negatives, or a score is NaN.
pub fn roc_auc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    assert_eq!(scores.len(), positive.len());
    if scores.iter().any(|s| s.is_nan()) {
        return None;
    }
    let n_pos = positive.iter().filter(|&&p| p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the (mid-)ranks of the positives, ranks starting at 1.
    let mut rank_sum = 0.0f64;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        let mut pos_in_group = 0u64;
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            pos_in_group += u64::from(positive[order[j]]);
            j += 1;
        }
        // ranks i+1 ..= j; their mean is (i + 1 + j) / 2
        rank_sum += pos_in_group as f64 * (i + 1 + j) as f64 / 2.0;
        i = j;
    }
    let (p, n) = (n_pos as f64, n_neg as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// Macro one-vs-rest ROC AUC: `probabilities` is row-major `rows × classes`, `truth` the true class per row.
/// Classes with no positive or no negative row are left out of the mean; `None` if none is left.
pub fn roc_auc_ovr_macro(probabilities: &[f64], classes: usize, truth: &[usize]) -> Option<f64> {
    assert_eq!(probabilities.len(), classes * truth.len());
    let mut sum = 0.0;
    let mut counted = 0;
    let mut scores = vec![0.0; truth.len()];
    let mut positive = vec![false; truth.len()];
    for k in 0..classes {
        for (i, &t) in truth.iter().enumerate() {
            scores[i] = probabilities[i * classes + k];
            positive[i] = t == k;
        }
        if let Some(auc) = roc_auc(&scores, &positive) {
            sum += auc;
            counted += 1;
        }
    }
    (counted > 0).then(|| sum / counted as f64)
}

/// Mean of `-ln(clip(p, 1e-15, 1 - 1e-15))` over the probabilities given to the true class. `None` if empty.
pub fn log_loss(p_true: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut sum = KahanSum::default();
    let mut n = 0u64;
    for p in p_true {
        sum.add(-p.clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS).ln());
        n += 1;
    }
    (n > 0).then(|| sum.value() / n as f64)
}

/// Classification metrics from the true and predicted class indices (into `classes`) and, optionally, the
/// row-major `rows × classes` probabilities. `positive`: the positive class of a binary problem (default:
/// [`positive_class`]).
pub fn classification_metrics(
    classes: &[ClassLabel],
    truth: &[usize],
    predicted: &[usize],
    probabilities: Option<&[f64]>,
    positive: Option<usize>,
) -> ClassificationMetrics {
    assert_eq!(truth.len(), predicted.len());
    let c = classes.len();
    let mut cm = ConfusionMatrix::new(c);
    for (&t, &p) in truth.iter().zip(predicted) {
        cm.add(t, p);
    }
    let binary = c == 2;
    let positive = if binary { Some(positive.unwrap_or_else(|| positive_class(classes))) } else { None };
    let (precision_macro, recall_macro, f1_macro) = cm.macro_scores();
    let (precision, recall, f1) = match positive {
        Some(k) => cm.scores(k),
        None => (precision_macro, recall_macro, f1_macro),
    };
    let roc_auc = probabilities.and_then(|p| match positive {
        Some(k) => {
            let scores: Vec<f64> = (0..truth.len()).map(|i| p[i * c + k]).collect();
            let is_pos: Vec<bool> = truth.iter().map(|&t| t == k).collect();
            roc_auc(&scores, &is_pos)
        }
        None => roc_auc_ovr_macro(p, c, truth),
    });
    let log_loss = probabilities.and_then(|p| log_loss(truth.iter().enumerate().map(|(i, &t)| p[i * c + t])));
    let per_class = (0..c)
        .map(|k| {
            let (precision, recall, f1) = cm.scores(k);
            let support = (0..c).map(|p| cm.get(k, p)).sum();
            ClassScores { class: classes[k].clone(), precision, recall, f1, support }
        })
        .collect();
    ClassificationMetrics {
        rows: truth.len() as u64,
        classes: classes.to_vec(),
        positive_class: positive.map(|k| classes[k].clone()),
        accuracy: cm.accuracy(),
        precision,
        recall,
        f1,
        precision_macro,
        recall_macro,
        f1_macro,
        roc_auc,
        log_loss,
        per_class,
        confusion_matrix: cm.to_rows(),
    }
}

/// The positive class of a binary problem: the class `1` if there is one, else the larger label.
pub fn positive_class(classes: &[ClassLabel]) -> usize {
    let one = |c: &ClassLabel| matches!(c, ClassLabel::Int(1)) || matches!(c, ClassLabel::Str(s) if s == "1");
    classes
        .iter()
        .position(one)
        .unwrap_or_else(|| (0..classes.len()).max_by(|&a, &b| classes[a].cmp(&classes[b])).unwrap_or(0))
}

/// Compensated (Neumaier) summation.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KahanSum {
    sum: f64,
    c: f64,
}

impl KahanSum {
    pub fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.c += (self.sum - t) + x;
        } else {
            self.c += (x - t) + self.sum;
        }
        self.sum = t;
    }

    pub fn value(&self) -> f64 {
        self.sum + self.c
    }
}

/// Streaming RMSE / MAE / R²: add (truth, prediction) pairs batch by batch.
#[derive(Debug, Clone, Default)]
pub struct RegressionAccumulator {
    n: u64,
    squared: KahanSum,
    absolute: KahanSum,
    // Welford's running mean and sum of squared deviations of the truth.
    mean: f64,
    m2: f64,
}

impl RegressionAccumulator {
    /// Adds one row.
    pub fn add(&mut self, truth: f64, prediction: f64) {
        let e = truth - prediction;
        self.squared.add(e * e);
        self.absolute.add(e.abs());
        self.n += 1;
        let delta = truth - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (truth - self.mean);
    }

    /// The metrics so far (all 0 for no rows).
    pub fn finish(&self) -> RegressionMetrics {
        if self.n == 0 {
            return RegressionMetrics { rows: 0, rmse: 0.0, mae: 0.0, r2: 0.0 };
        }
        let n = self.n as f64;
        let ss_res = self.squared.value();
        let r2 = if self.m2 == 0.0 { if ss_res == 0.0 { 1.0 } else { 0.0 } } else { 1.0 - ss_res / self.m2 };
        RegressionMetrics { rows: self.n, rmse: (ss_res / n).sqrt(), mae: self.absolute.value() / n, r2 }
    }
}

/// Regression metrics of (truth, prediction) slices.
pub fn regression_metrics(truth: &[f64], predicted: &[f64]) -> RegressionMetrics {
    assert_eq!(truth.len(), predicted.len());
    let mut acc = RegressionAccumulator::default();
    for (&t, &p) in truth.iter().zip(predicted) {
        acc.add(t, p);
    }
    acc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    fn ints(v: &[i64]) -> Vec<ClassLabel> {
        v.iter().map(|&i| ClassLabel::Int(i)).collect()
    }

    #[test]
    fn binary_counts_by_hand() {
        // truth 1 1 1 0 0 0 0 1 ; predicted 1 0 1 0 1 0 0 1 → tp 3, fn 1, fp 1, tn 3
        let truth = [1, 1, 1, 0, 0, 0, 0, 1];
        let pred = [1, 0, 1, 0, 1, 0, 0, 1];
        let m = classification_metrics(&ints(&[0, 1]), &truth, &pred, None, None);
        assert_eq!(m.positive_class, Some(ClassLabel::Int(1)));
        assert!(close(m.accuracy, 6.0 / 8.0));
        assert!(close(m.precision, 0.75));
        assert!(close(m.recall, 0.75));
        assert!(close(m.f1, 0.75));
        assert!(close(m.precision_macro, 0.75));
        assert_eq!(m.confusion_matrix, vec![vec![3, 1], vec![1, 3]]);
        assert_eq!(m.roc_auc, None);
        assert_eq!(m.log_loss, None);
        assert_eq!(m.per_class[1].support, 4);
    }

    #[test]
    fn unequal_precision_and_recall() {
        // tp 2, fp 2, fn 1: precision 0.5, recall 2/3, f1 = 4 / (4 + 3) = 4/7
        let truth = [1, 1, 1, 0, 0, 0];
        let pred = [1, 1, 0, 1, 1, 0];
        let m = classification_metrics(&ints(&[0, 1]), &truth, &pred, None, None);
        assert!(close(m.precision, 0.5));
        assert!(close(m.recall, 2.0 / 3.0));
        assert!(close(m.f1, 4.0 / 7.0));
        // class 0: tp 1, fp 1, fn 2 → p 0.5, r 1/3, f1 2/5
        assert!(close(m.precision_macro, 0.5));
        assert!(close(m.recall_macro, (2.0 / 3.0 + 1.0 / 3.0) / 2.0));
        assert!(close(m.f1_macro, (4.0 / 7.0 + 0.4) / 2.0));
    }

    #[test]
    fn zero_division_is_zero() {
        // Nothing predicted positive: precision 0 (0/0), recall 0, f1 0.
        let m = classification_metrics(&ints(&[0, 1]), &[1, 0], &[0, 0], None, None);
        assert_eq!((m.precision, m.recall, m.f1), (0.0, 0.0, 0.0));
    }

    #[test]
    fn positive_class_rule() {
        assert_eq!(positive_class(&ints(&[0, 1])), 1);
        assert_eq!(positive_class(&ints(&[1, 2])), 0); // 1 wins over the larger label
        assert_eq!(positive_class(&ints(&[-1, 3])), 1);
        assert_eq!(positive_class(&[ClassLabel::Str("yes".into()), ClassLabel::Str("no".into())]), 0);
    }

    #[test]
    fn auc_by_hand() {
        // Positives 0.8, 0.4; negatives 0.6, 0.2: pairs (0.8>0.6, 0.8>0.2, 0.4<0.6, 0.4>0.2) → 3/4.
        assert!(close(roc_auc(&[0.8, 0.6, 0.4, 0.2], &[true, false, true, false]).unwrap(), 0.75));
        // A tie between a positive and a negative counts half: (1 + 0.5) / 2.
        assert!(close(roc_auc(&[0.9, 0.5, 0.5], &[true, true, false]).unwrap(), 0.75));
        assert!(close(roc_auc(&[0.1, 0.9], &[false, true]).unwrap(), 1.0));
        assert_eq!(roc_auc(&[0.1, 0.9], &[true, true]), None);
        assert_eq!(roc_auc(&[f64::NAN, 0.9], &[false, true]), None);
    }

    #[test]
    fn multiclass_by_hand() {
        // 3 classes, 4 rows.
        let classes = ints(&[0, 1, 2]);
        let truth = [0, 1, 2, 2];
        let proba = [
            0.7, 0.2, 0.1, //
            0.3, 0.4, 0.3, //
            0.2, 0.5, 0.3, //
            0.1, 0.1, 0.8,
        ];
        let pred = [0, 1, 1, 2];
        let m = classification_metrics(&classes, &truth, &pred, Some(&proba), None);
        assert_eq!(m.positive_class, None);
        assert!(close(m.accuracy, 0.75));
        // class 0: p 1 r 1; class 1: tp 1 fp 1 → p .5 r 1; class 2: tp 1 fn 1 → p 1 r .5
        assert!(close(m.precision_macro, (1.0 + 0.5 + 1.0) / 3.0));
        assert!(close(m.recall_macro, (1.0 + 1.0 + 0.5) / 3.0));
        assert!(close(m.f1_macro, (1.0 + 2.0 / 3.0 + 2.0 / 3.0) / 3.0));
        assert_eq!(m.precision, m.precision_macro);
        // OvR AUC: class 0 scores [.7|.3,.2,.1] → 1; class 1 [.4| .2,.5,.1] → 2/3; class 2 [.3,.8 | .1,.3]:
        // pairs (.3 vs .1: 1, .3 vs .3: .5, .8: 1, 1) → 3.5/4.
        assert!(close(m.roc_auc.unwrap(), (1.0 + 2.0 / 3.0 + 3.5 / 4.0) / 3.0));
        let ll = -(0.7f64.ln() + 0.4f64.ln() + 0.3f64.ln() + 0.8f64.ln()) / 4.0;
        assert!(close(m.log_loss.unwrap(), ll));
    }

    #[test]
    fn macro_ignores_classes_never_seen() {
        // Class 2 is neither true nor predicted: left out of the macro mean (as scikit-learn does).
        let m = classification_metrics(&ints(&[0, 1, 2]), &[0, 1], &[0, 1], None, None);
        assert!(close(m.precision_macro, 1.0));
    }

    #[test]
    fn log_loss_clips() {
        let ll = log_loss([0.0, 1.0]).unwrap();
        assert!(close(ll, -(LOG_LOSS_EPS.ln() + (1.0 - LOG_LOSS_EPS).ln()) / 2.0));
        assert_eq!(log_loss(std::iter::empty()), None);
    }

    #[test]
    fn regression_by_hand() {
        // errors: 0.5, -0.5, 0, 1 → mse = (0.25 + 0.25 + 0 + 1) / 4 = 0.375; mae = 2 / 4
        let truth = [3.0, -0.5, 2.0, 7.0];
        let pred = [2.5, 0.0, 2.0, 6.0];
        let m = regression_metrics(&truth, &pred);
        assert!(close(m.rmse, 0.375f64.sqrt()));
        assert!(close(m.mae, 0.5));
        // mean 2.875; SS_tot = 0.015625 + 11.390625 + 0.765625 + 17.015625 = 29.1875
        assert!(close(m.r2, 1.0 - 1.5 / 29.1875));
        assert_eq!(regression_metrics(&[2.0, 2.0], &[2.0, 2.0]).r2, 1.0);
        assert_eq!(regression_metrics(&[2.0, 2.0], &[1.0, 2.0]).r2, 0.0);
    }

    #[test]
    fn metric_names_and_directions() {
        let m = Metrics::Regression(regression_metrics(&[1.0, 2.0], &[1.0, 2.0]));
        assert_eq!(m.get("rmse"), Some(0.0));
        assert_eq!(m.get("accuracy"), None);
        assert_eq!(higher_is_better("log_loss"), Some(false));
        assert_eq!(higher_is_better("roc_auc"), Some(true));
        assert_eq!(higher_is_better("nope"), None);
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.starts_with(r#"{"task":"regression","rows":2,"rmse":0.0"#), "{json}");
    }
}
