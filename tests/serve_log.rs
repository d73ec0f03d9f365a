//! The prediction log end to end: `dagrun serve --prediction-log DIR` with a fixture model, the
//! logged rows checked against the answers, a real `Drift` workflow reading the day's file
//! against the deployed model's training data (no drift for rows like it, drift for shifted
//! ones), and a `kill -9` in the middle of traffic that leaves a valid CSV behind.
//!
//! Needs the ONNX Runtime library (`pip install onnxruntime==1.31.1`, or `ORT_DYLIB_PATH`).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::Sandbox;
use common::serve::{Serve, add_version, fixture_data, fixture_model, set_current};
use dagrun_contracts::registry;
use serde_json::{Map, Value};

/// The feature names given to the fixture model (its test CSV calls them f0..f7).
const FEATURES: [&str; 8] = ["age", "tenure", "spend", "visits", "calls", "plan", "region", "score"];

/// Columns of the log: the features, `prediction`, two probabilities, three metadata columns.
const COLUMNS: usize = FEATURES.len() + 1 + 2 + 3;

/// The fixture's test rows: features and label.
fn fixture_rows() -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(fixture_data("logreg_binary")).unwrap();
    text.lines().skip(1).map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect()
}

/// A registry with `churn` v0001 current: the fixture classifier with feature names, deployed
/// with its test data (renamed columns, the label kept) as the training data it was fitted on.
fn registry(dir: &Path) -> PathBuf {
    let reg = dir.join("registry");
    let model = std::fs::read(fixture_model("logreg_binary")).unwrap();
    add_version(&reg, "churn", "v0001", &common::serve::with_feature_names(&model, &FEATURES));
    let version = registry::version_dir(&reg, "churn", "v0001");
    let text = std::fs::read_to_string(fixture_data("logreg_binary")).unwrap();
    let (_, body) = text.split_once('\n').unwrap();
    let reference = format!("{},label\n{body}", FEATURES.join(","));
    std::fs::write(version.join("reference.csv"), &reference).unwrap();
    let mut meta = registry::read_metadata(&reg, "churn", "v0001").unwrap();
    meta.reference = Some(registry::ReferenceData {
        file: "reference.csv".into(),
        digest: blake3::hash(reference.as_bytes()).to_hex().to_string(),
        source: "test.csv".into(),
    });
    std::fs::write(version.join(registry::METADATA_FILE), meta.to_json()).unwrap();
    set_current(&reg, "churn", "v0001");
    reg
}

/// Rows as JSON records by feature name (`shift` added to every feature).
fn records(rows: &[Vec<f64>], shift: f64) -> String {
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            let m: Map<String, Value> =
                FEATURES.iter().zip(r).map(|(f, v)| ((*f).to_owned(), (v + shift).into())).collect();
            Value::Object(m)
        })
        .collect();
    Value::Array(items).to_string()
}

/// `POST /predict/churn` with `body`: the answer (panics unless 200).
async fn predict(client: &reqwest::Client, serve_url: &str, body: String) -> Value {
    let r = client.post(format!("{serve_url}/predict/churn")).body(body).send().await.unwrap();
    let status = r.status().as_u16();
    let answer: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{answer}");
    answer
}

/// Sends `rows` in requests of `batch`; the answers, in order.
fn send(serve: &Serve, rows: &[Vec<f64>], batch: usize, shift: f64) -> Vec<Value> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = serve.url("");
    rt.block_on(async {
        let client = reqwest::Client::new();
        let mut answers = Vec::new();
        for chunk in rows.chunks(batch) {
            answers.push(predict(&client, &url, records(chunk, shift)).await);
        }
        answers
    })
}

/// The day files in `<log>/churn`.
fn day_files(log: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(log.join("churn")).map(|d| d.map(|e| e.unwrap().path()).collect()).unwrap_or_default();
    files.sort();
    files
}

/// The one day file (the test would need to cross midnight UTC to make two), and its day.
fn the_day_file(log: &Path) -> (PathBuf, String) {
    let files = day_files(log);
    assert_eq!(files.len(), 1, "{files:?}");
    let day = files[0].file_stem().unwrap().to_string_lossy().into_owned();
    assert_eq!(day.len(), 10, "{day}: <YYYY-MM-DD>.csv");
    (files[0].clone(), day)
}

fn parse(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = text.lines().map(|l| l.split(',').map(str::to_owned).collect::<Vec<_>>());
    let header = lines.next().unwrap_or_default();
    (header, lines.collect())
}

/// Checks the logged lines against the rows sent and the answers they got.
fn check_lines(lines: &[Vec<String>], rows: &[Vec<f64>], answers: &[Value]) {
    let predicted: Vec<&Value> = answers.iter().flat_map(|a| a["predictions"].as_array().unwrap()).collect();
    let probabilities: Vec<&Value> = answers.iter().flat_map(|a| a["probabilities"].as_array().unwrap()).collect();
    assert_eq!(lines.len(), rows.len(), "one line per row");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line.len(), COLUMNS, "line {i}: {line:?}");
        for (j, sent) in rows[i][..FEATURES.len()].iter().enumerate() {
            assert_eq!(line[j].parse::<f32>().unwrap(), *sent as f32, "line {i}, feature {j}");
        }
        assert_eq!(line[8], predicted[i].to_string(), "line {i}: the prediction answered");
        for c in 0..2 {
            let answered = probabilities[i][c].as_f64().unwrap() as f32;
            assert_eq!(line[9 + c].parse::<f32>().unwrap(), answered, "line {i}: proba {c}");
        }
        assert!(line[11].ends_with('Z') && line[11].len() == 24, "{}", line[11]);
        assert_eq!(line[12], "v0001");
        assert_eq!(line[13], answers[0]["digest"].as_str().unwrap()[..16]);
    }
}

/// A daily `Drift` of the logged day against the deployed model's training data, with no
/// configuration beyond the two inputs.
fn drift_workflow(registry: &Path, log: &Path) -> String {
    format!(
        r#"Workflow(
    name: "serving",
    partitions: {{"daily": Daily(start: "2025-01-01")}},
    tasks: [
        Task(
            name: "drift",
            partitioned: "daily",
            kind: Drift(reference: Deployed(registry: "{}", name: "churn"), current: "served"),
            inputs: {{"served": File("{}/churn/{{date}}.csv")}},
            outputs: {{"report": "out/drift/{{date}}.json"}},
        ),
    ],
)"#,
        registry.display(),
        log.display()
    )
}

/// Runs the drift check of `day`: its report.
fn drift(sandbox: &Sandbox, day: &str) -> Value {
    let (statuses, _, code) = sandbox.run_json(&["--partition", day]);
    let report = sandbox.path(&format!("out/drift/{day}.json"));
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    let status = statuses.get(&format!("drift@{day}")).map(String::as_str);
    assert_eq!((code, status), (0, Some("succeeded")), "{statuses:?} {text}");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn logged_requests_match_the_answers_and_a_drift_check_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path());
    let log = dir.path().join("predictions");
    let log_arg = log.to_str().unwrap();
    let rows = fixture_rows();

    let serve = Serve::start(&reg, &["--prediction-log", log_arg]);
    let answers = send(&serve, &rows, 40, 0.0);
    assert_eq!(serve.terminate(), Some(0), "stops cleanly");
    let (file, day) = the_day_file(&log);
    let (header, lines) = parse(&std::fs::read_to_string(&file).unwrap());
    let mut expected: Vec<&str> = FEATURES.to_vec();
    expected.extend(["prediction", "proba_0", "proba_1", "_served_at", "_model_version", "_model_digest"]);
    assert_eq!(header, expected);
    check_lines(&lines, &rows, &answers);
    assert!(lines.iter().all(|l| l[11].starts_with(&day)), "the UTC day of the request");

    let sandbox = Sandbox::new(&drift_workflow(&reg, &log));
    let report = drift(&sandbox, &day);
    assert_eq!(report["status"], "no_drift", "{report}");
    assert_eq!(report["current"]["rows"], rows.len());
    let compared: Vec<&str> =
        report["columns"].as_array().unwrap().iter().map(|c| c["column"].as_str().unwrap()).collect();
    assert_eq!(compared, FEATURES, "the features are compared, nothing else");
    let skipped = &report["skipped"];
    assert_eq!(skipped["only_in_reference"], serde_json::json!(["label"]), "{skipped}");
    let only_current: Vec<&str> =
        skipped["only_in_current"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(only_current, &expected[8..], "{skipped}");

    // A restart appends to the day's file (one header); shifted rows make it drift.
    let serve = Serve::start(&reg, &["--prediction-log", log_arg]);
    let shifted = send(&serve, &rows, 100, 2.0);
    assert_eq!(shifted.len(), 10);
    assert_eq!(serve.terminate(), Some(0));
    assert_eq!(day_files(&log), std::slice::from_ref(&file), "the same file");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.matches("prediction").count(), 1, "one header");
    let (_, lines) = parse(&text);
    assert_eq!(lines.len(), 2 * rows.len());
    assert!(lines.iter().all(|l| l.len() == COLUMNS));
    let report = drift(&sandbox, &day);
    assert_eq!(report["status"], "drift", "{report}");
    assert_eq!(report["drifted_columns"].as_array().unwrap().len(), FEATURES.len(), "{report}");
}

#[test]
fn sampling_logs_a_share_of_the_requests() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path());
    let log = dir.path().join("predictions");
    let rows = fixture_rows();
    let serve = Serve::start(&reg, &["--prediction-log", log.to_str().unwrap(), "--log-sample", "0"]);
    send(&serve, &rows[..50], 10, 0.0);
    assert_eq!(serve.terminate(), Some(0));
    assert_eq!(day_files(&log), Vec::<PathBuf>::new(), "nothing is logged at 0");
}

/// Sends requests of 5 rows from a thread until `stop`; counts the answered ones.
fn traffic(url: String, stop: Arc<AtomicBool>, answered: Arc<AtomicUsize>) -> std::thread::JoinHandle<()> {
    let rows = fixture_rows();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let client = reqwest::Client::new();
            for chunk in rows.chunks(5).cycle() {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let sent = client.post(format!("{url}/predict/churn")).body(records(chunk, 0.0)).send().await;
                match sent {
                    Ok(r) if r.status().is_success() => {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => return, // the service was killed
                }
            }
        });
    })
}

/// Waits (at most 60 s) until the day's file holds at least `lines` lines.
fn wait_for_lines(log: &Path, lines: usize) {
    let start = Instant::now();
    loop {
        let have = day_files(log).first().map_or(0, |f| std::fs::read_to_string(f).unwrap_or_default().lines().count());
        if have >= lines {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the log has {have} lines, waiting for {lines}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_kill_in_the_middle_of_traffic_leaves_a_valid_csv_that_logging_continues() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path());
    let log = dir.path().join("predictions");
    let log_arg = log.to_str().unwrap();

    let mut serve = Serve::start(&reg, &["--prediction-log", log_arg]);
    let (stop, answered) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let sender = traffic(serve.url(""), stop.clone(), answered.clone());
    wait_for_lines(&log, 51);
    serve.child.kill().unwrap(); // SIGKILL while requests keep coming
    serve.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    assert!(answered.load(Ordering::Relaxed) >= 10);
    let (file, _) = the_day_file(&log);
    let before = std::fs::read_to_string(&file).unwrap();
    let before = &before[..before.rfind('\n').map_or(0, |i| i + 1)]; // a line the kill cut short goes
    // The worst a kill can do: a line cut short.
    std::fs::write(&file, format!("{before}1.5,-0.25,3")).unwrap();

    let serve = Serve::start(&reg, &["--prediction-log", log_arg]);
    let rows = fixture_rows();
    send(&serve, &rows[..100], 20, 0.0);
    assert_eq!(serve.terminate(), Some(0));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with(before), "what was written before the kill is kept");
    assert!(text.ends_with('\n'));
    let (header, lines) = parse(&text);
    assert_eq!(header.len(), COLUMNS);
    assert!(lines.iter().all(|l| l.len() == COLUMNS), "every line has the header's columns");
    assert_eq!(text.matches("prediction").count(), 1, "one header");
    let logged_before = before.lines().count() - 1;
    assert_eq!(lines.len(), logged_before + 100, "the 100 rows after the restart are all there");
}
