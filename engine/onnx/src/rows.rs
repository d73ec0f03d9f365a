//! Named rows → a model's feature matrix: the one column mapping behind `predict` (files) and `dagrun serve`
//! (request bodies). A file's header and a JSON request's keys are both found with [`feature_position`];
//! CSV request bodies are read by the same reader as CSV files, JSON ones by [`from_json`].

use std::ops::Range;
use std::path::Path;

pub use crate::json_rows::{JsonRowsError, from_json};

pub use crate::data::FeatureBuf;
use crate::data::{Batch, ColumnSpec, CsvBatches};
use crate::error::Result;
use crate::io::{Elem, InputLayout};
use crate::model::{OnnxModel, Predictions};

/// Which columns of `available` feed the model, in order: the named `features`, or every column but
/// `exclude`. `Err(name)`: the first named feature that is not available.
pub fn feature_columns(
    available: &[String],
    features: Option<&[String]>,
    exclude: Option<usize>,
) -> Result<Vec<usize>, String> {
    match features {
        Some(names) => {
            names.iter().enumerate().map(|(i, n)| feature_position(available, n, i).ok_or_else(|| n.clone())).collect()
        }
        None => Ok((0..available.len()).filter(|i| Some(*i) != exclude).collect()),
    }
}

/// Where `name` is in `names`, trying `hint` first (names usually come in the order they are
/// expected: a row's keys in feature order, a header's columns in the model's order).
#[inline]
pub fn feature_position(names: &[String], name: &str, hint: usize) -> Option<usize> {
    if names.get(hint).is_some_and(|n| n == name) {
        return Some(hint);
    }
    names.iter().position(|n| n == name)
}

/// One model input as the Open Inference Protocol describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TensorSpec {
    /// The input's name in the model.
    pub name: String,
    /// `FP32`, `FP64` or `INT64`.
    pub datatype: &'static str,
    /// `-1` for a dynamic dimension.
    pub shape: Vec<i64>,
}

/// What a model takes, as a caller sending rows needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    /// Feature names in input order, when the model has them (one input per feature, or the `features`
    /// dagrun's train plugin records in the model's metadata).
    pub features: Option<Vec<String>>,
    /// Number of features, when the model says.
    pub width: Option<usize>,
    /// Whether the features are passed as `f32`.
    pub single_precision: bool,
    /// The model's inputs: one `[N, F]` matrix, or one `[N]`/`[N, 1]` tensor per feature.
    pub inputs: Vec<TensorSpec>,
    /// One input per feature (`inputs` in feature order) rather than one matrix.
    pub per_feature: bool,
}

impl OnnxModel {
    /// What the model takes: feature names and count, precision and its input tensors.
    pub fn schema(&self) -> Schema {
        let datatype = |e: Elem| match e {
            Elem::F32 => "FP32",
            Elem::F64 => "FP64",
            Elem::I64 => "INT64",
        };
        let dim = |d: Option<usize>| d.map_or(-1, |d| d as i64);
        let (inputs, per_feature) = match &self.input {
            InputLayout::Matrix { name, elem, width, batch } => (
                vec![TensorSpec {
                    name: name.clone(),
                    datatype: datatype(*elem),
                    shape: vec![dim(*batch), dim(*width)],
                }],
                false,
            ),
            InputLayout::Columns { inputs } => (
                inputs
                    .iter()
                    .map(|(name, elem, rank2)| TensorSpec {
                        name: name.clone(),
                        datatype: datatype(*elem),
                        shape: if *rank2 { vec![-1, 1] } else { vec![-1] },
                    })
                    .collect(),
                true,
            ),
        };
        Schema {
            features: self.feature_inputs(),
            width: self.feature_count(),
            single_precision: self.takes_f32(),
            inputs,
            per_feature,
        }
    }
}

/// Rows ready for [`OnnxModel::predict`]: `rows × width` values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    /// The values.
    pub values: FeatureBuf,
    /// Number of rows.
    pub rows: usize,
    /// Values per row.
    pub width: usize,
}

impl Rows {
    /// No rows yet, `width` values a row, in the precision `single` says.
    pub fn new(width: usize, single: bool) -> Rows {
        let values = if single { FeatureBuf::F32(Vec::new()) } else { FeatureBuf::F64(Vec::new()) };
        Rows { values, rows: 0, width }
    }

    /// Adds `other`'s rows at the end (same width and precision: both built for one model).
    pub fn append(&mut self, other: &Rows) {
        debug_assert_eq!(self.width, other.width);
        match (&mut self.values, &other.values) {
            (FeatureBuf::F32(a), FeatureBuf::F32(b)) => a.extend_from_slice(b),
            (FeatureBuf::F64(a), FeatureBuf::F64(b)) => a.extend_from_slice(b),
            (a, FeatureBuf::F32(b)) => b.iter().for_each(|&v| a.push(f64::from(v))),
            (a, FeatureBuf::F64(b)) => b.iter().for_each(|&v| a.push(v)),
        }
        self.rows += other.rows;
    }

    /// Empties the rows, keeping the buffer.
    pub fn clear(&mut self) {
        let single = matches!(self.values, FeatureBuf::F32(_));
        self.values.reset(single);
        self.rows = 0;
    }

    /// Value `j` of row `i`.
    pub fn get(&self, i: usize, j: usize) -> f64 {
        match &self.values {
            FeatureBuf::F32(v) => f64::from(v[i * self.width + j]),
            FeatureBuf::F64(v) => v[i * self.width + j],
        }
    }

    /// The first value that is NaN or infinite, as `(row, column)`.
    pub fn first_not_finite(&self) -> Option<(usize, usize)> {
        let at = match &self.values {
            FeatureBuf::F32(v) => v.iter().position(|x| !x.is_finite()),
            FeatureBuf::F64(v) => v.iter().position(|x| !x.is_finite()),
        }?;
        Some((at / self.width.max(1), at % self.width.max(1)))
    }
}

/// CSV text (a header, then rows): the model's features by name (every column when the model names none),
/// read by the same reader `predict` uses on files. Errors name the line and column.
pub fn from_csv(text: Vec<u8>, schema: &Schema) -> Result<Rows> {
    let spec = ColumnSpec { features: schema.features.as_deref(), ..Default::default() };
    let mut reader = CsvBatches::from_reader(Path::new("CSV body"), Box::new(std::io::Cursor::new(text)), &spec)?;
    if let Some(twice) = reader.duplicate_feature() {
        return Err(crate::Error::Data {
            path: "CSV body".into(),
            reason: format!("column `{twice}` appears twice in the header: which one is the feature?"),
        });
    }
    reader.set_single_precision(schema.single_precision);
    let mut batch = Batch::default();
    reader.fill(&mut batch, usize::MAX)?;
    Ok(Rows { rows: batch.rows(), width: reader.width(), values: std::mem::take(&mut batch.features) })
}

/// Appends a CSV field, quoted if it needs to be (RFC 4180): the one quoting of `predictions.csv`
/// and `dagrun serve`'s prediction log.
pub fn push_field(line: &mut Vec<u8>, value: &[u8]) {
    if value.iter().any(|&b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        line.push(b'"');
        for &b in value {
            if b == b'"' {
                line.push(b'"');
            }
            line.push(b);
        }
        line.push(b'"');
    } else {
        line.extend_from_slice(value);
    }
}

impl Predictions {
    /// The predictions of rows `range` (of a batch that held several requests' rows). `classes` is the
    /// number of probability columns of a classifier.
    pub fn slice(&self, range: Range<usize>, classes: usize) -> Predictions {
        match self {
            Predictions::Classes { predicted, probabilities, single_precision } => Predictions::Classes {
                predicted: predicted[range.clone()].to_vec(),
                probabilities: probabilities.as_ref().map(|p| p[range.start * classes..range.end * classes].to_vec()),
                single_precision: *single_precision,
            },
            Predictions::Values { values, single_precision } => {
                Predictions::Values { values: values[range].to_vec(), single_precision: *single_precision }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A double-precision schema naming `names` (also for the JSON rows tests).
    pub(crate) fn schema(names: &[&str]) -> Schema {
        Schema {
            features: Some(names.iter().map(|s| s.to_string()).collect()),
            width: Some(names.len()),
            single_precision: false,
            inputs: Vec::new(),
            per_feature: false,
        }
    }

    #[test]
    fn feature_columns_by_name_or_all_but_one() {
        let h: Vec<String> = ["a", "y", "b"].iter().map(|s| s.to_string()).collect();
        assert_eq!(feature_columns(&h, Some(&["b".into(), "a".into()]), None), Ok(vec![2, 0]));
        assert_eq!(feature_columns(&h, None, Some(1)), Ok(vec![0, 2]));
        assert_eq!(feature_columns(&h, Some(&["c".into()]), None), Err("c".to_string()));
    }

    #[test]
    fn csv_bodies_use_the_file_reader() {
        let s = schema(&["b", "a"]);
        let r = from_csv(b"a,b\n1,2\n3,4\n".to_vec(), &s).unwrap();
        assert_eq!(r.values, FeatureBuf::F64(vec![2.0, 1.0, 4.0, 3.0]));
        let e = from_csv(b"a,b\n1,x\n".to_vec(), &s).unwrap_err().to_string();
        assert_eq!(e, "CSV body: line 2: column `b`: `x` is not a number");
        let e = from_csv(b"a,c\n1,2\n".to_vec(), &s).unwrap_err().to_string();
        assert_eq!(e, "CSV body: no column `b` (the feature); columns are: a, c");
    }

    #[test]
    fn appended_rows_and_non_finite_values() {
        let s = schema(&["a", "b"]);
        let mut all = Rows::new(2, false);
        all.append(&from_csv(b"a,b\n1,2\n".to_vec(), &s).unwrap());
        all.append(&from_csv(b"a,b\n3,\n".to_vec(), &s).unwrap());
        assert_eq!(all.rows, 2);
        assert_eq!(all.first_not_finite(), Some((1, 1)));
        assert_eq!(all.get(1, 0), 3.0);
    }

    #[test]
    fn predictions_slice_by_rows() {
        let p = Predictions::Classes {
            predicted: vec![0, 1, 1],
            probabilities: Some(vec![0.9, 0.1, 0.2, 0.8, 0.3, 0.7]),
            single_precision: true,
        };
        assert_eq!(
            p.slice(1..3, 2),
            Predictions::Classes {
                predicted: vec![1, 1],
                probabilities: Some(vec![0.2, 0.8, 0.3, 0.7]),
                single_precision: true
            }
        );
    }
}
