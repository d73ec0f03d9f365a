//! The `Drift` kind: compares the current data with the reference data natively
//! (`dagrun_monitor`) and writes `drift.json` and, if declared, the HTML report. Drift is a
//! finding in a successful task's summary, or with `fail_on_drift` an alert.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dagrun_monitor::drift::{DriftInputs, DriftOptions, DriftReport, Method, TestSpec};
use dagrun_workflow::{DataSource, DriftMethod, DriftTask, TestDef};

use crate::kinds::{Attempt, AttemptFuture, Job, Kind, blocking, data_error, place};
use crate::outcome::{AttemptError, Failure, TaskError};

/// A `Drift` task prepared for one instance: the exact files whose bytes are in its key.
#[derive(Debug, Clone)]
pub(crate) struct DriftKind {
    opts: DriftOptions,
    reference: PathBuf,
    current: PathBuf,
    model: Option<PathBuf>,
    fail_on_drift: bool,
    outputs: BTreeMap<String, PathBuf>,
}

impl DriftKind {
    pub(crate) fn new(job: &Job<'_>, spec: &DriftTask) -> Result<DriftKind, TaskError> {
        let registry = |what: &str| {
            TaskError::permanent(Failure::Input, format!("internal error: the registry {what} was not resolved"))
        };
        let reference = match &spec.reference {
            DataSource::Input(name) => job.input_file(name)?.path.clone(),
            DataSource::Deployed(_) => {
                job.probe.resolved.reference.as_ref().ok_or_else(|| registry("reference"))?.path.clone()
            }
        };
        let model = match &spec.model {
            None => None,
            Some(DataSource::Input(name)) => Some(job.input_file(name)?.path.clone()),
            Some(DataSource::Deployed(_)) => {
                Some(job.probe.resolved.deployed.as_ref().ok_or_else(|| registry("model"))?.path.clone())
            }
        };
        Ok(DriftKind {
            opts: options(spec),
            reference,
            current: job.input_file(&spec.current)?.path.clone(),
            model,
            fail_on_drift: spec.fail_on_drift,
            outputs: job.outputs.clone(),
        })
    }

    /// Detects and writes the outputs (blocking).
    fn detect(&self, stage: &Path) -> Result<Option<serde_json::Value>, AttemptError> {
        let inputs = DriftInputs {
            reference: self.reference.clone(),
            current: self.current.clone(),
            model: self.model.clone(),
            work_dir: stage.to_path_buf(),
        };
        dagrun_cache::ensure_dir(stage).map_err(|e| data_error(format!("cannot create {}: {e}", stage.display())))?;
        let report = dagrun_monitor::drift::detect(&inputs, &self.opts).map_err(|e| data_error(e.to_string()))?;
        let json = stage.join(dagrun_contracts::drift::DRIFT_FILE);
        std::fs::write(&json, report.to_json()).map_err(|e| data_error(format!("cannot write drift.json: {e}")))?;
        place(&self.outputs, "report", &json, Failure::Cache)?;
        if self.outputs.contains_key("html") {
            let html = stage.join("drift.html");
            dagrun_monitor::drift::write_html(&report, &html).map_err(|e| data_error(e.to_string()))?;
            place(&self.outputs, "html", &html, Failure::Cache)?;
        }
        if report.drifted && self.fail_on_drift {
            return Err(AttemptError::Alert {
                reason: format!("drift: {}", report.reason),
                summary: Some(summary(&report)),
            });
        }
        Ok(Some(summary(&report)))
    }
}

/// The task's summary (run history, `--json` events): the decision and the drifted columns.
fn summary(r: &DriftReport) -> serde_json::Value {
    serde_json::json!({
        "drifted": r.drifted,
        "reason": r.reason,
        "share": r.share,
        "drift_share": r.drift_share,
        "drifted_columns": r.drifted_columns,
    })
}

impl Kind for DriftKind {
    fn attempt<'a>(&'a self, a: Attempt<'a>) -> AttemptFuture<'a> {
        let stage = a.stage_dir("drift");
        let this = self.clone();
        Box::pin(async move {
            let stage2 = stage.clone();
            let result = blocking(Failure::Data, move || this.detect(&stage2)).await;
            let _ = std::fs::remove_dir_all(&stage);
            result
        })
    }
}

/// The workflow's settings as the monitor's options (defaults filled in).
fn options(spec: &DriftTask) -> DriftOptions {
    let d = DriftOptions::default();
    DriftOptions {
        columns: spec.columns.clone(),
        exclude: spec.exclude.clone(),
        categorical: spec.categorical.clone(),
        critical: spec.critical.clone(),
        drift_share: spec.drift_share.unwrap_or(d.drift_share),
        min_rows: spec.min_rows.unwrap_or(d.min_rows),
        bins: spec.bins.map_or(d.bins, |b| b as usize),
        numeric_test: spec.numeric_test.map(test),
        categorical_test: spec.categorical_test.map(test),
        tests: spec.tests.iter().map(|(c, t)| (c.clone(), test(*t))).collect(),
    }
}

fn test(t: TestDef) -> TestSpec {
    TestSpec { method: t.method.map(method), threshold: t.threshold }
}

fn method(m: DriftMethod) -> Method {
    match m {
        DriftMethod::Ks => Method::Ks,
        DriftMethod::Wasserstein => Method::Wasserstein,
        DriftMethod::Psi => Method::Psi,
        DriftMethod::JensenShannon => Method::JensenShannon,
        DriftMethod::ChiSquare => Method::ChiSquare,
    }
}
