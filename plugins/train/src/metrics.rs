//! Training-set metrics computed from a model's predictions.

use std::collections::BTreeMap;

use dagrun_onnx_writer::Predictions;

/// Accuracy and log loss of a classifier; `class_of[i]` is row `i`'s class index.
pub fn classification(p: &Predictions, class_of: &[usize], classes: &[i64]) -> BTreeMap<String, f64> {
    let Predictions::Classification { labels, probabilities, classes: c } = p else {
        return BTreeMap::new();
    };
    let n = labels.len() as f64;
    let correct = labels.iter().zip(class_of).filter(|(l, k)| **l == classes[**k]).count();
    let log_loss =
        probabilities.chunks(*c).zip(class_of).map(|(row, &k)| -libm::log(row[k].clamp(1e-15, 1.0))).sum::<f64>() / n;
    BTreeMap::from([("accuracy".to_owned(), correct as f64 / n), ("log_loss".to_owned(), log_loss)])
}

/// RMSE, MAE and R² of a regressor.
pub fn regression(p: &Predictions, y: &[f64]) -> BTreeMap<String, f64> {
    let Predictions::Regression(pred) = p else {
        return BTreeMap::new();
    };
    let n = y.len() as f64;
    let mean = y.iter().sum::<f64>() / n;
    let (mut se, mut ae, mut tot) = (0.0, 0.0, 0.0);
    for (a, b) in pred.iter().zip(y) {
        se += (a - b) * (a - b);
        ae += (a - b).abs();
        tot += (b - mean) * (b - mean);
    }
    let r2 = if tot > 0.0 { 1.0 - se / tot } else { 0.0 };
    BTreeMap::from([("rmse".to_owned(), (se / n).sqrt()), ("mae".to_owned(), ae / n), ("r2".to_owned(), r2)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        let p = Predictions::Classification { labels: vec![1, 0], probabilities: vec![0.2, 0.8, 0.6, 0.4], classes: 2 };
        let m = classification(&p, &[1, 1], &[0, 1]);
        assert_eq!(m["accuracy"], 0.5);
        assert!((m["log_loss"] - (-(0.8f64.ln()) - 0.4f64.ln()) / 2.0).abs() < 1e-12);
        let m = regression(&Predictions::Regression(vec![1.0, 3.0]), &[1.0, 2.0]);
        assert_eq!(m["mae"], 0.5);
        assert!((m["rmse"] - 0.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(m["r2"], 1.0 - 1.0 / 0.5);
    }
}
