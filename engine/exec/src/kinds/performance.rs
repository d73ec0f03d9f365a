//! The `Performance` kind: scores a model (usually the deployed one) on freshly labelled data
//! natively and compares its metrics with those its gate verdict recorded. A regression is a
//! finding in a successful task's summary, or with `fail_on_regression` an alert. With
//! `rollback: true`, a regression of the deployed model moves the registry's `current` back to
//! the version deployed before it (atomically), unless a deploy moved it since the check.

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
    rollback: Option<Rollback>,
    outputs: BTreeMap<String, PathBuf>,
}

/// `rollback: true`: the deployed model that was checked.
#[derive(Debug, Clone)]
struct Rollback {
    /// The registry as written (an `s3://` one is published after the rollback).
    location: String,
    registry: PathBuf,
    name: String,
    /// The version checked (its bytes are in the key).
    version: String,
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
        let rollback = match (&spec.model, &job.probe.resolved.deployed) {
            (DataSource::Deployed(d), Some(m)) if spec.rollback => Some(Rollback {
                location: d.registry.clone(),
                registry: dagrun_plan::resolve_path(&job.run.workflow, &d.registry),
                name: d.name.clone(),
                version: m.version.clone(),
            }),
            _ => None,
        };
        Ok(PerformanceKind {
            rollback,
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
        let regressed: Vec<serde_json::Value> = report
            .metrics
            .iter()
            .filter(|m| m.regressed)
            .map(|m| {
                serde_json::json!({"metric": m.metric, "baseline": m.baseline, "current": m.current, "tolerance": m.tolerance})
            })
            .collect();
        let mut summary = serde_json::json!({
            "regressed": report.regressed,
            "status": report.status,
            "reason": report.reason,
            "rows": report.rows,
            "unlabelled": report.unlabelled,
            "regressed_metrics": regressed,
        });
        let mut reason = format!("performance regression: {}", report.reason);
        if let Some(rb) = self.rollback.as_ref().filter(|_| report.regressed) {
            let done = rb.roll_back();
            reason.push_str(&format!("; {}", done.text(&rb.name)));
            done.record(&mut summary);
        }
        if report.regressed && self.spec.fail_on_regression {
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
            if let Some(rb) = &self.rollback {
                a.run.registries.publish(&rb.location).await?;
            }
            result
        })
    }
}

/// What a rollback did.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RolledBack {
    /// `current` moved from `from` to `to`.
    Done { from: String, to: String },
    /// It did not, and why.
    NotDone { from: String, why: String },
}

impl Rollback {
    /// Moves `current` back to the version before the one checked — if `current` still names
    /// the one checked (re-read just before: a deploy since the check is not undone).
    fn roll_back(&self) -> RolledBack {
        use dagrun_contracts::registry;
        let from = self.version.clone();
        let not_done = |why: String| RolledBack::NotDone { from: from.clone(), why };
        match registry::read_current(&self.registry, &self.name) {
            Ok(Some(now)) if now == self.version => {}
            Ok(Some(now)) => return not_done(format!("`current` moved to {now} since the check (left as it is)")),
            Ok(None) => return not_done("nothing is current any more".to_owned()),
            Err(e) => return not_done(format!("cannot read `current`: {e}")),
        }
        let Some(to) = registry::previous_of(&self.registry, &self.name, &self.version) else {
            return not_done(format!("nothing to roll back to: no version before {} has a model", self.version));
        };
        match registry::set_current(&self.registry, &self.name, &to) {
            Ok(()) => RolledBack::Done { from, to },
            Err(e) => not_done(format!("cannot move `current` to {to}: {e}")),
        }
    }
}

impl RolledBack {
    /// For the alert's reason: `rolled back churn v0003 → v0002`.
    fn text(&self, name: &str) -> String {
        match self {
            RolledBack::Done { from, to } => format!("rolled back {name} {from} → {to}"),
            RolledBack::NotDone { from, why } => format!("not rolled back from {from}: {why}"),
        }
    }

    /// Into the summary: `"rolled_back": {"from": "v0003", "to": "v0002"}`, or
    /// `"rollback_failed": {"from": "v0003", "why": "..."}`.
    fn record(&self, summary: &mut serde_json::Value) {
        match self {
            RolledBack::Done { from, to } => summary["rolled_back"] = serde_json::json!({"from": from, "to": to}),
            RolledBack::NotDone { from, why } => {
                summary["rollback_failed"] = serde_json::json!({"from": from, "why": why});
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use dagrun_contracts::registry::{promote, read_current, set_current};

    fn setup(models: usize) -> (tempfile::TempDir, Rollback) {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..models {
            promote(dir.path(), "churn", format!("m{i}").as_bytes(), "d", b"{}", None, None).unwrap();
        }
        let version = read_current(dir.path(), "churn").unwrap().unwrap_or_default();
        let rb =
            Rollback { location: "registry".into(), registry: dir.path().to_owned(), name: "churn".into(), version };
        (dir, rb)
    }

    #[test]
    fn rolls_back_to_the_version_before() {
        let (dir, rb) = setup(3);
        let done = rb.roll_back();
        assert_eq!(done, RolledBack::Done { from: "v0003".into(), to: "v0002".into() });
        assert_eq!(read_current(dir.path(), "churn").unwrap().as_deref(), Some("v0002"));
        assert_eq!(done.text("churn"), "rolled back churn v0003 → v0002");
        let mut summary = serde_json::json!({"regressed": true});
        done.record(&mut summary);
        assert_eq!(summary["rolled_back"], serde_json::json!({"from": "v0003", "to": "v0002"}));
    }

    #[test]
    fn a_deploy_since_the_check_is_not_undone() {
        let (dir, rb) = setup(2);
        promote(dir.path(), "churn", b"newer", "d", b"{}", None, None).unwrap();
        let done = rb.roll_back();
        assert_eq!(
            done,
            RolledBack::NotDone {
                from: "v0002".into(),
                why: "`current` moved to v0003 since the check (left as it is)".into()
            }
        );
        assert_eq!(read_current(dir.path(), "churn").unwrap().as_deref(), Some("v0003"), "untouched");
        // Rolled back by hand meanwhile: not rolled back again.
        let (dir, rb) = setup(3);
        set_current(dir.path(), "churn", "v0001").unwrap();
        assert!(matches!(rb.roll_back(), RolledBack::NotDone { .. }));
        assert_eq!(read_current(dir.path(), "churn").unwrap().as_deref(), Some("v0001"));
    }

    #[test]
    fn nothing_to_roll_back_to_is_said() {
        let (dir, rb) = setup(1);
        let done = rb.roll_back();
        assert_eq!(
            done.text("churn"),
            "not rolled back from v0001: nothing to roll back to: no version before v0001 has a model"
        );
        let mut summary = serde_json::json!({});
        done.record(&mut summary);
        assert_eq!(summary["rollback_failed"]["from"], "v0001");
        assert_eq!(read_current(dir.path(), "churn").unwrap().as_deref(), Some("v0001"));
    }
}
