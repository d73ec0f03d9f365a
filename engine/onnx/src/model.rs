//! Loading an ONNX classifier or regressor and running it on batches of features.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ort::session::{Session, SessionInputValue};
use ort::value::{DynMapValueType, DynValue, TensorElementType, TensorRef, ValueType};

use crate::error::{Error, Result};
use crate::runtime;

/// Classifier or regressor. Detected from the model's outputs, or set by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Predicts a class; metrics: accuracy, precision, recall, F1, ROC AUC, log loss.
    #[serde(alias = "classification")]
    Classifier,
    /// Predicts a number; metrics: RMSE, MAE, R².
    #[serde(alias = "regression")]
    Regressor,
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelKind::Classifier => "classifier",
            ModelKind::Regressor => "regressor",
        })
    }
}

impl FromStr for ModelKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "classifier" | "classification" => Ok(ModelKind::Classifier),
            "regressor" | "regression" => Ok(ModelKind::Regressor),
            other => Err(format!("unknown model kind `{other}` (expected `classifier` or `regressor`)")),
        }
    }
}

/// A class of a classifier: an integer (skl2onnx `classlabels_ints`, our own models) or a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClassLabel {
    /// An integer class.
    Int(i64),
    /// A string class.
    Str(String),
}

impl ClassLabel {
    /// `"3"` → `Int(3)`, anything else → `Str`.
    pub fn parse(s: &str) -> ClassLabel {
        let t = s.trim();
        t.parse::<i64>().map(ClassLabel::Int).unwrap_or_else(|_| ClassLabel::Str(t.to_string()))
    }
}

impl fmt::Display for ClassLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClassLabel::Int(i) => write!(f, "{i}"),
            ClassLabel::Str(s) => f.write_str(s),
        }
    }
}

impl serde::Serialize for ClassLabel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            ClassLabel::Int(i) => s.serialize_i64(*i),
            ClassLabel::Str(v) => s.serialize_str(v),
        }
    }
}

/// Where a classifier's class list (the order of its probability columns) came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassSource {
    /// The caller's `class_labels`.
    Options,
    /// A `classlabels_*` attribute of the named `ai.onnx.ml` operator in the model graph (skl2onnx).
    Graph(String),
    /// The model's metadata property `classes` (comma-separated).
    Metadata,
    /// The keys of the ZipMap output.
    ZipMap,
    /// Assumed `0..C-1` from the number of probability columns.
    Assumed,
}

/// How a model is loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelOptions {
    /// Classifier or regressor; detected from the outputs when `None`.
    pub kind: Option<ModelKind>,
    /// The classes, in the order of the probability columns; found in the model when `None`.
    pub class_labels: Option<Vec<String>>,
    /// ONNX Runtime intra-op threads; ONNX Runtime's default (one per core) when `None`.
    pub intra_threads: Option<usize>,
}

/// One model input or output, for reports (`name`, `type` as ONNX Runtime prints it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IoDesc {
    /// The input's or output's name.
    pub name: String,
    /// Its type, e.g. `Tensor<f32>(-1, 8)`.
    #[serde(rename = "type")]
    pub ty: String,
}

/// What dagrun made of a model: its inputs and outputs and which role each output plays.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModelInfo {
    /// The model file.
    pub path: PathBuf,
    /// The model's inputs.
    pub inputs: Vec<IoDesc>,
    /// The model's outputs.
    pub outputs: Vec<IoDesc>,
    /// Classifier or regressor (`None` until the first batch when it depends on a dynamic output width).
    pub kind: Option<ModelKind>,
    /// Whether `kind` was given by the caller rather than detected.
    pub kind_overridden: bool,
    /// The output holding predicted class labels, if any.
    pub label_output: Option<String>,
    /// The output holding probabilities (classifier) or predictions (regressor).
    pub score_output: Option<String>,
    /// The classes in probability-column order, once known.
    pub classes: Option<Vec<ClassLabel>>,
    /// Where `classes` came from.
    pub class_source: Option<ClassSource>,
    /// Number of features the model takes, when the input shape says.
    pub feature_count: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    F32,
    F64,
    I64,
}

#[derive(Debug, Clone)]
enum InputLayout {
    /// One `[N, F]` tensor.
    Matrix { name: String, elem: Elem, width: Option<usize>, batch: Option<usize> },
    /// One `[N, 1]` (or `[N]`) tensor per feature, named like the feature columns.
    Columns { inputs: Vec<(String, Elem, bool)> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LabelElem {
    I64,
    I32,
    Str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ScoreOutput {
    /// A float tensor `[N]` or `[N, C]`.
    Tensor { name: String, width: Option<usize> },
    /// A sequence of maps `{class: probability}` (skl2onnx with ZipMap on).
    ZipMap { name: String, string_keys: bool },
}

impl ScoreOutput {
    fn name(&self) -> &str {
        match self {
            ScoreOutput::Tensor { name, .. } | ScoreOutput::ZipMap { name, .. } => name,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transform {
    None,
    Sigmoid,
    Softmax,
}

/// The feature values of a batch, row-major (`rows × width`). `f32` values go to a float model without a
/// copy; anything else is converted to the model's input type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Features<'a> {
    /// Single precision.
    F32(&'a [f32]),
    /// Double precision.
    F64(&'a [f64]),
}

impl Features<'_> {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Features::F32(v) => v.len(),
            Features::F64(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn at(&self, i: usize) -> f64 {
        match self {
            Features::F32(v) => f64::from(v[i]),
            Features::F64(v) => v[i],
        }
    }
}

impl<'a> From<&'a [f32]> for Features<'a> {
    fn from(v: &'a [f32]) -> Self {
        Features::F32(v)
    }
}

impl<'a> From<&'a [f64]> for Features<'a> {
    fn from(v: &'a [f64]) -> Self {
        Features::F64(v)
    }
}

impl<'a> From<&'a Vec<f32>> for Features<'a> {
    fn from(v: &'a Vec<f32>) -> Self {
        Features::F32(v)
    }
}

impl<'a> From<&'a Vec<f64>> for Features<'a> {
    fn from(v: &'a Vec<f64>) -> Self {
        Features::F64(v)
    }
}

/// The model's predictions for one batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Predictions {
    /// Classifier: the predicted class (index into [`OnnxModel::classes`]) per row and, when the model has
    /// them, the class probabilities (row-major `rows × classes`).
    Classes {
        /// Predicted class index per row.
        predicted: Vec<usize>,
        /// `rows × classes` probabilities, in class order.
        probabilities: Option<Vec<f64>>,
        /// Whether the probabilities were computed in single precision (print them as `f32`).
        single_precision: bool,
    },
    /// Regressor: one value per row.
    Values {
        /// The predictions.
        values: Vec<f64>,
        /// Whether they were computed in single precision.
        single_precision: bool,
    },
}

impl Predictions {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Predictions::Classes { predicted, .. } => predicted.len(),
            Predictions::Values { values, .. } => values.len(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An ONNX model loaded in ONNX Runtime, ready to run on batches.
pub struct OnnxModel {
    session: Session,
    path: PathBuf,
    input: InputLayout,
    label_output: Option<(String, LabelElem)>,
    score_output: Option<ScoreOutput>,
    kind: Option<ModelKind>,
    classes: Option<Vec<ClassLabel>>,
    class_source: Option<ClassSource>,
    transform: Option<Transform>,
    info: ModelInfo,
    /// Feature columns named in the model's metadata (`features`), for matrix-input models.
    metadata_features: Option<Vec<String>>,
    scratch_f32: Vec<f32>,
    scratch_f64: Vec<f64>,
    scratch_i64: Vec<i64>,
}

impl fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnnxModel").field("info", &self.info()).finish_non_exhaustive()
    }
}

fn unsupported(path: &Path, reason: impl Into<String>) -> Error {
    Error::UnsupportedModel { path: path.to_path_buf(), reason: reason.into() }
}

fn static_dim(d: i64) -> Option<usize> {
    usize::try_from(d).ok()
}

impl OnnxModel {
    /// Loads a model (initialising ONNX Runtime first if needed) and works out how to feed and read it.
    pub fn load(path: &Path, options: &ModelOptions) -> Result<OnnxModel> {
        let rt = runtime::init()?;
        let bytes =
            std::fs::read(path).map_err(|e| Error::ModelLoad { path: path.to_path_buf(), reason: e.to_string() })?;
        let load_err = |e: &dyn fmt::Display| Error::ModelLoad { path: path.to_path_buf(), reason: e.to_string() };
        let mut builder = Session::builder(rt.environment()).map_err(|e| load_err(&e))?;
        if let Some(n) = options.intra_threads {
            builder = builder.with_intra_threads(n).map_err(|e| load_err(&e))?;
        }
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

        // dagrun's train plugin records its feature columns (a JSON array) in the model metadata.
        let metadata_features = session
            .metadata()
            .ok()
            .and_then(|m| m.custom("features"))
            .and_then(|f| serde_json::from_str::<Vec<String>>(&f).ok())
            .filter(|f| !f.is_empty());
        let (classes, class_source) = if let Some(labels) = &options.class_labels {
            (Some(labels.iter().map(|s| ClassLabel::parse(s)).collect::<Vec<_>>()), Some(ClassSource::Options))
        } else if let Some(found) = crate::proto::class_labels(&bytes) {
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
            metadata_features,
            scratch_f32: Vec::new(),
            scratch_f64: Vec::new(),
            scratch_i64: Vec::new(),
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
        let infer_err = |e: &dyn fmt::Display, path: &Path| Error::Inference {
            path: path.to_path_buf(),
            first_row,
            end_row: first_row + rows as u64,
            reason: e.to_string(),
        };
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
        self.interpret(raw, rows, first_row)
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
                let mut p = if let Some(keys) = &s.keys {
                    // ZipMap: reorder the map's columns into class order.
                    let order: Vec<usize> = classes
                        .iter()
                        .map(|cl| keys.iter().position(|k| k == cl || k.to_string() == cl.to_string()))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| {
                            unsupported(
                                &self.path,
                                format!("ZipMap keys {keys:?} do not match the classes {classes:?}"),
                            )
                        })?;
                    let mut out = vec![0.0; rows * c];
                    for i in 0..rows {
                        for (j, &k) in order.iter().enumerate() {
                            out[i * c + j] = s.values[i * s.width + k];
                        }
                    }
                    out
                } else if s.width == 1 {
                    if c != 2 {
                        return Err(unsupported(
                            &self.path,
                            format!("a single score column can only describe 2 classes, not {c} ({classes:?})"),
                        ));
                    }
                    let t = *self.transform.get_or_insert_with(|| {
                        if s.values.iter().all(|v| (0.0..=1.0).contains(v)) {
                            Transform::None
                        } else {
                            Transform::Sigmoid
                        }
                    });
                    s.values
                        .iter()
                        .flat_map(|&v| {
                            let p1 = if t == Transform::Sigmoid { 1.0 / (1.0 + (-v).exp()) } else { v };
                            [1.0 - p1, p1]
                        })
                        .collect()
                } else {
                    if s.width != c {
                        return Err(unsupported(
                            &self.path,
                            format!(
                                "its probability output has {} columns but it has {c} classes ({classes:?})",
                                s.width
                            ),
                        ));
                    }
                    s.values
                };
                if s.keys.is_none() && s.width > 1 {
                    let t = *self.transform.get_or_insert_with(|| {
                        let normalised = p.iter().all(|v| (0.0..=1.0).contains(v))
                            && p.chunks(c).all(|row| (row.iter().sum::<f64>() - 1.0).abs() <= 1e-3);
                        if normalised { Transform::None } else { Transform::Softmax }
                    });
                    if t == Transform::Softmax {
                        for row in p.chunks_mut(c) {
                            softmax(row);
                        }
                        single_precision = false;
                    }
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
}

fn softmax(row: &mut [f64]) {
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

/// Index of the first maximum (like numpy's argmax, which scikit-learn's `predict` uses).
pub(crate) fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

fn fill(elem: Elem, values: impl Iterator<Item = f64>, f32s: &mut Vec<f32>, f64s: &mut Vec<f64>, i64s: &mut Vec<i64>) {
    match elem {
        Elem::F32 => f32s.extend(values.map(|v| v as f32)),
        Elem::F64 => f64s.extend(values),
        Elem::I64 => i64s.extend(values.map(|v| v as i64)),
    }
}

fn tensor_ref<'a>(
    elem: Elem,
    shape: Vec<usize>,
    f32s: &'a [f32],
    f64s: &'a [f64],
    i64s: &'a [i64],
    range: std::ops::Range<usize>,
) -> ort::Result<SessionInputValue<'a>> {
    Ok(match elem {
        Elem::F32 => TensorRef::from_array_view((shape, &f32s[range]))?.into(),
        Elem::F64 => TensorRef::from_array_view((shape, &f64s[range]))?.into(),
        Elem::I64 => TensorRef::from_array_view((shape, &i64s[range]))?.into(),
    })
}

struct RawOutputs {
    label: Option<Labels>,
    scores: Option<Scores>,
}

enum Labels {
    Int(Vec<i64>),
    Str(Vec<String>),
}

impl Labels {
    fn len(&self) -> usize {
        match self {
            Labels::Int(v) => v.len(),
            Labels::Str(v) => v.len(),
        }
    }

    fn display(&self, i: usize) -> String {
        match self {
            Labels::Int(v) => v[i].to_string(),
            Labels::Str(v) => v[i].clone(),
        }
    }

    fn class_index(&self, i: usize, classes: &[ClassLabel]) -> Option<usize> {
        match self {
            Labels::Int(v) => {
                let x = v[i];
                classes.iter().position(|c| *c == ClassLabel::Int(x)).or_else(|| {
                    let s = x.to_string();
                    classes.iter().position(|c| matches!(c, ClassLabel::Str(t) if *t == s))
                })
            }
            Labels::Str(v) => {
                let s = v[i].as_str();
                classes.iter().position(|c| match c {
                    ClassLabel::Str(t) => t == s,
                    ClassLabel::Int(n) => s.trim().parse::<i64>().ok() == Some(*n),
                })
            }
        }
    }
}

struct Scores {
    width: usize,
    values: Vec<f64>,
    single_precision: bool,
    /// ZipMap: the map's keys in column order.
    keys: Option<Vec<ClassLabel>>,
}

fn read_labels(value: &DynValue, elem: LabelElem) -> ort::Result<Labels> {
    Ok(match elem {
        LabelElem::I64 => Labels::Int(value.try_extract_tensor::<i64>()?.1.to_vec()),
        LabelElem::I32 => Labels::Int(value.try_extract_tensor::<i32>()?.1.iter().map(|&v| i64::from(v)).collect()),
        LabelElem::Str => Labels::Str(value.try_extract_strings()?.1),
    })
}

fn read_scores(value: &DynValue, spec: &ScoreOutput) -> ort::Result<Scores> {
    match spec {
        ScoreOutput::Tensor { .. } => {
            let (shape, values, single_precision) = match value.data_type() {
                TensorElementType::Float32 => {
                    let (shape, data) = value.try_extract_tensor::<f32>()?;
                    (shape.clone(), data.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(), true)
                }
                _ => {
                    let (shape, data) = value.try_extract_tensor::<f64>()?;
                    (shape.clone(), data.to_vec(), false)
                }
            };
            let width = if shape.len() >= 2 { shape[1..].iter().map(|&d| d.max(0) as usize).product() } else { 1 };
            Ok(Scores { width, values, single_precision, keys: None })
        }
        ScoreOutput::ZipMap { string_keys, .. } => {
            let maps = value.try_extract_sequence::<DynMapValueType>()?;
            let mut keys: Option<Vec<ClassLabel>> = None;
            let mut values = Vec::new();
            for map in &maps {
                let row: Vec<(ClassLabel, f32)> = if *string_keys {
                    map.try_extract_key_values::<String, f32>()?
                        .into_iter()
                        .map(|(k, v)| (ClassLabel::Str(k), v))
                        .collect()
                } else {
                    map.try_extract_key_values::<i64, f32>()?
                        .into_iter()
                        .map(|(k, v)| (ClassLabel::Int(k), v))
                        .collect()
                };
                match &keys {
                    None => keys = Some(row.iter().map(|(k, _)| k.clone()).collect()),
                    Some(ks) if ks.len() == row.len() && ks.iter().zip(&row).all(|(a, (b, _))| a == b) => {}
                    Some(ks) => {
                        // Same keys in another order: put them in the first row's order.
                        if ks.len() != row.len() {
                            return Err(ort::Error::new("ZipMap rows have different numbers of classes"));
                        }
                        for k in ks {
                            let v = row.iter().find(|(rk, _)| rk == k).map(|(_, v)| *v);
                            values.push(f64::from(
                                v.ok_or_else(|| ort::Error::new("ZipMap rows have different classes"))?,
                            ));
                        }
                        continue;
                    }
                }
                values.extend(row.iter().map(|(_, v)| f64::from(*v)));
            }
            let mut keys = keys.unwrap_or_default();
            // Zero rows: no keys known; leave them empty.
            let width = keys.len();
            if maps.is_empty() {
                keys.clear();
            }
            Ok(Scores { width, values, single_precision: true, keys: Some(keys) })
        }
    }
}

fn elem_of(ty: &TensorElementType) -> Option<Elem> {
    match ty {
        TensorElementType::Float32 => Some(Elem::F32),
        TensorElementType::Float64 => Some(Elem::F64),
        TensorElementType::Int64 => Some(Elem::I64),
        _ => None,
    }
}

fn input_layout(path: &Path, session: &Session) -> Result<InputLayout> {
    let inputs = session.inputs();
    let describe = |o: &ort::value::Outlet| format!("`{}`: {}", o.name(), o.dtype());
    match inputs {
        [] => Err(unsupported(path, "it has no inputs")),
        [only] => match only.dtype() {
            ValueType::Tensor { ty, shape, .. } if shape.len() == 2 => {
                let elem = elem_of(ty).ok_or_else(|| {
                    unsupported(path, format!("input {} is not a float, double or int64 tensor", describe(only)))
                })?;
                Ok(InputLayout::Matrix {
                    name: only.name().to_string(),
                    elem,
                    width: static_dim(shape[1]),
                    batch: static_dim(shape[0]),
                })
            }
            ValueType::Tensor { ty, shape, .. } if shape.len() == 1 => {
                let elem = elem_of(ty).ok_or_else(|| {
                    unsupported(path, format!("input {} is not a float, double or int64 tensor", describe(only)))
                })?;
                Ok(InputLayout::Columns { inputs: vec![(only.name().to_string(), elem, false)] })
            }
            _ => Err(unsupported(path, format!("input {} is not a [N, features] tensor", describe(only)))),
        },
        many => {
            let mut cols = Vec::new();
            for o in many {
                match o.dtype() {
                    ValueType::Tensor { ty, shape, .. } if (shape.len() == 2 && shape[1] == 1) || shape.len() == 1 => {
                        let elem = elem_of(ty).ok_or_else(|| {
                            unsupported(path, format!("input {} is not a float, double or int64 tensor", describe(o)))
                        })?;
                        cols.push((o.name().to_string(), elem, shape.len() == 2));
                    }
                    _ => {
                        return Err(unsupported(
                            path,
                            format!("with several inputs, each must be one feature ([N, 1]); {} is not", describe(o)),
                        ));
                    }
                }
            }
            Ok(InputLayout::Columns { inputs: cols })
        }
    }
}

fn output_roles(session: &Session) -> (Option<(String, LabelElem)>, Option<ScoreOutput>) {
    let mut labels = Vec::new();
    let mut scores = Vec::new();
    for o in session.outputs() {
        let name = o.name().to_string();
        match o.dtype() {
            ValueType::Tensor { ty: TensorElementType::Int64, .. } => labels.push((name, LabelElem::I64)),
            ValueType::Tensor { ty: TensorElementType::Int32, .. } => labels.push((name, LabelElem::I32)),
            ValueType::Tensor { ty: TensorElementType::String, .. } => labels.push((name, LabelElem::Str)),
            ValueType::Tensor { ty: TensorElementType::Float32 | TensorElementType::Float64, shape, .. } => {
                let width = if shape.len() >= 2 {
                    shape[1..].iter().try_fold(1usize, |acc, &d| static_dim(d).map(|d| acc * d))
                } else {
                    Some(1)
                };
                scores.push(ScoreOutput::Tensor { name, width });
            }
            ValueType::Sequence(inner) => {
                if let ValueType::Map { key, value: TensorElementType::Float32 } = inner.as_ref()
                    && matches!(key, TensorElementType::Int64 | TensorElementType::String)
                {
                    scores.push(ScoreOutput::ZipMap { name, string_keys: *key == TensorElementType::String });
                }
            }
            _ => {}
        }
    }
    let preferred = |names: &[&str], name: &str| names.contains(&name);
    let label = labels
        .iter()
        .position(|(n, _)| preferred(&["label", "output_label"], n))
        .or(if labels.is_empty() { None } else { Some(0) })
        .map(|i| labels.swap_remove(i));
    let score = scores
        .iter()
        .position(|s| preferred(&["probabilities", "output_probability", "probability"], s.name()))
        .or_else(|| scores.iter().position(|s| matches!(s, ScoreOutput::ZipMap { .. })))
        .or(if scores.is_empty() { None } else { Some(0) })
        .map(|i| scores.swap_remove(i));
    (label, score)
}

fn detect_kind(label: Option<&(String, LabelElem)>, score: Option<&ScoreOutput>) -> Option<ModelKind> {
    if label.is_some() {
        return Some(ModelKind::Classifier);
    }
    match score {
        Some(ScoreOutput::ZipMap { .. }) => Some(ModelKind::Classifier),
        Some(ScoreOutput::Tensor { width: Some(1), .. }) => Some(ModelKind::Regressor),
        Some(ScoreOutput::Tensor { width: Some(_), .. }) => Some(ModelKind::Classifier),
        Some(ScoreOutput::Tensor { width: None, .. }) => None,
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_detection() {
        let t = |w| Some(ScoreOutput::Tensor { name: "s".into(), width: w });
        let label = ("label".to_string(), LabelElem::I64);
        assert_eq!(detect_kind(Some(&label), t(Some(2)).as_ref()), Some(ModelKind::Classifier));
        assert_eq!(detect_kind(None, t(Some(1)).as_ref()), Some(ModelKind::Regressor));
        assert_eq!(detect_kind(None, t(Some(3)).as_ref()), Some(ModelKind::Classifier));
        assert_eq!(detect_kind(None, t(None).as_ref()), None);
        let zipmap = ScoreOutput::ZipMap { name: "p".into(), string_keys: false };
        assert_eq!(detect_kind(None, Some(&zipmap)), Some(ModelKind::Classifier));
    }

    #[test]
    fn class_labels_parse_and_print() {
        assert_eq!(ClassLabel::parse(" 3 "), ClassLabel::Int(3));
        assert_eq!(ClassLabel::parse("cat"), ClassLabel::Str("cat".into()));
        assert_eq!(serde_json::to_string(&[ClassLabel::Int(1), ClassLabel::Str("a".into())]).unwrap(), r#"[1,"a"]"#);
        assert_eq!("classification".parse::<ModelKind>(), Ok(ModelKind::Classifier));
        assert!("tree".parse::<ModelKind>().is_err());
    }

    #[test]
    fn argmax_takes_the_first_maximum_and_softmax_normalises() {
        assert_eq!(argmax(&[0.5, 0.5]), 0);
        assert_eq!(argmax(&[0.1, 0.7, 0.2]), 1);
        let mut row = [1.0, 2.0, 3.0];
        softmax(&mut row);
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(row[2] > row[1] && row[1] > row[0]);
    }
}
