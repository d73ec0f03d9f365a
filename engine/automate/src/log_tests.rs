//! Unit tests of the event log: idempotency, file novelty, run linkage, recovery, reopening.

use super::*;

fn event(workflow: &str, key: &str) -> NewEvent {
    NewEvent {
        workflow: workflow.into(),
        source: Source::Manual,
        key: key.into(),
        partition: None,
        detail: serde_json::json!({"reason": key}),
        at_ms: 1,
    }
}

fn one(log: &EventLog, e: &NewEvent, row: &FileRow) -> Result<Option<Recorded>, LogError> {
    Ok(log.record_files(&[(e.clone(), "in/a.csv".to_owned(), row.clone())])?.pop().unwrap())
}

fn file(digest: &str, mtime: i128) -> FileRow {
    FileRow { size: 3, mtime_ns: mtime, digest: digest.into() }
}

#[test]
fn the_same_key_is_one_event_however_often_it_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).unwrap();
    let a = log.record(&[event("w", "k1"), event("w", "k1"), event("v", "k1")]).unwrap();
    assert!(a[0].new && !a[1].new && a[2].new);
    assert_eq!(a[0].id, a[1].id);
    assert_eq!(log.pending("w").unwrap().len(), 1);
    assert_eq!(log.pending_workflows().unwrap(), ["w", "v"]);
    // Reopened: still one, still pending; a second record is still a duplicate.
    drop(log);
    let log = EventLog::open(dir.path()).unwrap();
    assert!(!log.record(&[event("w", "k1")]).unwrap()[0].new);
    assert_eq!(log.integrity().unwrap(), "ok");
}

#[test]
fn a_file_is_an_event_only_when_its_content_changes() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).unwrap();
    let e = NewEvent { source: Source::File, ..event("w", "") };
    assert!(one(&log, &e, &file("d1", 1)).unwrap().is_some());
    // Touched: same content, new mtime.
    assert!(one(&log, &e, &file("d1", 2)).unwrap().is_none());
    assert!(one(&log, &e, &file("d2", 3)).unwrap().is_some());
    // Back to the first content: a change again, not a duplicate of the first event.
    assert!(one(&log, &e, &file("d1", 4)).unwrap().is_some());
    assert_eq!(log.pending("w").unwrap().len(), 3);
    assert_eq!(log.files().unwrap(), vec![("w".into(), "in/a.csv".into(), file("d1", 4))]);
}

#[test]
fn runs_take_their_events_and_close_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).unwrap();
    let ids: Vec<i64> = log.record(&[event("w", "a"), event("w", "b")]).unwrap().iter().map(|r| r.id).collect();
    log.start_run("r1", "w", &ids, 10).unwrap();
    // An event arriving during the run waits for the next one.
    log.record(&[event("w", "c")]).unwrap();
    assert_eq!(log.pending("w").unwrap().len(), 1);
    assert_eq!(log.unfinished_runs().unwrap(), vec![Unfinished { run_id: "r1".into(), workflow: "w".into() }]);
    log.finish_run("r1", "succeeded", 20).unwrap();
    let done = log.events_of_run("r1").unwrap();
    assert!(done.iter().all(|e| e.state == State::Done && e.outcome.as_deref() == Some("succeeded")));
    assert!(log.unfinished_runs().unwrap().is_empty());
}

#[test]
fn an_interrupted_run_gives_its_events_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).unwrap();
    let id = log.record(&[event("w", "a")]).unwrap()[0].id;
    log.start_run("r1", "w", &[id], 10).unwrap();
    log.requeue_run("r1", "interrupted", 11).unwrap();
    log.start_run("r2", "w", &[id], 12).unwrap();
    log.finish_run("r2", "succeeded", 13).unwrap();
    let runs = log.runs_of_event(id).unwrap();
    assert_eq!(runs, vec![("r1".into(), "interrupted".into()), ("r2".into(), "succeeded".into())]);
    let id = log.record(&[event("w", "b")]).unwrap()[0].id;
    let p = log.pending("w").unwrap();
    assert_eq!((p.len(), p[0].run_id.as_deref()), (1, None));
    log.skip(&[id], "a run was in progress", 12).unwrap();
    assert_eq!(log.event(id).unwrap().unwrap().state, State::Skipped);
}

#[test]
fn ticks_and_the_schedule_mark_move_together() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).unwrap();
    assert_eq!(log.schedule_mark("w").unwrap(), None);
    let t = NewEvent { source: Source::Tick, ..event("w", "tick:0 3 * * 1:100") };
    log.record_ticks("w", "0 3 * * 1", std::slice::from_ref(&t), 100).unwrap();
    assert_eq!(log.schedule_mark("w").unwrap(), Some(("0 3 * * 1".into(), 100)));
    assert!(!log.record_ticks("w", "0 3 * * 1", &[t], 100).unwrap()[0].new);
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(EventLog::open(dir.path()).unwrap());
    let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let e = EventLog::open(dir.path()).unwrap_err().to_string();
    assert!(e.contains("schema version 99") && e.contains("upgrade dagrun"), "{e}");
}

#[test]
fn a_body_without_delivery_id_is_a_duplicate_only_within_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).unwrap();
    let at = |ms| NewEvent { at_ms: ms, ..event("w", "webhook:h:body:abc") };
    let first = log.record_unless_recent(&at(1_000), 1_000 - 600_000).unwrap();
    assert!(first.new);
    let retry = log.record_unless_recent(&at(5_000), 5_000 - 600_000).unwrap();
    assert_eq!(retry, Recorded { id: first.id, new: false });
    let later = log.record_unless_recent(&at(700_000), 700_000 - 600_000).unwrap();
    assert!(later.new && later.id != first.id);
}
