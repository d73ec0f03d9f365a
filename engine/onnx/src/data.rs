//! Streaming a CSV or Parquet file in batches: selected feature columns parsed to `f64`, the label and
//! passthrough columns kept as text. Only one batch of text is in memory at a time.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result, io_err};
use crate::model::Features;

mod parquet;

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

/// A CSV file being read batch by batch.
pub(crate) struct CsvBatches {
    path: PathBuf,
    reader: csv::Reader<Box<dyn Read + Send>>,
    record: csv::ByteRecord,
    header: Vec<String>,
    features: Vec<usize>,
    label: Option<usize>,
    passthrough: Vec<usize>,
    next_row: u64,
    single_precision: bool,
    skip_unlabelled: bool,
}

impl std::fmt::Debug for CsvBatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvBatches").field("path", &self.path).field("header", &self.header).finish_non_exhaustive()
    }
}

impl CsvBatches {
    /// Opens `path`, reads its header and resolves the columns.
    pub fn open(path: &Path, spec: &ColumnSpec<'_>) -> Result<CsvBatches> {
        let file = File::open(path).map_err(io_err(path))?;
        CsvBatches::from_reader(path, Box::new(BufReader::with_capacity(1 << 20, file)), spec)
    }

    /// Reads CSV text from `input` (e.g. a request body); `name` stands for it in error messages.
    pub fn from_reader(name: &Path, input: Box<dyn Read + Send>, spec: &ColumnSpec<'_>) -> Result<CsvBatches> {
        let path = name;
        let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(input);
        let header: Vec<String> = reader
            .byte_headers()
            .map_err(|e| csv_err(path, e))?
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let h = String::from_utf8_lossy(h);
                let h = if i == 0 { h.trim_start_matches('\u{feff}') } else { &h };
                h.trim().to_string()
            })
            .collect();
        if header.is_empty() || header.iter().all(String::is_empty) {
            return Err(Error::Data { path: path.to_path_buf(), reason: "empty file: no header row".into() });
        }
        let Resolved { features, label, passthrough } = resolve(path, &header, spec)?;
        Ok(CsvBatches {
            path: path.to_path_buf(),
            reader,
            record: csv::ByteRecord::new(),
            header,
            features,
            label,
            passthrough,
            next_row: 0,
            single_precision: false,
            skip_unlabelled: spec.skip_unlabelled && label.is_some(),
        })
    }

    /// Parse features into `f32` (for a model that takes floats) instead of `f64`.
    pub fn set_single_precision(&mut self, single: bool) {
        self.single_precision = single;
    }

    /// The names of the selected feature columns, in order.
    pub fn feature_names(&self) -> Vec<String> {
        self.features.iter().map(|&i| self.header[i].clone()).collect()
    }

    /// Number of feature columns.
    pub fn width(&self) -> usize {
        self.features.len()
    }

    /// A feature whose name the header holds more than once (only the first is read).
    pub fn duplicate_feature(&self) -> Option<&str> {
        self.features
            .iter()
            .map(|&i| self.header[i].as_str())
            .find(|name| self.header.iter().filter(|h| h == name).count() > 1)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads up to `max_rows` rows into `batch` (reusing its buffers). Returns the number of rows read; 0 at
    /// the end of the file.
    pub fn fill(&mut self, batch: &mut Batch, max_rows: usize) -> Result<usize> {
        batch.reset(self.next_row, self.single_precision, self.passthrough.len(), false);
        while batch.lines.len() < max_rows {
            if !self.reader.read_byte_record(&mut self.record).map_err(|e| csv_err(&self.path, e))? {
                break;
            }
            let line = self.record.position().map_or(0, |p| p.line());
            if self.record.len() == 1 && self.record[0].is_empty() {
                continue; // blank line
            }
            let row = self.next_row;
            self.next_row += 1;
            if self.skip_unlabelled && self.label.is_some_and(|l| missing_label(&self.record[l])) {
                batch.unlabelled += 1;
                continue;
            }
            for &i in &self.features {
                let field = &self.record[i];
                match parse_f64(field) {
                    Some(v) => batch.features.push(v),
                    None => {
                        return Err(Error::Data {
                            path: self.path.clone(),
                            reason: format!(
                                "line {line}: column `{}`: `{}` is not a number",
                                self.header[i],
                                String::from_utf8_lossy(field)
                            ),
                        });
                    }
                }
            }
            if let Some(l) = self.label {
                batch.labels.push(trim(&self.record[l]));
            }
            for (col, &i) in batch.passthrough.iter_mut().zip(&self.passthrough) {
                col.push(&self.record[i]);
            }
            batch.lines.push(line);
            batch.row_ids.push(row);
        }
        batch.set_first_row();
        Ok(batch.lines.len())
    }
}

fn csv_err(path: &Path, e: csv::Error) -> Error {
    match e.kind() {
        csv::ErrorKind::Io(_) => match e.into_kind() {
            csv::ErrorKind::Io(source) => Error::Io { path: path.to_path_buf(), source },
            _ => unreachable!(),
        },
        _ => Error::Data { path: path.to_path_buf(), reason: e.to_string() },
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

/// A number; an empty field is a missing value (NaN).
pub(crate) fn parse_f64(field: &[u8]) -> Option<f64> {
    let t = trim(field);
    if t.is_empty() {
        return Some(f64::NAN);
    }
    std::str::from_utf8(t).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("data.csv");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn batches_with_selected_columns() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "id, a ,y,b\n1,0.5,yes,2\n2,,no,3e2\n\n3,-1,yes,4\n");
        let features = vec!["a".to_string(), "b".to_string()];
        let pass = vec!["id".to_string()];
        let spec = ColumnSpec {
            features: Some(&features),
            label: Some("y"),
            label_required: true,
            passthrough: &pass,
            ..Default::default()
        };
        let mut r = CsvBatches::open(&p, &spec).unwrap();
        assert_eq!(r.feature_names(), ["a", "b"]);
        let mut b = Batch::default();
        assert_eq!(r.fill(&mut b, 2).unwrap(), 2);
        assert_eq!(b.first_row, 0);
        let FeatureBuf::F64(f) = &b.features else { panic!("f64 by default") };
        assert_eq!(f[0], 0.5);
        assert!(f[2].is_nan());
        assert_eq!(f[3], 300.0);
        assert_eq!(b.labels.get(1), b"no");
        assert_eq!(b.passthrough[0].get(0), b"1");
        assert_eq!(r.fill(&mut b, 2).unwrap(), 1);
        assert_eq!(b.first_row, 2);
        assert_eq!(b.features, FeatureBuf::F64(vec![-1.0, 4.0])); // the blank line is skipped
        assert_eq!(r.fill(&mut b, 2).unwrap(), 0);

        let mut r = CsvBatches::open(&p, &spec).unwrap();
        r.set_single_precision(true);
        r.fill(&mut b, 1).unwrap();
        assert_eq!(b.features, FeatureBuf::F32(vec![0.5, 2.0]));
    }

    #[test]
    fn unlabelled_rows_are_skipped_and_counted() {
        for m in ["", " ", "NA", "na", "N/A", "null", "NULL", "None", "NaN", " nan "] {
            assert!(missing_label(m.as_bytes()), "{m:?}");
        }
        for l in ["0", "no", "nana", "n", "Nope"] {
            assert!(!missing_label(l.as_bytes()), "{l:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "x,y\n1,a\nbad,NA\n\n2,\n3,b\n4,null\n");
        let spec = ColumnSpec { label: Some("y"), label_required: true, skip_unlabelled: true, ..Default::default() };
        let mut r = CsvBatches::open(&p, &spec).unwrap();
        let mut b = Batch::default();
        assert_eq!(r.fill(&mut b, 2).unwrap(), 2);
        assert_eq!(
            (b.first_row, b.row_ids.as_slice(), b.lines.as_slice(), b.unlabelled),
            (0, &[0, 3][..], &[2, 6][..], 2)
        );
        assert_eq!(b.end_row(), 4);
        assert_eq!(b.features, FeatureBuf::F64(vec![1.0, 3.0]));
        assert_eq!(r.fill(&mut b, 2).unwrap(), 0); // only an unlabelled row left: counted
        assert_eq!(b.unlabelled, 1);
    }

    #[test]
    fn default_features_are_all_but_the_label() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "x1,label,x2\n1,0,2\n");
        let spec = ColumnSpec { label: Some("label"), label_required: true, ..Default::default() };
        assert_eq!(CsvBatches::open(&p, &spec).unwrap().feature_names(), ["x1", "x2"]);
    }

    #[test]
    fn errors_name_the_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "x,label\n1,0\nabc,1\n");
        let spec = ColumnSpec { label: Some("label"), label_required: true, ..Default::default() };
        let mut r = CsvBatches::open(&p, &spec).unwrap();
        let err = r.fill(&mut Batch::default(), 10).unwrap_err().to_string();
        assert!(err.contains("line 3: column `x`: `abc` is not a number"), "{err}");

        let spec = ColumnSpec { label: Some("target"), label_required: true, ..Default::default() };
        let err = CsvBatches::open(&p, &spec).unwrap_err().to_string();
        assert!(err.contains("no column `target` (the label column); columns are: x, label"), "{err}");
    }
}
