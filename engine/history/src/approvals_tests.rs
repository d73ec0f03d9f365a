use super::*;

fn new(run: &str, model: &str, now: i64) -> NewApproval {
    NewApproval {
        binding: Binding {
            workflow: "self-heal".into(),
            task: "approve".into(),
            model_digest: model.into(),
            verdict_digest: format!("v-{model}"),
        },
        workflow_path: "/w/self-heal.ron".into(),
        partition: None,
        run_id: run.into(),
        registry: "/w/registry".into(),
        model: "churn".into(),
        reasons: vec!["23% of predictions change (max 10%)".into()],
        detail: serde_json::json!({"changed_share": 0.23}),
        requested_ms: now,
        expires_ms: now + 1_000,
        on_timeout: OnTimeout::Reject,
        sinks: vec![],
        workflow_dir: "/w".into(),
    }
}

fn open() -> (tempfile::TempDir, History) {
    let dir = tempfile::tempdir().unwrap();
    let h = History::open(dir.path()).unwrap();
    (dir, h)
}

#[test]
fn asking_twice_about_the_same_bytes_finds_the_first_request() {
    let (_d, h) = open();
    let (a, made) = h.ask(&new("r1", "aaa", 10), 10).unwrap();
    assert!(made);
    assert_eq!((a.state, a.run_id.as_str()), (ApprovalState::Pending, "r1"));
    let (b, made) = h.ask(&new("r2", "aaa", 20), 20).unwrap();
    assert!(!made);
    assert_eq!((b.id, b.run_id.as_str()), (a.id, "r1"), "the second run parks on the first request");
}

#[test]
fn approve_then_the_same_bytes_pass_and_a_second_decision_is_refused() {
    let (_d, h) = open();
    h.ask(&new("r1", "aaa", 10), 10).unwrap();
    let d = h.decide("r1", Decision::Approve, "ana", Some("looked at the slices"), 50).unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].state, d[0].decided_by.as_deref()), (ApprovalState::Approved, Some("ana")));
    let (again, made) = h.ask(&new("r3", "aaa", 60), 60).unwrap();
    assert!(!made);
    assert_eq!(again.state, ApprovalState::Approved);
    let e = h.decide("r1", Decision::Reject, "bo", None, 70).unwrap_err();
    assert!(matches!(&e, DecideError::AlreadyDecided(a) if a.state == ApprovalState::Approved), "{e}");
    assert_eq!(e.to_string(), "run r1 was already approved by ana (request #1)");
}

#[test]
fn unknown_runs_and_changed_models_are_clear_errors() {
    let (_d, h) = open();
    assert_eq!(
        h.decide("nope", Decision::Approve, "x", None, 1).unwrap_err().to_string(),
        "run nope asked for no approval"
    );
    h.ask(&new("r1", "aaaaaaaaaaaaaaaa", 10), 10).unwrap();
    h.ask(&new("r2", "bbbbbbbbbbbbbbbb", 20), 20).unwrap();
    let e = h.decide("r1", Decision::Approve, "ana", None, 30).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the model of run r1 (request #1) has changed since: run r2 asks about model bbbbbbbbbbbb now; decide that one"
    );
    // The newer one is still pending and can be decided.
    assert_eq!(h.decide("r2", Decision::Reject, "ana", None, 40).unwrap()[0].state, ApprovalState::Rejected);
    // The first model again: asked anew (its old request was superseded, not decided).
    let (a, made) = h.ask(&new("r4", "aaaaaaaaaaaaaaaa", 50), 50).unwrap();
    assert!(made);
    assert_eq!((a.id, a.state, a.run_id.as_str()), (1, ApprovalState::Pending, "r4"));
}

#[test]
fn the_timeout_decides_what_nobody_did() {
    let (_d, h) = open();
    h.ask(&new("r1", "aaa", 10), 10).unwrap();
    assert_eq!(h.next_expiry().unwrap(), Some(1_010));
    assert!(h.expire_due(1_009).unwrap().is_empty());
    let e = h.expire_due(1_010).unwrap();
    assert_eq!((e[0].state, e[0].decided_by.as_deref()), (ApprovalState::Rejected, Some(TIMEOUT_DECIDER)));
    assert_eq!(h.next_expiry().unwrap(), None);
    let err = h.decide("r1", Decision::Approve, "ana", None, 2_000).unwrap_err().to_string();
    assert_eq!(err, "run r1 was already rejected by timeout (request #1)");
    let mut approve = new("r2", "bbb", 3_000);
    approve.on_timeout = OnTimeout::Approve;
    h.ask(&approve, 3_000).unwrap();
    let listed = h.approvals(None, 10, 5_000).unwrap();
    assert_eq!(listed.iter().map(|a| a.state).collect::<Vec<_>>(), [ApprovalState::Approved, ApprovalState::Rejected]);
}

#[test]
fn requests_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    History::open(dir.path()).unwrap().ask(&new("r1", "aaa", 10), 10).unwrap();
    let h = History::open(dir.path()).unwrap();
    let pending = h.approvals(Some(ApprovalState::Pending), 10, 20).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].reasons, ["23% of predictions change (max 10%)"]);
    assert_eq!(pending[0].detail["changed_share"], 0.23);
}
