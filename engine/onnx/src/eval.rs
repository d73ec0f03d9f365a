//! Evaluation (`OnnxEval`) and batch prediction (`OnnxPredict`): CSV or Parquet in, batches through the model,
//! metrics and predictions out.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::behaviour::{Keeper, Outputs};
use crate::data::{Batch, Batches, ColumnSpec, missing_label};
use crate::error::{Error, Result, io_err};
use crate::metrics::{self, Metrics, RegressionAccumulator};
use crate::model::{ClassLabel, ModelInfo, ModelKind, ModelOptions, OnnxModel, Predictions};
use crate::rows::push_field;
use crate::runtime::{self, RuntimeInfo};

/// Rows per batch unless told otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 4096;

fn default_batch_size() -> usize {
    DEFAULT_BATCH_SIZE
}

fn default_true() -> bool {
    true
}

/// Options of [`evaluate`] / [`evaluate_metrics`]. Deserialisable from task parameters
/// (`{"label": "y", "batch_size": 1024, ...}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalOptions {
    /// The label column (true class or target value).
    pub label: String,
    /// Feature columns, in the model's input order; default: every column except `label` (or, for a model
    /// with one input per feature, the input names).
    #[serde(default)]
    pub features: Option<Vec<String>>,
    /// Rows per batch (default 4096).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Classifier or regressor; detected from the model's outputs when absent.
    #[serde(default)]
    pub kind: Option<ModelKind>,
    /// The classes in probability-column order; read from the model when absent.
    #[serde(default)]
    pub class_labels: Option<Vec<String>>,
    /// Binary classifiers: the positive class; default `1` if it is a class, else the larger label.
    #[serde(default)]
    pub positive_class: Option<String>,
    /// Columns copied from the data into `predictions.csv` (e.g. an id, or a column to slice metrics by).
    #[serde(default)]
    pub passthrough: Vec<String>,
    /// ONNX Runtime intra-op threads (default: ONNX Runtime's, one per core).
    #[serde(default)]
    pub intra_threads: Option<usize>,
    /// Whether [`evaluate`] writes `predictions.csv` (default true).
    #[serde(default = "default_true")]
    pub write_predictions: bool,
    /// Rows whose label is missing (empty, `NA`, `N/A`, `null`, `None` or `NaN` in any case, or a Parquet
    /// null) are not scored, only counted ([`Evaluation::unlabelled`]), e.g. for data whose labels arrive
    /// late. Default false: every row must have a label.
    #[serde(default)]
    pub skip_unlabelled: bool,
    /// Whether the evaluation keeps each scored row's prediction in memory ([`Evaluation::outputs`]), to
    /// compare with another model's on the same data ([`behaviour`](crate::behaviour())). About 8 bytes
    /// per row for a regressor; nothing more for a classifier, whose predictions the metrics hold anyway.
    /// Default false. Not a task parameter.
    #[serde(skip)]
    pub keep_outputs: bool,
}

impl EvalOptions {
    /// Defaults, with `label` as the label column.
    pub fn new(label: impl Into<String>) -> EvalOptions {
        EvalOptions {
            label: label.into(),
            features: None,
            batch_size: DEFAULT_BATCH_SIZE,
            kind: None,
            class_labels: None,
            positive_class: None,
            passthrough: Vec::new(),
            intra_threads: None,
            write_predictions: true,
            skip_unlabelled: false,
            keep_outputs: false,
        }
    }

    fn model_options(&self) -> ModelOptions {
        ModelOptions { kind: self.kind, class_labels: self.class_labels.clone(), intra_threads: self.intra_threads }
    }
}

/// Options of [`predict`]. Deserialisable from task parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PredictOptions {
    /// Feature columns; default: every column except `label` (if given and present).
    pub features: Option<Vec<String>>,
    /// A column to leave out of the default features (e.g. a label present in the data). Not required to exist.
    pub label: Option<String>,
    /// Rows per batch (0 = default 4096).
    pub batch_size: usize,
    /// Classifier or regressor; detected when absent.
    pub kind: Option<ModelKind>,
    /// The classes in probability-column order; read from the model when absent.
    pub class_labels: Option<Vec<String>>,
    /// Columns copied from the data into the predictions file.
    pub passthrough: Vec<String>,
    /// ONNX Runtime intra-op threads.
    pub intra_threads: Option<usize>,
}

/// What [`evaluate`] did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Evaluation {
    /// The metrics (also in `metrics.json`).
    pub metrics: Metrics,
    /// The model, as dagrun understood it.
    pub model: ModelInfo,
    /// The ONNX Runtime used.
    pub runtime: RuntimeInfo,
    /// Feature columns used, in order.
    pub features: Vec<String>,
    /// Where `metrics.json` was written (`None` for [`evaluate_metrics`]).
    pub metrics_path: Option<PathBuf>,
    /// Where `predictions.csv` was written, if it was.
    pub predictions_path: Option<PathBuf>,
    /// Rows evaluated (with a label).
    pub rows: u64,
    /// Rows left out because their label was missing ([`EvalOptions::skip_unlabelled`]; else 0).
    pub unlabelled: u64,
    /// Wall time of the whole evaluation.
    pub elapsed: Duration,
    /// Each scored row's prediction, with [`EvalOptions::keep_outputs`] (else `None`).
    #[serde(skip)]
    pub outputs: Option<Outputs>,
}

/// What [`predict`] did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Prediction {
    /// The model, as dagrun understood it.
    pub model: ModelInfo,
    /// The ONNX Runtime used.
    pub runtime: RuntimeInfo,
    /// Feature columns used, in order.
    pub features: Vec<String>,
    /// The predictions file.
    pub output: PathBuf,
    /// Rows predicted.
    pub rows: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// Evaluates `model` on the CSV or Parquet `data`; writes `out_dir/metrics.json` and (unless
/// `write_predictions` is false) `out_dir/predictions.csv`. Creates `out_dir` if needed.
///
/// `predictions.csv` columns: `row` (0-based data row), the passthrough columns, `label` (the true value as
/// written in the data), `prediction`, and for classifiers with probabilities one `proba_<class>` per class.
pub fn evaluate(model: &Path, data: &Path, out_dir: &Path, opts: &EvalOptions) -> Result<Evaluation> {
    std::fs::create_dir_all(out_dir).map_err(io_err(out_dir))?;
    let predictions_path = opts.write_predictions.then(|| out_dir.join("predictions.csv"));
    let mut eval = run_evaluation(model, data, opts, predictions_path.as_deref())?;
    let metrics_path = out_dir.join("metrics.json");
    let mut json = serde_json::to_string_pretty(&eval.metrics).expect("metrics serialise");
    json.push('\n');
    write_atomically(&metrics_path, json.as_bytes())?;
    eval.metrics_path = Some(metrics_path);
    Ok(eval)
}

/// Like [`evaluate`] but writes nothing: just the metrics (e.g. to score a champion model on the same data).
pub fn evaluate_metrics(model: &Path, data: &Path, opts: &EvalOptions) -> Result<Evaluation> {
    run_evaluation(model, data, opts, None)
}

/// Batch prediction: runs `model` on the CSV or Parquet `data` and writes `output` (CSV): `row`, the passthrough
/// columns, `prediction`, and for classifiers with probabilities one `proba_<class>` per class.
pub fn predict(model: &Path, data: &Path, output: &Path, opts: &PredictOptions) -> Result<Prediction> {
    let start = Instant::now();
    let batch_size = if opts.batch_size == 0 { DEFAULT_BATCH_SIZE } else { opts.batch_size };
    let model_opts =
        ModelOptions { kind: opts.kind, class_labels: opts.class_labels.clone(), intra_threads: opts.intra_threads };
    let mut model = OnnxModel::load(model, &model_opts)?;
    let features = default_features(&model, opts.features.as_deref());
    let spec = ColumnSpec {
        features: features.as_deref(),
        label: opts.label.as_deref(),
        label_required: false,
        passthrough: &opts.passthrough,
        skip_unlabelled: false,
    };
    let mut reader = Batches::open(data, &spec)?;
    reader.set_single_precision(model.takes_f32());
    let feature_names = reader.feature_names();
    let mut writer = PredictionWriter::create(output, &opts.passthrough, false)?;
    let (rows, _) = run_batches(&mut model, reader, batch_size, |model, batch, preds| {
        writer.write_batch(model, batch, preds, None)
    })?;
    writer.finish()?;
    Ok(Prediction {
        model: model.info().clone(),
        runtime: runtime::init()?.info().clone(),
        features: feature_names,
        output: output.to_path_buf(),
        rows,
        elapsed: start.elapsed(),
    })
}

fn default_features(model: &OnnxModel, features: Option<&[String]>) -> Option<Vec<String>> {
    features.map(<[String]>::to_vec).or_else(|| model.feature_inputs())
}

fn run_evaluation(model: &Path, data: &Path, opts: &EvalOptions, predictions: Option<&Path>) -> Result<Evaluation> {
    let start = Instant::now();
    if opts.batch_size == 0 {
        return Err(Error::Options("batch_size must be at least 1".into()));
    }
    let mut model = OnnxModel::load(model, &opts.model_options())?;
    let features = default_features(&model, opts.features.as_deref());
    let spec = ColumnSpec {
        features: features.as_deref(),
        label: Some(&opts.label),
        label_required: true,
        passthrough: &opts.passthrough,
        skip_unlabelled: opts.skip_unlabelled,
    };
    let mut reader = Batches::open(data, &spec)?;
    reader.set_single_precision(model.takes_f32());
    let feature_names = reader.feature_names();
    let data_path = reader.path().to_path_buf();
    let mut writer = match predictions {
        Some(p) => Some(PredictionWriter::create(p, &opts.passthrough, true)?),
        None => None,
    };

    let mut acc = Accumulator::default();
    let mut keeper = opts.keep_outputs.then(Keeper::default);
    let (rows, unlabelled) = run_batches(&mut model, reader, opts.batch_size, |model, batch, preds| {
        if let Some(k) = keeper.as_mut() {
            k.add(&batch.row_ids, preds);
        }
        let truth = acc.add(model, batch, preds, &data_path, &opts.label)?;
        if let Some(w) = writer.as_mut() {
            w.write_batch(model, batch, preds, Some(truth))?;
        }
        Ok(())
    })?;
    if rows == 0 && unlabelled > 0 {
        return Err(Error::NoLabelledRows { path: data_path, label: opts.label.clone(), unlabelled });
    }
    if rows == 0 {
        return Err(Error::Data { path: data_path, reason: "no data rows".into() });
    }
    if let Some(w) = writer {
        w.finish()?;
    }

    let (metrics, outputs) = finish(acc, keeper, &model, opts)?;
    Ok(Evaluation {
        rows,
        unlabelled,
        metrics,
        model: model.info().clone(),
        runtime: runtime::init()?.info().clone(),
        features: feature_names,
        metrics_path: None,
        predictions_path: predictions.map(Path::to_path_buf),
        elapsed: start.elapsed(),
        outputs,
    })
}

/// The metrics from what the batches accumulated, and the kept outputs (with a `keeper`).
fn finish(
    acc: Accumulator,
    keeper: Option<Keeper>,
    model: &OnnxModel,
    opts: &EvalOptions,
) -> Result<(Metrics, Option<Outputs>)> {
    Ok(match acc {
        Accumulator::Regression(r) => (Metrics::Regression(r.finish()), keeper.map(Keeper::values)),
        Accumulator::Classification { truth, predicted, probabilities, .. } => {
            let classes = model.classes().unwrap_or_default().to_vec();
            let positive = match &opts.positive_class {
                Some(p) => Some(class_index(&classes, p.as_bytes()).ok_or_else(|| {
                    Error::Options(format!("positive_class `{p}` is not one of the classes ({})", class_list(&classes)))
                })?),
                None => None,
            };
            let probabilities = (!probabilities.is_empty()).then_some(probabilities);
            let m = Metrics::Classification(metrics::classification_metrics(
                &classes,
                &truth,
                &predicted,
                probabilities.as_deref(),
                positive,
            ));
            (m, keeper.map(|k| k.classes(classes, predicted, probabilities)))
        }
        Accumulator::Empty => unreachable!("rows > 0"),
    })
}

/// Reads batches on other threads (parsing overlaps inference; a CSV file is parsed by several) and hands
/// each, with the model's predictions, to `sink`. Returns the number of rows run, and of rows skipped for lack
/// of a label.
fn run_batches(
    model: &mut OnnxModel,
    reader: Batches,
    batch_size: usize,
    mut sink: impl FnMut(&OnnxModel, &Batch, &Predictions) -> Result<()>,
) -> Result<(u64, u64)> {
    let width = reader.width();
    std::thread::scope(|scope| {
        let (full_rx, empty_tx) = reader.spawn(scope, batch_size);
        let (mut rows, mut unlabelled) = (0u64, 0u64);
        for batch in full_rx {
            let batch = batch?;
            unlabelled += batch.unlabelled;
            if batch.rows() > 0 {
                let preds = model.predict(batch.features.view(), batch.rows(), width, batch.first_row).map_err(
                    |e| match e {
                        // Skipped rows make the batch span more rows than it holds.
                        Error::Inference { path, first_row, reason, .. } => {
                            Error::Inference { path, first_row, end_row: batch.end_row(), reason }
                        }
                        e => e,
                    },
                )?;
                sink(model, &batch, &preds)?;
                rows += batch.rows() as u64;
            }
            let _ = empty_tx.send(batch);
        }
        Ok((rows, unlabelled))
    })
}

#[derive(Default)]
enum Accumulator {
    #[default]
    Empty,
    Regression(RegressionAccumulator),
    Classification {
        truth: Vec<usize>,
        predicted: Vec<usize>,
        probabilities: Vec<f64>,
        scratch: Vec<usize>,
    },
}

/// The true values of one batch, for the predictions file.
enum Truth<'a> {
    Classes(&'a [usize]),
    Values,
}

impl Accumulator {
    fn add(
        &mut self,
        model: &OnnxModel,
        batch: &Batch,
        preds: &Predictions,
        path: &Path,
        label: &str,
    ) -> Result<Truth<'_>> {
        if matches!(self, Accumulator::Empty) {
            *self = match preds {
                Predictions::Values { .. } => Accumulator::Regression(RegressionAccumulator::default()),
                Predictions::Classes { .. } => Accumulator::Classification {
                    truth: Vec::new(),
                    predicted: Vec::new(),
                    probabilities: Vec::new(),
                    scratch: Vec::new(),
                },
            };
        }
        match (self, preds) {
            (Accumulator::Regression(acc), Predictions::Values { values, .. }) => {
                for (i, &p) in values.iter().enumerate() {
                    let raw = batch.labels.get(i);
                    let t = crate::data::parse_f64(raw).filter(|v| !v.is_nan()).ok_or_else(|| Error::Data {
                        path: path.to_path_buf(),
                        reason: format!(
                            "{}: label `{}` is not a number (the model is a regressor)",
                            batch.place(i),
                            String::from_utf8_lossy(raw)
                        ),
                    })?;
                    acc.add(t, p);
                }
                Ok(Truth::Values)
            }
            (
                Accumulator::Classification { truth, predicted: all_pred, probabilities: all_proba, scratch },
                Predictions::Classes { predicted, probabilities, .. },
            ) => {
                let classes = model.classes().unwrap_or_default();
                scratch.clear();
                for i in 0..predicted.len() {
                    let raw = batch.labels.get(i);
                    let t = class_index(classes, raw).ok_or_else(|| Error::Data {
                        path: path.to_path_buf(),
                        reason: format!(
                            "{}: label `{}` is not one of the model's classes ({}); check the label column `{}`{}",
                            batch.place(i),
                            String::from_utf8_lossy(raw),
                            class_list(classes),
                            label,
                            if missing_label(raw) { " (every row needs a label)" } else { "" },
                        ),
                    })?;
                    scratch.push(t);
                }
                truth.extend_from_slice(scratch);
                all_pred.extend_from_slice(predicted);
                if let Some(p) = probabilities {
                    all_proba.extend_from_slice(p);
                }
                Ok(Truth::Classes(scratch))
            }
            _ => unreachable!("a model's predictions keep their kind"),
        }
    }
}

/// The classes as a workflow author writes them: `0, 1` or `cat, dog`.
fn class_list(classes: &[ClassLabel]) -> String {
    if classes.is_empty() {
        return "none known".to_owned();
    }
    classes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// Index of the class written as `raw` in the data (`1`, `1.0` and ` 1 ` all match the class 1).
fn class_index(classes: &[ClassLabel], raw: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(crate::data::trim(raw)).ok()?;
    if let Some(i) = classes.iter().position(|c| matches!(c, ClassLabel::Str(s) if s == text)) {
        return Some(i);
    }
    let n = text.parse::<i64>().ok().or_else(|| {
        let f = text.parse::<f64>().ok()?;
        (f.fract() == 0.0 && f.abs() < 9e15).then_some(f as i64)
    })?;
    classes.iter().position(|c| *c == ClassLabel::Int(n))
}

/// Streams `predictions.csv` to a temporary file, renamed into place by [`PredictionWriter::finish`].
struct PredictionWriter {
    path: PathBuf,
    tmp: PathBuf,
    guard: TmpGuard,
    out: BufWriter<File>,
    passthrough: Vec<String>,
    with_label: bool,
    header_written: bool,
    line: Vec<u8>,
}

impl PredictionWriter {
    fn create(path: &Path, passthrough: &[String], with_label: bool) -> Result<PredictionWriter> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".tmp");
        let tmp = path.with_file_name(name);
        let file = File::create(&tmp).map_err(io_err(&tmp))?;
        Ok(PredictionWriter {
            path: path.to_path_buf(),
            guard: TmpGuard { path: tmp.clone(), done: false },
            tmp,
            out: BufWriter::with_capacity(1 << 20, file),
            passthrough: passthrough.to_vec(),
            with_label,
            header_written: false,
            line: Vec::with_capacity(256),
        })
    }

    fn write_header(&mut self, model: &OnnxModel, preds: &Predictions) -> Result<()> {
        let mut cols: Vec<String> = vec!["row".into()];
        cols.extend(self.passthrough.iter().cloned());
        if self.with_label {
            cols.push("label".into());
        }
        cols.push("prediction".into());
        if let Predictions::Classes { probabilities: Some(_), .. } = preds {
            for c in model.classes().unwrap_or_default() {
                cols.push(format!("proba_{c}"));
            }
        }
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(&cols).expect("in-memory write");
        let bytes = w.into_inner().expect("in-memory write");
        self.out.write_all(&bytes).map_err(io_err(&self.tmp))?;
        self.header_written = true;
        Ok(())
    }

    fn write_batch(
        &mut self,
        model: &OnnxModel,
        batch: &Batch,
        preds: &Predictions,
        truth: Option<Truth<'_>>,
    ) -> Result<()> {
        if !self.header_written {
            self.write_header(model, preds)?;
        }
        let classes = model.classes().unwrap_or_default();
        let class_names: Vec<String> = classes.iter().map(ToString::to_string).collect();
        let mut ryu = ryu::Buffer::new();
        let mut itoa = itoa::Buffer::new();
        for i in 0..batch.rows() {
            let line = &mut self.line;
            line.clear();
            line.extend_from_slice(itoa.format(batch.row_ids[i]).as_bytes());
            for col in &batch.passthrough {
                line.push(b',');
                push_field(line, col.get(i));
            }
            if self.with_label {
                line.push(b',');
                match truth {
                    Some(Truth::Classes(t)) => push_field(line, class_names[t[i]].as_bytes()),
                    _ => push_field(line, crate::data::trim(batch.labels.get(i))),
                }
            }
            line.push(b',');
            match preds {
                Predictions::Values { values, single_precision } => {
                    push_float(line, &mut ryu, values[i], *single_precision);
                }
                Predictions::Classes { predicted, probabilities, single_precision } => {
                    push_field(line, class_names[predicted[i]].as_bytes());
                    if let Some(p) = probabilities {
                        let c = classes.len();
                        for &v in &p[i * c..(i + 1) * c] {
                            line.push(b',');
                            push_float(line, &mut ryu, v, *single_precision);
                        }
                    }
                }
            }
            line.push(b'\n');
            self.out.write_all(line).map_err(io_err(&self.tmp))?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        if !self.header_written {
            // No rows: still a valid CSV with the columns known without a model run.
            let mut cols: Vec<&str> = vec!["row"];
            cols.extend(self.passthrough.iter().map(String::as_str));
            if self.with_label {
                cols.push("label");
            }
            cols.push("prediction");
            writeln!(self.out, "{}", cols.join(",")).map_err(io_err(&self.tmp))?;
        }
        // Flush and close the file before renaming it.
        let file = self.out.into_inner().map_err(|e| Error::Io { path: self.tmp.clone(), source: e.into_error() })?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(io_err(&self.path))?;
        self.guard.done = true;
        Ok(())
    }
}

/// Removes the temporary predictions file unless it was renamed into place.
struct TmpGuard {
    path: PathBuf,
    done: bool,
}

impl Drop for TmpGuard {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn push_float(line: &mut Vec<u8>, buf: &mut ryu::Buffer, v: f64, single: bool) {
    let s = if single { buf.format(v as f32) } else { buf.format(v) };
    line.extend_from_slice(s.as_bytes());
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    std::fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_index_accepts_integer_spellings() {
        let classes = [ClassLabel::Int(1), ClassLabel::Int(2), ClassLabel::Str("x".into())];
        assert_eq!(class_index(&classes, b"2"), Some(1));
        assert_eq!(class_index(&classes, b" 2.0 "), Some(1));
        assert_eq!(class_index(&classes, b"x"), Some(2));
        assert_eq!(class_index(&classes, b"3"), None);
        assert_eq!(class_index(&classes, b"2.5"), None);
    }

    #[test]
    fn fields_are_quoted_when_needed() {
        let mut line = Vec::new();
        push_field(&mut line, b"a,b");
        line.push(b',');
        push_field(&mut line, b"say \"hi\"");
        line.push(b',');
        push_field(&mut line, b"plain");
        assert_eq!(line, b"\"a,b\",\"say \"\"hi\"\"\",plain");
    }

    #[test]
    fn options_deserialise_with_defaults() {
        let o: EvalOptions = serde_json::from_str(r#"{"label": "y", "kind": "classifier"}"#).unwrap();
        assert_eq!(o.batch_size, DEFAULT_BATCH_SIZE);
        assert!(o.write_predictions);
        assert_eq!(o.kind, Some(ModelKind::Classifier));
        assert!(serde_json::from_str::<EvalOptions>(r#"{"label": "y", "bogus": 1}"#).is_err());
        let p: PredictOptions = serde_json::from_str(r#"{"passthrough": ["id"]}"#).unwrap();
        assert_eq!(p.passthrough, ["id"]);
    }
}
