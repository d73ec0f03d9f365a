//! Writes self-contained ONNX models from plain Rust — no protobuf compiler, no `unsafe`, builds
//! for wasm32 — so dagrun training plugins (and yours) can emit models that ONNX Runtime loads.
//!
//! * [`LinearRegression`]: `input` float `[N, F]` → `(x - mean) / std` → MatMul + Add →
//!   `variable` float `[N, 1]`.
//! * [`LogisticRegression`]: standardise → MatMul + Add → Sigmoid (binary: one score column,
//!   probabilities `[1 - p, p]`) or Softmax (multiclass) → `probabilities` float `[N, C]` and
//!   `label` int64 `[N]` (ArgMax, mapped to the class labels) — the output names of skl2onnx
//!   classifiers exported without ZipMap.
//! * [`TreeEnsemble`]: `ai.onnx.ml` TreeEnsembleRegressor (sum of trees + base values) →
//!   `variable`, or → the same classifier head → `label` + `probabilities`.
//!
//! Models use opset 17 of ai.onnx, opset 3 of ai.onnx.ml (tree ensembles only) and IR version 8.
//! The same model always encodes to the same bytes (no timestamps, fields in a fixed order,
//! metadata sorted by key). Each model type also has a reference `predict` that computes what
//! its graph computes (float32 where the graph is float32), to check a file against ONNX Runtime.
//!
//! ```
//! use dagrun_onnx_writer::{LinearRegression, ModelInfo, Standardizer};
//!
//! let model = LinearRegression {
//!     standardizer: Standardizer { mean: vec![1.0, 2.0], std: vec![0.5, 4.0] },
//!     coef: vec![3.0, -1.0],
//!     intercept: 0.25,
//! };
//! let bytes = model.to_model(&ModelInfo::default()).unwrap().encode();
//! assert_eq!(bytes, model.to_model(&ModelInfo::default()).unwrap().encode());
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod models;
pub mod proto;

pub use models::{
    LinearRegression, LogisticRegression, ModelInfo, OnnxModel, Predictions, Standardizer, Tree, TreeEnsemble,
    TreeHead, TreeNode,
};

/// ONNX IR version written (ONNX 1.12+, ONNX Runtime 1.12+).
pub const IR_VERSION: i64 = 8;
/// Opset of the default domain (ai.onnx).
pub const OPSET: i64 = 17;
/// The ML operators' domain.
pub const ML_DOMAIN: &str = "ai.onnx.ml";
/// Opset of the ai.onnx.ml domain (imported only by tree ensembles).
pub const ML_OPSET: i64 = 3;
/// Name of every model's input: float `[N, F]`.
pub const INPUT: &str = "input";
/// Name of a regressor's output: float `[N, 1]`.
pub const OUTPUT_VARIABLE: &str = "variable";
/// Name of a classifier's label output: int64 `[N]`.
pub const OUTPUT_LABEL: &str = "label";
/// Name of a classifier's probabilities output: float `[N, C]`.
pub const OUTPUT_PROBABILITIES: &str = "probabilities";

/// A model that cannot be written (inconsistent sizes, non-finite values, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    fn new(message: impl Into<String>) -> Error {
        Error(message.into())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests;
