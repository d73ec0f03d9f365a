//! Monitoring end to end with the real binary: daily drift checks over the generate plugin's
//! data (`workflows/monitor.ron`), checks of the deployed model that follow the registry
//! (`workflows/live.ron`), alerts as a typed outcome, and bad data reported, never a crash.
//!
//! Needs the ONNX Runtime library for the deployed-model checks (`pip install
//! onnxruntime==1.31.1`, or `ORT_DYLIB_PATH`) and the wasm32-wasip2 target for the plugins.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_dagrun");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The binary, without the outer `cargo test` settings, for workflows that build plugin crates.
fn dagrun(dir: &Path, args: &[&str]) -> (Vec<Value>, Output) {
    let mut cmd = Command::new(BIN);
    for var in dagrun_wasm::OUTER_CARGO_ENV {
        cmd.env_remove(var);
    }
    let out = cmd.args(args).current_dir(dir).stdin(Stdio::null()).output().unwrap();
    let events = if args.contains(&"--json") {
        String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    } else {
        Vec::new()
    };
    (events, out)
}

/// Copies repository workflows into `dir`, pointing them at the repository's plugins.
fn copy_workflows(dir: &Path, names: &[&str]) {
    for name in names {
        let text = std::fs::read_to_string(repo().join("workflows").join(name)).unwrap();
        let text = text.replace("\"../plugins/", &format!("\"{}/plugins/", repo().display()));
        std::fs::write(dir.join(name), text).unwrap();
    }
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn finished<'a>(events: &'a [Value], task: &str) -> &'a Value {
    events.iter().find(|e| e["event"] == "task_finished" && e["task"] == task).unwrap_or_else(|| panic!("no {task}"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The issue's acceptance check: a quarter of daily drift checks; the generated data drifts
/// after 2025-03-01. No day up to the drift date is flagged, every day after it is, and a
/// re-run plans every day as cached.
#[test]
fn monitor_flags_exactly_the_days_after_the_drift_and_caches_them() {
    let dir = tempfile::tempdir().unwrap();
    copy_workflows(dir.path(), &["monitor.ron"]);
    let range = ["--from", "2025-01-01", "--to", "2025-03-31"];
    let (events, out) = dagrun(dir.path(), &[&["backfill", "monitor.ron", "--json"][..], &range].concat());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut flagged = Vec::new();
    for day in 1..=90 {
        let date = chrono_day(day);
        let report = json(&dir.path().join(format!("out/monitor/drift/{date}.json")));
        assert_eq!(report["version"], 1);
        let html = dir.path().join(format!("out/monitor/drift/{date}.html"));
        assert!(std::fs::read_to_string(&html).unwrap().contains("<svg"), "{} has histograms", html.display());
        if report["drifted"] == true {
            flagged.push(date.clone());
            let columns = report["drifted_columns"].as_array().unwrap();
            assert!(columns.contains(&Value::from("income")), "{date}: {columns:?}");
        }
    }
    let expected: Vec<String> = (60..=90).map(chrono_day).filter(|d| d.as_str() > "2025-03-01").collect();
    assert_eq!(flagged, expected, "exactly the days after 2025-03-01 are flagged");
    // The finding is in the task's summary too (what triggers and notifications read).
    let drift_day = events
        .iter()
        .find(|e| e["event"] == "task_finished" && e["task"] == "drift@2025-03-15")
        .expect("drift@2025-03-15 finished");
    assert_eq!(drift_day["status"], "succeeded");
    assert_eq!(drift_day["summary"]["drifted"], true);

    let (_, out) = dagrun(dir.path(), &[&["backfill", "monitor.ron", "--plan"][..], &range].concat());
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(plan.starts_with("backfill plan for `monitor`: 90 partitions: 0 to run, 90 cached"), "{plan}");
}

/// `2025-01-01` plus `n - 1` days, for n in 1..=90 (January, February, March 2025).
fn chrono_day(n: u32) -> String {
    let (month, day) = match n {
        1..=31 => (1, n),
        32..=59 => (2, n - 31),
        _ => (3, n - 59),
    };
    format!("2025-{month:02}-{day:02}")
}

/// Retrain deploys a model with its training data; the live checks compare each day with
/// that data (features and predictions) and score the model on the day's labels. Before the
/// drift both are quiet; after it both flag. With `fail_on_drift` the run is `alerted`
/// (exit code 6).
#[test]
fn live_checks_follow_the_deployed_model() {
    let dir = tempfile::tempdir().unwrap();
    copy_workflows(dir.path(), &["retrain.ron", "live.ron"]);
    let (_, out) = dagrun(dir.path(), &["run", "retrain.ron"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let meta = json(&dir.path().join("registry/churn/v0001/metadata.json"));
    assert_eq!(meta["reference"]["file"], "reference.csv", "{meta}");

    let range = ["--from", "2025-02-28", "--to", "2025-03-03"];
    let (_, out) = dagrun(dir.path(), &[&["backfill", "live.ron"][..], &range].concat());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for (date, drifted) in [("2025-02-28", false), ("2025-03-01", false), ("2025-03-02", true), ("2025-03-03", true)] {
        let drift = json(&dir.path().join(format!("out/live/drift/{date}.json")));
        assert_eq!(drift["drifted"], drifted, "{date}: {}", drift["reason"]);
        assert_eq!(drift["reference"]["rows"], 20000, "the reference is the deployed model's training data");
        let predictions: Vec<&str> =
            drift["predictions"].as_array().unwrap().iter().map(|p| p["column"].as_str().unwrap()).collect();
        assert!(predictions.contains(&"prediction"), "prediction drift is reported: {predictions:?}");
        let perf = json(&dir.path().join(format!("out/live/performance/{date}.json")));
        assert_eq!(perf["regressed"], drifted, "{date}: {}", perf["reason"]);
        let accuracy = perf["metrics"].as_array().unwrap().iter().find(|m| m["metric"] == "accuracy").unwrap();
        assert!(accuracy["baseline"].as_f64().unwrap() > 0.75, "the gate's recorded accuracy: {accuracy}");
    }

    let strict = std::fs::read_to_string(dir.path().join("live.ron"))
        .unwrap()
        .replace("drift_share: 0.2,", "drift_share: 0.2, fail_on_drift: true,");
    std::fs::write(dir.path().join("live-strict.ron"), strict.replace("name: \"live\"", "name: \"live-strict\""))
        .unwrap();
    let (events, out) = dagrun(dir.path(), &["run", "live-strict.ron", "--partition", "2025-03-02", "--json"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let drift = finished(&events, "drift@2025-03-02");
    assert_eq!(drift["status"], "alerted");
    assert!(drift["error"].as_str().unwrap().starts_with("drift: 2 of 10 columns drifted"), "{drift}");
    assert_eq!(drift["summary"]["drifted_columns"], serde_json::json!(["income", "days_since_last"]), "{drift}");
    assert_eq!(events.last().unwrap()["status"], "alerted");
    let (_, out) = dagrun(dir.path(), &["run", "live-strict.ron", "--partition", "2025-02-28"]);
    assert_eq!(out.status.code(), Some(0), "a quiet day does not alert: {}", stderr(&out));
}

/// A `Performance` task over a labelled CSV where every 10th label has not arrived yet (empty,
/// `NA`, `null`, ...): those rows are skipped and counted, the decision is made on the rest, and
/// `min_rows` counts labelled rows only.
#[test]
fn performance_skips_and_counts_rows_without_a_label() {
    let fixture = repo().join("tests/fixtures/onnx/logreg_binary");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture.join("model.onnx"), dir.path().join("model.onnx")).unwrap();
    let text = std::fs::read_to_string(fixture.join("test.csv")).unwrap();
    let missing = ["", "NA", "null", "N/A", "None", "nan"];
    let mut lines: Vec<String> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match line.rsplit_once(',') {
            Some((head, _)) if i > 0 && i % 10 == 1 => {
                lines.push(format!("{head},{}", missing[i / 10 % missing.len()]))
            }
            _ => lines.push(line.to_owned()),
        }
    }
    std::fs::write(dir.path().join("labelled.csv"), lines.join("\n") + "\n").unwrap();
    // The gate's baseline: accuracy far above what the model scores (about 0.77), f1 below it.
    std::fs::write(dir.path().join("metrics.json"), r#"{"accuracy": 0.99, "f1": 0.5, "rows": 1000}"#).unwrap();
    let workflow = |settings: &str| {
        format!(
            r#"Workflow(name: "p", tasks: [
            Task(name: "perf", kind: Performance(model: "m", data: "d", baseline: "b"{settings}),
                 inputs: {{"m": File("model.onnx"), "d": File("labelled.csv"), "b": File("metrics.json")}},
                 outputs: {{"report": "out/performance.json"}}),
        ])"#
        )
    };

    std::fs::write(dir.path().join("wf.ron"), workflow("")).unwrap();
    let (events, out) = dagrun(dir.path(), &["run", "wf.ron", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&dir.path().join("out/performance.json"));
    assert_eq!((report["rows"].as_u64(), report["unlabelled"].as_u64()), (Some(900), Some(100)), "{report}");
    assert_eq!((report["status"].as_str(), report["regressed"].as_bool()), (Some("regressed"), Some(true)));
    let checked: Vec<(&str, bool)> = report["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["metric"].as_str().unwrap(), m["regressed"].as_bool().unwrap()))
        .collect();
    assert_eq!(checked, [("accuracy", true), ("f1", false)], "without `tolerance`, every metric on both sides");
    let task = finished(&events, "perf");
    assert_eq!(task["status"], "succeeded");
    assert_eq!(task["summary"]["regressed"], true, "{task}");
    assert_eq!(task["summary"]["unlabelled"], 100, "{task}");
    assert_eq!(task["summary"]["rows"], 900, "{task}");

    // 1000 rows, but only 900 labelled: below min_rows 950 there is too little to judge.
    std::fs::write(dir.path().join("wf.ron"), workflow(", min_rows: 950, tolerance: {\"accuracy\": 0.5}")).unwrap();
    let (events, out) = dagrun(dir.path(), &["run", "wf.ron", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&dir.path().join("out/performance.json"));
    assert_eq!(report["status"], "insufficient_data", "{report}");
    assert_eq!(report["regressed"], false);
    let reason = report["reason"].as_str().unwrap();
    assert!(
        reason.contains("only 900 labelled rows") && reason.contains("100 more rows have no label yet"),
        "{reason}"
    );
    assert_eq!(report["metrics"].as_array().unwrap().len(), 1, "only the metrics `tolerance` lists: {report}");
    assert_eq!(finished(&events, "perf")["summary"]["status"], "insufficient_data");

    // A baseline without metrics: a data failure that names the file and what it should hold.
    std::fs::write(dir.path().join("metrics.json"), r#"{"task": "classification"}"#).unwrap();
    let (events, out) = dagrun(dir.path(), &["run", "wf.ron", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let task = finished(&events, "perf");
    assert_eq!(task["failure"]["kind"], "data");
    let expected = format!(
        "baseline {}: no metrics found; expected a verdict.json or metrics.json holding some of: {}",
        dir.path().join("metrics.json").canonicalize().unwrap().display(),
        dagrun_workflow::KNOWN_METRICS.join(", ")
    );
    assert_eq!(task["error"], expected.as_str());
}

/// A `Drift` task over two files written by the test.
fn drift_dir(reference: &str, current: &str, settings: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ref.csv"), reference).unwrap();
    std::fs::write(dir.path().join("cur.csv"), current).unwrap();
    let wf = format!(
        r#"Workflow(name: "d", tasks: [
        Task(name: "drift", kind: Drift(reference: "ref", current: "cur"{settings}),
             inputs: {{"ref": File("ref.csv"), "cur": File("cur.csv")}},
             outputs: {{"report": "out/drift.json", "html": "out/drift.html"}}),
    ])"#
    );
    std::fs::write(dir.path().join("wf.ron"), wf).unwrap();
    dir
}

fn numbers(n: usize, f: impl Fn(usize) -> String) -> String {
    let mut s = String::from("x,y,label\n");
    for i in 0..n {
        s.push_str(&f(i));
        s.push('\n');
    }
    s
}

/// Bad and thin data: each is a clear result or a clear error naming the file, never a panic.
#[test]
fn bad_data_is_reported_not_crashed() {
    let reference = numbers(200, |i| format!("{},{},{}", i % 17, (i * 7) % 13, i % 2));

    // An empty current file: the task fails (kind `data`) naming the file.
    let dir = drift_dir(&reference, "", "");
    let (events, out) = dagrun(dir.path(), &["run", "wf.ron", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let t = finished(&events, "drift");
    assert_eq!(t["failure"]["kind"], "data");
    let error = t["error"].as_str().unwrap();
    assert!(error.contains("cur.csv") && error.contains("empty"), "{error}");

    // A header only, and a 10-row sample: insufficient data, not drift.
    for current in ["x,y,label\n".to_owned(), numbers(10, |i| format!("{},{},1", 1000 + i, 50 + i))] {
        let dir = drift_dir(&reference, &current, "");
        let (events, out) = dagrun(dir.path(), &["run", "wf.ron", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let report = json(&dir.path().join("out/drift.json"));
        assert_eq!(
            (report["drifted"].clone(), report["status"].clone()),
            (Value::from(false), Value::from("insufficient_data"))
        );
        assert!(report["columns"].as_array().unwrap().iter().all(|c| c["decision"] == "insufficient_data"), "{report}");
        assert_eq!(finished(&events, "drift")["summary"]["drifted"], false);
    }

    // NaN, infinities and empty cells are counted per column; a column missing from one side
    // is skipped; numbers turned to text drift with a reason.
    let current = numbers(200, |i| match i {
        0 => "NaN,oops,1".to_owned(),
        1 => "inf,,0".to_owned(),
        2 => ",3,0".to_owned(),
        _ => format!("{},{},{}", i % 17, (i * 7) % 13, i % 2),
    })
    .replacen("x,y,label", "x,y,z", 1);
    let dir = drift_dir(&reference, &current, ", min_rows: 30");
    let (_, out) = dagrun(dir.path(), &["run", "wf.ron"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&dir.path().join("out/drift.json"));
    let column =
        |name: &str| report["columns"].as_array().unwrap().iter().find(|c| c["column"] == name).cloned().unwrap();
    assert_eq!(column("x")["current"]["missing"], serde_json::json!({"empty": 1, "nan": 1, "inf": 1}));
    assert_eq!(column("x")["decision"], "no_drift", "{}", column("x"));
    let y = column("y");
    assert_eq!(y["decision"], "drift", "numbers in the reference, text in the current: {y}");
    assert!(y["reason"].as_str().unwrap().contains("oops"), "{y}");
    assert!(
        report["skipped"].to_string().contains("label") && report["skipped"].to_string().contains("\"z\""),
        "{}",
        report["skipped"]
    );
}
