//! A run's aftermath through the real binary, without plugins or ONNX: a drift check against
//! the deployed model's reference data, held by its cooldown right after a deploy and acted on
//! after it; the retrain "deploys" (a command moving the registry). The run record holds the
//! registry changes, the outbox the notifications (which `dagrun run` then delivers to a
//! command sink), the history store the drift incident.

use std::path::Path;

use dagrun_contracts::{ApprovalDecision, ApprovalRecord, registry};
use dagrun_history::History;
use dagrun_workflow::heal::NotifyEvent;
use serde_json::Value;

mod common;
use common::{Sandbox, stderr};

const WORKFLOW: &str = r#"Workflow(
    name: "heal",
    // One file per delivery: deliveries run concurrently.
    notify: [Command(run: "mkdir -p notes && cat > notes/$DAGRUN_RUN_ID-$DAGRUN_EVENT.json")],
    tasks: [
        Task(
            name: "drift",
            kind: Drift(
                reference: Deployed(registry: "registry", name: "churn"),
                current: "today",
                fail_on_drift: true,
                cooldown: "1d",
                min_rows: 5,
            ),
            inputs: {"today": File("today.csv")},
            outputs: {"report": "out/drift.json"},
        ),
        Task(
            name: "retrain",
            only_if: Alerted("drift"),
            after: ["drift"],
            // Stands in for train → gate → deploy: a new version becomes current.
            kind: Command(run: "mkdir -p registry/churn/v0002 && cp registry/churn/v0001/* registry/churn/v0002/ && printf 'v0002\n' > registry/churn/current"),
        ),
    ],
)"#;

/// 40 rows of one numeric column around `center`.
fn table(center: f64) -> String {
    let mut s = String::from("x\n");
    for i in 0..40 {
        s.push_str(&format!("{}\n", center + f64::from(i % 10) * 0.1));
    }
    s
}

fn sandbox() -> Sandbox {
    let sb = Sandbox::new(WORKFLOW);
    sb.write("train.csv", &table(0.0));
    sb.write("today.csv", &table(50.0));
    let train = sb.path("train.csv");
    let digest = blake3::hash(table(0.0).as_bytes()).to_hex().to_string();
    let reference = registry::NewReference { path: &train, digest: &digest };
    // Deployed by the loop (through an Approval step that let it through by itself): its
    // promotion starts the cooldown.
    let automatic = ApprovalRecord {
        version: 1,
        decision: ApprovalDecision::Automatic,
        model: None,
        model_digest: "d1".into(),
        verdict_digest: "v1".into(),
        reasons: vec![],
        by: None,
        note: None,
        decided_ms: None,
        request: None,
    };
    let verdict = b"{\"reason\": \"first\"}";
    registry::promote(&sb.path("registry"), "churn", b"model", "d1", verdict, Some(reference), Some(&automatic))
        .unwrap();
    sb
}

fn record(dir: &Path, run_id: &str) -> Value {
    let path = dir.join(".dagrun/runs").join(format!("{run_id}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// What the `Command` sink received: the payloads of one run, by event.
fn notes(dir: &Path, run_id: &str) -> std::collections::BTreeMap<String, Value> {
    let read = |e: std::fs::DirEntry| -> Option<(String, Value)> {
        let name = e.file_name().into_string().ok()?;
        let event = name.strip_prefix(&format!("{run_id}-"))?.strip_suffix(".json")?.to_owned();
        Some((event, serde_json::from_str(&std::fs::read_to_string(e.path()).ok()?).unwrap()))
    };
    std::fs::read_dir(dir.join("notes")).map(|d| d.flatten().filter_map(read).collect()).unwrap_or_default()
}

fn run_id(events: &[Value]) -> String {
    events.iter().find(|e| e["event"] == "run_started").unwrap()["run_id"].as_str().unwrap().to_owned()
}

#[test]
fn drift_is_held_in_the_cooldown_then_retrained_deployed_notified_and_its_incident_resolved() {
    let sb = sandbox();
    let (statuses, events, code) = sb.run_json(&[]);
    assert_eq!(code, 6, "held drift is an alert outcome: {statuses:?}");
    assert_eq!((statuses["drift"].as_str(), statuses["retrain"].as_str()), ("held", "skipped"));
    let drift = events.iter().find(|e| e["event"] == "task_finished" && e["task"] == "drift").unwrap();
    let error = drift["error"].as_str().unwrap();
    assert!(error.starts_with("drift: 1 of 1 columns drifted"), "{error}");
    assert!(error.contains("(held: churn v0001 was deployed 0s ago; cooldown 1d, until "), "{error}");
    assert_eq!(drift["summary"]["held"]["version"], "v0001");
    assert!(sb.path("out/drift.json").is_file(), "the report is written while held");
    let first = run_id(&events);
    let history = History::open(&sb.path(".dagrun")).unwrap();
    let queued = history.deliveries_of_run(&first).unwrap();
    assert_eq!(queued.len(), 1);
    let n = &queued[0].notification;
    assert_eq!(n.event, NotifyEvent::DriftDetected);
    assert!(n.title.starts_with("heal: drift detected on churn — 1 of 1 columns drifted"), "{}", n.title);
    assert!(n.title.contains("(held: cooldown until "), "{}", n.title);
    // `dagrun run` delivered it after the run: the command got the payload on its stdin.
    let delivered = notes(sb.dir.path(), &first);
    assert_eq!(delivered.keys().collect::<Vec<_>>(), ["drift_detected"]);
    assert_eq!(delivered["drift_detected"]["title"].as_str(), Some(n.title.as_str()));
    assert_eq!(delivered["drift_detected"]["details"]["held"]["version"], "v0001");
    let r = record(sb.dir.path(), &first);
    assert_eq!(
        r["registry"],
        serde_json::json!([{"registry": "registry", "name": "churn", "before": "v0001", "after": "v0001"}])
    );

    // The deploy was two days ago: the cooldown is over, the alert retrains (and "deploys").
    let meta_path = registry::metadata_file(&sb.path("registry"), "churn", "v0001");
    let mut meta = registry::read_metadata(&sb.path("registry"), "churn", "v0001").unwrap();
    meta.promoted_ms = meta.promoted_ms.map(|t| t - 2 * 86_400_000);
    std::fs::write(&meta_path, meta.to_json()).unwrap();
    let (statuses, events, code) = sb.run_json(&[]);
    assert_eq!(statuses.get("retrain").map(String::as_str), Some("succeeded"), "{code}: {events:#?}");
    assert_eq!(statuses["drift"], "alerted");
    let second = run_id(&events);
    let r = record(sb.dir.path(), &second);
    assert_eq!(r["registry"][0]["before"], "v0001");
    assert_eq!(r["registry"][0]["after"], "v0002");
    let events: Vec<NotifyEvent> =
        history.deliveries_of_run(&second).unwrap().iter().map(|d| d.notification.event).collect();
    assert_eq!(events, [NotifyEvent::DriftDetected, NotifyEvent::ModelDeployed]);

    let delivered = notes(sb.dir.path(), &second);
    assert_eq!(delivered.keys().collect::<Vec<_>>(), ["drift_detected", "model_deployed"]);
    let drifted = delivered["drift_detected"]["title"].as_str().unwrap();
    assert!(drifted.starts_with("heal: drift detected on churn — 1 of 1 columns drifted"), "{drifted}");
    assert!(!drifted.contains("held"), "{drifted}");
    assert_eq!(delivered["model_deployed"]["title"], "heal: model churn v0002 deployed (was v0001)");

    let incidents = history.incidents(10).unwrap();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    let i = &incidents[0];
    assert_eq!((i.alerts, i.detected_run.as_str()), (2, first.as_str()), "held and alerted: one incident");
    assert_eq!((i.resolution.as_deref(), i.resolved_run.as_deref()), (Some("deployed v0002"), Some(second.as_str())));
    assert!(i.time_to_recovery_ms().unwrap() >= 0);
    let out = sb.dagrun(&["show", &second, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
}
