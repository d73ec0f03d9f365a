//! Loading an ONNX classifier or regressor and running it on batches of features.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

use ort::session::{Session, SessionInputValue};
use ort::value::TensorRef;

use crate::error::{Error, Result};
use crate::io::{
    Elem, InputLayout, LabelElem, Labels, RawOutputs, ScoreOutput, Scores, detect_kind, fill, input_layout,
    output_roles, read_labels, read_scores, tensor_ref,
};
use crate::runtime;
use crate::scores::{self, Meaning, ScoreTransform};
use crate::trees::Ensemble;
pub use crate::types::{
    ClassLabel, ClassSource, Evaluator, Features, IoDesc, ModelInfo, ModelKind, ModelOptions, Predictions,
};

/// An ONNX model loaded in ONNX Runtime, ready to run on batches.
pub struct OnnxModel {
    session: Session,
    path: PathBuf,
    pub(crate) input: InputLayout,
    label_output: Option<(String, LabelElem)>,
    score_output: Option<ScoreOutput>,
    kind: Option<ModelKind>,
    classes: Option<Vec<ClassLabel>>,
    class_source: Option<ClassSource>,
    transform: Option<ScoreTransform>,
    /// What the graph says the score output holds (see `scores.rs`); `None`: the first batch decides.
    score_meaning: Option<(Meaning, String)>,
    info: ModelInfo,
    /// Feature columns named in the model's metadata (`features`), for matrix-input models.
    metadata_features: Option<Vec<String>>,
    scratch_f32: Vec<f32>,
    scratch_f64: Vec<f64>,
    scratch_i64: Vec<i64>,
    /// The tree ensemble evaluated natively, when the graph is one (see `trees.rs`).
    native: Option<Ensemble>,
    /// Whether the native outputs matched ONNX Runtime's on the first batch.
    native_checked: bool,
    /// Threads for the native path.
    threads: usize,
}

impl fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnnxModel").field("info", &self.info()).finish_non_exhaustive()
    }
}

pub(crate) fn unsupported(path: &Path, reason: impl Into<String>) -> Error {
    Error::UnsupportedModel { path: path.to_path_buf(), reason: reason.into() }
}

impl OnnxModel {
    /// Loads a model (initialising ONNX Runtime first if needed) and works out how to feed and read it.
    pub fn load(path: &Path, options: &ModelOptions) -> Result<OnnxModel> {
        let rt = runtime::init()?;
        let bytes =
            std::fs::read(path).map_err(|e| Error::ModelLoad { path: path.to_path_buf(), reason: e.to_string() })?;
        let load_err = |e: &dyn fmt::Display| Error::ModelLoad { path: path.to_path_buf(), reason: e.to_string() };
        // No busy-waiting between runs: a batch evaluation parses the next batches on the other cores
        // meanwhile, and spinning threads take their time (measured: 5.8 s of CPU instead of 3.6 s for 1,000,000
        // rows of gradient boosting on 2 cores).
        let mut builder = Session::builder(rt.environment()).map_err(|e| load_err(&e))?;
        builder = builder.with_intra_op_spinning(false).map_err(|e| load_err(&e))?;
        let graph = crate::proto::Graph::parse(&bytes);
        // A tree ensemble's thread count is set for ONNX Runtime too: it decides how ONNX Runtime
        // splits the ensemble's sums, which the native evaluator follows to the last bit.
        let trees = graph.as_ref().is_some_and(|g| g.nodes.iter().any(|n| n.op_type.starts_with("TreeEnsemble")));
        let threads =
            options.intra_threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
        if options.intra_threads.is_some() || trees {
            builder = builder.with_intra_threads(threads).map_err(|e| load_err(&e))?;
        }
        // One count for ONNX Runtime and the native tree evaluator: it decides how ONNX Runtime
        // splits a tree ensemble's sums, which the native evaluator follows to the last bit.
        builder = builder.with_intra_threads(threads).map_err(|e| load_err(&e))?;
        let session = builder.commit_from_memory(&bytes).map_err(|e| load_err(&e))?;

        let input = input_layout(path, &session)?;
        let (label_output, score_output) = output_roles(&session);
        if label_output.is_none() && score_output.is_none() {
            return Err(unsupported(path, "no output is a label, probability or score tensor"));
        }

        let kind_overridden = options.kind.is_some();
        let kind = options.kind.or_else(|| detect_kind(label_output.as_ref(), score_output.as_ref()));
        if kind == Some(ModelKind::Regressor) && !matches!(score_output, Some(ScoreOutput::Tensor { .. })) {
            return Err(unsupported(
                path,
                "a regressor needs a float output tensor [N] or [N, 1]; this model has none",
            ));
        }

        let score_meaning =
            graph.as_ref().zip(score_output.as_ref()).and_then(|(g, s)| scores::from_graph(g, s.name()));
        // dagrun's train plugin records its feature columns (a JSON array) in the model metadata.
        let metadata_features = session
            .metadata()
            .ok()
            .and_then(|m| m.custom("features"))
            .and_then(|f| serde_json::from_str::<Vec<String>>(&f).ok())
            .filter(|f| !f.is_empty());
        let label_name = label_output.as_ref().map(|(n, _)| n.as_str());
        let native = match (&input, graph.as_ref(), &score_output) {
            (
                InputLayout::Matrix { name, elem: Elem::F32, .. },
                Some(g),
                Some(ScoreOutput::Tensor { name: out, .. }),
            ) => Ensemble::from_graph(g, name, label_name, Some(out.as_str())),
            _ => None,
        };
        let (classes, class_source) = class_list(path, options, graph.as_ref(), label_name, &session)?;

        let mut model = OnnxModel {
            info: ModelInfo {
                path: path.to_path_buf(),
                inputs: session
                    .inputs()
                    .iter()
                    .map(|o| IoDesc { name: o.name().into(), ty: o.dtype().to_string() })
                    .collect(),
                outputs: session
                    .outputs()
                    .iter()
                    .map(|o| IoDesc { name: o.name().into(), ty: o.dtype().to_string() })
                    .collect(),
                kind,
                kind_overridden,
                label_output: label_output.as_ref().map(|(n, _)| n.clone()),
                score_output: score_output.as_ref().map(|s| s.name().to_string()),
                classes: None,
                class_source: None,
                feature_count: None,
                score_transform: None,
                score_transform_reason: None,
                evaluator: None,
            },
            session,
            path: path.to_path_buf(),
            input,
            label_output,
            score_output,
            kind,
            classes,
            class_source,
            transform: None,
            score_meaning,
            metadata_features,
            scratch_f32: Vec::new(),
            scratch_f64: Vec::new(),
            scratch_i64: Vec::new(),
            native,
            native_checked: false,
            threads,
        };
        model.sync_info();
        Ok(model)
    }

    fn sync_info(&mut self) {
        self.info.kind = self.kind;
        self.info.classes = if self.kind == Some(ModelKind::Regressor) { None } else { self.classes.clone() };
        self.info.class_source = if self.kind == Some(ModelKind::Regressor) { None } else { self.class_source.clone() };
        self.info.feature_count = self.feature_count();
    }

    /// What dagrun made of the model.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Classifier or regressor; `None` until the first batch if it depends on a dynamic output width.
    pub fn kind(&self) -> Option<ModelKind> {
        self.kind
    }

    /// The classes in probability-column order (classifiers; known after the first batch at the latest).
    pub fn classes(&self) -> Option<&[ClassLabel]> {
        self.classes.as_deref()
    }

    /// How many features the model takes, if its input shape says.
    pub fn feature_count(&self) -> Option<usize> {
        match &self.input {
            InputLayout::Matrix { width, .. } => *width,
            InputLayout::Columns { inputs } => Some(inputs.len()),
        }
    }

    /// For models with one input per feature: the input names, which are the feature columns to use.
    pub fn feature_inputs(&self) -> Option<Vec<String>> {
        match &self.input {
            InputLayout::Matrix { .. } => self.metadata_features.clone(),
            InputLayout::Columns { inputs } => Some(inputs.iter().map(|(n, _, _)| n.clone()).collect()),
        }
    }

    /// Whether the model takes single-precision floats (then pass [`Features::F32`] to avoid a conversion).
    pub fn takes_f32(&self) -> bool {
        match &self.input {
            InputLayout::Matrix { elem, .. } => *elem == Elem::F32,
            InputLayout::Columns { inputs } => inputs.iter().all(|(_, e, _)| *e == Elem::F32),
        }
    }

    /// Runs the model on `rows` rows of `width` features (row-major) and interprets the outputs.
    /// `first_row` (the index of the batch's first row in the data) is only used in error messages.
    pub fn predict<'f>(
        &mut self,
        features: impl Into<Features<'f>>,
        rows: usize,
        width: usize,
        first_row: u64,
    ) -> Result<Predictions> {
        let features = features.into();
        assert_eq!(features.len(), rows * width, "features must hold rows × width values");
        if let Some(expected) = self.feature_count()
            && expected != width
        {
            return Err(unsupported(
                &self.path,
                format!("it takes {expected} features but {width} columns were selected; choose them with `features`"),
            ));
        }
        if let InputLayout::Matrix { name, batch: Some(b), .. } = &self.input
            && *b != rows
        {
            return Err(unsupported(
                &self.path,
                format!("its input `{name}` has a fixed batch size of {b} (got {rows} rows); set batch_size to {b}"),
            ));
        }
        let raw = match self.native.take() {
            Some(native) => self.run_native(native, features, rows, width, first_row)?,
            None => self.run_ort(features, rows, width, first_row)?,
        };
        self.interpret(raw, rows, first_row)
    }

    /// The native tree ensemble's outputs; on the first batch also ONNX Runtime's, compared: a
    /// difference (beyond float rounding) drops the native path for good and ONNX Runtime's
    /// outputs are used.
    fn run_native(
        &mut self,
        native: Ensemble,
        features: Features<'_>,
        rows: usize,
        width: usize,
        first_row: u64,
    ) -> Result<RawOutputs> {
        let threads = self.threads;
        let ours = match features {
            Features::F32(x) => native.run(x, rows, width, threads),
            Features::F64(x) => {
                let x: Vec<f32> = x.iter().map(|&v| v as f32).collect();
                native.run(&x, rows, width, threads)
            }
        };
        let Some(ours) = ours else { return self.run_ort(features, rows, width, first_row) };
        if self.native_checked {
            self.native = Some(native);
            return Ok(ours);
        }
        let theirs = self.run_ort(features, rows, width, first_row)?;
        if same_outputs(&ours, &theirs) {
            self.native_checked = true;
            self.native = Some(native);
            self.info.evaluator = Some(Evaluator::NativeTrees);
        } else {
            self.info.evaluator = Some(Evaluator::OnnxRuntime);
        }
        Ok(theirs)
    }

    /// ONNX Runtime's outputs for a batch.
    fn run_ort(&mut self, features: Features<'_>, rows: usize, width: usize, first_row: u64) -> Result<RawOutputs> {
        let infer_err = |e: &dyn fmt::Display, path: &Path| Error::Inference {
            path: path.to_path_buf(),
            first_row,
            end_row: first_row + rows as u64,
            reason: e.to_string(),
        };
        let raw = {
            let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::new();
            let (f32s, f64s, i64s) = (&mut self.scratch_f32, &mut self.scratch_f64, &mut self.scratch_i64);
            f32s.clear();
            f64s.clear();
            i64s.clear();
            match &self.input {
                InputLayout::Matrix { name, elem, .. } => {
                    let shape = [rows, width];
                    let value = match (features, *elem) {
                        // No copy when the data already has the model's type.
                        (Features::F32(x), Elem::F32) => TensorRef::from_array_view((shape, x)).map(Into::into),
                        (Features::F64(x), Elem::F64) => TensorRef::from_array_view((shape, x)).map(Into::into),
                        _ => {
                            fill(*elem, (0..features.len()).map(|i| features.at(i)), f32s, f64s, i64s);
                            tensor_ref(*elem, shape.to_vec(), f32s, f64s, i64s, 0..rows * width)
                        }
                    };
                    inputs.push((Cow::Borrowed(name.as_str()), value.map_err(|e| infer_err(&e, &self.path))?));
                }
                InputLayout::Columns { inputs: cols } => {
                    for (j, (_, elem, _)) in cols.iter().enumerate() {
                        fill(*elem, (0..rows).map(|i| features.at(i * width + j)), f32s, f64s, i64s);
                    }
                    // Offsets per element type, in input order.
                    let mut offsets = [0usize; 3];
                    for (name, elem, rank2) in cols {
                        let k = *elem as usize;
                        let shape = if *rank2 { vec![rows, 1] } else { vec![rows] };
                        let range = offsets[k]..offsets[k] + rows;
                        offsets[k] += rows;
                        inputs.push((
                            Cow::Borrowed(name.as_str()),
                            tensor_ref(*elem, shape, f32s, f64s, i64s, range).map_err(|e| infer_err(&e, &self.path))?,
                        ));
                    }
                }
            }
            let outputs = self.session.run(inputs).map_err(|e| infer_err(&e, &self.path))?;
            let label = match &self.label_output {
                Some((name, elem)) => {
                    Some(read_labels(&outputs[name.as_str()], *elem).map_err(|e| infer_err(&e, &self.path))?)
                }
                None => None,
            };
            let scores = match &self.score_output {
                Some(s) => Some(read_scores(&outputs[s.name()], s).map_err(|e| infer_err(&e, &self.path))?),
                None => None,
            };
            RawOutputs { label, scores }
        };
        Ok(raw)
    }

    fn interpret(&mut self, raw: RawOutputs, rows: usize, first_row: u64) -> Result<Predictions> {
        if let Some(l) = &raw.label
            && l.len() != rows
        {
            return Err(self.shape_err(
                first_row,
                rows,
                format!("label output has {} values for {rows} rows", l.len()),
            ));
        }
        if let Some(s) = &raw.scores
            && s.width * rows != s.values.len()
        {
            return Err(self.shape_err(
                first_row,
                rows,
                format!("score output has {} values for {rows} rows", s.values.len()),
            ));
        }
        if self.kind.is_none() {
            let width = raw.scores.as_ref().map_or(1, |s| s.width);
            self.kind = Some(if width > 1 { ModelKind::Classifier } else { ModelKind::Regressor });
        }
        let result = match self.kind {
            Some(ModelKind::Regressor) => {
                let s = raw.scores.expect("a regressor has a score output (checked at load)");
                if s.width != 1 {
                    return Err(unsupported(
                        &self.path,
                        format!("as a regressor it must output one value per row, not {}", s.width),
                    ));
                }
                Predictions::Values { values: s.values, single_precision: s.single_precision }
            }
            _ => self.interpret_classes(raw, rows)?,
        };
        // Kind and classes are settled by the first batch.
        if self.info.kind != self.kind || (self.info.classes.is_none() && self.kind == Some(ModelKind::Classifier)) {
            self.sync_info();
        }
        Ok(result)
    }

    fn shape_err(&self, first_row: u64, rows: usize, reason: String) -> Error {
        Error::Inference { path: self.path.clone(), first_row, end_row: first_row + rows as u64, reason }
    }

    fn interpret_classes(&mut self, raw: RawOutputs, rows: usize) -> Result<Predictions> {
        let RawOutputs { label, scores } = raw;
        // Resolve the class list on the first batch.
        if self.classes.is_none() {
            let (classes, source) = match (&scores, &label) {
                (Some(s), _) if s.keys.is_some() => (s.keys.clone().unwrap_or_default(), ClassSource::ZipMap),
                (Some(s), _) => {
                    ((0..s.width.max(2)).map(|i| ClassLabel::Int(i as i64)).collect(), ClassSource::Assumed)
                }
                (None, Some(Labels::Str(_))) => {
                    return Err(unsupported(
                        &self.path,
                        "it outputs string labels and no probabilities, and its class list is not in the model; pass `class_labels`",
                    ));
                }
                (None, _) => {
                    return Err(unsupported(
                        &self.path,
                        "it outputs labels but no probabilities, and its class list is not in the model; pass `class_labels`",
                    ));
                }
            };
            self.classes = Some(classes);
            self.class_source = Some(source);
        }
        let classes = self.classes.clone().unwrap_or_default();
        let c = classes.len();

        let mut single_precision = false;
        let probabilities = match scores {
            None => None,
            Some(s) => {
                single_precision = s.single_precision;
                let (p, transform) = self.probabilities(s, &classes, rows)?;
                if transform != ScoreTransform::None {
                    single_precision = false;
                }
                Some(p)
            }
        };

        let predicted = match &label {
            Some(labels) => {
                let mut out = Vec::with_capacity(rows);
                // Fast path: integer classes k0, k0+1, ... (0..C-1 for sklearn-style labels).
                let first = match classes.first() {
                    Some(ClassLabel::Int(k0)) if classes.iter().zip(*k0..).all(|(c, k)| *c == ClassLabel::Int(k)) => {
                        Some(*k0)
                    }
                    _ => None,
                };
                if let (Some(k0), Labels::Int(v)) = (first, labels) {
                    out.extend(v.iter().map_while(|&x| usize::try_from(x.wrapping_sub(k0)).ok().filter(|&i| i < c)));
                }
                for i in out.len()..rows {
                    let idx = labels.class_index(i, &classes).ok_or_else(|| {
                        unsupported(
                            &self.path,
                            format!(
                                "it predicted label `{}`, which is not one of its classes {classes:?}",
                                labels.display(i)
                            ),
                        )
                    })?;
                    out.push(idx);
                }
                out
            }
            None => {
                let p = probabilities.as_ref().expect("a classifier without labels has probabilities");
                p.chunks(c).map(argmax).collect()
            }
        };
        Ok(Predictions::Classes { predicted, probabilities, single_precision })
    }

    /// The `rows × classes` probabilities in class order from a score output, and the transform used.
    fn probabilities(&mut self, s: Scores, classes: &[ClassLabel], rows: usize) -> Result<(Vec<f64>, ScoreTransform)> {
        let c = classes.len();
        let (mut p, width) = if let Some(keys) = &s.keys {
            // ZipMap: reorder the map's columns into class order.
            let order: Vec<usize> = classes
                .iter()
                .map(|cl| keys.iter().position(|k| k == cl || k.to_string() == cl.to_string()))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    unsupported(&self.path, format!("ZipMap keys {keys:?} do not match the classes {classes:?}"))
                })?;
            let mut out = vec![0.0; rows * c];
            for i in 0..rows {
                for (j, &k) in order.iter().enumerate() {
                    out[i * c + j] = s.values[i * s.width + k];
                }
            }
            (out, c)
        } else if s.width == 1 && c != 2 {
            return Err(unsupported(
                &self.path,
                format!("a single score column can only describe 2 classes, not {c} ({classes:?})"),
            ));
        } else if s.width != 1 && s.width != c {
            return Err(unsupported(
                &self.path,
                format!("its probability output has {} columns but it has {c} classes ({classes:?})", s.width),
            ));
        } else {
            (s.values, s.width)
        };
        let transform = match self.transform {
            Some(t) => t,
            None => self.decide_transform(&p, width, s.keys.is_some()),
        };
        scores::apply(transform, &mut p, width);
        if width == 1 {
            // P(positive class) → [1 - p, p].
            p = p.iter().flat_map(|&p1| [1.0 - p1, p1]).collect();
        }
        Ok((p, transform))
    }

    /// Settles, on the first batch, how the score output becomes probabilities: from the graph when it says
    /// (`scores::from_graph`), else a ZipMap holds probabilities, else the first batch's values decide.
    fn decide_transform(&mut self, values: &[f64], width: usize, zipmap: bool) -> ScoreTransform {
        let (meaning, reason) = match &self.score_meaning {
            Some((m, why)) => (*m, format!("graph: {why}")),
            None if zipmap => (Meaning::Probabilities, "ZipMap output (the graph does not say more)".into()),
            None => (scores::from_values(values, width), "fallback: the first batch's values".into()),
        };
        let t = ScoreTransform::for_meaning(meaning, width);
        self.transform = Some(t);
        self.info.score_transform = Some(t);
        self.info.score_transform_reason = Some(reason);
        t
    }
}

/// The class list (probability-column order) and where it came from, in order: the caller's `class_labels`,
/// the graph (`proto::Graph::class_labels`), the metadata property `classes`; `None` if none says (then the
/// first batch decides). Duplicates are an error.
fn class_list(
    path: &Path,
    options: &ModelOptions,
    graph: Option<&crate::proto::Graph>,
    label_output: Option<&str>,
    session: &Session,
) -> Result<(Option<Vec<ClassLabel>>, Option<ClassSource>)> {
    let (classes, class_source) = if let Some(labels) = &options.class_labels {
        (Some(labels.iter().map(|s| ClassLabel::parse(s)).collect::<Vec<_>>()), Some(ClassSource::Options))
    } else if let Some(found) = graph.and_then(|g| g.class_labels(label_output)) {
        (Some(found.labels), Some(ClassSource::Graph(found.op_type)))
    } else if let Some(meta) = session.metadata().ok().and_then(|m| m.custom("classes")) {
        // Comma-separated (`0,1`) or a JSON array (`[0,1]`, `["a","b"]`, as dagrun's train plugin writes).
        let labels: Vec<ClassLabel> = match serde_json::from_str::<Vec<serde_json::Value>>(&meta) {
            Ok(items) => items
                .iter()
                .map(|v| ClassLabel::parse(v.as_str().map_or_else(|| v.to_string(), str::to_owned).as_str()))
                .collect(),
            Err(_) => meta.split(',').map(str::trim).filter(|s| !s.is_empty()).map(ClassLabel::parse).collect(),
        };
        if labels.is_empty() { (None, None) } else { (Some(labels), Some(ClassSource::Metadata)) }
    } else {
        (None, None)
    };
    if let Some(c) = &classes {
        let mut sorted = c.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != c.len() {
            return Err(match class_source {
                Some(ClassSource::Options) => Error::Options(format!("duplicate class labels in {c:?}")),
                _ => unsupported(path, format!("its class list {c:?} has duplicates; pass `class_labels`")),
            });
        }
    }
    Ok((classes, class_source))
}

/// Index of the first maximum (like numpy's argmax, which scikit-learn's `predict` uses).
/// Whether the native outputs are ONNX Runtime's: the same labels, scores equal up to float
/// rounding (sums over trees in another order: 1e-5 relative).
fn same_outputs(ours: &RawOutputs, theirs: &RawOutputs) -> bool {
    let labels = match (&ours.label, &theirs.label) {
        (Some(Labels::Int(a)), Some(Labels::Int(b))) => a == b,
        (None, None) => true,
        _ => false,
    };
    let scores = match (&ours.scores, &theirs.scores) {
        (Some(a), Some(b)) => {
            a.width == b.width
                && a.values.len() == b.values.len()
                && a.values.iter().zip(&b.values).all(|(x, y)| (x - y).abs() <= 1e-5 * y.abs().max(1.0))
        }
        (None, None) => true,
        _ => false,
    };
    labels && scores
}

pub(crate) fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.5, 0.5]), 0);
        assert_eq!(argmax(&[0.1, 0.7, 0.2]), 1);
    }
}
