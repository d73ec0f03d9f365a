//! The report's numbers on constructed histories with known answers.

use super::*;
use crate::runs::RunCounts;

const H: i64 = 3_600_000;
const T0: i64 = 1_764_000_000_000; // 2025-11-24T16:00:00Z

fn run(id: &str, workflow: &str, start: i64, status: &str, saved_ms: i64, cached: u32, tasks: u32) -> RunRow {
    RunRow {
        id: id.into(),
        workflow: workflow.into(),
        workflow_path: format!("{workflow}.ron"),
        started_ms: start,
        finished_ms: (status != "running").then_some(start + 60_000),
        status: status.into(),
        counts: RunCounts { tasks, cached, succeeded: tasks - cached, ..RunCounts::default() },
        saved_ms,
        ..RunRow::default()
    }
}

fn deploy(run: &RunRow, model: &str, moved: i8) -> Move {
    Move {
        run_id: run.id.clone(),
        workflow: run.workflow.clone(),
        at_ms: run.finished_ms.unwrap_or(run.started_ms),
        registry: "/w/registry".into(),
        model: model.into(),
        before: Some("v0001".into()),
        after: Some("v0002".into()),
        moved,
    }
}

fn incident(id: i64, detected: i64, recovered_after: Option<i64>) -> Incident {
    Incident {
        id,
        workflow: "heal".into(),
        registry: "/w/registry".into(),
        model: "churn".into(),
        detected_ms: detected,
        detected_run: format!("d{id}"),
        alerts: 1,
        resolved_ms: recovered_after.map(|a| detected + a),
        resolved_run: recovered_after.map(|_| format!("r{id}")),
        resolution: recovered_after.map(|_| "deployed v0003".into()),
    }
}

fn refusal(at: i64, task: &str, metric: &str, value: f64, threshold: f64) -> Block {
    Block {
        at_ms: at,
        workflow: "retrain".into(),
        run_id: format!("run-{at}"),
        task: task.into(),
        kind: "gate".into(),
        reason: format!("{metric} {value} < min {threshold}"),
        metric: Some(metric.into()),
        value: Some(value),
        threshold: Some(threshold),
        shortfall: Some(threshold - value),
    }
}

fn query(workflow: Option<&str>) -> ReportQuery {
    ReportQuery { workflow: workflow.map(Into::into), since_ms: T0, until_ms: T0 + 30 * 24 * H, manual_minutes: None }
}

#[test]
fn an_empty_history_has_no_rates_and_no_nan() {
    let r = compute(&Facts::default(), &query(None));
    assert_eq!(r.total.runs, 0);
    assert_eq!((r.total.success_rate, r.total.cache.hit_rate), (None, None));
    assert_eq!((r.drift.median_ms, r.drift.worst_ms, r.drift.open), (None, None, 0));
    assert_eq!((r.total.saved.manual.clone(), r.total.saved.per_cycle.clone()), (None, None));
    assert_eq!(r.total.failures.mean_ms, None);
    assert!(r.days.is_empty() && r.workflows.is_empty() && r.models.is_empty());
    let json = serde_json::to_string(&r).unwrap();
    assert!(!json.to_lowercase().contains("nan") && !json.contains("inf"), "{json}");
}

#[test]
fn three_incidents_give_a_known_median_and_worst_and_an_open_one_stays_open() {
    let facts = Facts {
        incidents: vec![
            incident(1, T0 + H, Some(2 * H)),
            incident(2, T0 + 10 * H, Some(30 * 60_000)),
            incident(3, T0 + 20 * H, Some(5 * H)),
            incident(4, T0 + 40 * H, None),
        ],
        ..Facts::default()
    };
    let r = compute(&facts, &query(None));
    assert_eq!((r.drift.resolved, r.drift.open), (3, 1));
    assert_eq!(r.drift.median_ms, Some(2 * H), "30 min, 2 h, 5 h");
    assert_eq!(r.drift.worst_ms, Some(5 * H));
    let times: Vec<Option<i64>> = r.drift.incidents.iter().map(|i| i.recovery_ms).collect();
    assert_eq!(times, [Some(2 * H), Some(30 * 60_000), Some(5 * H), None]);
    assert_eq!(r.models.len(), 1, "one model");
    assert_eq!(r.models[0].drift.median_ms, Some(2 * H));

    let even = Facts { incidents: facts.incidents[..2].to_vec(), ..Facts::default() };
    assert_eq!(compute(&even, &query(None)).drift.median_ms, Some(75 * 60_000), "mean of the middle two");
}

#[test]
fn four_refusals_are_listed_with_their_metric_and_margin() {
    let facts = Facts {
        blocks: vec![
            refusal(T0 + H, "evaluate", "accuracy", 0.62, 0.7),
            refusal(T0 + 2 * H, "evaluate", "f1", 0.5, 0.55),
            refusal(T0 + 26 * H, "evaluate", "accuracy", 0.69, 0.7),
            Block {
                kind: "approval".into(),
                metric: None,
                value: None,
                threshold: None,
                shortfall: None,
                ..refusal(T0 + 27 * H, "approve", "x", 0.0, 0.0)
            },
        ],
        ..Facts::default()
    };
    let r = compute(&facts, &query(None));
    assert_eq!(r.total.prevented, 4);
    assert_eq!(r.prevented.len(), 4);
    let metrics: Vec<(Option<&str>, Option<f64>)> =
        r.prevented.iter().map(|b| (b.metric.as_deref(), b.shortfall.map(|s| (s * 1000.0).round() / 1000.0))).collect();
    assert_eq!(
        metrics,
        [(Some("accuracy"), Some(0.08)), (Some("f1"), Some(0.05)), (Some("accuracy"), Some(0.01)), (None, None)]
    );
    let per_day: Vec<u64> = r.days.iter().map(|d| d.prevented).take(3).collect();
    assert_eq!(per_day, [2, 2, 0], "two on the first day, two on the next");
}

#[test]
fn runs_rates_deploys_cycles_and_savings() {
    let runs = vec![
        run("a1", "retrain", T0, "succeeded", 0, 0, 4),
        run("a2", "retrain", T0 + H, "failed", 1_000, 1, 4),
        run("a3", "retrain", T0 + 2 * H, "failed", 0, 0, 4),
        run("a4", "retrain", T0 + 5 * H, "refused", 3_000, 3, 4),
        run("a5", "retrain", T0 + 6 * H, "succeeded", 4_000, 2, 4),
        run("a6", "retrain", T0 + 7 * H, "running", 0, 0, 4),
        run("b1", "monitor", T0 + 3 * H, "interrupted", 0, 0, 2),
    ];
    let moves = vec![deploy(&runs[0], "churn", 1), deploy(&runs[4], "churn", 1), deploy(&runs[4], "fraud", -1)];
    let facts = Facts { runs, moves, manual_minutes: [("retrain".to_owned(), 30)].into(), ..Facts::default() };
    let r = compute(&facts, &query(None));
    let t = &r.total;
    assert_eq!((t.runs, t.completed, t.failed, t.interrupted, t.unfinished), (7, 3, 2, 1, 1));
    assert_eq!(t.success_rate, Some(0.5), "3 of 6 ended runs; the running one is in no rate");
    assert_eq!((t.deploys, t.rollbacks, t.retraining_cycles), (2, 1, 2));
    assert_eq!(t.deploys_per_week, Some(2.0 * 7.0 / 30.0));
    assert_eq!((t.cache.hits, t.cache.executed), (6, 20));
    assert_eq!(t.cache.hit_rate, Some(6.0 / 26.0));
    assert_eq!(t.saved.cache_saved_ms, 8_000);
    let manual = t.saved.manual.clone().unwrap();
    assert_eq!((manual.minutes, manual.runs, manual.runs_without_estimate), (90, 3, 0), "completed retrain runs × 30");
    let per = t.saved.per_cycle.clone().unwrap();
    assert_eq!((per.cycles, per.cache_saved_ms, per.manual_minutes), (2, 4_000, Some(45.0)));
    // a2 fails (end T0+1h+1m), a3 fails too (same streak), a4 completes at T0+5h+1m: 4 h.
    assert_eq!((t.failures.streaks, t.failures.recovered, t.failures.mean_ms), (1, 1, Some(4 * H)));

    let names: Vec<&str> = r.workflows.iter().map(|w| w.workflow.as_str()).collect();
    assert_eq!(names, ["monitor", "retrain"]);
    let monitor = &r.workflows[0];
    assert_eq!(
        (monitor.manual_minutes, monitor.summary.saved.manual.clone()),
        (None, None),
        "no estimate: not counted"
    );
    assert_eq!(monitor.summary.success_rate, Some(0.0));
    let models: Vec<(&str, u64, u64)> = r.models.iter().map(|m| (m.model.as_str(), m.deploys, m.rollbacks)).collect();
    assert_eq!(models, [("churn", 2, 0), ("fraud", 0, 1)]);
    assert_eq!(r.days[0].runs, 7);
    assert_eq!((r.days[0].cache_saved_ms, r.days[0].manual_minutes), (8_000, 90));
}

#[test]
fn an_unrecovered_failure_has_no_mean_and_a_window_without_cycles_has_no_per_cycle() {
    let facts = Facts {
        runs: vec![run("a1", "w", T0, "succeeded", 500, 1, 2), run("a2", "w", T0 + H, "failed", 0, 0, 2)],
        manual_minutes: [("w".to_owned(), 10)].into(),
        ..Facts::default()
    };
    let t = compute(&facts, &query(Some("w"))).total;
    assert_eq!((t.failures.streaks, t.failures.recovered, t.failures.mean_ms), (1, 0, None));
    assert_eq!(t.saved.per_cycle, None);
    assert_eq!(t.saved.manual.map(|m| m.minutes), Some(10));
}

#[test]
fn a_killed_run_is_unfinished_and_counted_as_killed() {
    // One imported as killed, one recorded `running` by a process that is gone (a child that
    // exited), one by this process (still running), one with no process recorded.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let gone = (child.id(), crate::alive::process_start(child.id()).unwrap_or(1));
    child.wait().unwrap();
    let (pid, started) = crate::alive::this_process();
    let with = |r: RunRow, p: u32, s: u64| RunRow { pid: Some(p), pid_started: Some(s as i64), ..r };
    let runs = vec![
        run("k1", "retrain", T0, "killed", 0, 0, 1),
        with(run("k2", "retrain", T0 + H, "running", 0, 0, 1), gone.0, gone.1),
        with(run("r1", "retrain", T0 + 2 * H, "running", 0, 0, 1), pid, started.unwrap()),
        run("r2", "retrain", T0 + 3 * H, "running", 0, 0, 1),
    ];
    let r = compute(&Facts { runs, ..Facts::default() }, &query(None));
    assert_eq!((r.total.runs, r.total.unfinished, r.total.killed, r.total.success_rate), (4, 4, 2, None));
}
