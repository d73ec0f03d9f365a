//! The `Drift` kind: compares the current data with the reference data natively
//! (`dagrun_monitor`) and writes `drift.json` and, if declared, the HTML report. Drift is a
//! finding in a successful task's summary, or with `fail_on_drift` an alert — held instead
//! (reported, not acted on) while the deployed model's `cooldown` runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dagrun_monitor::drift::{ColumnResult, DriftInputs, DriftOptions, DriftReport, Method, TestSpec};
use dagrun_workflow::{DataSource, DriftMethod, DriftTask, TestDef};

use crate::kinds::{Attempt, AttemptFuture, Job, Kind, blocking, data_error, place};
use crate::outcome::{AttemptError, Failure, TaskError};
use crate::when;

/// A `Drift` task prepared for one instance: the exact files whose bytes are in its key.
#[derive(Debug, Clone)]
pub(crate) struct DriftKind {
    opts: DriftOptions,
    reference: PathBuf,
    current: PathBuf,
    model: Option<PathBuf>,
    fail_on_drift: bool,
    cooldown: Option<Cooldown>,
    /// With `reference: Deployed(...)`: the registry (as written) and the model checked.
    deployed: Option<(String, String)>,
    outputs: BTreeMap<String, PathBuf>,
}

/// `cooldown` with `reference: Deployed(...)`: where to read the last promotion.
#[derive(Debug, Clone)]
struct Cooldown {
    registry: PathBuf,
    name: String,
    /// As written (`"1d"`), for people.
    text: String,
    length_ms: i64,
}

impl Cooldown {
    fn new(job: &Job<'_>, spec: &DriftTask) -> Option<Cooldown> {
        let (text, DataSource::Deployed(d)) = (spec.cooldown.as_ref()?, &spec.reference) else { return None };
        // Validated when the workflow was loaded.
        let length = dagrun_workflow::duration::parse(text).ok()?;
        Some(Cooldown {
            registry: dagrun_plan::resolve_path(&job.run.workflow, &d.registry),
            name: d.name.clone(),
            text: text.clone(),
            length_ms: i64::try_from(length.as_millis()).unwrap_or(i64::MAX),
        })
    }

    /// Whether drift found now is held: the last promotion of the model is less than the
    /// cooldown ago.
    fn hold(&self, now_ms: i64) -> Option<Hold> {
        let (version, promoted_ms) = dagrun_contracts::registry::last_promotion(&self.registry, &self.name)?;
        hold(self, version, promoted_ms, now_ms)
    }
}

/// Drift held by a cooldown: which promotion started it and when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hold {
    /// `held: churn v0003 was deployed 5h ago; cooldown 1d, until 2026-11-29T07:00:00Z`.
    text: String,
    /// For the summary.
    json: serde_json::Value,
}

fn hold(c: &Cooldown, version: String, promoted_ms: i64, now_ms: i64) -> Option<Hold> {
    let until_ms = promoted_ms.saturating_add(c.length_ms);
    if now_ms >= until_ms {
        return None;
    }
    let text = format!(
        "held: {} {version} was deployed {} ago; cooldown {}, until {}",
        c.name,
        when::span(now_ms - promoted_ms),
        c.text,
        when::utc(until_ms)
    );
    let json = serde_json::json!({
        "model": c.name,
        "version": version,
        "promoted_ms": promoted_ms,
        "cooldown": c.text,
        "until_ms": until_ms,
    });
    Some(Hold { text, json })
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
            cooldown: Cooldown::new(job, spec),
            deployed: match &spec.reference {
                DataSource::Deployed(d) => Some((d.registry.clone(), d.name.clone())),
                DataSource::Input(_) => None,
            },
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
            let reason = format!("drift: {}", report.reason);
            if let Some(h) = self.cooldown.as_ref().and_then(|c| c.hold(when::now_ms())) {
                let mut summary = self.summary(&report);
                summary["held"] = h.json;
                return Err(AttemptError::Held { reason: format!("{reason} ({})", h.text), summary: Some(summary) });
            }
            return Err(AttemptError::Alert { reason, summary: Some(self.summary(&report)) });
        }
        Ok(Some(self.summary(&report)))
    }

    fn summary(&self, r: &DriftReport) -> serde_json::Value {
        let mut s = summary(r);
        if let Some((registry, name)) = &self.deployed {
            s["model"] = serde_json::json!({"registry": registry, "name": name});
        }
        s
    }
}

/// The task's summary (run history, `--json` events): the decision, the drifted columns, and
/// each compared column's test, statistic, p-value, threshold and decision (`columns`; the
/// model's outputs in `predictions`), which the history store keeps to chart drift over time.
/// With `reference: Deployed(...)`, [`DriftKind::summary`] adds the `model` checked.
fn summary(r: &DriftReport) -> serde_json::Value {
    serde_json::json!({
        "drifted": r.drifted,
        "reason": r.reason,
        "share": r.share,
        "drift_share": r.drift_share,
        "drifted_columns": r.drifted_columns,
        "columns": r.columns.iter().map(column).collect::<Vec<_>>(),
        "predictions": r.predictions.iter().map(column).collect::<Vec<_>>(),
    })
}

/// One column's result in the summary: what `drift.json` has for it, without the samples and
/// histogram.
fn column(c: &ColumnResult) -> serde_json::Value {
    serde_json::json!({
        "column": c.column,
        "kind": c.kind.as_str(),
        "test": c.test.as_str(),
        "statistic": c.statistic,
        "p_value": c.p_value,
        "threshold": c.threshold,
        "decision": c.decision.as_str(),
        "critical": c.critical,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_is_held_until_the_cooldown_after_the_last_promotion_ends() {
        let c = Cooldown { registry: PathBuf::new(), name: "churn".into(), text: "1d".into(), length_ms: 86_400_000 };
        let promoted = 1_764_331_200_000; // 2025-11-28T12:00:00Z
        let h = hold(&c, "v0003".into(), promoted, promoted + 5 * 3_600_000).unwrap();
        assert_eq!(h.text, "held: churn v0003 was deployed 5h ago; cooldown 1d, until 2025-11-29T12:00:00Z");
        assert_eq!(h.json["until_ms"], promoted + 86_400_000);
        assert_eq!(h.json["version"], "v0003");
        assert!(hold(&c, "v0003".into(), promoted, promoted + 86_400_000).is_none(), "over at the end");
        assert!(hold(&c, "v0003".into(), promoted, promoted + 90_000_000).is_none());
    }

    #[test]
    fn the_summary_keeps_its_keys_and_adds_each_columns_result() {
        let dir = tempfile::tempdir().unwrap();
        let mut reference = String::from("age,income,city\n");
        let mut current = reference.clone();
        for i in 0..200 {
            reference.push_str(&format!("{},{},{}\n", 20 + i % 40, 1000 + (i * 7) % 300, ["a", "b"][i % 2]));
            current.push_str(&format!("{},{},{}\n", 20 + i % 40, 5000 + (i * 7) % 300, ["a", "b"][i % 2]));
        }
        std::fs::write(dir.path().join("ref.csv"), reference).unwrap();
        std::fs::write(dir.path().join("cur.csv"), current).unwrap();
        let inputs = DriftInputs {
            reference: dir.path().join("ref.csv"),
            current: dir.path().join("cur.csv"),
            model: None,
            work_dir: dir.path().to_path_buf(),
        };
        let opts = DriftOptions { categorical: vec!["city".into()], ..DriftOptions::default() };
        let report = dagrun_monitor::drift::detect(&inputs, &opts).unwrap();
        let s = summary(&report);
        for key in ["drifted", "reason", "share", "drift_share", "drifted_columns"] {
            assert_eq!(s[key], serde_json::to_value(&report).unwrap()[key], "{key} as before");
        }
        let columns = s["columns"].as_array().unwrap();
        assert_eq!(columns.len(), 3);
        for (c, r) in columns.iter().zip(&report.columns) {
            assert_eq!(c["column"], r.column.as_str());
            assert_eq!(c["test"], r.test.as_str());
            assert_eq!(c["statistic"].as_f64(), r.statistic);
            assert_eq!(c["p_value"].as_f64(), r.p_value);
            assert_eq!(c["threshold"], r.threshold);
            assert_eq!(c["decision"], r.decision.as_str());
            assert_eq!(c["kind"], r.kind.as_str());
        }
        let income = columns.iter().find(|c| c["column"] == "income").unwrap();
        assert_eq!(income["decision"], "drift", "{income}");
        assert_eq!(columns.iter().find(|c| c["column"] == "city").unwrap()["kind"], "categorical");
        assert_eq!(s["predictions"], serde_json::json!([]), "no model: no prediction drift");
        assert!(s.get("model").is_none(), "a check of two files names no model");
    }

    #[test]
    fn the_last_promotion_is_read_from_the_registry() {
        let dir = tempfile::tempdir().unwrap();
        let reg = dir.path().to_path_buf();
        let c = Cooldown { registry: reg.clone(), name: "churn".into(), text: "1h".into(), length_ms: 3_600_000 };
        assert_eq!(c.hold(when::now_ms()), None, "nothing deployed: nothing to cool down after");
        dagrun_contracts::registry::promote(&reg, "churn", b"m0", "d0", b"{}", None, None).unwrap();
        assert_eq!(c.hold(when::now_ms()), None, "deployed without an Approval step: no cooldown");
        let automatic = dagrun_contracts::ApprovalRecord {
            version: 1,
            decision: dagrun_contracts::ApprovalDecision::Automatic,
            model: None,
            model_digest: "d".into(),
            verdict_digest: "v".into(),
            reasons: vec![],
            by: None,
            note: None,
            decided_ms: None,
            request: None,
        };
        dagrun_contracts::registry::promote(&reg, "churn", b"m", "d", b"{}", None, Some(&automatic)).unwrap();
        let h = c.hold(when::now_ms()).unwrap();
        assert!(h.text.starts_with("held: churn v0002 was deployed "), "{}", h.text);
        assert_eq!(c.hold(when::now_ms() + 3_600_000), None);
    }
}
