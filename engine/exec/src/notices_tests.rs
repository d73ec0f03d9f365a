use super::*;
use crate::events::Counts;
use crate::history::RUN_RECORD_VERSION;
use crate::outcome::Failure;
use dagrun_contracts::ApprovalDecision;

const WORKFLOW: &str = r#"Workflow(
    name: "self-heal",
    notify: [Command(run: "cat >> notes.jsonl")],
    tasks: [
        Task(name: "data", kind: Command(run: "true"), outputs: {"d": "d.csv", "m": "m.onnx"}),
        Task(
            name: "drift",
            kind: Drift(reference: Deployed(registry: "registry", name: "churn"), current: "today", fail_on_drift: true, cooldown: "1d"),
            inputs: {"today": Output("data", "d")},
            outputs: {"report": "drift.json"},
        ),
        Task(
            name: "evaluate",
            kind: OnnxEval(model: "m", data: "d", label: "label", gate: Gate(min: {"accuracy": 0.8})),
            inputs: {"m": Output("data", "m"), "d": Output("data", "d")},
            outputs: {"metrics": "metrics.json", "verdict": "verdict.json"},
        ),
        Task(
            name: "perf",
            kind: Performance(model: Deployed(registry: "registry", name: "churn"), data: "d", fail_on_regression: true, rollback: true),
            inputs: {"d": Output("data", "d")},
            outputs: {"report": "perf.json"},
        ),
        Task(name: "train", kind: Command(run: "false"), after: ["data"]),
        Task(
            name: "approve",
            kind: Approval(model: "m", verdict: "v", deploys: Deployed(registry: "registry", name: "churn")),
            inputs: {"m": Output("data", "m"), "v": Output("evaluate", "verdict")},
            outputs: {"approval": "approval.json"},
        ),
        Task(name: "deploy", kind: Command(run: "true"), inputs: {"a": Output("approve", "approval")}),
    ],
)"#;

fn workflow() -> Workflow {
    let source = dagrun_workflow::Source::new("self-heal.ron", WORKFLOW);
    Workflow::from_source(source, "/w".into()).unwrap()
}

fn task(name: &str, status: TaskStatus, error: Option<&str>, summary: Option<Value>) -> TaskRecord {
    TaskRecord {
        task: name.into(),
        status,
        duration_ms: 1,
        started_ms: None,
        key: None,
        cached: false,
        saved_ms: 0,
        attempts: 1,
        failure: (status == TaskStatus::Failed).then(|| Box::new(Failure::ExitCode { code: 1 })),
        error: error.map(Into::into),
        log: None,
        summary: summary.map(Box::new),
    }
}

fn record(status: RunStatus, tasks: Vec<TaskRecord>, registry: Vec<RegistryChange>) -> RunRecord {
    RunRecord {
        version: RUN_RECORD_VERSION,
        id: "20251128-120000000-ab".into(),
        workflow: "/w/self-heal.ron".into(),
        workflow_name: "self-heal".into(),
        started_ms: 1_764_331_200_000,
        finished_ms: Some(1_764_331_260_000),
        status,
        counts: Counts::default(),
        saved_ms: 0,
        tasks,
        registry,
        manual_minutes: None,
        pid: None,
        pid_started: None,
    }
}

fn change(before: Option<&str>, after: Option<&str>) -> RegistryChange {
    RegistryChange {
        registry: "registry".into(),
        name: "churn".into(),
        before: before.map(Into::into),
        after: after.map(Into::into),
    }
}

fn drift_summary(held: bool) -> Value {
    let mut s = json!({
        "drifted": true,
        "reason": "4 of 10 columns drifted (share 0.4 ≥ drift_share 0.3)",
        "share": 0.4,
        "drift_share": 0.3,
        "drifted_columns": ["income", "tenure", "region", "calls"],
    });
    if held {
        s["held"] = json!({"model": "churn", "version": "v0003", "promoted_ms": 1_764_300_000_000i64,
            "cooldown": "1d", "until_ms": 1_764_386_400_000i64});
    }
    s
}

fn verdict(reason: &str) -> Value {
    json!({
        "version": 1, "decision": "pass", "reason": reason,
        "candidate": {"digest": "c".repeat(64), "metrics": {"accuracy": 0.912, "f1": 0.5}},
        "champion": {"digest": "d".repeat(64), "version": "v0002", "metrics": {"accuracy": 0.874}},
        "data_digest": "e", "gate": {"min": {"accuracy": 0.8}, "max": {}, "champion": null},
    })
}

fn facts(n: &Notice) -> Vec<(String, String)> {
    n.notification.facts.iter().map(|f| (f.name.clone(), f.value.clone())).collect()
}

#[test]
fn a_held_drift_says_so_and_a_failed_run_names_its_task() {
    let r = record(
        RunStatus::Failed,
        vec![
            task("drift", TaskStatus::Held, Some("drift: 4 of 10 ..."), Some(drift_summary(true))),
            task("train", TaskStatus::Failed, Some("exit code 1\nTraceback ..."), None),
        ],
        vec![change(Some("v0003"), Some("v0003"))],
    );
    let all = notices(&r, &workflow(), &Found::default());
    let events: Vec<&str> = all.iter().map(|n| n.notification.event.as_str()).collect();
    assert_eq!(events, ["run_failed", "drift_detected"]);

    let failed = &all[0].notification;
    assert_eq!(failed.title, "self-heal: run failed — train failed: exit code 1");
    assert_eq!(failed.action.as_deref(), Some("dagrun show 20251128-120000000-ab"));
    assert_eq!(failed.details["failed"][0]["failure"], json!({"kind": "exit_code", "code": 1}));
    assert_eq!((failed.run_id.as_deref(), failed.at_ms), (Some("20251128-120000000-ab"), 1_764_331_260_000));

    let drift = &all[1];
    assert_eq!(drift.subject, "drift_detected/drift/held/-");
    assert!(!drift.once, "a check without a key is told per run");
    assert_eq!(
        drift.notification.title,
        "self-heal: drift detected on churn — 4 of 10 columns drifted (share 0.4 ≥ drift_share 0.3) \
         (held: cooldown until 2025-11-29T03:20:00Z)"
    );
    assert_eq!(
        facts(drift),
        [
            ("task".into(), "drift".into()),
            ("drifted share".into(), "40% (threshold 30%)".into()),
            ("drifted columns".into(), "income, tenure, region, calls".into()),
            ("held".into(), "cooldown 1d after v0003, until 2025-11-29T03:20:00Z".into()),
        ]
    );
    assert_eq!(drift.notification.details["model"], "churn");
    assert_eq!(drift.notification.details["held"]["version"], "v0003");
    assert!(!drift.once);
}

#[test]
fn a_deploy_carries_the_verdict_and_who_approved_it() {
    let r = record(
        RunStatus::Succeeded,
        vec![task("drift", TaskStatus::Alerted, Some("drift: ..."), Some(drift_summary(false)))],
        vec![change(Some("v0002"), Some("v0003"))],
    );
    let mut found = Found::default();
    let approval = ApprovalRecord {
        version: 1,
        decision: ApprovalDecision::Approved,
        model: None,
        model_digest: "c".repeat(64),
        verdict_digest: "v".into(),
        reasons: vec!["23.1% of predictions change (max 10%)".into()],
        by: Some("ana".into()),
        note: None,
        decided_ms: Some(1),
        request: Some(3),
    };
    found.versions.insert(
        ("registry".into(), "churn".into(), "v0003".into()),
        VersionFacts {
            digest: Some("c".repeat(64)),
            verdict: Some(verdict("accuracy 0.912 ≥ min 0.8; beats champion v0002 (0.874)")),
            approval: Some(approval),
        },
    );
    let all = notices(&r, &workflow(), &found);
    let events: Vec<&str> = all.iter().map(|n| n.notification.event.as_str()).collect();
    assert_eq!(events, ["drift_detected", "model_deployed"]);
    assert!(!all[0].notification.title.contains("held"), "{}", all[0].notification.title);
    let d = &all[1];
    assert_eq!(d.subject, "model_deployed/registry/churn/v0003");
    assert_eq!(d.notification.title, "self-heal: model churn v0003 deployed (was v0002) — approved by ana");
    assert_eq!(
        facts(d),
        [
            ("version".into(), "v0003".into()),
            ("previous".into(), "v0002".into()),
            ("digest".into(), "cccccccccccc".into()),
            ("verdict".into(), "accuracy 0.912 ≥ min 0.8; beats champion v0002 (0.874)".into()),
            ("accuracy".into(), "0.912 (champion 0.874)".into()),
            ("approval".into(), "approved by ana".into()),
        ]
    );
    assert_eq!(d.notification.details["approved_by"], "ana");
    assert_eq!(d.notification.details["metrics"]["f1"], 0.5);
    assert_eq!(d.notification.details["champion_metrics"]["accuracy"], 0.874);

    // Without metadata (an older deploy): still notified, as automatic.
    let first = notices(
        &record(RunStatus::Succeeded, vec![], vec![change(None, Some("v0001"))]),
        &workflow(),
        &Found::default(),
    );
    assert_eq!(first[0].notification.title, "self-heal: model churn v0001 deployed");
    assert_eq!(facts(&first[0]).last().unwrap(), &("approval".to_owned(), "automatic".to_owned()));
}

#[test]
fn a_rollback_is_told_once_with_the_metric_that_regressed() {
    let perf = json!({
        "regressed": true, "status": "regressed", "reason": "accuracy 0.71 < 0.85 (baseline 0.9 - tolerance 0.05)",
        "rows": 900, "unlabelled": 0,
        "regressed_metrics": [{"metric": "accuracy", "baseline": 0.9, "current": 0.71, "tolerance": 0.05}],
        "rolled_back": {"from": "v0003", "to": "v0002"},
    });
    let r = record(
        RunStatus::Alerted,
        vec![task("perf", TaskStatus::Alerted, Some("performance regression: ..."), Some(perf))],
        vec![change(Some("v0003"), Some("v0002"))],
    );
    let all = notices(&r, &workflow(), &Found::default());
    assert_eq!(all.len(), 1, "the registry change and the task's summary are one rollback: {all:#?}");
    let n = &all[0];
    assert_eq!(n.notification.event, NotifyEvent::RolledBack);
    assert_eq!(n.notification.title, "self-heal: churn rolled back v0003 → v0002 — accuracy 0.71 vs 0.9 promised");
    assert_eq!(
        facts(n),
        [
            ("task".into(), "perf".into()),
            ("from".into(), "v0003".into()),
            ("to".into(), "v0002".into()),
            ("accuracy".into(), "0.71 (verdict promised 0.9, tolerance 0.05)".into()),
        ]
    );
    // By hand (`dagrun models rollback` between runs is not seen; within a run, a task did it).
    let by_hand = notices(
        &record(RunStatus::Succeeded, vec![], vec![change(Some("v0003"), Some("v0001"))]),
        &workflow(),
        &Found::default(),
    );
    assert_eq!(by_hand[0].notification.title, "self-heal: churn rolled back v0003 → v0001");
    assert_eq!(by_hand[0].notification.details["task"], Value::Null);
}

#[test]
fn a_refusal_shows_the_gate_metrics_and_an_approval_request_the_command() {
    let approval = json!({"approval": {
        "id": 7, "state": "pending", "run_id": "20251128-120000000-ab", "model": "churn",
        "model_digest": "a1b2c3d4e5f6a7b8", "reasons": ["23.1% of predictions change (max 10%)"],
        "expires_ms": 1_764_590_400_000i64,
        "approve": "dagrun approve 20251128-120000000-ab", "reject": "dagrun reject 20251128-120000000-ab",
    }});
    let r = record(
        RunStatus::Refused,
        vec![
            task("evaluate", TaskStatus::Refused, Some("gate refused: accuracy 0.5 < min 0.8"), None),
            task("approve", TaskStatus::Waiting, Some("waits for approval"), Some(approval)),
        ],
        vec![],
    );
    let mut found = Found::default();
    let mut v = verdict("accuracy 0.5 < min 0.8");
    v["candidate"]["metrics"]["accuracy"] = json!(0.5);
    found.verdicts.insert("evaluate".into(), v);
    let all = notices(&r, &workflow(), &found);
    let refused = &all[0];
    assert_eq!(refused.notification.title, "self-heal: gate refused the model in evaluate — accuracy 0.5 < min 0.8");
    assert_eq!(
        facts(refused),
        [("reason".into(), "accuracy 0.5 < min 0.8".into()), ("accuracy".into(), "0.5 (champion 0.874)".into())]
    );
    let ask = &all[1];
    assert_eq!(ask.notification.event, NotifyEvent::ApprovalNeeded);
    assert_eq!(
        ask.notification.title,
        "self-heal: approval needed for churn (model a1b2c3d4e5f6) — 23.1% of predictions change (max 10%)"
    );
    assert_eq!(ask.notification.action.as_deref(), Some("dagrun approve 20251128-120000000-ab"));
    assert_eq!((ask.subject.as_str(), ask.once), ("approval_needed/request 7", true));
    assert!(facts(ask).contains(&("expires".into(), "2025-12-01T12:00:00Z".into())));
    assert!(facts(ask).contains(&("reject".into(), "dagrun reject 20251128-120000000-ab".into())));
    // A rejected approval is not a gate refusal; a waiting task without a request notifies nothing.
    let rejected =
        record(RunStatus::Refused, vec![task("approve", TaskStatus::Refused, Some("rejected by ana"), None)], vec![]);
    assert!(notices(&rejected, &workflow(), &Found::default()).is_empty());
    let bare = record(RunStatus::Waiting, vec![task("approve", TaskStatus::Waiting, None, None)], vec![]);
    assert!(notices(&bare, &workflow(), &Found::default()).is_empty());
}

#[test]
fn quiet_runs_notify_nothing_and_numbers_read_well() {
    let r = record(
        RunStatus::Succeeded,
        vec![task("drift", TaskStatus::Succeeded, None, Some(json!({"drifted": false})))],
        vec![change(Some("v0002"), Some("v0002")), change(None, None)],
    );
    assert!(notices(&r, &workflow(), &Found::default()).is_empty());
    assert_eq!(num(&json!(0.91234567)), "0.9123");
    assert_eq!(num(&json!(3.0)), "3");
    assert_eq!(num(&json!(0.5)), "0.5");
    assert_eq!(percent(0.123), "12.3%");
    assert_eq!(one_line("a\n  b"), "a b");
}

#[test]
fn a_failed_command_is_told_with_the_last_line_it_printed() {
    assert_eq!(
        super::failure_line("exit code 1; last output:\nloading\nKeyError: 'income'\n"),
        "exit code 1; last output: … KeyError: 'income'"
    );
    assert_eq!(super::failure_line("exit code 2; last output:\n"), "exit code 2");
    assert_eq!(super::failure_line("timed out after 30s\nmore"), "timed out after 30s");
}
