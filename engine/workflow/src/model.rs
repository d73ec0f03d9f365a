//! The serde types of `workflow.ron`: what a user writes, field by field.
//!
//! Every struct denies unknown fields, so a typo is an error that points at the line.
//! The full format is documented in `docs/workflow-format.md`.

use std::collections::BTreeMap;

use dagrun_smallmap::SmallMap;
use serde::Deserialize;

/// The top level of a workflow file. Its tasks are first skipped (`T` = [`IgnoredAny`]) and read
/// one by one, so that every task's errors are reported at once; when spans are unavailable they
/// are read in one go instead (`T` = [`TaskDef`]).
///
/// [`IgnoredAny`]: serde::de::IgnoredAny
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "Workflow")]
pub(crate) struct RawWorkflow<T = serde::de::IgnoredAny> {
    pub name: String,
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default)]
    pub partitions: BTreeMap<String, crate::partition::SchemeDef>,
    #[serde(default)]
    pub schedule: Option<crate::automation::RawSchedule>,
    #[serde(default)]
    pub triggers: Vec<crate::automation::TriggerDef>,
    #[serde(default)]
    pub concurrency: crate::automation::Concurrency,
    #[serde(default)]
    pub notify: Vec<crate::heal::NotifyDef>,
    #[serde(default)]
    pub manual_minutes: Option<u32>,
    #[serde(default)]
    pub executor: Option<crate::executor::ExecutorDef>,
    #[serde(default)]
    pub remote_cache: Option<String>,
    pub tasks: Vec<T>,
}

impl RawWorkflow<TaskDef> {
    /// The top level (tasks left as [`IgnoredAny`](serde::de::IgnoredAny), one per task) and the tasks.
    pub(crate) fn split(self) -> (RawWorkflow, Vec<TaskDef>) {
        let RawWorkflow {
            name,
            defaults,
            partitions,
            schedule,
            triggers,
            concurrency,
            notify,
            manual_minutes,
            executor,
            remote_cache,
            tasks,
        } = self;
        let ignored = vec![serde::de::IgnoredAny; tasks.len()];
        let raw = RawWorkflow {
            name,
            defaults,
            partitions,
            schedule,
            triggers,
            concurrency,
            notify,
            manual_minutes,
            executor,
            remote_cache,
            tasks: ignored,
        };
        (raw, tasks)
    }
}

/// Settings every task inherits unless it sets its own.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename = "Defaults")]
pub struct Defaults {
    /// How many times a failed task is retried (default 0).
    #[serde(default)]
    pub retries: Option<u32>,
    /// Wall-clock limit per attempt, e.g. `"30s"`, `"10m"`, `"2h"` (default: none).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Delay before the first retry; doubles on each further retry (default `"1s"`).
    #[serde(default)]
    pub backoff: Option<String>,
}

/// One task as written in the file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename = "Task")]
pub struct TaskDef {
    /// Unique name: letters, digits, `_` and `-`.
    pub name: String,
    /// What the task runs.
    pub kind: TaskKind,
    /// Named inputs: files, globs, or another task's named output.
    #[serde(default)]
    pub inputs: SmallMap<String, Input>,
    /// Named output files, relative to the workflow file's directory.
    #[serde(default)]
    pub outputs: SmallMap<String, String>,
    /// Arbitrary parameters, passed to the task as JSON.
    #[serde(default)]
    pub params: SmallMap<String, ron::Value>,
    /// Tasks that must finish first, without passing data.
    #[serde(default)]
    pub after: Vec<String>,
    /// Overrides `defaults.retries`.
    #[serde(default)]
    pub retries: Option<u32>,
    /// Overrides `defaults.timeout`.
    #[serde(default)]
    pub timeout: Option<String>,
    /// The partition scheme this task runs per (a name under the workflow's `partitions`).
    #[serde(default)]
    pub partitioned: Option<String>,
    /// Run only when an upstream task raised an alert: `only_if: Alerted("drift")`.
    #[serde(default)]
    pub only_if: Option<crate::heal::Condition>,
    /// Where it runs: `Local` (default), `Slurm(...)` or `Ray(...)`; overrides the workflow's.
    #[serde(default)]
    pub executor: Option<crate::executor::ExecutorDef>,
}

/// What a task runs.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub enum TaskKind {
    /// A shell command (`sh -c`), run in the workflow file's directory.
    Command(CommandTask),
    /// A WASM plugin: a `.wasm` component or a plugin crate directory.
    Wasm(WasmTask),
    /// Native ONNX evaluation of a model input over a CSV input.
    OnnxEval(Box<OnnxEvalTask>),
    /// Native batch inference with an ONNX model (a given one, or the deployed one).
    OnnxPredict(Box<OnnxPredictTask>),
    /// Native drift detection: a current dataset compared with a reference one.
    Drift(Box<DriftTask>),
    /// Native live performance check of a model on freshly labelled data.
    Performance(Box<PerformanceTask>),
    /// A person's approval, when a deploy needs one (else it passes by itself).
    Approval(Box<crate::heal::ApprovalTask>),
}

impl TaskKind {
    /// Whether an instance runs every time, never served from the cache: its result depends
    /// on state outside its inputs (an `Approval` asks the approvals store and the registry).
    pub fn always_runs(&self) -> bool {
        matches!(self, TaskKind::Approval(_))
    }

    /// A stable lower-case name for this kind, used in cache keys and messages.
    pub fn label(&self) -> &'static str {
        match self {
            TaskKind::Command(_) => "command",
            TaskKind::Wasm(_) => "wasm",
            TaskKind::OnnxEval(_) => "onnx-eval",
            TaskKind::OnnxPredict(_) => "onnx-predict",
            TaskKind::Drift(_) => "drift",
            TaskKind::Performance(_) => "performance",
            TaskKind::Approval(_) => "approval",
        }
    }
}

/// `Command(run: "python train.py", env: {"SEED": "1"})`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename = "Command")]
pub struct CommandTask {
    /// The shell command line.
    pub run: String,
    /// Extra environment variables (part of the cache key).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// `Wasm(plugin: "plugins/train", memory: "512MiB", mounts: {"registry": (path: "registry", writable: true)})`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename = "Wasm")]
pub struct WasmTask {
    /// A `.wasm` file or a plugin crate directory, relative to the workflow file.
    pub plugin: String,
    /// Memory cap of the plugin, e.g. `"512MiB"` (default `"1GiB"`).
    #[serde(default)]
    pub memory: Option<String>,
    /// Extra host directories the plugin may use, seen as `/mnt/<name>`; read-only unless `writable`.
    #[serde(default)]
    pub mounts: BTreeMap<String, MountDef>,
}

/// An extra host directory granted to a plugin.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename = "Mount")]
pub struct MountDef {
    /// Host directory, relative to the workflow file (created if missing).
    pub path: String,
    /// Whether the plugin may write there (default: read-only).
    #[serde(default)]
    pub writable: bool,
}

/// `OnnxEval(model: "model", data: "test", label: "churned", gate: Gate(...))`: scores a
/// candidate model (an input) on a CSV (an input) and, with a gate, refuses worse models.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename = "OnnxEval")]
pub struct OnnxEvalTask {
    /// Name of the input holding the candidate model.
    pub model: String,
    /// Name of the input holding the evaluation CSV.
    pub data: String,
    /// The label column of the CSV (default `"label"`).
    #[serde(default = "default_label")]
    pub label: String,
    /// Feature columns in the model's input order (default: every other column).
    #[serde(default)]
    pub features: Option<Vec<String>>,
    /// The promotion gate; without one the task only measures.
    #[serde(default)]
    pub gate: Option<GateDef>,
    /// Data columns copied into predictions.csv (e.g. a column to slice metrics by).
    #[serde(default)]
    pub passthrough: Vec<String>,
}

fn default_label() -> String {
    "label".to_owned()
}

/// `OnnxPredict(data: "batch", deployed: Deployed(registry: "registry", name: "churn"))` or
/// `OnnxPredict(data: "batch", model: "model")`: predictions for every row of a CSV.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename = "OnnxPredict")]
pub struct OnnxPredictTask {
    /// Name of the input holding the model (exclusive with `deployed`).
    #[serde(default)]
    pub model: Option<String>,
    /// Use the model currently deployed in a registry (exclusive with `model`).
    #[serde(default)]
    pub deployed: Option<DeployedDef>,
    /// Name of the input holding the CSV to score.
    pub data: String,
    /// Feature columns in the model's input order (default: the model's own list, else every
    /// column but `label`).
    #[serde(default)]
    pub features: Option<Vec<String>>,
    /// A column to leave out of the default features (e.g. a label present in the data).
    #[serde(default)]
    pub label: Option<String>,
}

/// Where a `Drift` or `Performance` task gets a file: one of its inputs (`"reference"`), or
/// the registry (`Deployed(registry: "registry", name: "churn")`): the deployed model, or for
/// a `reference`, the data that model was trained on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum DataSource {
    /// The named input.
    Input(String),
    /// The model deployed as `name` in `registry` (or its recorded training data).
    Deployed(DeployedDef),
}

impl<'de> Deserialize<'de> for DataSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{EnumAccess, Error, MapAccess, VariantAccess, Visitor};
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DataSource;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an input name (\"reference\") or Deployed(registry: \"registry\", name: \"churn\")")
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<DataSource, E> {
                Ok(DataSource::Input(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<DataSource, A::Error> {
                DeployedDef::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(DataSource::Deployed)
            }
            fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<DataSource, A::Error> {
                let (name, variant): (String, _) = data.variant()?;
                if name != "Deployed" {
                    return Err(A::Error::custom(format!(
                        "expected an input name (\"reference\") or Deployed(registry: ..., name: ...), found `{name}`"
                    )));
                }
                variant.struct_variant(&["registry", "name"], DeployedVisitor).map(DataSource::Deployed)
            }
        }
        struct DeployedVisitor;
        impl<'de> Visitor<'de> for DeployedVisitor {
            type Value = DeployedDef;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("Deployed(registry: \"registry\", name: \"churn\")")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<DeployedDef, A::Error> {
                DeployedDef::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_any(V)
    }
}

/// `Drift(reference: "reference", current: "current", ...)`: compares the current data with the
/// reference data column by column (and, with a `model`, their predictions).
#[derive(Debug, Clone, Deserialize, PartialEq, serde::Serialize)]
#[serde(deny_unknown_fields, rename = "Drift")]
pub struct DriftTask {
    /// The reference data: an input name, or `Deployed(...)`: what the deployed model was trained on.
    pub reference: DataSource,
    /// Name of the input holding the current data.
    pub current: String,
    /// Columns to compare (default: every column in both files but `exclude`).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Columns never compared (an id, the label).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Columns compared as categories even when their values are numbers.
    #[serde(default)]
    pub categorical: Vec<String>,
    /// Columns whose drift alone makes the dataset drifted.
    #[serde(default)]
    pub critical: Vec<String>,
    /// Share of drifted columns at which the dataset is drifted (default 0.5).
    #[serde(default)]
    pub drift_share: Option<f64>,
    /// Usable values needed on each side, else `insufficient data` (default 30).
    #[serde(default)]
    pub min_rows: Option<u64>,
    /// Bins for PSI and Jensen–Shannon on numeric columns (default 10).
    #[serde(default)]
    pub bins: Option<u32>,
    /// The test for numeric columns without their own (default: KS up to 1,000 reference rows, else Wasserstein).
    #[serde(default)]
    pub numeric_test: Option<TestDef>,
    /// The test for categorical columns without their own (default: chi-square up to 1,000 rows, else Jensen–Shannon).
    #[serde(default)]
    pub categorical_test: Option<TestDef>,
    /// Per-column tests: `{"income": (method: Psi, threshold: 0.2)}`.
    #[serde(default)]
    pub tests: BTreeMap<String, TestDef>,
    /// A model to score both datasets with: prediction drift is reported too.
    #[serde(default)]
    pub model: Option<DataSource>,
    /// Drift fails the task (exit code 6) instead of being reported in a successful one.
    #[serde(default)]
    pub fail_on_drift: bool,
    /// With `reference: Deployed(...)`: for this long after that model was promoted, drift is
    /// reported and notified but held (status `held`), so `only_if: Alerted(...)` tasks (a
    /// retrain) do not run, e.g. `"1d"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<String>,
}

/// `(method: Psi, threshold: 0.2)`: one column's drift test; either may be left out.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, serde::Serialize)]
#[serde(deny_unknown_fields, rename = "Test")]
pub struct TestDef {
    /// The test.
    #[serde(default)]
    pub method: Option<DriftMethod>,
    /// p-values: drift when p < threshold (default 0.05); distances: when ≥ threshold (default 0.1).
    #[serde(default)]
    pub threshold: Option<f64>,
}

/// A drift test, as written in a workflow file.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, serde::Serialize)]
pub enum DriftMethod {
    /// Kolmogorov–Smirnov (numeric; p-value).
    Ks,
    /// Wasserstein distance / reference std (numeric).
    Wasserstein,
    /// Population Stability Index.
    Psi,
    /// Jensen–Shannon distance.
    JensenShannon,
    /// Chi-square contingency test (categorical; p-value).
    ChiSquare,
}

/// `Performance(model: Deployed(registry: "registry", name: "churn"), data: "labelled")`: scores
/// a model on freshly labelled data and compares with the metrics its gate verdict recorded.
#[derive(Debug, Clone, Deserialize, PartialEq, serde::Serialize)]
#[serde(deny_unknown_fields, rename = "Performance")]
pub struct PerformanceTask {
    /// The model: `Deployed(...)` (its verdict is the baseline) or an input name (then `baseline` is required).
    pub model: DataSource,
    /// Name of the input holding the labelled data.
    pub data: String,
    /// The label column (default `"label"`).
    #[serde(default = "default_label")]
    pub label: String,
    /// Feature columns in the model's input order (default: the model's own list, else every other column).
    #[serde(default)]
    pub features: Option<Vec<String>>,
    /// Name of the input holding the baseline `verdict.json` or `metrics.json` (with a model input).
    #[serde(default)]
    pub baseline: Option<String>,
    /// How far each metric may fall behind the baseline (absolute), e.g. `{"accuracy": 0.05}`
    /// (default: 0.05 on every metric the gate checked, else accuracy / rmse).
    #[serde(default)]
    pub tolerance: BTreeMap<String, f64>,
    /// Labelled rows needed, else `insufficient data` (default 100).
    #[serde(default)]
    pub min_rows: Option<u64>,
    /// A regression fails the task (exit code 6) instead of being reported in a successful one.
    #[serde(default)]
    pub fail_on_regression: bool,
    /// With `model: Deployed(...)`: a regression of the deployed model moves the registry back
    /// to the version deployed before it (atomically) and says so.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollback: bool,
}

/// `Deployed(registry: "registry", name: "churn")`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(deny_unknown_fields, rename = "Deployed")]
pub struct DeployedDef {
    /// The model registry directory (relative to the workflow file).
    pub registry: String,
    /// The model's name in the registry.
    pub name: String,
}

/// `Gate(min: {"accuracy": 0.8}, max: {"log_loss": 0.5}, champion: Champion(...))`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, serde::Serialize)]
#[serde(deny_unknown_fields, rename = "Gate")]
pub struct GateDef {
    /// Metrics that must be at least these values.
    #[serde(default)]
    pub min: BTreeMap<String, f64>,
    /// Metrics that must be at most these values.
    #[serde(default)]
    pub max: BTreeMap<String, f64>,
    /// Compare with the model currently deployed under `name` in a registry.
    #[serde(default)]
    pub champion: Option<ChampionDef>,
}

/// `Champion(registry: "registry", name: "churn", metric: "accuracy", margin: 0.0, if_none: Pass)`.
#[derive(Debug, Clone, Deserialize, PartialEq, serde::Serialize)]
#[serde(deny_unknown_fields, rename = "Champion")]
pub struct ChampionDef {
    /// The model registry directory (relative to the workflow file).
    pub registry: String,
    /// The model's name in the registry.
    pub name: String,
    /// The metric to compare.
    pub metric: String,
    /// How much better the candidate must be (default 0: at least as good).
    #[serde(default)]
    pub margin: f64,
    /// What to do when nothing is deployed yet (default `Pass`).
    #[serde(default)]
    pub if_none: NoChampion,
    /// Require a strict improvement: a tie with the champion (within `margin`) is refused
    /// (default `false`: at least as good passes).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strict: bool,
}

/// Policy when no champion is deployed yet.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
pub enum NoChampion {
    /// The first model passes (if it meets the thresholds).
    #[default]
    Pass,
    /// Refuse until a model is deployed by hand.
    Refuse,
}

/// Where an input comes from.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub enum Input {
    /// One file, relative to the workflow file (or absolute).
    File(String),
    /// Every file matching a glob pattern, in sorted order.
    Glob(String),
    /// Output `output` of task `task`: `Output("train", "model")`.
    Output(String, String),
    /// Output `output` of several partitions of a partitioned task: those within this task's
    /// own partition (or the whole run, for an unpartitioned task), or with `last: N` the N
    /// partitions ending there (a trailing window).
    Partitions {
        /// Upstream (partitioned) task.
        task: String,
        /// Its output name.
        output: String,
        /// Trailing window size.
        #[serde(default)]
        last: Option<u32>,
    },
}
