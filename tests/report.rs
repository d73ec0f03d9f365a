//! `dagrun report` end to end with the real binary: runs recorded by real workflows, then the
//! report's JSON checked against the runs' own records (`dagrun runs --json`) and the gate's
//! `verdict.json`; the HTML file self-contained; the history rebuilt from the JSON records; an
//! empty history; bad arguments (exit 2).
//!
//! The retrain test needs ONNX Runtime and the wasm32-wasip2 target (as tests/onnx.rs).

mod common;

use std::path::Path;
use std::process::Stdio;

use common::{Sandbox, stderr, stdout};
use serde_json::Value;

/// A command that fails until `ok` exists, then writes its output (cached afterwards: a failed
/// run caches nothing, and `ok` is no input).
const FLAKY: &str = r#"Workflow(
    name: "nightly",
    manual_minutes: 10,
    tasks: [Task(name: "build", kind: Command(run: "test -f ok && sleep 0.3 && echo built > out.txt"), outputs: {"out": "out.txt"})],
)"#;

fn report_json(s: &Sandbox, args: &[&str]) -> Value {
    let mut all = vec!["report", "--format", "json"];
    all.extend_from_slice(args);
    let out = s.dagrun(&all);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

/// `dagrun runs --json`, oldest first.
fn records(s: &Sandbox) -> Vec<Value> {
    let out = s.dagrun(&["runs", "--json", "-n", "100"]);
    let mut v: Vec<Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    v.reverse();
    v
}

#[test]
fn a_failure_a_recovery_and_a_cache_hit_are_counted_from_the_runs_themselves() {
    let s = Sandbox::new(FLAKY);
    assert_eq!(s.run_json(&[]).2, 1, "fails: no `ok` yet");
    s.write("ok", "yes");
    assert_eq!(s.run_json(&[]).2, 0);
    assert_eq!(s.run_json(&[]).2, 0, "cached");
    let runs = records(&s);
    assert_eq!(runs.len(), 3);

    let r = report_json(&s, &[]);
    assert_eq!(r["version"], 1);
    let t = &r["total"];
    assert_eq!((t["runs"].as_u64(), t["completed"].as_u64(), t["failed"].as_u64()), (Some(3), Some(2), Some(1)));
    assert_eq!(t["success_rate"].as_f64(), Some(2.0 / 3.0));
    assert_eq!((t["cache"]["hits"].as_u64(), t["cache"]["executed"].as_u64()), (Some(1), Some(2)));
    let saved: i64 = runs.iter().map(|r| r["saved_ms"].as_i64().unwrap()).sum();
    assert!(saved >= 300, "the cached run saved the command's time: {saved}");
    assert_eq!(t["saved"]["cache_saved_ms"].as_i64(), Some(saved));
    assert_eq!(t["saved"]["manual"]["minutes"].as_u64(), Some(20), "2 completed runs × manual_minutes 10");
    assert_eq!(t["saved"]["per_cycle"], Value::Null, "nothing deployed: no retraining cycle");
    let recover = runs[1]["finished_ms"].as_i64().unwrap() - runs[0]["finished_ms"].as_i64().unwrap();
    assert_eq!((t["failures"]["streaks"].as_u64(), t["failures"]["recovered"].as_u64()), (Some(1), Some(1)));
    assert_eq!(t["failures"]["mean_ms"].as_i64(), Some(recover));
    assert_eq!((r["drift"]["median_ms"].clone(), r["drift"]["open"].as_u64()), (Value::Null, Some(0)));
    assert_eq!(r["workflows"][0]["workflow"], "nightly");
    assert_eq!(r["workflows"][0]["manual_minutes"], 10);

    assert_eq!(report_json(&s, &["wf.ron"])["total"], r["total"], "the workflow file: the same runs");
    assert_eq!(report_json(&s, &["nightly"])["total"], r["total"], "its name: the same runs");
    assert_eq!(report_json(&s, &["--since", "1ms"])["total"]["runs"], 0, "a window that began after the runs is empty");

    let out = s.dagrun(&["report"]);
    let table = stdout(&out);
    assert!(table.starts_with("dagrun report: all workflows, "), "{table}");
    for line in [
        "no drift incidents in the window",
        "Bad deploys prevented: 0",
        "success rate 66.7%",
        "manual effort replaced      0.33 h",
    ] {
        assert!(table.contains(line), "missing {line:?} in:\n{table}");
    }

    // The history store lost: rebuilt from the JSON records, with the same numbers.
    for f in ["history.sqlite", "history.sqlite-wal", "history.sqlite-shm"] {
        let _ = std::fs::remove_file(s.path(".dagrun").join(f));
    }
    assert_eq!(report_json(&s, &[])["total"], r["total"]);

    // A corrupt record is named and left out; the report goes on.
    s.write(".dagrun/runs/29990101-000000000-00.json", "{\"version\": 2, \"id\": ");
    let out = s.dagrun(&["report", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("29990101-000000000-00.json left out of the report: not a run record"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_empty_history_and_bad_arguments() {
    let s = Sandbox::new(FLAKY);
    let out = s.dagrun(&["report"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("no runs in the window"), "{}", stdout(&out));
    let r = report_json(&s, &["wf.ron"]);
    assert_eq!((r["total"]["runs"].as_u64(), r["total"]["success_rate"].clone()), (Some(0), Value::Null));
    assert!(!stdout(&s.dagrun(&["report", "--format", "json"])).to_lowercase().contains("nan"));

    s.run_json(&[]);
    let out = s.dagrun(&["report", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown workflow `nosuch`") && stderr(&out).contains("has runs of: nightly"),
        "{}",
        stderr(&out)
    );
    let out = s.dagrun(&["report", "missing.ron"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no workflow file missing.ron"), "{}", stderr(&out));
    let out = s.dagrun(&["report", "--since", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--since soon"), "{}", stderr(&out));
    s.write("bad.ron", "Workflow(name: \"bad\", manual_minutes: 0, tasks: [])");
    let out = s.dagrun(&["report", "bad.ron"]);
    assert_eq!(out.status.code(), Some(3), "an invalid workflow file: {}", stderr(&out));
}

/// `dagrun ARGS` in `dir`, for workflows that build plugin crates.
fn plugins_dagrun(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = common::dagrun_for_plugins();
    cmd.args(args).current_dir(dir).env_remove("DAGRUN_STATE_DIR").stdin(Stdio::null()).output().unwrap()
}

/// The README's retrain demo: a deploy, a cached run, a worse model refused by the gate. The
/// report names the refusal with its metric and margin (as `verdict.json` has them), counts
/// the deploy as a retraining cycle, and renders a self-contained HTML file.
#[test]
fn the_retrain_demo_reports_a_deploy_a_cached_run_and_a_refusal() {
    let dir = common::repo_workflows(&["retrain.ron", "retrain-worse.ron"]);
    // The estimate the shipped workflow sets.
    let retrain = std::fs::read_to_string(dir.path().join("retrain.ron")).unwrap();
    let estimate: u64 = retrain
        .lines()
        .find_map(|l| l.trim().strip_prefix("manual_minutes: ")?.trim_end_matches(',').parse().ok())
        .expect("workflows/retrain.ron sets manual_minutes");
    for (wf, code) in [("retrain.ron", 0), ("retrain.ron", 0), ("retrain-worse.ron", 4)] {
        let out = plugins_dagrun(dir.path(), &["run", wf]);
        assert_eq!(out.status.code(), Some(code), "{wf}: {}", stderr(&out));
    }
    let out = plugins_dagrun(dir.path(), &["report", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let t = &r["total"];
    assert_eq!(
        (t["runs"].as_u64(), t["completed"].as_u64(), t["success_rate"].as_f64()),
        (Some(3), Some(3), Some(1.0))
    );
    assert_eq!(
        (t["deploys"].as_u64(), t["retraining_cycles"].as_u64(), t["prevented"].as_u64()),
        (Some(1), Some(1), Some(1))
    );
    assert!(t["saved"]["cache_saved_ms"].as_i64().unwrap() > 0, "the second run was cached");
    assert_eq!(t["saved"]["manual"]["minutes"].as_u64(), Some(2 * estimate), "2 retrain runs × the estimate");
    assert_eq!(t["saved"]["manual"]["runs_without_estimate"].as_u64(), Some(1), "retrain-worse has none");
    assert_eq!(t["saved"]["per_cycle"]["cycles"].as_u64(), Some(1));
    assert_eq!(r["models"][0]["model"], "churn");
    assert_eq!(r["models"][0]["deploys"], 1);

    let verdict: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/retrain-worse/verdict.json")).unwrap())
            .unwrap();
    let candidate = verdict["candidate"]["metrics"]["accuracy"].as_f64().unwrap();
    let champion = verdict["champion"]["metrics"]["accuracy"].as_f64().unwrap();
    let b = &r["prevented"][0];
    assert_eq!(
        (b["kind"].as_str(), b["workflow"].as_str(), b["task"].as_str()),
        (Some("gate"), Some("retrain-worse"), Some("evaluate"))
    );
    assert_eq!(b["metric"], "accuracy");
    assert_eq!((b["value"].as_f64(), b["threshold"].as_f64()), (Some(candidate), Some(champion)), "margin 0");
    assert!((b["shortfall"].as_f64().unwrap() - (champion - candidate)).abs() < 1e-12);
    assert!(b["reason"].as_str().unwrap().starts_with("accuracy 0."), "{b}");

    let out = plugins_dagrun(dir.path(), &["report", "retrain.ron", "--format", "html", "--out", "report/payoff.html"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let page = std::fs::read_to_string(dir.path().join("report/payoff.html")).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("<svg"), "{page}");
    assert!(!page.contains("http://") && !page.contains("https://"), "no external reference");
    assert!(!page.contains("<script") && !page.contains("<link"), "nothing loaded");
    assert!(page.contains("workflow retrain"));
    let out = plugins_dagrun(dir.path(), &["report", "--format", "html"]);
    assert!(stdout(&out).contains("accuracy ") && stdout(&out).contains("short by "), "the refusal is listed");
}
