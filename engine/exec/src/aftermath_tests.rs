use std::sync::Mutex;

use super::*;
use crate::engine::{RunRequest, prepare};
use crate::events::{Counts, RunStatus};
use crate::history::RUN_RECORD_VERSION;
use dagrun_contracts::{ApprovalDecision, ApprovalRecord};
use dagrun_history::DeliveryState;
use dagrun_workflow::heal::NotifyEvent;

const WORKFLOW: &str = r#"Workflow(
    name: "self-heal",
    notify: [Command(run: "cat >> notes.jsonl", events: [DriftDetected, ModelDeployed, RolledBack])],
    tasks: [
        Task(name: "data", kind: Command(run: "true"), outputs: {"d": "d.csv"}),
        Task(
            name: "drift",
            kind: Drift(reference: Deployed(registry: "./registry", name: "churn"), current: "today", fail_on_drift: true),
            inputs: {"today": Output("data", "d")},
            outputs: {"report": "drift.json"},
        ),
    ],
)"#;

#[derive(Default)]
struct Collect(Mutex<Vec<String>>);

impl Reporter for Collect {
    fn report(&self, event: &Event) {
        if let Event::Warning { message } = event {
            self.0.lock().unwrap().push(message.clone());
        }
    }
}

struct Setup {
    dir: tempfile::TempDir,
    history: Arc<History>,
    store: Arc<Store>,
    reporter: Arc<Collect>,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("self-heal.ron"), WORKFLOW).unwrap();
        let state = dir.path().join(".dagrun");
        let store = Arc::new(Store::open(&state, dagrun_cache::Durability::NoFsync).unwrap());
        let history = Arc::new(History::open(&state).unwrap());
        Setup { dir, history, store, reporter: Arc::new(Collect::default()) }
    }

    fn registry(&self) -> PathBuf {
        self.dir.path().join("registry")
    }

    fn deploy(&self, model: &[u8], approval: Option<&ApprovalRecord>) {
        registry::promote(
            &self.registry(),
            "churn",
            model,
            &format!("digest-{}", model.len()),
            b"{\"reason\": \"ok\"}",
            None,
            approval,
        )
        .unwrap();
    }

    fn aftermath(&self) -> Aftermath {
        let plan = prepare(&self.dir.path().join("self-heal.ron"), &RunRequest::new(1_764_331_200)).unwrap();
        Aftermath {
            history: self.history.clone(),
            store: self.store.clone(),
            before: snapshot(&plan.workflow),
            workflow: plan.workflow,
            instances: plan.instances,
            reporter: self.reporter.clone(),
            registries: Default::default(),
        }
    }
}

fn record(id: &str, drift: TaskStatus, drifted: bool) -> RunRecord {
    let task = TaskRecord {
        task: "drift".into(),
        status: drift,
        duration_ms: 1,
        started_ms: None,
        key: None,
        cached: drift == TaskStatus::Cached,
        saved_ms: 0,
        attempts: 1,
        failure: None,
        error: drifted.then(|| "drift: 4 of 10 columns drifted".into()),
        log: None,
        summary: Some(Box::new(
            serde_json::json!({"drifted": drifted, "reason": "4 of 10 columns drifted", "share": 0.4, "drifted_columns": ["a"]}),
        )),
    };
    RunRecord {
        version: RUN_RECORD_VERSION,
        id: id.into(),
        workflow: "self-heal.ron".into(),
        workflow_name: "self-heal".into(),
        started_ms: 1_000_000,
        finished_ms: Some(1_060_000),
        status: RunStatus::Alerted,
        counts: Counts::default(),
        saved_ms: 0,
        tasks: vec![task],
        registry: Vec::new(),
        manual_minutes: None,
        pid: None,
        pid_started: None,
    }
}

#[test]
fn a_drift_then_a_deploy_records_the_change_queues_both_and_resolves_the_incident() {
    let s = Setup::new();
    s.deploy(b"m1", None);
    let after = s.aftermath();
    let approved = ApprovalRecord {
        version: 1,
        decision: ApprovalDecision::Approved,
        model: None,
        model_digest: "digest-2".into(),
        verdict_digest: "v".into(),
        reasons: vec![],
        by: Some("ana".into()),
        note: None,
        decided_ms: None,
        request: None,
    };
    s.deploy(b"m2", Some(&approved)); // what the run's deploy task did
    let r = after.finish(record("r1", TaskStatus::Alerted, true));
    assert_eq!(
        r.registry,
        [RegistryChange {
            registry: "./registry".into(),
            name: "churn".into(),
            before: Some("v0001".into()),
            after: Some("v0002".into())
        }]
    );
    assert_eq!(RunRecord::load(&s.store, "r1").unwrap().registry, r.registry, "saved with the record");
    let stored = s.history.run("r1").unwrap().expect("in the history store");
    assert_eq!(stored, r.to_row(Some(s.dir.path())), "the store has the run with its registry change");
    assert_eq!(stored.registry[0].moved, 1, "a deploy");
    let resolved = std::fs::canonicalize(s.dir.path().join("registry")).unwrap().display().to_string();
    assert_eq!(stored.registry[0].registry, resolved, "keyed by the resolved directory, as drift incidents are");

    let queued = s.history.deliveries_of_run("r1").unwrap();
    let events: Vec<NotifyEvent> = queued.iter().map(|d| d.notification.event).collect();
    assert_eq!(events, [NotifyEvent::DriftDetected, NotifyEvent::ModelDeployed]);
    assert!(queued.iter().all(|d| d.state == DeliveryState::Pending && d.workflow_dir == s.dir.path()));
    let deployed = &queued[1].notification;
    assert_eq!(deployed.title, "self-heal: model churn v0002 deployed (was v0001) — approved by ana");
    assert_eq!(deployed.details["digest"], "digest-2");
    assert_eq!(deployed.details["reason"], "ok");

    let incidents = s.history.incidents(10).unwrap();
    assert_eq!(incidents.len(), 1);
    let i = &incidents[0];
    assert_eq!((i.detected_ms, i.detected_run.as_str(), i.alerts), (1_000_000, "r1", 1));
    assert_eq!((i.resolution.as_deref(), i.resolved_run.as_deref()), (Some("deployed v0002"), Some("r1")));
    assert_eq!(i.time_to_recovery_ms(), Some(60_000));
    let canonical = std::fs::canonicalize(s.registry()).unwrap();
    assert_eq!(i.registry, canonical.display().to_string(), "`./registry` resolved");
    assert!(s.reporter.0.lock().unwrap().is_empty());

    // The same run's aftermath again: its drift alert is not queued twice.
    let _ = s.aftermath().finish(record("r1", TaskStatus::Alerted, true));
    assert_eq!(s.history.deliveries_of_run("r1").unwrap().len(), 2);
}

#[test]
fn alerts_coalesce_and_a_quiet_check_that_ran_clears_the_incident() {
    let s = Setup::new();
    s.deploy(b"m1", None);
    s.aftermath().finish(record("r1", TaskStatus::Held, true));
    s.aftermath().finish(record("r2", TaskStatus::Alerted, true));
    let open = s.history.incidents(10).unwrap();
    assert_eq!((open.len(), open[0].alerts, open[0].resolved_ms), (1, 2, None), "{open:?}");
    s.aftermath().finish(record("r3", TaskStatus::Cached, false));
    assert_eq!(s.history.incidents(10).unwrap()[0].resolved_ms, None, "a cached check did not look again");
    let r = s.aftermath().finish(record("r4", TaskStatus::Succeeded, false));
    let done = &s.history.incidents(10).unwrap()[0];
    assert_eq!((done.resolution.as_deref(), done.resolved_run.as_deref()), (Some("cleared"), Some("r4")));
    assert_eq!(r.registry[0].before, r.registry[0].after, "nothing moved");
    let events: Vec<NotifyEvent> = ["r1", "r2", "r4"]
        .iter()
        .flat_map(|id| s.history.deliveries_of_run(id).unwrap())
        .map(|d| d.notification.event)
        .collect();
    assert_eq!(events, [NotifyEvent::DriftDetected, NotifyEvent::DriftDetected], "quiet runs notify nothing");
}

#[test]
fn a_failing_history_is_a_warning_not_a_failure() {
    let s = Setup::new();
    s.deploy(b"m1", None);
    let after = s.aftermath();
    // Every write to the outbox and the incidents fails.
    let db = rusqlite::Connection::open(s.history.path()).unwrap();
    db.execute_batch("DROP TABLE notifications; DROP TABLE incidents; DROP TABLE runs;").unwrap();
    let r = after.finish(record("r1", TaskStatus::Alerted, true));
    assert_eq!(r.registry.len(), 1, "the record still gets its registry changes");
    let warnings = s.reporter.0.lock().unwrap().clone();
    assert!(warnings.iter().any(|w| w.starts_with("cannot queue the drift_detected notification: ")), "{warnings:?}");
    assert!(warnings.iter().any(|w| w.starts_with("cannot record the drift incident: ")), "{warnings:?}");
    assert!(warnings.iter().any(|w| w.starts_with("cannot record the run in the history store: ")), "{warnings:?}");
    assert!(RunRecord::load(&s.store, "r1").is_some(), "the JSON record is written all the same");
}
