//! Importing JSON run records into the history store: versions 1 and 2, a corrupt file, a
//! record of a newer dagrun, a run killed mid-run, a run that finished after it was imported.

use super::*;
use dagrun_cache::Durability;

fn setup() -> (tempfile::TempDir, Store, History) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Durability::NoFsync).unwrap();
    let history = History::open(dir.path()).unwrap();
    std::fs::create_dir_all(dir.path().join("runs")).unwrap();
    (dir, store, history)
}

fn write(dir: &tempfile::TempDir, id: &str, text: &str) {
    std::fs::write(dir.path().join("runs").join(format!("{id}.json")), text).unwrap();
}

/// A version 1 record: refusals counted in `failed` too, no registry changes, no summaries.
const V1: &str = r#"{"version":1,"id":"20260101-000000000-00","workflow":"w.ron","workflow_name":"retrain",
    "started_ms":1000,"finished_ms":2000,"status":"failed",
    "counts":{"succeeded":2,"cached":1,"failed":1,"skipped":0,"refused":1},"saved_ms":500,
    "tasks":[{"task":"evaluate","status":"refused","duration_ms":1,"key":null,"cached":false,
    "saved_ms":0,"attempts":1,"error":"gate refused: accuracy 0.5 < min 0.7"}]}"#;

fn v2(id: &str, status: &str, finished: Option<u64>) -> String {
    let record = serde_json::json!({
        "version": 2, "id": id, "workflow": "workflows/retrain.ron", "workflow_name": "retrain",
        "started_ms": 5000, "finished_ms": finished, "status": status,
        "counts": {"succeeded": 1, "cached": 1, "failed": 0, "skipped": 0, "refused": 1}, "saved_ms": 900,
        "manual_minutes": 30,
        "tasks": [
            {"task": "train", "status": "cached", "duration_ms": 2, "key": "k1", "cached": true, "saved_ms": 900, "attempts": 0, "error": null},
            {"task": "evaluate", "status": "refused", "duration_ms": 40, "key": "k2", "cached": false, "saved_ms": 0,
             "attempts": 1, "error": "gate refused: r2 0.85 < champion v0002 0.9 (margin 0.02)",
             "summary": {"verdict": "refuse", "reason": "r2 0.85 < champion v0002 0.9 (margin 0.02)", "metrics": {"r2": 0.85},
                         "shortfall": {"metric": "r2", "value": 0.85, "threshold": 0.92, "by": 0.07}}},
            {"task": "approve", "status": "refused", "duration_ms": 1, "key": null, "cached": false, "saved_ms": 0, "attempts": 1,
             "error": "rejected by ana: too risky (request #3)", "summary": {"approval": {"id": 3, "state": "rejected"}}},
            {"task": "deploy", "status": "failed", "duration_ms": 1, "key": null, "cached": false, "saved_ms": 0, "attempts": 1,
             "error": "plugin error: refusing to deploy: the gate refused this model (r2 low)"}
        ],
        "registry": [{"registry": "registry", "name": "churn", "before": "v0002", "after": "v0003"}]
    });
    record.to_string()
}

#[test]
fn records_of_both_versions_import_and_a_corrupt_one_is_skipped_and_named() {
    let (dir, store, history) = setup();
    write(&dir, "20260101-000000000-00", V1);
    write(&dir, "20260102-000000000-00", &v2("20260102-000000000-00", "refused", Some(6000)));
    write(&dir, "20260103-000000000-00", "{\"version\": 2, \"id\": \"trunc");
    write(
        &dir,
        "20260104-000000000-00",
        &v2("20260104-000000000-00", "refused", Some(6000)).replace("\"version\":2", "\"version\":9"),
    );

    let s = sync_history(&store, &history).unwrap();
    assert_eq!(s.imported, 2);
    let skipped: Vec<(&str, &str)> = s.skipped.iter().map(|k| (k.path.as_str(), k.reason.as_str())).collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(
        skipped[0].0.ends_with("runs/20260103-000000000-00.json") && skipped[0].1.starts_with("not a run record: ")
    );
    assert!(skipped[1].1.contains("record version 9") && skipped[1].1.contains("upgrade dagrun"), "{skipped:?}");

    let v1 = history.run("20260101-000000000-00").unwrap().unwrap();
    assert_eq!((v1.status.as_str(), v1.counts.failed, v1.counts.refused), ("refused", 0, 1), "converted like `load`");
    let gate = &v1.tasks[0];
    assert_eq!(gate.blocked, Some(Blocked::Gate));
    let v = gate.verdict.as_ref().unwrap();
    assert_eq!(
        (v.decision.as_str(), v.reason.as_str(), v.metric.as_deref()),
        ("refuse", "accuracy 0.5 < min 0.7", None)
    );

    let r = history.run("20260102-000000000-00").unwrap().unwrap();
    assert_eq!(
        (r.workflow.as_str(), r.manual_minutes, r.saved_ms, r.finished_ms),
        ("retrain", Some(30), 900, Some(6000))
    );
    let blocked: Vec<Option<Blocked>> = r.tasks.iter().map(|t| t.blocked).collect();
    assert_eq!(blocked, [None, Some(Blocked::Gate), Some(Blocked::Approval), Some(Blocked::Deploy)]);
    let v = r.tasks[1].verdict.clone().unwrap();
    assert_eq!(
        (v.metric.as_deref(), v.value, v.threshold, v.shortfall),
        (Some("r2"), Some(0.85), Some(0.92), Some(0.07))
    );
    assert_eq!(r.tasks[2].verdict, None, "an approval is no gate verdict");
    assert_eq!((r.registry[0].model.as_str(), r.registry[0].moved), ("churn", 1));

    let again = sync_history(&store, &history).unwrap();
    assert_eq!((again.imported, again.skipped.len()), (0, 2), "idempotent: finished runs are not read again");
    assert_eq!(history.runs(None, 10).unwrap().len(), 2);
}

#[test]
fn a_run_killed_mid_run_stays_unfinished_and_a_run_that_finished_later_is_updated() {
    let (dir, store, history) = setup();
    write(&dir, "20260105-000000000-00", &v2("20260105-000000000-00", "running", None));
    write(&dir, "20260106-000000000-00", &v2("20260106-000000000-00", "running", None));
    assert_eq!(sync_history(&store, &history).unwrap().imported, 2);
    let killed = history.run("20260105-000000000-00").unwrap().unwrap();
    assert_eq!((killed.status.as_str(), killed.finished_ms), ("running", None));

    // One of them finishes; the killed one never will.
    write(&dir, "20260106-000000000-00", &v2("20260106-000000000-00", "succeeded", Some(9000)));
    let s = sync_history(&store, &history).unwrap();
    assert_eq!(s.imported, 2, "both unfinished ones are looked at again");
    let done = history.run("20260106-000000000-00").unwrap().unwrap();
    assert_eq!((done.status.as_str(), done.finished_ms, done.tasks.len()), ("succeeded", Some(9000), 4));
    assert_eq!(sync_history(&store, &history).unwrap().imported, 1, "only the killed one is still unsettled");
    assert_eq!(history.run("20260105-000000000-00").unwrap().unwrap().finished_ms, None);
}

#[test]
fn no_runs_directory_is_nothing_to_import() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Durability::NoFsync).unwrap();
    let history = History::open(dir.path()).unwrap();
    assert_eq!(sync_history(&store, &history).unwrap(), Synced::default());
}

/// A `Drift` task's record: one written before summaries carried per-column results (only
/// `drifted_columns`), and one with them (`columns`, `predictions`, the deployed `model`).
fn drift_record(id: &str, summary: serde_json::Value) -> String {
    serde_json::json!({
        "version": 2, "id": id, "workflow": "monitor.ron", "workflow_name": "monitor",
        "started_ms": 5000, "finished_ms": 6000, "status": "succeeded",
        "counts": {"succeeded": 1, "cached": 0, "failed": 0, "skipped": 0, "refused": 0}, "saved_ms": 0,
        "tasks": [{"task": "drift@2025-03-02", "status": "succeeded", "duration_ms": 2, "key": "k", "cached": false,
                   "saved_ms": 0, "attempts": 1, "error": null, "summary": summary}]
    })
    .to_string()
}

#[test]
fn drift_results_per_column_come_from_the_summary_and_older_summaries_still_import() {
    let (dir, store, history) = setup();
    let old = serde_json::json!({"drifted": true, "reason": "1 of 2", "share": 0.5, "drift_share": 0.5,
                                 "drifted_columns": ["income"]});
    write(&dir, "20260101-000000000-00", &drift_record("20260101-000000000-00", old));
    let new = serde_json::json!({
        "drifted": true, "reason": "1 of 2", "share": 0.5, "drift_share": 0.5, "drifted_columns": ["income"],
        "columns": [
            {"column": "age", "kind": "numeric", "test": "ks", "statistic": 0.05, "p_value": 0.8, "threshold": 0.05,
             "decision": "no_drift", "critical": false},
            {"column": "income", "kind": "numeric", "test": "wasserstein", "statistic": 1.7, "p_value": null,
             "threshold": 0.1, "decision": "drift", "critical": true},
            {"column": "broken", "decision": "drift"}
        ],
        "predictions": [{"column": "prediction", "kind": "categorical", "test": "chi_square", "statistic": 3.0,
                         "p_value": 0.2, "threshold": 0.05, "decision": "no_drift", "critical": false}],
        "model": {"registry": "/srv/registry", "name": "churn"}
    });
    write(&dir, "20260102-000000000-00", &drift_record("20260102-000000000-00", new));
    assert_eq!(sync_history(&store, &history).unwrap().imported, 2);

    let old = history.run("20260101-000000000-00").unwrap().unwrap();
    assert_eq!((old.status.as_str(), old.tasks[0].drift.clone()), ("succeeded", None), "imported, without results");
    let d = history.run("20260102-000000000-00").unwrap().unwrap().tasks[0].drift.clone().unwrap();
    assert_eq!((d.registry.as_deref(), d.model.as_deref()), (Some("/srv/registry"), Some("churn")));
    let got: Vec<_> = d
        .columns
        .iter()
        .map(|c| (c.column.as_str(), c.prediction, c.test.as_str(), c.value(), c.drifted(), c.critical))
        .collect();
    assert_eq!(
        got,
        [
            ("age", false, "ks", Some(0.8), false, false),
            ("income", false, "wasserstein", Some(1.7), true, true),
            ("prediction", true, "chi_square", Some(0.2), false, false),
        ],
        "an entry without a test or threshold is left out"
    );
    let points = history.drift_points(10).unwrap();
    assert_eq!(points.len(), 3);
    assert_eq!((points[0].task.as_str(), points[0].partition.as_deref()), ("drift", Some("2025-03-02")));

    // Other tasks' summaries are no drift results, even with a `columns` key.
    let other = TaskRecord {
        task: "x".into(),
        status: TaskStatus::Succeeded,
        duration_ms: 0,
        started_ms: None,
        key: None,
        cached: false,
        saved_ms: 0,
        attempts: 1,
        failure: None,
        error: None,
        log: None,
        summary: Some(Box::new(
            serde_json::json!({"columns": [{"column": "a", "test": "ks", "threshold": 1, "decision": "drift"}]}),
        )),
    };
    assert_eq!(task_row(&other, None).drift, None);
}
