use std::path::PathBuf;

use crate::runtime::OrtError;

/// Everything that can go wrong evaluating or running a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// ONNX Runtime could not be found or loaded; the message says what to install.
    #[error(transparent)]
    Runtime(#[from] OrtError),
    /// ONNX Runtime refused the model file.
    #[error("cannot load model {}: {reason}", .path.display())]
    ModelLoad {
        /// The model file.
        path: PathBuf,
        /// ONNX Runtime's (or the file system's) error.
        reason: String,
    },
    /// The model loads, but its inputs or outputs are not something dagrun knows how to feed or read.
    #[error("model {} is not supported: {reason}", .path.display())]
    UnsupportedModel {
        /// The model file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// ONNX Runtime failed while running a batch.
    #[error("running model {} on data rows {first_row}..{end_row} failed: {reason}", .path.display())]
    Inference {
        /// The model file.
        path: PathBuf,
        /// First data row of the batch (0-based, header excluded).
        first_row: u64,
        /// One past the last data row of the batch.
        end_row: u64,
        /// ONNX Runtime's error.
        reason: String,
    },
    /// A column named in the options is not in the CSV header.
    #[error("{}: no column `{column}` (the {role}); columns are: {}", .path.display(), .available.join(", "))]
    MissingColumn {
        /// The CSV file.
        path: PathBuf,
        /// The missing column.
        column: String,
        /// What it was wanted for: "label column", "feature", "passthrough column".
        role: &'static str,
        /// The header's columns.
        available: Vec<String>,
    },
    /// The data does not fit the model or cannot be read (bad number, unknown label, ragged row...).
    #[error("{}: {reason}", .path.display())]
    Data {
        /// The CSV file.
        path: PathBuf,
        /// What is wrong, with the line number where there is one.
        reason: String,
    },
    /// With [`EvalOptions::skip_unlabelled`](crate::EvalOptions::skip_unlabelled): no row has a label (yet).
    #[error("{}: no labelled rows: all {unlabelled} rows lack a label (`{label}`)", .path.display())]
    NoLabelledRows {
        /// The data file.
        path: PathBuf,
        /// The label column.
        label: String,
        /// Rows without a label (at least 1).
        unlabelled: u64,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Two evaluations' predictions cannot be compared ([`behaviour`](crate::behaviour())): different rows,
    /// a classifier and a regressor, or different classes.
    #[error("cannot compare the two models' predictions: {0}")]
    Incomparable(String),
    /// The options contradict each other or the model.
    #[error("invalid options: {0}")]
    Options(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
