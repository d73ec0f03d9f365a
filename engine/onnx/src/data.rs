//! Streaming a CSV or Parquet file in batches: selected feature columns parsed to `f64`, the label and
//! passthrough columns kept as text. Only a few batches are in memory at a time; a CSV file is parsed by
//! several threads ([`parallel`]).

use std::path::Path;
use std::sync::mpsc::{Receiver, Sender};

use crate::error::{Error, Result};
use crate::model::Features;

mod csv_batches;
mod parallel;
mod parquet;

pub(crate) use csv_batches::{CsvBatches, CsvColumns, Fields, csv_err, parse_f64};
pub(crate) use parquet::ParquetBatches;

/// Which columns to read.
#[derive(Debug, Clone, Default)]
pub(crate) struct ColumnSpec<'a> {
    /// Feature columns by name; `None`: every column except `label` and `exclude`.
    pub features: Option<&'a [String]>,
    /// The label column (required for evaluation).
    pub label: Option<&'a str>,
    /// Whether a missing label column is an error (evaluation) or just means "no label" (prediction).
    pub label_required: bool,
    /// Columns copied to the predictions file.
    pub passthrough: &'a [String],
    /// Leave out rows whose label is missing (see [`missing_label`]), counting them in [`Batch::unlabelled`].
    pub skip_unlabelled: bool,
}

/// A text column of a batch: all values in one buffer.
#[derive(Debug, Clone, Default)]
pub(crate) struct TextColumn {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl TextColumn {
    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    fn push(&mut self, value: &[u8]) {
        self.bytes.extend_from_slice(value);
        self.ends.push(self.bytes.len());
    }

    /// The raw bytes of row `i`.
    pub fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
}

/// One batch of rows.
#[derive(Debug, Clone, Default)]
pub(crate) struct Batch {
    /// Index of the first row (0-based data row; the header is not a row).
    pub first_row: u64,
    /// The index of each row (0-based data row, as in the predictions' `row` column): consecutive from
    /// `first_row` unless unlabelled rows were skipped.
    pub row_ids: Vec<u64>,
    /// Rows left out of this batch because their label was missing (with [`ColumnSpec::skip_unlabelled`]).
    pub unlabelled: u64,
    /// Where each row is, for error messages: its line (1-based, header = line 1) in a CSV file, its row
    /// index (0-based, as in the predictions' `row` column) in a Parquet file.
    pub lines: Vec<u64>,
    /// `lines` holds Parquet row indices, not CSV line numbers.
    pub parquet_rows: bool,
    /// Features, row-major `rows × width`, in single or double precision.
    pub features: FeatureBuf,
    /// The label column, if read.
    pub labels: TextColumn,
    /// Passthrough columns, in the order asked for.
    pub passthrough: Vec<TextColumn>,
}

impl Batch {
    pub fn rows(&self) -> usize {
        self.lines.len()
    }

    /// Where row `i` of the batch is in the file: `line 12` (CSV) or `row 10` (Parquet).
    pub fn place(&self, i: usize) -> String {
        let word = if self.parquet_rows { "row" } else { "line" };
        format!("{word} {}", self.lines[i])
    }

    /// One past the index of the last row (`first_row` for an empty batch).
    pub fn end_row(&self) -> u64 {
        self.row_ids.last().map_or(self.first_row, |r| r + 1)
    }

    /// Sets `first_row` to the first row actually in the batch (after skipped rows).
    fn set_first_row(&mut self) {
        if let Some(&r) = self.row_ids.first() {
            self.first_row = r;
        }
    }

    /// Moves rows numbered from 0 to start at `base` (a chunk parsed without knowing where it starts).
    fn renumber(&mut self, base: u64) {
        self.row_ids.iter_mut().for_each(|r| *r += base);
        self.first_row += base;
    }

    /// Empties the batch for rows from `first_row` on.
    fn reset(&mut self, first_row: u64, single_precision: bool, passthrough: usize, parquet_rows: bool) {
        self.first_row = first_row;
        self.parquet_rows = parquet_rows;
        self.row_ids.clear();
        self.unlabelled = 0;
        self.lines.clear();
        self.features.reset(single_precision);
        self.labels.clear();
        self.passthrough.resize_with(passthrough, TextColumn::default);
        for col in &mut self.passthrough {
            col.clear();
        }
    }
}

/// A data file being read batch by batch: CSV or Parquet (by [`dagrun_table::Format::of`]).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per evaluation
pub(crate) enum Batches {
    Csv(CsvBatches),
    Parquet(ParquetBatches),
}

impl Batches {
    /// Opens `path` as Parquet when it is one (magic bytes, else a `.parquet`/`.pq` name), else as CSV.
    pub fn open(path: &Path, spec: &ColumnSpec<'_>) -> Result<Batches> {
        Ok(match dagrun_table::Format::of(path) {
            dagrun_table::Format::Csv => Batches::Csv(CsvBatches::open(path, spec)?),
            dagrun_table::Format::Parquet => Batches::Parquet(ParquetBatches::open(path, spec)?),
        })
    }

    /// Parse features into `f32` (for a model that takes floats) instead of `f64`.
    pub fn set_single_precision(&mut self, single: bool) {
        match self {
            Batches::Csv(b) => b.set_single_precision(single),
            Batches::Parquet(b) => b.set_single_precision(single),
        }
    }

    /// The names of the selected feature columns, in order.
    pub fn feature_names(&self) -> Vec<String> {
        match self {
            Batches::Csv(b) => b.feature_names(),
            Batches::Parquet(b) => b.feature_names(),
        }
    }

    /// Number of feature columns.
    pub fn width(&self) -> usize {
        match self {
            Batches::Csv(b) => b.width(),
            Batches::Parquet(b) => b.width(),
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            Batches::Csv(b) => b.path(),
            Batches::Parquet(b) => b.path(),
        }
    }

    /// Reads up to `max_rows` rows into `batch` (reusing its buffers). Returns the number of rows read; 0 at
    /// the end of the file.
    pub fn fill(&mut self, batch: &mut Batch, max_rows: usize) -> Result<usize> {
        match self {
            Batches::Csv(b) => b.fill(batch, max_rows),
            Batches::Parquet(b) => b.fill(batch, max_rows),
        }
    }

    /// Reads the batches (at most `batch_size` rows each) on threads of `scope`, so that reading overlaps
    /// what the caller does with them: a CSV file on several threads, anything else on one. Returns the
    /// batches in file order (an error ends them; a batch may hold no rows, only a count of unlabelled rows
    /// left out) and where to give batches back for reuse.
    pub fn spawn<'s>(self, scope: &'s std::thread::Scope<'s, '_>, batch_size: usize) -> Spawned {
        match self {
            Batches::Csv(CsvBatches { source: Some(source), cols, .. }) => {
                let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
                parallel::spawn(scope, source, cols, batch_size, workers)
            }
            reader => {
                let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Result<Batch>>(2);
                let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Batch>();
                scope.spawn(move || read_all(reader, batch_size, &full_tx, &empty_rx));
                (full_rx, empty_tx)
            }
        }
    }
}

/// Batches in file order, and where to give them back for reuse (see [`Batches::spawn`]).
pub(crate) type Spawned = (Receiver<Result<Batch>>, Sender<Batch>);

/// Reads every batch of `reader` in turn and sends it.
fn read_all(
    mut reader: Batches,
    batch_size: usize,
    full: &std::sync::mpsc::SyncSender<Result<Batch>>,
    empty: &Receiver<Batch>,
) {
    loop {
        let mut batch = empty.try_recv().unwrap_or_default();
        match reader.fill(&mut batch, batch_size) {
            // The end; trailing unlabelled rows still need counting.
            Ok(0) => {
                if batch.unlabelled > 0 {
                    let _ = full.send(Ok(batch));
                }
                return;
            }
            Ok(_) => {
                if full.send(Ok(batch)).is_err() {
                    return; // the consumer stopped (error)
                }
            }
            Err(e) => {
                let _ = full.send(Err(e));
                return;
            }
        }
    }
}

/// The selected columns, as indices into a file's column names.
#[derive(Debug)]
struct Resolved {
    features: Vec<usize>,
    label: Option<usize>,
    passthrough: Vec<usize>,
}

/// Finds the columns `spec` asks for among `header` (the file's columns).
fn resolve(path: &Path, header: &[String], spec: &ColumnSpec<'_>) -> Result<Resolved> {
    let find = |name: &str, role: &'static str| -> Result<usize> {
        header.iter().position(|h| h == name).ok_or_else(|| Error::MissingColumn {
            path: path.to_path_buf(),
            column: name.to_string(),
            role,
            available: header.to_vec(),
        })
    };
    let label = match spec.label {
        Some(l) if spec.label_required => Some(find(l, "label column")?),
        Some(l) => header.iter().position(|h| h == l),
        None => None,
    };
    let features = crate::rows::feature_columns(header, spec.features, label).map_err(|column| {
        Error::MissingColumn { path: path.to_path_buf(), column, role: "feature", available: header.to_vec() }
    })?;
    if features.is_empty() {
        return Err(Error::Data { path: path.to_path_buf(), reason: "no feature columns selected".into() });
    }
    let passthrough = spec.passthrough.iter().map(|n| find(n, "passthrough column")).collect::<Result<Vec<_>>>()?;
    Ok(Resolved { features, label, passthrough })
}

/// Parsed feature values: `f32` when the model takes floats (parsed as `f64`, then rounded, as numpy's
/// `astype(np.float32)` does), else `f64`.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureBuf {
    /// For a model that takes `float` inputs.
    F32(Vec<f32>),
    /// For any other model.
    F64(Vec<f64>),
}

impl Default for FeatureBuf {
    fn default() -> Self {
        FeatureBuf::F64(Vec::new())
    }
}

impl FeatureBuf {
    /// The values, for [`OnnxModel::predict`](crate::OnnxModel::predict).
    pub fn view(&self) -> Features<'_> {
        match self {
            FeatureBuf::F32(v) => Features::F32(v),
            FeatureBuf::F64(v) => Features::F64(v),
        }
    }

    pub(crate) fn reset(&mut self, single: bool) {
        match (self, single) {
            (FeatureBuf::F32(v), true) => v.clear(),
            (FeatureBuf::F64(v), false) => v.clear(),
            (buf, true) => *buf = FeatureBuf::F32(Vec::new()),
            (buf, false) => *buf = FeatureBuf::F64(Vec::new()),
        }
    }

    /// Appends one value (rounded to `f32` in a single-precision buffer).
    #[inline]
    pub fn push(&mut self, v: f64) {
        match self {
            FeatureBuf::F32(b) => b.push(v as f32),
            FeatureBuf::F64(b) => b.push(v),
        }
    }
}

/// Whether a label is missing: empty (or a Parquet null), or `NA`, `N/A`, `null`, `None`, `NaN` in any case.
pub(crate) fn missing_label(raw: &[u8]) -> bool {
    let t = trim(raw);
    t.is_empty() || [&b"na"[..], b"n/a", b"null", b"none", b"nan"].iter().any(|m| t.eq_ignore_ascii_case(m))
}

pub(crate) fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}
