//! `only_if` end to end with the real binary: a task that runs only when an upstream check
//! raised an alert, across partitions, and what is skipped (never failed) otherwise.

mod common;

use common::{Sandbox, statuses, stderr};

/// A drift check on two small CSVs, a conditional "retrain" after every day's check, and a
/// task that depends on the check without a condition.
const WORKFLOW: &str = r#"Workflow(
    name: "heal",
    partitions: {"daily": Daily(start: "2025-03-01", end: "2025-03-02")},
    tasks: [
        Task(
            name: "drift",
            partitioned: "daily",
            kind: Drift(reference: "reference", current: "today", min_rows: 5, fail_on_drift: true),
            inputs: {"reference": File("reference.csv"), "today": File("days/{date}.csv")},
            outputs: {"report": "out/{date}.json"},
        ),
        Task(
            name: "retrain",
            only_if: Alerted("drift"),
            after: ["drift"],
            kind: Command(run: "echo retrained > out/model.txt"),
            outputs: {"model": "out/model.txt"},
        ),
        Task(
            name: "deploy",
            kind: Command(run: "cp out/model.txt out/deployed.txt"),
            inputs: {"model": Output("retrain", "model")},
            outputs: {"deployed": "out/deployed.txt"},
        ),
        Task(
            name: "report",
            partitioned: "daily",
            after: ["drift"],
            kind: Command(run: "echo $DAGRUN_PARTITION > \"$DAGRUN_OUT_R\""),
            outputs: {"r": "out/report-{date}.txt"},
        ),
    ],
)"#;

fn column(values: impl Iterator<Item = f64>) -> String {
    std::iter::once("x".to_owned()).chain(values.map(|v| format!("{v}"))).collect::<Vec<_>>().join("\n") + "\n"
}

fn sandbox() -> Sandbox {
    let s = Sandbox::new(WORKFLOW);
    s.write("reference.csv", &column((0..200).map(|i| f64::from(i % 50))));
    s.write("days/2025-03-01.csv", &column((0..200).map(|i| f64::from(i % 50))));
    s
}

#[test]
fn a_quiet_check_skips_the_conditional_chain_and_the_run_succeeds() {
    let s = sandbox();
    s.write("days/2025-03-02.csv", &column((0..200).map(|i| f64::from(i % 50))));
    let (st, events, code) = s.run_json(&["--partition", "2025-03-02"]);
    assert_eq!(code, 0, "{events:?}");
    assert_eq!(
        st,
        statuses(&[
            ("drift@2025-03-02", "succeeded"),
            ("retrain", "skipped"),
            ("deploy", "skipped"),
            ("report@2025-03-02", "succeeded"),
        ])
    );
    let why =
        |t: &str| events.iter().find(|e| e["event"] == "task_finished" && e["task"] == t).unwrap()["error"].clone();
    assert_eq!(why("retrain"), "only_if: `drift` raised no alert");
    assert_eq!(why("deploy"), "only_if: `drift` raised no alert");
    assert!(!s.path("out/model.txt").exists());
}

#[test]
fn an_alert_runs_the_conditional_chain_and_skips_plain_dependents() {
    let s = sandbox();
    s.write("days/2025-03-02.csv", &column((0..200).map(|i| f64::from(i % 50) + 100.0)));
    let (st, events, code) = s.run_json(&["--partition", "2025-03-02"]);
    assert_eq!(code, 6, "an alert is still reported: {events:?}");
    assert_eq!(
        st,
        statuses(&[
            ("drift@2025-03-02", "alerted"),
            ("retrain", "succeeded"),
            ("deploy", "succeeded"),
            ("report@2025-03-02", "skipped"),
        ])
    );
    assert_eq!(s.read("out/deployed.txt"), "retrained\n");
    // Both days in one run: one of them alerts, so the retrain runs once.
    let (st, _, code) = s.run_json(&["--partition", "2025-03-01"]);
    assert_eq!((code, st["retrain"].as_str()), (0, "skipped"), "the quiet day alone does not retrain");
    let out = s.dagrun(&["backfill", "wf.ron", "--from", "2025-03-01", "--to", "2025-03-02", "--json"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let retrains =
        text.lines().filter(|l| l.contains("\"task_finished\"") && l.contains("\"task\":\"retrain\"")).count();
    assert_eq!(retrains, 1, "{}\n{text}", stderr(&out));
    assert!(text.contains("\"task\":\"retrain\",\"status\":\"succeeded\""), "{text}");
}
