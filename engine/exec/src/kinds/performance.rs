//! The `Performance` kind: scores a model (usually the deployed one) on freshly labelled data
//! natively and compares its metrics with those its gate verdict recorded. A regression is a
//! finding in a successful task's summary, or with `fail_on_regression` an alert.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dagrun_monitor::performance::{
    PERFORMANCE_VERSION, PerformanceOptions, PerformanceReport, PerformanceStatus, compare,
};
use dagrun_onnx::EvalOptions;
use dagrun_workflow::{DataSource, PerformanceTask};

use crate::kinds::{Attempt, AttemptFuture, Job, Kind, blocking, data_error, place};
use crate::outcome::{AttemptError, Failure, TaskError};

/// Every metric a baseline may hold.
const METRICS: [&str; 12] = dagrun_workflow::KNOWN_METRICS;

/// A `Performance` task prepared for one instance.
#[derive(Debug, Clone)]
pub(crate) struct PerformanceKind {
    spec: PerformanceTask,
    model: PathBuf,
    data: PathBuf,
    baseline: PathBuf,
    outputs: BTreeMap<String, PathBuf>,
}

impl PerformanceKind {
    pub(crate) fn new(job: &Job<'_>, spec: &PerformanceTask) -> Result<PerformanceKind, TaskError> {
        let unresolved =
            || TaskError::permanent(Failure::Input, "internal error: the deployed model was not resolved".to_owned());
        let model = match &spec.model {
            DataSource::Input(name) => job.input_file(name)?.path.clone(),
            DataSource::Deployed(_) => job.probe.resolved.deployed.as_ref().ok_or_else(unresolved)?.path.clone(),
        };
        let baseline = match (&spec.baseline, &job.probe.resolved.baseline) {
            (Some(name), _) => job.input_file(name)?.path.clone(),
            (None, Some(b)) => b.path.clone(),
            (None, None) => return Err(unresolved()),
        };
        Ok(PerformanceKind {
            spec: spec.clone(),
            model,
            data: job.input_file(&spec.data)?.path.clone(),
            baseline,
            outputs: job.outputs.clone(),
        })
    }

    fn check(&self, stage: &Path) -> Result<Option<serde_json::Value>, AttemptError> {
        let baseline = read_baseline(&self.baseline)?;
        let mut opts = EvalOptions::new(self.spec.label.clone());
        opts.features.clone_from(&self.spec.features);
        opts.write_predictions = false;
        // Labels arrive late: rows without one are counted, not scored.
        opts.skip_unlabelled = true;
        let defaults = PerformanceOptions::default();
        let popts = PerformanceOptions {
            tolerance: self.spec.tolerance.clone(),
            min_rows: self.spec.min_rows.unwrap_or(defaults.min_rows),
        };
        let report = match dagrun_onnx::evaluate_metrics(&self.model, &self.data, &opts) {
            Ok(eval) => {
                let current: BTreeMap<String, f64> =
                    METRICS.iter().filter_map(|m| eval.metrics.get(m).map(|v| ((*m).to_owned(), v))).collect();
                let mut report = compare(&baseline, &current, eval.rows, &popts)
                    .map_err(|e| TaskError::permanent(Failure::Data, e.to_string()))?;
                report.unlabelled = eval.unlabelled;
                if report.status == PerformanceStatus::InsufficientData && eval.unlabelled > 0 {
                    report.reason.push_str(&format!(" ({} more rows have no label yet)", eval.unlabelled));
                }
                report
            }
            // No label has arrived yet: too few to judge, like any count below `min_rows`.
            Err(dagrun_onnx::Error::NoLabelledRows { unlabelled, .. }) => PerformanceReport {
                version: PERFORMANCE_VERSION,
                status: PerformanceStatus::InsufficientData,
                regressed: false,
                reason: format!("no labelled rows: all {unlabelled} rows have no label yet"),
                rows: 0,
                unlabelled,
                metrics: Vec::new(),
            },
            Err(e) => return Err(TaskError::new(Failure::Model, e.to_string()).into()),
        };
        dagrun_cache::ensure_dir(stage).map_err(|e| data_error(format!("cannot create {}: {e}", stage.display())))?;
        let json = stage.join("performance.json");
        std::fs::write(&json, report.to_json())
            .map_err(|e| data_error(format!("cannot write performance.json: {e}")))?;
        place(&self.outputs, "report", &json, Failure::Cache)?;
        let summary = serde_json::json!({
            "regressed": report.regressed,
            "status": report.status,
            "reason": report.reason,
            "rows": report.rows,
            "unlabelled": report.unlabelled,
        });
        if report.regressed && self.spec.fail_on_regression {
            let reason = format!("performance regression: {}", report.reason);
            return Err(AttemptError::Alert { reason, summary: Some(summary) });
        }
        Ok(Some(summary))
    }
}

impl Kind for PerformanceKind {
    fn attempt<'a>(&'a self, a: Attempt<'a>) -> AttemptFuture<'a> {
        let stage = a.stage_dir("performance");
        let this = self.clone();
        Box::pin(async move {
            let stage2 = stage.clone();
            let result = blocking(Failure::Model, move || this.check(&stage2)).await;
            let _ = std::fs::remove_dir_all(&stage);
            result
        })
    }
}

/// The recorded metrics: a `verdict.json` (its candidate's metrics) or a `metrics.json`.
fn read_baseline(path: &Path) -> Result<BTreeMap<String, f64>, TaskError> {
    let bad = |why: String| data_error(format!("baseline {}: {why}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
    let metrics = json.pointer("/candidate/metrics").unwrap_or(&json);
    let found: BTreeMap<String, f64> =
        METRICS.iter().filter_map(|m| metrics.get(m).and_then(|v| v.as_f64()).map(|v| ((*m).to_owned(), v))).collect();
    if found.is_empty() {
        return Err(bad(format!(
            "no metrics found; expected a verdict.json or metrics.json holding some of: {}",
            METRICS.join(", ")
        )));
    }
    Ok(found)
}
