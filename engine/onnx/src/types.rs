//! The public types of a model: its kind and classes, the load options, what dagrun made of it, a batch of
//! features and the predictions for it.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::scores::ScoreTransform;

/// Classifier or regressor. Detected from the model's outputs, or set by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Predicts a class; metrics: accuracy, precision, recall, F1, ROC AUC, log loss.
    #[serde(alias = "classification")]
    Classifier,
    /// Predicts a number; metrics: RMSE, MAE, R².
    #[serde(alias = "regression")]
    Regressor,
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelKind::Classifier => "classifier",
            ModelKind::Regressor => "regressor",
        })
    }
}

impl FromStr for ModelKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "classifier" | "classification" => Ok(ModelKind::Classifier),
            "regressor" | "regression" => Ok(ModelKind::Regressor),
            other => Err(format!("unknown model kind `{other}` (expected `classifier` or `regressor`)")),
        }
    }
}

/// A class of a classifier: an integer (skl2onnx `classlabels_ints`, our own models) or a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClassLabel {
    /// An integer class.
    Int(i64),
    /// A string class.
    Str(String),
}

impl ClassLabel {
    /// `"3"` → `Int(3)`, anything else → `Str`.
    pub fn parse(s: &str) -> ClassLabel {
        let t = s.trim();
        t.parse::<i64>().map(ClassLabel::Int).unwrap_or_else(|_| ClassLabel::Str(t.to_string()))
    }
}

impl fmt::Display for ClassLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClassLabel::Int(i) => write!(f, "{i}"),
            ClassLabel::Str(s) => f.write_str(s),
        }
    }
}

impl serde::Serialize for ClassLabel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            ClassLabel::Int(i) => s.serialize_i64(*i),
            ClassLabel::Str(v) => s.serialize_str(v),
        }
    }
}

/// Where a classifier's class list (the order of its probability columns) came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassSource {
    /// The caller's `class_labels`.
    Options,
    /// A `classlabels_*` attribute of the named `ai.onnx.ml` operator in the model graph (skl2onnx).
    Graph(String),
    /// The model's metadata property `classes` (comma-separated).
    Metadata,
    /// The keys of the ZipMap output.
    ZipMap,
    /// Assumed `0..C-1` from the number of probability columns.
    Assumed,
}

/// How a model is loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelOptions {
    /// Classifier or regressor; detected from the outputs when `None`.
    pub kind: Option<ModelKind>,
    /// The classes, in the order of the probability columns; found in the model when `None`.
    pub class_labels: Option<Vec<String>>,
    /// ONNX Runtime intra-op threads; ONNX Runtime's default (one per core) when `None`.
    pub intra_threads: Option<usize>,
}

/// One model input or output, for reports (`name`, `type` as ONNX Runtime prints it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IoDesc {
    /// The input's or output's name.
    pub name: String,
    /// Its type, e.g. `Tensor<f32>(-1, 8)`.
    #[serde(rename = "type")]
    pub ty: String,
}

/// What dagrun made of a model: its inputs and outputs and which role each output plays.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModelInfo {
    /// The model file.
    pub path: PathBuf,
    /// The model's inputs.
    pub inputs: Vec<IoDesc>,
    /// The model's outputs.
    pub outputs: Vec<IoDesc>,
    /// Classifier or regressor (`None` until the first batch when it depends on a dynamic output width).
    pub kind: Option<ModelKind>,
    /// Whether `kind` was given by the caller rather than detected.
    pub kind_overridden: bool,
    /// The output holding predicted class labels, if any.
    pub label_output: Option<String>,
    /// The output holding probabilities (classifier) or predictions (regressor).
    pub score_output: Option<String>,
    /// The classes in probability-column order, once known.
    pub classes: Option<Vec<ClassLabel>>,
    /// Where `classes` came from.
    pub class_source: Option<ClassSource>,
    /// Number of features the model takes, when the input shape says.
    pub feature_count: Option<usize>,
    /// How the score output becomes probabilities (classifiers; known after the first batch).
    pub score_transform: Option<ScoreTransform>,
    /// Why: the operator that computed the output (`graph: TreeEnsembleClassifier (post_transform NONE)`), or
    /// the fallback (see `scores.rs`).
    pub score_transform_reason: Option<String>,
    /// What computed the predictions: set after the first batch of a tree ensemble, which dagrun
    /// evaluates natively once its outputs matched ONNX Runtime's on that batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evaluator: Option<Evaluator>,
}

/// What computed a model's predictions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Evaluator {
    /// dagrun's tree-ensemble evaluator (checked against ONNX Runtime on the first batch).
    NativeTrees,
    /// ONNX Runtime (the native evaluator's first batch differed from it).
    OnnxRuntime,
}

/// The feature values of a batch, row-major (`rows × width`). `f32` values go to a float model without a
/// copy; anything else is converted to the model's input type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Features<'a> {
    /// Single precision.
    F32(&'a [f32]),
    /// Double precision.
    F64(&'a [f64]),
}

impl Features<'_> {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Features::F32(v) => v.len(),
            Features::F64(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn at(&self, i: usize) -> f64 {
        match self {
            Features::F32(v) => f64::from(v[i]),
            Features::F64(v) => v[i],
        }
    }
}

impl<'a> From<&'a [f32]> for Features<'a> {
    fn from(v: &'a [f32]) -> Self {
        Features::F32(v)
    }
}

impl<'a> From<&'a [f64]> for Features<'a> {
    fn from(v: &'a [f64]) -> Self {
        Features::F64(v)
    }
}

impl<'a> From<&'a Vec<f32>> for Features<'a> {
    fn from(v: &'a Vec<f32>) -> Self {
        Features::F32(v)
    }
}

impl<'a> From<&'a Vec<f64>> for Features<'a> {
    fn from(v: &'a Vec<f64>) -> Self {
        Features::F64(v)
    }
}

/// The model's predictions for one batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Predictions {
    /// Classifier: the predicted class (index into [`OnnxModel::classes`]) per row and, when the model has
    /// them, the class probabilities (row-major `rows × classes`).
    Classes {
        /// Predicted class index per row.
        predicted: Vec<usize>,
        /// `rows × classes` probabilities, in class order.
        probabilities: Option<Vec<f64>>,
        /// Whether the probabilities were computed in single precision (print them as `f32`).
        single_precision: bool,
    },
    /// Regressor: one value per row.
    Values {
        /// The predictions.
        values: Vec<f64>,
        /// Whether they were computed in single precision.
        single_precision: bool,
    },
}

impl Predictions {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Predictions::Classes { predicted, .. } => predicted.len(),
            Predictions::Values { values, .. } => values.len(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_labels_parse_and_print() {
        assert_eq!(ClassLabel::parse(" 3 "), ClassLabel::Int(3));
        assert_eq!(ClassLabel::parse("cat"), ClassLabel::Str("cat".into()));
        assert_eq!(serde_json::to_string(&[ClassLabel::Int(1), ClassLabel::Str("a".into())]).unwrap(), r#"[1,"a"]"#);
        assert_eq!("classification".parse::<ModelKind>(), Ok(ModelKind::Classifier));
        assert!("tree".parse::<ModelKind>().is_err());
    }
}
