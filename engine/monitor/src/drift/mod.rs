//! Drift detection: reads the reference and current data, tests each column with the method
//! its sample size calls for (or the one configured), decides per column and for the dataset,
//! and writes `drift.json` and the HTML report.

mod column;
mod decide;
mod histogram;
mod html;
mod measure;
mod plan;
mod predict;
mod select;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread;

pub use dagrun_contracts::drift::{
    ColumnKind, ColumnResult, DRIFT_FILE, DRIFT_VERSION, DataSummary, DriftReport, DriftStatus, Histogram, Method,
    Missing, Sample, Skipped,
};
use dagrun_table::{Column, Format, ReadOptions, Table, column_names, read_table};

pub(crate) use decide::fmt_num;
pub use select::{LOW_CARDINALITY, SMALL_SAMPLE, default_method};

/// How to compare two datasets. [`DriftOptions::default`] is Evidently's rule with dagrun's
/// guards; every field can be set in the workflow file.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftOptions {
    /// Columns to compare; `None`: every column present in both files, minus `exclude`.
    pub columns: Option<Vec<String>>,
    /// Columns never compared (e.g. an id or the label).
    pub exclude: Vec<String>,
    /// Columns compared as categories even when their values are numbers.
    pub categorical: Vec<String>,
    /// Columns whose drift alone makes the dataset drifted.
    pub critical: Vec<String>,
    /// The dataset is drifted when at least this share of the compared columns drifted.
    pub drift_share: f64,
    /// Below this many usable values on either side a column is `insufficient data`.
    pub min_rows: u64,
    /// Bins for PSI and Jensen–Shannon on numeric columns (reference quantiles).
    pub bins: usize,
    /// The test for every numeric column without its own (default: by sample size).
    pub numeric_test: Option<TestSpec>,
    /// The test for every categorical column without its own (default: by sample size).
    pub categorical_test: Option<TestSpec>,
    /// Per-column tests.
    pub tests: BTreeMap<String, TestSpec>,
}

impl Default for DriftOptions {
    fn default() -> Self {
        DriftOptions {
            columns: None,
            exclude: Vec::new(),
            categorical: Vec::new(),
            critical: Vec::new(),
            drift_share: 0.5,
            min_rows: DEFAULT_MIN_ROWS,
            bins: crate::stats::DEFAULT_BINS,
            numeric_test: None,
            categorical_test: None,
            tests: BTreeMap::new(),
        }
    }
}

/// Default minimum number of usable values per side.
pub const DEFAULT_MIN_ROWS: u64 = 30;

/// A column's test: the method (default: chosen by sample size) and its threshold (default:
/// the method's own, see [`Method::default_threshold`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TestSpec {
    /// The method.
    pub method: Option<Method>,
    /// p-value methods: drift when p < threshold; distances: drift when distance ≥ threshold.
    pub threshold: Option<f64>,
}

/// The files to compare.
#[derive(Debug, Clone)]
pub struct DriftInputs {
    /// The reference data (CSV or Parquet).
    pub reference: PathBuf,
    /// The current data.
    pub current: PathBuf,
    /// A model to score both with, for prediction drift.
    pub model: Option<PathBuf>,
    /// Scratch space (predictions of both datasets).
    pub work_dir: PathBuf,
}

/// Why drift could not be computed (not: "drift was found").
#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    /// A file could not be read.
    #[error(transparent)]
    Table(#[from] dagrun_table::TableError),
    /// The model could not score a dataset.
    #[error("scoring {} with the model: {source}", data.display())]
    Model {
        /// The dataset.
        data: PathBuf,
        /// The cause.
        source: dagrun_onnx::Error,
    },
    /// The options do not fit the data (e.g. a critical column that is not compared).
    #[error("{0}")]
    Options(String),
    /// An output could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Compares `inputs.current` with `inputs.reference`: both files read in parallel, the
/// columns compared on two worker threads, then the model's predictions (with a model).
pub fn detect(inputs: &DriftInputs, opts: &DriftOptions) -> Result<DriftReport, DriftError> {
    select::validate(opts)?;
    let ref_names = column_names(&inputs.reference)?;
    let cur_names = column_names(&inputs.current)?;
    let with_model = inputs.model.is_some();
    let plan = plan::plan((&inputs.reference, &ref_names), (&inputs.current, &cur_names), opts, with_model)?;
    let read = ReadOptions {
        columns: Some(plan.compared.clone()),
        exclude: Vec::new(),
        categorical: opts.categorical.iter().filter(|c| plan.compared.contains(c)).cloned().collect(),
    };
    let (reference, current) = read_both(&inputs.reference, &inputs.current, &read)?;
    let (ref_summary, cur_summary) = (summary(&inputs.reference, &reference), summary(&inputs.current, &current));
    let columns = compare_tables(reference, current, opts)?;
    let predictions = match &inputs.model {
        Some(model) => {
            let label = opts.exclude.iter().find(|c| ref_names.contains(c));
            predict::prediction_drift(model, inputs, opts, label)?
        }
        None => Vec::new(),
    };
    let d = decide::dataset(&columns, &predictions, opts.drift_share, opts.min_rows);
    Ok(DriftReport {
        version: DRIFT_VERSION,
        status: d.status,
        drifted: d.status == DriftStatus::Drift,
        reason: d.reason,
        share: d.share,
        drift_share: opts.drift_share,
        drifted_columns: d.drifted_columns,
        critical: opts.critical.clone(),
        reference: ref_summary,
        current: cur_summary,
        model: inputs.model.as_ref().map(|m| m.display().to_string()),
        columns,
        predictions,
        skipped: plan.skipped,
    })
}

/// Writes the report as a self-contained HTML page (inline SVG histograms; opens offline).
pub fn write_html(report: &DriftReport, path: &Path) -> Result<(), DriftError> {
    std::fs::write(path, html::render(report)).map_err(|source| DriftError::Write { path: path.to_path_buf(), source })
}

fn summary(path: &Path, table: &Table) -> DataSummary {
    let format = match table.format {
        Format::Csv => "csv",
        Format::Parquet => "parquet",
    };
    DataSummary { path: path.display().to_string(), format: format.into(), rows: table.rows }
}

/// Reads both files at once, one thread each.
fn read_both(reference: &Path, current: &Path, opts: &ReadOptions) -> Result<(Table, Table), DriftError> {
    let (r, c) = thread::scope(|s| {
        let r = s.spawn(|| read_table(reference, opts));
        let c = read_table(current, opts);
        (r.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)), c)
    });
    Ok((r?, c?))
}

/// Pairs the tables' columns by name (both were read with the same column list) and compares
/// them.
fn compare_tables(reference: Table, current: Table, opts: &DriftOptions) -> Result<Vec<ColumnResult>, DriftError> {
    let mut current: HashMap<String, Column> = current.columns.into_iter().map(|c| (c.name.clone(), c)).collect();
    let pairs = reference
        .columns
        .into_iter()
        .map(|r| {
            let c = current.remove(&r.name).expect("both sides were read with the same columns");
            let critical = opts.critical.contains(&r.name);
            (r, c, critical)
        })
        .collect();
    compare_all(pairs, opts)
}

/// Compares column pairs on up to [`thread::available_parallelism`] workers, each pulling the
/// next column; results come back in the pairs' order. Each column's data is dropped as soon as
/// it is compared.
pub(crate) fn compare_all(
    pairs: Vec<(Column, Column, bool)>,
    opts: &DriftOptions,
) -> Result<Vec<ColumnResult>, DriftError> {
    let n = pairs.len();
    let slots: Vec<Mutex<Option<(Column, Column, bool)>>> = pairs.into_iter().map(|p| Mutex::new(Some(p))).collect();
    let results: Vec<Mutex<Option<Result<ColumnResult, DriftError>>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let workers = thread::available_parallelism().map_or(2, |p| p.get()).min(n).max(1);
    let work = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = slots.get(i) else { break };
            let taken = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some((r, c, critical)) = taken {
                let result = column::compare(r, c, critical, opts);
                *results[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
            }
        }
    };
    thread::scope(|s| {
        for _ in 1..workers {
            s.spawn(work);
        }
        work();
    });
    results
        .into_iter()
        .map(|r| r.into_inner().unwrap_or_else(PoisonError::into_inner).expect("every column was compared"))
        .collect()
}
