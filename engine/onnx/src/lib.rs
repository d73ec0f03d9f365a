//! Native ONNX evaluation and batch prediction for dagrun (the `OnnxEval` and `OnnxPredict` tasks).
//!
//! * [`runtime`]: finds the ONNX Runtime shared library (`ORT_DYLIB_PATH`, the active Python's
//!   `onnxruntime` package, common locations), loads it once per process, and says exactly what to install
//!   when it cannot.
//! * [`evaluate`]: runs an ONNX classifier or regressor over a CSV or Parquet file in batches and writes `metrics.json` and
//!   `predictions.csv`; [`evaluate_metrics`] computes the metrics without writing anything.
//! * [`predict`]: batch inference, CSV or Parquet in, predictions CSV out.
//! * [`metrics`]: the metric definitions (scikit-learn's), usable on their own.
//! * [`rows`]: named rows (a CSV body, JSON records or arrays) → a model's features; the one column mapping
//!   `predict` and `dagrun serve` share.
//! * [`behaviour()`]: how differently two models behave on the same data (predicted labels changed, mean
//!   change), from the outputs two evaluations kept ([`EvalOptions::keep_outputs`]).
//!
//! ```no_run
//! use dagrun_onnx::{EvalOptions, evaluate};
//! # fn main() -> Result<(), dagrun_onnx::Error> {
//! let eval = evaluate("model.onnx".as_ref(), "test.csv".as_ref(), "out".as_ref(), &EvalOptions::new("label"))?;
//! println!("accuracy {:?}", eval.metrics.get("accuracy"));
//! # Ok(())
//! # }
//! ```

mod behaviour;
mod data;
mod error;
mod eval;
mod io;
mod json_rows;
pub mod metrics;
mod model;
mod proto;
pub mod rows;
pub mod runtime;
mod scores;
mod trees;
mod types;

pub use behaviour::{Behaviour, Outputs, behaviour};
pub use error::{Error, Result};
pub use eval::{
    DEFAULT_BATCH_SIZE, EvalOptions, Evaluation, PredictOptions, Prediction, evaluate, evaluate_metrics, predict,
};
pub use metrics::Metrics;
pub use model::{
    ClassLabel, ClassSource, Evaluator, Features, IoDesc, ModelInfo, ModelKind, ModelOptions, OnnxModel, Predictions,
};
pub use runtime::{OrtError, RuntimeInfo, discover};
pub use scores::ScoreTransform;
