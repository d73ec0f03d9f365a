//! Prediction drift: both datasets scored with the model (`dagrun_onnx::predict`, ONNX
//! Runtime) into the work directory, then the prediction columns compared like data columns.
//!
//! Compared: `prediction` (a classifier's label, as categories; a regressor's value, as
//! numbers) and the class probabilities `proba_<class>` (numbers; a binary classifier's
//! `proba_<positive>` only, the other being its complement). The model picks its feature
//! columns itself (`PredictOptions` defaults: the model's named inputs, else every column but
//! one left out): the first `exclude`d column present in the reference data (typically the
//! label) is left out of a model that does not name its inputs.

use std::path::{Path, PathBuf};

use dagrun_onnx::{ModelKind, PredictOptions};
use dagrun_table::{ReadOptions, column_names};

use super::{ColumnResult, DriftError, DriftInputs, DriftOptions, compare_tables, read_both};

/// Where the reference's predictions are written, in the work directory.
pub const REFERENCE_PREDICTIONS: &str = "reference_predictions.csv";

/// Where the current data's predictions are written, in the work directory.
pub const CURRENT_PREDICTIONS: &str = "current_predictions.csv";

/// The predicted label or value.
const PREDICTION: &str = "prediction";

/// Scores `data` into `output`, leaving `label` out of the default features; whether the model
/// is a classifier.
fn score(model: &Path, data: &Path, output: &Path, label: Option<&String>) -> Result<bool, DriftError> {
    let opts = PredictOptions { label: label.cloned(), ..PredictOptions::default() };
    let done = dagrun_onnx::predict(model, data, output, &opts)
        .map_err(|source| DriftError::Model { data: data.to_path_buf(), source })?;
    Ok(done.model.kind == Some(ModelKind::Classifier))
}

/// The columns of a predictions file worth comparing.
pub fn prediction_columns(names: &[String]) -> Vec<String> {
    let probas: Vec<&String> = names.iter().filter(|n| n.starts_with("proba_")).collect();
    let probas = if probas.len() == 2 { &probas[1..] } else { &probas[..] };
    let mut out: Vec<String> = names.iter().filter(|n| *n == PREDICTION).cloned().collect();
    out.extend(probas.iter().map(|p| (*p).clone()));
    out
}

/// Scores both datasets and compares the predictions (`opts` as for the data columns, but
/// with no critical column and no column selection); `label`: the column left out of the
/// default features (the first `exclude`d one in the reference data).
pub fn prediction_drift(
    model: &Path,
    inputs: &DriftInputs,
    opts: &DriftOptions,
    label: Option<&String>,
) -> Result<Vec<ColumnResult>, DriftError> {
    let dir = &inputs.work_dir;
    std::fs::create_dir_all(dir).map_err(|source| DriftError::Write { path: dir.clone(), source })?;
    let outputs: [PathBuf; 2] = [dir.join(REFERENCE_PREDICTIONS), dir.join(CURRENT_PREDICTIONS)];
    let classifier = score(model, &inputs.reference, &outputs[0], label)?;
    score(model, &inputs.current, &outputs[1], label)?;
    let columns = prediction_columns(&column_names(&outputs[0])?);
    let categorical = if classifier { vec![PREDICTION.to_string()] } else { Vec::new() };
    let read = ReadOptions { columns: Some(columns), exclude: Vec::new(), categorical };
    let (reference, current) = read_both(&outputs[0], &outputs[1], &read)?;
    let opts = DriftOptions {
        columns: None,
        exclude: Vec::new(),
        categorical: Vec::new(),
        critical: Vec::new(),
        ..opts.clone()
    };
    compare_tables(reference, current, &opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn compared_prediction_columns() {
        assert_eq!(prediction_columns(&names(&["row", "prediction"])), ["prediction"]);
        assert_eq!(prediction_columns(&names(&["row", "prediction", "proba_0", "proba_1"])), ["prediction", "proba_1"]);
        assert_eq!(
            prediction_columns(&names(&["row", "prediction", "proba_a", "proba_b", "proba_c"])),
            ["prediction", "proba_a", "proba_b", "proba_c"]
        );
    }
}
