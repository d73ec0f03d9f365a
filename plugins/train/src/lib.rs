//! `train`: a dagrun plugin that trains a model on a CSV file and writes it as a self-contained
//! ONNX model (feature standardisation inside the graph) plus training metrics.
//!
//! Models: `logistic` (binary or multinomial logistic regression, full-batch gradient descent),
//! `linear` (ridge regression, closed form), `gbdt` (gradient-boosted trees, histogram splits;
//! classification or regression). Same data + params → byte-identical `model.onnx`, on every
//! platform (no clocks, no hash maps, no threads; `exp`/`log` from the pure-Rust `libm`).
//!
//! The training code is plain Rust ([`train`], [`predict`]) so it also runs natively: see
//! `examples/bench.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use dagrun_onnx_writer::{ModelInfo, OnnxModel};
use dagrun_sdk::{Ctx, Error, Info, Task};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub mod data;
pub mod gbdt;
pub mod linear;
pub mod metrics;
pub mod rng;

pub use dagrun_onnx_writer::Predictions;

/// Which model to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Logistic regression (classification).
    Logistic,
    /// Linear (ridge) regression.
    Linear,
    /// Gradient-boosted decision trees (classification or regression).
    Gbdt,
}

/// Classification or regression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// Predict a class (integer label).
    Classification,
    /// Predict a number.
    Regression,
}

/// The task's `params`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// `logistic` (default), `linear` or `gbdt`.
    #[serde(default)]
    pub model: Option<ModelKind>,
    /// The label column.
    pub label: String,
    /// Feature columns, in order; default: every other column whose values are all numbers.
    #[serde(default)]
    pub features: Option<Vec<String>>,
    /// `gbdt` only: `classification` (default) or `regression`.
    #[serde(default)]
    pub task: Option<TaskKind>,
    /// `logistic`: gradient descent epochs (default 200).
    pub epochs: Option<u32>,
    /// `logistic`: step size (default 0.5); `gbdt`: shrinkage (default 0.1).
    pub learning_rate: Option<f64>,
    /// L2 penalty: `logistic`/`linear` on the weights (default 1e-4), `gbdt` on leaf values (default 1).
    pub l2: Option<f64>,
    /// `gbdt`: boosting rounds (default 100; one tree per class and round for > 2 classes).
    pub trees: Option<u32>,
    /// `gbdt`: maximum depth (default 5).
    pub depth: Option<u32>,
    /// `gbdt`: minimum rows per leaf (default 20).
    pub min_leaf: Option<u32>,
    /// `gbdt`: maximum histogram bins per feature, 2..=256 (default 255).
    pub bins: Option<u32>,
    /// `gbdt`: fraction of rows sampled per round (default 1).
    pub subsample: Option<f64>,
    /// Seed of every random choice (default 0; only `gbdt` with `subsample` < 1 draws).
    pub seed: Option<u64>,
    /// Also write output `predictions` (predictions.csv: the model's predictions on the training rows).
    #[serde(default)]
    pub write_predictions: bool,
}

/// The params after defaults, as recorded in the metrics and the model's metadata.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    /// Model.
    pub model: ModelKind,
    /// Task.
    pub task: TaskKind,
    /// Label column.
    pub label: String,
    /// Epochs (`logistic`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epochs: Option<u32>,
    /// Learning rate (`logistic`, `gbdt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<f64>,
    /// L2 penalty.
    pub l2: f64,
    /// Boosting rounds (`gbdt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trees: Option<u32>,
    /// Maximum depth (`gbdt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
    /// Minimum rows per leaf (`gbdt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_leaf: Option<u32>,
    /// Bins per feature (`gbdt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bins: Option<u32>,
    /// Row sampling fraction (`gbdt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subsample: Option<f64>,
    /// Seed.
    pub seed: u64,
}

impl Params {
    /// Checks the params and fills in the defaults.
    pub fn settings(&self) -> Result<Settings, Error> {
        let model = self.model.unwrap_or(ModelKind::Logistic);
        let name = match model {
            ModelKind::Logistic => "logistic",
            ModelKind::Linear => "linear",
            ModelKind::Gbdt => "gbdt",
        };
        let only = |set: bool, param: &str, models: &str| -> Result<(), Error> {
            match set {
                true => Err(Error::invalid_params(format!("`{param}` applies to model {models}, not \"{name}\""))),
                false => Ok(()),
            }
        };
        let gbdt = model == ModelKind::Gbdt;
        only(model != ModelKind::Logistic && self.epochs.is_some(), "epochs", "\"logistic\"")?;
        only(model == ModelKind::Linear && self.learning_rate.is_some(), "learning_rate", "\"logistic\" or \"gbdt\"")?;
        for (set, param) in [
            (self.trees.is_some(), "trees"),
            (self.depth.is_some(), "depth"),
            (self.min_leaf.is_some(), "min_leaf"),
            (self.bins.is_some(), "bins"),
            (self.subsample.is_some(), "subsample"),
        ] {
            only(!gbdt && set, param, "\"gbdt\"")?;
        }
        let task = match (model, self.task) {
            (ModelKind::Logistic, None | Some(TaskKind::Classification)) => TaskKind::Classification,
            (ModelKind::Linear, None | Some(TaskKind::Regression)) => TaskKind::Regression,
            (ModelKind::Gbdt, t) => t.unwrap_or(TaskKind::Classification),
            (_, Some(t)) => {
                return Err(Error::invalid_params(format!("model \"{name}\" cannot do task \"{}\"", task_name(t))));
            }
        };
        let range = |ok: bool, what: &str| if ok { Ok(()) } else { Err(Error::invalid_params(what.to_owned())) };
        if self.label.is_empty() {
            return Err(Error::invalid_params("`label` is empty"));
        }
        let learning_rate = match model {
            ModelKind::Logistic => Some(self.learning_rate.unwrap_or(0.5)),
            ModelKind::Linear => None,
            ModelKind::Gbdt => Some(self.learning_rate.unwrap_or(0.1)),
        };
        if let Some(lr) = learning_rate {
            range(lr.is_finite() && lr > 0.0, "`learning_rate` must be > 0")?;
        }
        let l2 = self.l2.unwrap_or(if gbdt { 1.0 } else { 1e-4 });
        range(l2.is_finite() && l2 >= 0.0, "`l2` must be >= 0")?;
        let epochs = (model == ModelKind::Logistic).then(|| self.epochs.unwrap_or(200));
        range(epochs.is_none_or(|e| (1..=1_000_000).contains(&e)), "`epochs` must be in 1..=1000000")?;
        let trees = gbdt.then(|| self.trees.unwrap_or(100));
        range(trees.is_none_or(|t| (1..=100_000).contains(&t)), "`trees` must be in 1..=100000")?;
        let depth = gbdt.then(|| self.depth.unwrap_or(5));
        range(depth.is_none_or(|d| (1..=20).contains(&d)), "`depth` must be in 1..=20")?;
        let min_leaf = gbdt.then(|| self.min_leaf.unwrap_or(20));
        range(min_leaf.is_none_or(|m| m >= 1), "`min_leaf` must be >= 1")?;
        let bins = gbdt.then(|| self.bins.unwrap_or(255));
        range(bins.is_none_or(|b| (2..=256).contains(&b)), "`bins` must be in 2..=256")?;
        let subsample = gbdt.then(|| self.subsample.unwrap_or(1.0));
        range(subsample.is_none_or(|s| s > 0.0 && s <= 1.0), "`subsample` must be in (0, 1]")?;
        Ok(Settings {
            model,
            task,
            label: self.label.clone(),
            epochs,
            learning_rate,
            l2,
            trees,
            depth,
            min_leaf,
            bins,
            subsample,
            seed: self.seed.unwrap_or(0),
        })
    }
}

fn task_name(t: TaskKind) -> &'static str {
    match t {
        TaskKind::Classification => "classification",
        TaskKind::Regression => "regression",
    }
}

/// The training metrics (output `metrics`, and the run's summary).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// Model.
    pub model: ModelKind,
    /// Task.
    pub task: TaskKind,
    /// Label column.
    pub label: String,
    /// Training rows.
    pub rows: usize,
    /// Feature columns, in model input order.
    pub features: Vec<String>,
    /// Class labels (classification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<i64>>,
    /// Training-set metrics of the written model: `accuracy`, `log_loss` or `rmse`, `mae`, `r2`.
    pub train: BTreeMap<String, f64>,
    /// The params after defaults.
    pub params: Settings,
    /// Gradient descent epochs run (`logistic`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epochs_run: Option<u32>,
    /// Regularised training loss of the final weights (`logistic`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_loss: Option<f64>,
    /// Number of trees (`gbdt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trees: Option<usize>,
    /// Number of leaves over all trees (`gbdt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaves: Option<usize>,
    /// SHA-256 of the input CSV's bytes.
    pub data_sha256: String,
    /// SHA-256 of `model.onnx`.
    pub model_sha256: String,
    /// Size of `model.onnx` in bytes.
    pub model_bytes: usize,
    /// SHA-256 of the model's predictions on the training rows, as written to predictions.csv
    /// (see [`Predictions::to_csv`]) — whether or not that file is written.
    pub predictions_sha256: String,
    /// The first (up to 5) predictions: `{"variable": v}` or `{"label": l, "probabilities": [..]}`.
    pub first_predictions: Vec<serde_json::Value>,
}

/// How long each stage took (not part of any output: outputs are deterministic).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// Reading the CSV.
    pub parse: Duration,
    /// Training.
    pub fit: Duration,
    /// Predicting the training rows and computing metrics.
    pub predict: Duration,
    /// Writing the ONNX bytes.
    pub encode: Duration,
}

/// Everything a training run produces.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The model.
    pub model: OnnxModel,
    /// `model.onnx`.
    pub onnx: Vec<u8>,
    /// The model's predictions on the training rows.
    pub predictions: Predictions,
    /// Those predictions as CSV (predictions.csv).
    pub predictions_csv: String,
    /// Metrics.
    pub metrics: Metrics,
    /// Stage timings.
    pub timings: Timings,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The predictions of `model` for `x` (row-major, `rows × features`): exactly what its ONNX
/// graph computes, up to float rounding (float32 where the graph is float32).
pub fn predict(model: &OnnxModel, x: &[f32]) -> Predictions {
    model.predict(x)
}

/// Trains on `csv` (the input file's text). `progress(done, total, what)` reports epochs or rounds.
pub fn train(csv: &str, params: &Params, progress: &mut dyn FnMut(u64, u64, &str)) -> Result<Trained, Error> {
    let settings = params.settings()?;
    let mut timings = Timings::default();
    let t = Instant::now();
    let d = data::parse(csv, &settings.label, params.features.as_deref())?;
    if let Some(j) = d.x.iter().position(|v| !v.is_finite()) {
        let f = d.n_features();
        return Err(Error::bad_input(format!(
            "feature `{}`, row {}: value out of float32 range",
            d.features[j % f],
            j / f + 1
        )));
    }
    timings.parse = t.elapsed();

    let t = Instant::now();
    let classes = match settings.task {
        TaskKind::Classification => Some(class_labels(&d.y, &settings.label)?),
        TaskKind::Regression => None,
    };
    let class_of: Vec<usize> = match &classes {
        Some(c) => d.y.iter().map(|&y| c.binary_search(&(y as i64)).expect("a label of the data")).collect(),
        None => Vec::new(),
    };
    let (mut epochs_run, mut final_loss, mut trees, mut leaves) = (None, None, None, None);
    let model = match settings.model {
        ModelKind::Linear => OnnxModel::Linear(linear::linear_regression(&d, settings.l2)?),
        ModelKind::Logistic => {
            let epochs = settings.epochs.unwrap_or(1);
            let lr = settings.learning_rate.unwrap_or(0.5);
            let classes = classes.as_deref().unwrap_or_default();
            let mut report = |done, total| progress(done, total, "epochs");
            let (m, r) = linear::logistic_regression(&d, &class_of, classes, epochs, lr, settings.l2, &mut report);
            epochs_run = Some(r.epochs);
            final_loss = Some(r.loss);
            OnnxModel::Logistic(m)
        }
        ModelKind::Gbdt => {
            let objective = match &classes {
                Some(c) => gbdt::Objective::Classification { class_of: class_of.clone(), classes: c.clone() },
                None => gbdt::Objective::Regression,
            };
            let s = gbdt::GbdtSettings {
                rounds: settings.trees.unwrap_or(100),
                depth: settings.depth.unwrap_or(5),
                learning_rate: settings.learning_rate.unwrap_or(0.1),
                l2: settings.l2,
                min_leaf: settings.min_leaf.unwrap_or(20),
                bins: settings.bins.unwrap_or(255),
                subsample: settings.subsample.unwrap_or(1.0),
                seed: settings.seed,
            };
            let m = gbdt::train(&d, &objective, &s, &mut |done, total| progress(done, total, "rounds"));
            trees = Some(m.trees.len());
            leaves = Some(
                m.trees
                    .iter()
                    .map(|t| t.nodes.iter().filter(|n| matches!(n, dagrun_onnx_writer::TreeNode::Leaf { .. })).count())
                    .sum(),
            );
            OnnxModel::Trees(m)
        }
    };
    timings.fit = t.elapsed();

    let t = Instant::now();
    let predictions = predict(&model, &d.x);
    let class_list = classes.clone().unwrap_or_default();
    let train_metrics = match &classes {
        Some(c) => metrics::classification(&predictions, &class_of, c),
        None => metrics::regression(&predictions, &d.y),
    };
    let predictions_csv = predictions.to_csv(&class_list);
    let first_predictions = first_predictions(&predictions, 5);
    timings.predict = t.elapsed();

    let t = Instant::now();
    let data_sha256 = sha256_hex(csv.as_bytes());
    let info = ModelInfo {
        producer_name: "dagrun-train".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!(
            "{} {} of `{}` on {} features; input `input` float [N, {}] in the order of metadata `features`",
            json(&settings.model).trim_matches('"'),
            task_name(settings.task),
            settings.label,
            d.n_features(),
            d.n_features()
        ),
        metadata: BTreeMap::from([
            ("features".into(), json(&d.features)),
            ("label".into(), settings.label.clone()),
            ("model".into(), json(&settings.model).trim_matches('"').to_owned()),
            ("task".into(), task_name(settings.task).to_owned()),
            ("params".into(), json(&settings)),
            ("classes".into(), json(&class_list)),
            ("train_data_sha256".into(), data_sha256.clone()),
        ]),
    };
    let onnx = model.to_bytes(&info).map_err(|e| Error::failed(format!("cannot write the ONNX model: {e}")))?;
    timings.encode = t.elapsed();

    let metrics = Metrics {
        model: settings.model,
        task: settings.task,
        label: settings.label.clone(),
        rows: d.rows(),
        features: d.features.clone(),
        classes,
        train: train_metrics,
        params: settings,
        epochs_run,
        final_loss,
        trees,
        leaves,
        data_sha256,
        model_sha256: sha256_hex(&onnx),
        model_bytes: onnx.len(),
        predictions_sha256: sha256_hex(predictions_csv.as_bytes()),
        first_predictions,
    };
    Ok(Trained { model, onnx, predictions, predictions_csv, metrics, timings })
}

fn json<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).expect("serializable")
}

/// The sorted distinct labels; each must be an integer.
fn class_labels(y: &[f64], label: &str) -> Result<Vec<i64>, Error> {
    let mut classes = BTreeSet::new();
    for (i, &v) in y.iter().enumerate() {
        if v.fract() != 0.0 || v.abs() > 9.0e15 {
            return Err(Error::bad_input(format!(
                "label `{label}`, row {}: {v} is not an integer class (use task \"regression\" for a numeric target)",
                i + 1
            )));
        }
        classes.insert(v as i64);
    }
    if classes.len() < 2 {
        return Err(Error::bad_input(format!(
            "label `{label}` has {} distinct value(s); classification needs at least 2",
            classes.len()
        )));
    }
    if classes.len() > 256 {
        return Err(Error::bad_input(format!(
            "label `{label}` has {} distinct values; classification supports up to 256 (a numeric target? use task \"regression\")",
            classes.len()
        )));
    }
    Ok(classes.into_iter().collect())
}

fn first_predictions(p: &Predictions, n: usize) -> Vec<serde_json::Value> {
    match p {
        Predictions::Regression(v) => v.iter().take(n).map(|v| serde_json::json!({ "variable": v })).collect(),
        Predictions::Classification { labels, probabilities, classes } => labels
            .iter()
            .zip(probabilities.chunks(*classes))
            .take(n)
            .map(|(l, p)| serde_json::json!({ "label": l, "probabilities": p }))
            .collect(),
    }
}

/// The plugin.
#[derive(Debug)]
pub struct Train;

impl Task for Train {
    type Params = Params;
    type Output = Metrics;

    fn describe() -> Info {
        Info::new("train", env!("CARGO_PKG_VERSION"))
            .description(
                "Trains logistic regression, linear regression or gradient-boosted trees on input `data` (CSV) \
                 and writes output `model` (model.onnx) and `metrics` (metrics.json).",
            )
            .params_schema(PARAMS_SCHEMA)
    }

    fn run(ctx: &mut Ctx, params: Params) -> Result<Metrics, Error> {
        let path = ctx.input("data")?;
        let csv = std::fs::read_to_string(&path)
            .map_err(|e| Error::bad_input(format!("cannot read input `data` ({}): {e}", path.display())))?;
        let trained = train(&csv, &params, &mut |done, total, what| ctx.progress(done, total, what))?;
        let m = &trained.metrics;
        let t = trained.timings;
        ctx.log_info(format!(
            "trained {:?} ({}) on {} rows × {} features: {}; parse {:.3}s, fit {:.3}s, predict {:.3}s, encode {:.3}s",
            m.model,
            task_name(m.task),
            m.rows,
            m.features.len(),
            m.train.iter().map(|(k, v)| format!("{k} {v:.6}")).collect::<Vec<_>>().join(", "),
            t.parse.as_secs_f64(),
            t.fit.as_secs_f64(),
            t.predict.as_secs_f64(),
            t.encode.as_secs_f64(),
        ));
        std::fs::write(ctx.output_file("model", "model.onnx"), &trained.onnx)?;
        let mut json = serde_json::to_string_pretty(&trained.metrics)?;
        json.push('\n');
        std::fs::write(ctx.output_file("metrics", "metrics.json"), json)?;
        if params.write_predictions {
            std::fs::write(ctx.output_file("predictions", "predictions.csv"), &trained.predictions_csv)?;
        }
        Ok(trained.metrics)
    }
}

const PARAMS_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["label"],
  "additionalProperties": false,
  "properties": {
    "model": {"enum": ["logistic", "linear", "gbdt"], "default": "logistic"},
    "label": {"type": "string"},
    "features": {"type": "array", "items": {"type": "string"}},
    "task": {"enum": ["classification", "regression"]},
    "epochs": {"type": "integer", "minimum": 1, "default": 200},
    "learning_rate": {"type": "number", "exclusiveMinimum": 0},
    "l2": {"type": "number", "minimum": 0},
    "trees": {"type": "integer", "minimum": 1, "default": 100},
    "depth": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5},
    "min_leaf": {"type": "integer", "minimum": 1, "default": 20},
    "bins": {"type": "integer", "minimum": 2, "maximum": 256, "default": 255},
    "subsample": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 1},
    "seed": {"type": "integer", "minimum": 0, "default": 0},
    "write_predictions": {"type": "boolean", "default": false}
  }
}"#;

dagrun_sdk::export_task!(Train);

#[cfg(test)]
mod tests;
