//! Streaming a Parquet file in batches, like [`super::CsvBatches`]: the selected columns decoded through
//! Arrow (a projection), features written row-major into the batch, label and passthrough values as text
//! (numbers as a CSV would hold them: `7`, `2.5`, `true`). A null feature is a missing value (NaN), like an
//! empty CSV cell; a text feature is parsed like a CSV cell.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{
    ArrowPrimitiveType, Decimal32Type, Decimal64Type, Decimal128Type, Float16Type, Float32Type, Float64Type, Int8Type,
    Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};

use super::{Batch, ColumnSpec, FeatureBuf, Resolved, TextColumn, missing_label, parse_f64, resolve};
use crate::error::{Error, Result, io_err};

/// Rows decoded per Arrow record batch (independent of the evaluation's batch size).
const DECODE_ROWS: usize = 16 * 1024;

/// A Parquet file being read batch by batch.
#[derive(Debug)]
pub(crate) struct ParquetBatches {
    path: PathBuf,
    names: Vec<String>,
    /// Selected columns, as positions in the decoded (projected) record batches.
    features: Vec<usize>,
    label: Option<usize>,
    passthrough: Vec<usize>,
    /// The schema index of each `features` entry (for names).
    feature_roots: Vec<usize>,
    reader: ParquetRecordBatchReader,
    /// The record batch being consumed, and how many of its rows are used.
    pending: Option<(RecordBatch, usize)>,
    next_row: u64,
    single_precision: bool,
    skip_unlabelled: bool,
    scratch: Vec<f64>,
    text: Vec<u8>,
    /// Which rows of a slice have a label (with `skip_unlabelled`).
    keep: Vec<bool>,
}

impl ParquetBatches {
    /// Opens `path`, reads its schema and resolves the columns (the same rules as a CSV header).
    pub fn open(path: &Path, spec: &ColumnSpec<'_>) -> Result<ParquetBatches> {
        let file = File::open(path).map_err(io_err(path))?;
        let not_parquet = |e: parquet::errors::ParquetError| Error::Data {
            path: path.to_path_buf(),
            reason: format!("not a readable Parquet file: {e}"),
        };
        let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).map_err(not_parquet)?;
        let schema = meta.schema().clone();
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        // By default every column but the label is a feature, except pandas' index (row labels).
        let data_columns: Vec<String>;
        let mut spec = spec.clone();
        if spec.features.is_none() && names.iter().any(|n| dagrun_table::is_pandas_index(n)) {
            data_columns = names
                .iter()
                .filter(|n| !dagrun_table::is_pandas_index(n) && Some(n.as_str()) != spec.label)
                .cloned()
                .collect();
            spec.features = Some(&data_columns);
        }
        let Resolved { features, label, passthrough } = resolve(path, &names, &spec)?;
        for (&i, role) in features
            .iter()
            .map(|i| (i, "feature"))
            .chain(label.iter().map(|i| (i, "label")).chain(passthrough.iter().map(|i| (i, "passthrough column"))))
        {
            let field = schema.field(i);
            if !readable(field.data_type()) {
                return Err(Error::Data {
                    path: path.to_path_buf(),
                    reason: format!(
                        "column `{}` (a {role}) has type {}, which dagrun cannot read; choose other columns",
                        field.name(),
                        field.data_type()
                    ),
                });
            }
        }
        // A projection yields the selected columns in file order, each once.
        let mut roots: Vec<usize> = features.iter().chain(&label).chain(&passthrough).copied().collect();
        roots.sort_unstable();
        roots.dedup();
        let position = |root: &usize| roots.binary_search(root).expect("every selected column is projected");
        let mask = ProjectionMask::roots(meta.parquet_schema(), roots.iter().copied());
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta)
            .with_projection(mask)
            .with_batch_size(DECODE_ROWS)
            .build()
            .map_err(not_parquet)?;
        Ok(ParquetBatches {
            path: path.to_path_buf(),
            names,
            feature_roots: features.clone(),
            features: features.iter().map(position).collect(),
            label: label.as_ref().map(position),
            passthrough: passthrough.iter().map(position).collect(),
            reader,
            pending: None,
            next_row: 0,
            single_precision: false,
            skip_unlabelled: spec.skip_unlabelled && label.is_some(),
            scratch: Vec::new(),
            text: Vec::new(),
            keep: Vec::new(),
        })
    }

    /// Parse features into `f32` (for a model that takes floats) instead of `f64`.
    pub fn set_single_precision(&mut self, single: bool) {
        self.single_precision = single;
    }

    /// The names of the selected feature columns, in order.
    pub fn feature_names(&self) -> Vec<String> {
        self.feature_roots.iter().map(|&i| self.names[i].clone()).collect()
    }

    /// Number of feature columns.
    pub fn width(&self) -> usize {
        self.features.len()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads up to `max_rows` rows into `batch` (reusing its buffers). Returns the number of rows read; 0 at
    /// the end of the file.
    pub fn fill(&mut self, batch: &mut Batch, max_rows: usize) -> Result<usize> {
        batch.reset(self.next_row, self.single_precision, self.passthrough.len(), true);
        while batch.rows() < max_rows {
            let (record, used) = match self.pending.take() {
                Some((record, used)) if used < record.num_rows() => (record, used),
                _ => match self.reader.next() {
                    Some(record) => (record.map_err(|e| self.decode_error(e))?, 0),
                    None => break,
                },
            };
            let n = (record.num_rows() - used).min(max_rows - batch.rows());
            self.append(batch, &record, used, n)?;
            self.pending = Some((record, used + n));
        }
        batch.set_first_row();
        Ok(batch.rows())
    }

    fn decode_error(&self, e: arrow_schema::ArrowError) -> Error {
        Error::Data { path: self.path.clone(), reason: format!("cannot decode Parquet data: {e}") }
    }

    /// Appends rows `offset..offset + n` of `record` to `batch` (with `skip_unlabelled`, those with a label).
    fn append(&mut self, batch: &mut Batch, record: &RecordBatch, offset: usize, n: usize) -> Result<()> {
        let first = self.next_row;
        if let Some(col) = self.label.filter(|_| self.skip_unlabelled) {
            let labels = record.column(col).slice(offset, n);
            self.keep.clear();
            let keep = &mut self.keep;
            let _ = each_text(labels.as_ref(), &mut self.text, |_, value| {
                keep.push(value.is_some_and(|v| !missing_label(v)));
                Ok::<(), ()>(())
            });
            let kept = self.keep.iter().filter(|&&k| k).count();
            if kept < n {
                batch.unlabelled += (n - kept) as u64;
                self.next_row += n as u64;
                if kept == 0 {
                    return Ok(());
                }
                // Only the labelled rows are decoded further (so an unlabelled row is never parsed).
                let mask = BooleanArray::from(self.keep.clone());
                let labelled = arrow_select::filter::filter_record_batch(&record.slice(offset, n), &mask)
                    .map_err(|e| self.decode_error(e))?;
                let ids: Vec<u64> = mask.values().set_indices().map(|i| first + i as u64).collect();
                return self.append_rows(batch, &labelled, 0, kept, ids.iter().copied());
            }
        }
        self.next_row += n as u64;
        self.append_rows(batch, record, offset, n, first..first + n as u64)
    }

    /// Appends rows `offset..offset + n` of `record` to `batch`; `ids` are their data row indices.
    fn append_rows(
        &mut self,
        batch: &mut Batch,
        record: &RecordBatch,
        offset: usize,
        n: usize,
        ids: impl Iterator<Item = u64> + Clone,
    ) -> Result<()> {
        let start = batch.rows();
        let width = self.features.len();
        batch.features.grow(n * width);
        for (j, &col) in self.features.iter().enumerate() {
            let array = record.column(col).slice(offset, n);
            self.scratch.clear();
            if let Err((i, text)) = features(&array, &mut self.scratch, &mut self.text) {
                return Err(Error::Data {
                    path: self.path.clone(),
                    reason: format!(
                        "row {}: column `{}`: `{text}` is not a number",
                        ids.clone().nth(i).unwrap_or_default(),
                        self.names[self.feature_roots[j]]
                    ),
                });
            }
            batch.features.set_column(start, width, j, &self.scratch);
        }
        if let Some(col) = self.label {
            text_column(&record.column(col).slice(offset, n), &mut batch.labels, &mut self.text);
        }
        for (out, &col) in batch.passthrough.iter_mut().zip(&self.passthrough) {
            text_column(&record.column(col).slice(offset, n), out, &mut self.text);
        }
        batch.lines.extend(ids.clone());
        batch.row_ids.extend(ids);
        Ok(())
    }
}

impl FeatureBuf {
    /// Adds `n` zeroed values at the end.
    fn grow(&mut self, n: usize) {
        match self {
            FeatureBuf::F32(v) => v.resize(v.len() + n, 0.0),
            FeatureBuf::F64(v) => v.resize(v.len() + n, 0.0),
        }
    }

    /// Writes `values` as column `j` of the rows from `start` on (row-major, `width` values a row).
    fn set_column(&mut self, start: usize, width: usize, j: usize, values: &[f64]) {
        match self {
            FeatureBuf::F32(v) => {
                for (slot, &x) in v[start * width + j..].iter_mut().step_by(width).zip(values) {
                    *slot = x as f32;
                }
            }
            FeatureBuf::F64(v) => {
                for (slot, &x) in v[start * width + j..].iter_mut().step_by(width).zip(values) {
                    *slot = x;
                }
            }
        }
    }
}

/// Column types that can be read as features (numbers, or text parsed as numbers), labels and passthrough
/// columns (as text).
fn readable(data_type: &DataType) -> bool {
    use DataType::*;
    match data_type {
        Dictionary(_, values) => matches!(**values, Utf8 | LargeUtf8 | Utf8View),
        _ => number(data_type) || matches!(data_type, Utf8 | LargeUtf8 | Utf8View | Boolean | Null),
    }
}

fn number(data_type: &DataType) -> bool {
    use DataType::*;
    matches!(
        data_type,
        Int8 | Int16
            | Int32
            | Int64
            | UInt8
            | UInt16
            | UInt32
            | UInt64
            | Float16
            | Float32
            | Float64
            | Decimal32(..)
            | Decimal64(..)
            | Decimal128(..)
    )
}

/// Appends the values of `array` to `out` as `f64` (null: NaN). A text value that is not a number is
/// `Err((row in array, text))`.
fn features(array: &ArrayRef, out: &mut Vec<f64>, text: &mut Vec<u8>) -> Result<(), (usize, String)> {
    use DataType::*;
    match array.data_type() {
        Float64 => primitive::<Float64Type>(array, out, |v| v),
        Float32 => primitive::<Float32Type>(array, out, f64::from),
        Float16 => primitive::<Float16Type>(array, out, f64::from),
        Int8 => primitive::<Int8Type>(array, out, f64::from),
        Int16 => primitive::<Int16Type>(array, out, f64::from),
        Int32 => primitive::<Int32Type>(array, out, f64::from),
        Int64 => primitive::<Int64Type>(array, out, |v| v as f64),
        UInt8 => primitive::<UInt8Type>(array, out, f64::from),
        UInt16 => primitive::<UInt16Type>(array, out, f64::from),
        UInt32 => primitive::<UInt32Type>(array, out, f64::from),
        UInt64 => primitive::<UInt64Type>(array, out, |v| v as f64),
        Decimal32(_, s) => primitive::<Decimal32Type>(array, out, |v| f64::from(v) / 10f64.powi(i32::from(*s))),
        Decimal64(_, s) => primitive::<Decimal64Type>(array, out, |v| v as f64 / 10f64.powi(i32::from(*s))),
        Decimal128(_, s) => primitive::<Decimal128Type>(array, out, |v| v as f64 / 10f64.powi(i32::from(*s))),
        _ => each_text(array.as_ref(), text, |i, value| {
            let v = match value {
                Some(t) => parse_f64(t).ok_or_else(|| (i, String::from_utf8_lossy(t).into_owned()))?,
                None => f64::NAN,
            };
            out.push(v);
            Ok(())
        })?,
    }
    Ok(())
}

fn primitive<T: ArrowPrimitiveType>(array: &ArrayRef, out: &mut Vec<f64>, f: impl Fn(T::Native) -> f64) {
    let a = array.as_primitive::<T>();
    match a.nulls().filter(|n| n.null_count() > 0) {
        None => out.extend(a.values().iter().map(|&v| f(v))),
        Some(nulls) => {
            out.extend(a.values().iter().enumerate().map(|(i, &v)| if nulls.is_valid(i) { f(v) } else { f64::NAN }))
        }
    }
}

/// Appends each value of `array` to `out` as text (null: empty).
fn text_column(array: &ArrayRef, out: &mut TextColumn, text: &mut Vec<u8>) {
    let _ = each_text(array.as_ref(), text, |_, value| {
        out.push(value.unwrap_or_default());
        Ok::<(), ()>(())
    });
}

/// Calls `f(i, text)` for each value of `array` in order (`None` for a null), stopping at an error.
fn each_text<E>(
    array: &dyn Array,
    text: &mut Vec<u8>,
    mut f: impl FnMut(usize, Option<&[u8]>) -> Result<(), E>,
) -> Result<(), E> {
    let dict = array.as_any_dictionary_opt();
    let keys = dict.filter(|d| !d.values().is_empty()).map(|d| d.normalized_keys());
    for i in 0..array.len() {
        text.clear();
        let value = match (dict, &keys) {
            _ if array.is_null(i) => false,
            (Some(d), Some(keys)) => text_value(d.values().as_ref(), keys[i], text),
            (Some(_), None) => false, // no dictionary values: every key is null
            (None, _) => text_value(array, i, text),
        };
        f(i, value.then_some(text.as_slice()))?;
    }
    Ok(())
}

/// Writes value `i` of `array` (not a dictionary) as text into `out`; `false` (nothing written) for a null.
fn text_value(array: &dyn Array, i: usize, out: &mut Vec<u8>) -> bool {
    use DataType::*;
    if array.is_null(i) || *array.data_type() == Null {
        return false;
    }
    let mut int = itoa::Buffer::new();
    let mut float = ryu::Buffer::new();
    let bytes: &[u8] = match array.data_type() {
        Utf8 => array.as_string::<i32>().value(i).as_bytes(),
        LargeUtf8 => array.as_string::<i64>().value(i).as_bytes(),
        Utf8View => array.as_string_view().value(i).as_bytes(),
        Boolean => {
            if array.as_boolean().value(i) {
                b"true"
            } else {
                b"false"
            }
        }
        Int8 => int.format(array.as_primitive::<Int8Type>().value(i)).as_bytes(),
        Int16 => int.format(array.as_primitive::<Int16Type>().value(i)).as_bytes(),
        Int32 => int.format(array.as_primitive::<Int32Type>().value(i)).as_bytes(),
        Int64 => int.format(array.as_primitive::<Int64Type>().value(i)).as_bytes(),
        UInt8 => int.format(array.as_primitive::<UInt8Type>().value(i)).as_bytes(),
        UInt16 => int.format(array.as_primitive::<UInt16Type>().value(i)).as_bytes(),
        UInt32 => int.format(array.as_primitive::<UInt32Type>().value(i)).as_bytes(),
        UInt64 => int.format(array.as_primitive::<UInt64Type>().value(i)).as_bytes(),
        Float64 => float.format(array.as_primitive::<Float64Type>().value(i)).as_bytes(),
        Float32 => float.format(array.as_primitive::<Float32Type>().value(i)).as_bytes(),
        Float16 | Decimal32(..) | Decimal64(..) | Decimal128(..) => {
            let mut v = Vec::new();
            let _ = features(&array.slice(i, 1), &mut v, &mut Vec::new());
            float.format(v[0]).as_bytes()
        }
        other => unreachable!("{other} was checked by readable()"),
    };
    out.extend_from_slice(bytes);
    true
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::builder::{ListBuilder, StringDictionaryBuilder};
    use arrow_array::types::Int8Type;
    use arrow_array::{BooleanArray, Float32Array, Float64Array, Int64Array, StringArray};
    use parquet::arrow::ArrowWriter;

    use super::*;

    fn write(dir: &Path, columns: Vec<(&str, ArrayRef)>) -> PathBuf {
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let p = dir.join("data.parquet");
        let mut w = ArrowWriter::try_new(File::create(&p).unwrap(), batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        p
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn batches_are_row_major_with_text_labels_and_passthrough() {
        let dir = tempfile::tempdir().unwrap();
        let mut region = StringDictionaryBuilder::<Int8Type>::new();
        for v in [Some("north"), None, Some("south")] {
            region.append_option(v);
        }
        let p = write(
            dir.path(),
            vec![
                ("id", Arc::new(Int64Array::from(vec![10, 11, 12])) as ArrayRef),
                ("a", Arc::new(Float32Array::from(vec![Some(0.5), None, Some(-1.0)]))),
                ("y", Arc::new(StringArray::from(vec!["yes", "no", "yes"]))),
                ("b", Arc::new(StringArray::from(vec![Some(" 2 "), Some("3e2"), None]))),
                ("region", Arc::new(region.finish())),
                ("ok", Arc::new(BooleanArray::from(vec![true, false, true]))),
                ("score", Arc::new(Float64Array::from(vec![1.0, 2.5, 1e21]))),
            ],
        );
        let features = strings(&["b", "a"]);
        let pass = strings(&["region", "id", "ok", "score"]);
        let spec = ColumnSpec {
            features: Some(&features),
            label: Some("y"),
            label_required: true,
            passthrough: &pass,
            ..Default::default()
        };
        let mut r = ParquetBatches::open(&p, &spec).unwrap();
        assert_eq!(r.feature_names(), ["b", "a"]);
        assert_eq!(r.width(), 2);
        let mut b = Batch::default();
        assert_eq!(r.fill(&mut b, 2).unwrap(), 2);
        assert_eq!((b.first_row, b.place(1)), (0, "row 1".to_string()));
        let FeatureBuf::F64(f) = &b.features else { panic!("f64 by default") };
        assert_eq!(f[..3], [2.0, 0.5, 300.0]);
        assert!(f[3].is_nan());
        assert_eq!((b.labels.get(0), b.labels.get(1)), (&b"yes"[..], &b"no"[..]));
        let texts = |c: &TextColumn, n: usize| {
            (0..n).map(|i| String::from_utf8_lossy(c.get(i)).into_owned()).collect::<Vec<_>>()
        };
        assert_eq!(texts(&b.passthrough[0], 2), ["north", ""]);
        assert_eq!(texts(&b.passthrough[1], 2), ["10", "11"]);
        assert_eq!(texts(&b.passthrough[2], 2), ["true", "false"]);
        assert_eq!(texts(&b.passthrough[3], 2), ["1.0", "2.5"]);
        assert_eq!(r.fill(&mut b, 2).unwrap(), 1);
        assert_eq!((b.first_row, b.lines.as_slice()), (2, &[2u64][..]));
        let FeatureBuf::F64(f) = &b.features else { panic!() };
        assert!(f[0].is_nan() && f[1] == -1.0);
        assert_eq!(texts(&b.passthrough[0], 1), ["south"]);
        assert_eq!(texts(&b.passthrough[3], 1), ["1e21"]);
        assert_eq!(r.fill(&mut b, 2).unwrap(), 0);

        let mut r = ParquetBatches::open(&p, &spec).unwrap();
        r.set_single_precision(true);
        r.fill(&mut b, 1).unwrap();
        assert_eq!(b.features, FeatureBuf::F32(vec![2.0, 0.5]));
    }

    #[test]
    fn record_batch_boundaries_do_not_matter() {
        let dir = tempfile::tempdir().unwrap();
        let n = DECODE_ROWS * 2 + 17;
        let p = write(
            dir.path(),
            vec![
                ("x", Arc::new(Int64Array::from_iter_values(0..n as i64)) as ArrayRef),
                ("label", Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64 * 0.5)))),
            ],
        );
        let spec = ColumnSpec { label: Some("label"), label_required: true, ..Default::default() };
        let mut r = ParquetBatches::open(&p, &spec).unwrap();
        let mut b = Batch::default();
        let mut seen = 0;
        while r.fill(&mut b, 1000).unwrap() > 0 {
            let FeatureBuf::F64(f) = &b.features else { panic!() };
            for (i, &x) in f.iter().enumerate() {
                assert_eq!(x, (seen + i) as f64);
                assert_eq!(crate::data::parse_f64(b.labels.get(i)), Some((seen + i) as f64 * 0.5));
            }
            assert_eq!(b.first_row, seen as u64);
            seen += b.rows();
        }
        assert_eq!(seen, n);
    }

    #[test]
    fn pandas_index_is_not_a_default_feature() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            vec![
                ("a", Arc::new(Float64Array::from(vec![1.0])) as ArrayRef),
                ("label", Arc::new(Int64Array::from(vec![1]))),
                ("__index_level_0__", Arc::new(Int64Array::from(vec![7]))),
            ],
        );
        let pass = strings(&["__index_level_0__"]);
        let spec = ColumnSpec { label: Some("label"), label_required: true, passthrough: &pass, ..Default::default() };
        let mut r = ParquetBatches::open(&p, &spec).unwrap();
        assert_eq!(r.feature_names(), ["a"]);
        let mut b = Batch::default();
        r.fill(&mut b, 10).unwrap();
        assert_eq!(b.passthrough[0].get(0), b"7");
    }

    #[test]
    fn errors_name_the_row_column_and_type() {
        let dir = tempfile::tempdir().unwrap();
        let mut list = ListBuilder::new(arrow_array::builder::Int64Builder::new());
        for _ in 0..3 {
            list.values().append_value(1);
            list.append(true);
        }
        let p = write(
            dir.path(),
            vec![
                ("x", Arc::new(StringArray::from(vec!["1", "2", "abc"])) as ArrayRef),
                ("label", Arc::new(Int64Array::from(vec![0, 1, 0]))),
                ("tags", Arc::new(list.finish())),
            ],
        );
        let features = strings(&["x"]);
        let spec =
            ColumnSpec { features: Some(&features), label: Some("label"), label_required: true, ..Default::default() };
        let mut r = ParquetBatches::open(&p, &spec).unwrap();
        let err = r.fill(&mut Batch::default(), 10).unwrap_err().to_string();
        assert!(err.ends_with("data.parquet: row 2: column `x`: `abc` is not a number"), "{err}");

        let spec = ColumnSpec { label: Some("label"), label_required: true, ..Default::default() };
        let err = ParquetBatches::open(&p, &spec).unwrap_err().to_string();
        assert!(
            err.ends_with(
                "column `tags` (a feature) has type List(Int64), which dagrun cannot read; choose other columns"
            ),
            "{err}"
        );
        let spec = ColumnSpec { label: Some("target"), label_required: true, ..Default::default() };
        let err = ParquetBatches::open(&p, &spec).unwrap_err().to_string();
        assert!(err.contains("no column `target` (the label column); columns are: x, label, tags"), "{err}");
    }
}
