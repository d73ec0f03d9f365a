//! Runs in the store: written, replaced, read back; a version 1 store migrates keeping its
//! approvals; the report's query over a constructed store.

use super::*;
use crate::report::ReportQuery;

fn open() -> (tempfile::TempDir, History) {
    let dir = tempfile::tempdir().unwrap();
    let h = History::open(dir.path()).unwrap();
    (dir, h)
}

fn gate_refused(task: &str) -> TaskRow {
    TaskRow {
        task: task.into(),
        status: "refused".into(),
        duration_ms: 40,
        attempts: 1,
        error: Some("gate refused: accuracy 0.62 < min 0.7".into()),
        blocked: Some(Blocked::Gate),
        verdict: Some(VerdictRow {
            decision: "refuse".into(),
            reason: "accuracy 0.62 < min 0.7".into(),
            metric: Some("accuracy".into()),
            value: Some(0.62),
            threshold: Some(0.7),
            shortfall: Some(0.08),
        }),
        ..TaskRow::default()
    }
}

fn sample(id: &str, started_ms: i64, finished: bool) -> RunRow {
    RunRow {
        id: id.into(),
        workflow: "retrain".into(),
        workflow_path: "workflows/retrain.ron".into(),
        started_ms,
        finished_ms: finished.then_some(started_ms + 1_000),
        status: if finished { "refused" } else { "running" }.into(),
        counts: RunCounts { tasks: 2, cached: 1, refused: 1, ..RunCounts::default() },
        saved_ms: 700,
        manual_minutes: Some(20),
        pid: None,
        pid_started: None,
        tasks: vec![
            TaskRow {
                task: "train".into(),
                status: "cached".into(),
                started_ms: Some(started_ms + 5),
                cached: true,
                saved_ms: 700,
                key: Some("ab".into()),
                ..TaskRow::default()
            },
            gate_refused("evaluate"),
        ],
        registry: vec![RegistryRow {
            registry: "registry".into(),
            model: "churn".into(),
            before: Some("v0001".into()),
            after: Some("v0002".into()),
            moved: 1,
        }],
    }
}

#[test]
fn a_run_is_written_replaced_and_read_back_whole() {
    let (_dir, h) = open();
    let running = RunRow { tasks: Vec::new(), registry: Vec::new(), ..sample("r1", 1_000, false) };
    h.record_run(&running).unwrap();
    assert!(h.settled_runs().unwrap().is_empty(), "a running run is not settled");
    assert_eq!(h.run("r1").unwrap().as_ref(), Some(&running));
    let done = sample("r1", 1_000, true);
    h.record_run(&done).unwrap();
    h.record_run(&done).unwrap();
    assert_eq!(h.run("r1").unwrap(), Some(done.clone()), "replaced, tasks not doubled");
    assert_eq!(h.settled_runs().unwrap(), HashSet::from(["r1".to_owned()]));
    assert_eq!(h.run("nope").unwrap(), None);
    h.import_runs(&[sample("r0", 500, true), sample("r2", 2_000, true)]).unwrap();
    let ids: Vec<String> = h.runs(None, 10).unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(ids, ["r2", "r1", "r0"], "newest first");
    assert_eq!(h.runs(Some("other"), 10).unwrap(), Vec::new());
    assert_eq!(h.workflows().unwrap(), ["retrain"]);
}

#[test]
fn a_version_1_store_migrates_and_keeps_its_approvals() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(crate::FILE_NAME);
    {
        // Exactly what a dagrun with schema version 1 created, with one decided approval.
        let conn = crate::open_db(&path, &crate::MIGRATIONS[..1]).unwrap();
        let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, 1);
        conn.execute(
            "INSERT INTO approvals (workflow, workflow_path, task, run_id, registry, model, model_digest, \
             verdict_digest, reasons, detail, requested_ms, expires_ms, on_timeout, state, decided_ms, decided_by, note) \
             VALUES ('retrain', 'w.ron', 'approve', 'r9', 'registry', 'churn', 'm', 'v', '[\"big change\"]', '{}', \
             10, 99999, 'reject', 'rejected', 50, 'ana', 'too risky')",
            [],
        )
        .unwrap();
    }
    let h = History::open(dir.path()).unwrap();
    let v: i64 = h.with(|tx| tx.pragma_query_value(None, "user_version", |r| r.get(0))).unwrap();
    assert_eq!(v, crate::SCHEMA_VERSION);
    let kept = h.approvals_of_run("r9").unwrap();
    assert_eq!(kept.len(), 1, "the approval survived the migration");
    assert_eq!(kept[0].note.as_deref(), Some("too risky"));
    h.record_run(&sample("r1", 1_000, true)).unwrap();

    let q = ReportQuery { workflow: None, since_ms: 0, until_ms: 100_000, manual_minutes: None };
    let r = h.report(&q).unwrap();
    let kinds: Vec<(&str, &str)> = r.prevented.iter().map(|b| (b.kind.as_str(), b.task.as_str())).collect();
    assert_eq!(
        kinds,
        [("approval", "approve"), ("gate", "evaluate")],
        "by time: the rejection at 50, the gate at 2000"
    );
    assert!(
        r.prevented[0].reason.contains("rejected by ana: too risky") && r.prevented[0].reason.contains("big change")
    );
    assert_eq!((r.prevented[1].metric.as_deref(), r.prevented[1].shortfall), (Some("accuracy"), Some(0.08)));
}

#[test]
fn the_report_query_reads_the_window_the_workflow_and_the_latest_estimate() {
    let (_dir, h) = open();
    let day = 86_400_000;
    h.record_run(&RunRow { manual_minutes: Some(10), ..sample("r1", day, true) }).unwrap();
    h.record_run(&RunRow { manual_minutes: Some(25), ..sample("r2", 2 * day, true) }).unwrap();
    h.record_run(&RunRow { manual_minutes: None, ..sample("r3", 3 * day, true) }).unwrap();
    h.record_run(&RunRow { workflow: "other".into(), ..sample("r4", 3 * day, true) }).unwrap();
    h.record_run(&sample("old", 10, true)).unwrap();
    let i = h.drift_alert("retrain", "/reg", "churn", "r1", day + 5).unwrap();
    h.resolve_incidents("/reg", "churn", "r2", "deployed v0002", 2 * day).unwrap();
    h.drift_alert("other", "/reg", "fraud", "r4", 3 * day).unwrap();

    let q = ReportQuery { workflow: Some("retrain".into()), since_ms: day, until_ms: 4 * day, manual_minutes: None };
    let f = h.facts(&q).unwrap();
    let ids: Vec<&str> = f.runs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["r1", "r2", "r3"], "the window and the workflow, oldest first");
    assert_eq!(f.manual_minutes.get("retrain"), Some(&25), "the latest run that recorded one");
    assert_eq!(f.moves.len(), 3);
    assert_eq!(
        f.incidents.iter().map(|x| x.id).collect::<Vec<_>>(),
        [i.id],
        "the other workflow's incident is not ours"
    );
    let r = h.report(&ReportQuery { manual_minutes: Some(40), ..q.clone() }).unwrap();
    assert_eq!(r.workflows[0].manual_minutes, Some(40), "the workflow file's estimate wins");
    assert_eq!(r.total.saved.manual.map(|m| m.minutes), Some(120));
    assert_eq!(r.drift.median_ms, Some(day - 5));
    let all = h.report(&ReportQuery { workflow: None, ..q }).unwrap();
    assert_eq!((all.total.runs, all.drift.open, all.drift.resolved), (4, 1, 1));
}

/// `fixtures/history-v2.sqlite`: the store a dagrun with schema version 2 wrote after one run of a
/// `Drift` workflow (`drifty`, run `20261128-202513948-4a`; WAL checkpointed into the file).
#[test]
fn a_real_version_2_store_migrates_to_the_current_version_keeping_its_runs() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/history-v2.sqlite");
    std::fs::copy(&fixture, dir.path().join(crate::FILE_NAME)).unwrap();
    {
        let conn = rusqlite::Connection::open(dir.path().join(crate::FILE_NAME)).unwrap();
        let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, 2, "the fixture is a version 2 store");
    }
    let h = History::open(dir.path()).unwrap();
    let v: i64 = h.with(|tx| tx.pragma_query_value(None, "user_version", |r| r.get(0))).unwrap();
    assert_eq!(v, crate::SCHEMA_VERSION);
    let old = h.run("20261128-202513948-4a").unwrap().expect("the run survived the migration");
    assert_eq!((old.workflow.as_str(), old.status.as_str(), old.tasks.len()), ("drifty", "succeeded", 1));
    assert_eq!(old.tasks[0].drift, None, "recorded before per-column results existed");
    assert_eq!(old.tasks[0].started_ms, None, "recorded before start times were");
    assert!(h.drift_points(10).unwrap().is_empty());
    assert_eq!(h.settled_runs().unwrap(), HashSet::from(["20261128-202513948-4a".to_owned()]));
    // The migrated store takes runs with per-column results.
    let column = crate::DriftColumn {
        column: "income".into(),
        kind: "numeric".into(),
        test: "wasserstein".into(),
        statistic: Some(0.9),
        threshold: 0.1,
        decision: "drift".into(),
        ..Default::default()
    };
    let mut new = RunRow { id: "20261129-000000000-00".into(), started_ms: old.started_ms + 1, ..old.clone() };
    new.tasks[0].drift = Some(crate::DriftRow { columns: vec![column], ..Default::default() });
    h.record_run(&new).unwrap();
    assert_eq!(h.run(&new.id).unwrap(), Some(new));
    let points = h.drift_points(10).unwrap();
    assert_eq!(points.len(), 1);
    assert_eq!((points[0].workflow.as_str(), points[0].column.column.as_str()), ("drifty", "income"));
}

#[test]
fn runs_are_kept_past_close_in_the_write_ahead_log_and_other_writes_stay_synced() {
    let (dir, h) = open();
    h.record_run(&sample("r1", 1_000, true)).unwrap();
    let sync: i64 = h.with(|tx| tx.pragma_query_value(None, "synchronous", |r| r.get(0))).unwrap();
    assert_eq!(sync, 2, "FULL again after the run's rows");
    drop(h);
    let wal = dir.path().join("history.sqlite-wal");
    assert!(wal.metadata().is_ok_and(|m| m.len() > 0), "not checkpointed on close");
    let h = History::open(dir.path()).unwrap();
    assert_eq!(h.run("r1").unwrap().map(|r| r.tasks.len()), Some(2), "read back through the log");
}
