//! Report benchmark: the real `dagrun report` (release build) on a history of 10,000 runs.
//!
//! Generates, in a temp dir, 10,000 run records over 300 days through the engine's own types
//! (`RunRecord::save`): 6 tasks each, most of them cache hits, 5% failed runs, 3% gate
//! refusals with their shortfall, a deploy every 10th run, a rollback every 200th; and 100
//! drift incidents (90 resolved) through the history store. Then times:
//! - the first `dagrun report`, which imports all 10,000 JSON records into the history store;
//! - warm `dagrun report --since 365d` (every run in the window) as JSON, table and HTML:
//!   median and worst of `DAGRUN_BENCH_REPEAT` (default 20) runs each, process start to exit.
//!
//! - then `dagrun ui` on that history: each page (`/`, `/runs`, one run, the DAG, the backfill
//!   grid, `/models`, `/drift`, `/payoff`) requested `DAGRUN_BENCH_REPEAT` times over loopback,
//!   median and worst, request sent to response read (an upper bound of the server-side render).
//!
//! Run with `benches/report/run.sh` (release build in its own target directory), or
//! `cargo bench -p dagrun --bench report`. `DAGRUN_BENCH_RUNS` changes the 10,000.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dagrun_cache::{ActionKey, Digest, Durability, Store};
use dagrun_exec::{Counts, RUN_RECORD_VERSION, RegistryChange, RunRecord, RunStatus, TaskRecord, TaskStatus};

const BIN: &str = env!("CARGO_BIN_EXE_dagrun");
const TASKS: [&str; 6] = ["train-data", "test-data", "train", "evaluate", "approve", "deploy"];

fn task(name: &str, status: TaskStatus, error: Option<String>, summary: Option<serde_json::Value>) -> TaskRecord {
    let cached = status == TaskStatus::Cached;
    TaskRecord {
        task: name.into(),
        status,
        duration_ms: if cached { 1 } else { 4_000 },
        started_ms: None,
        key: Some(ActionKey(Digest::of(name.as_bytes()))),
        cached,
        saved_ms: if cached { 4_000 } else { 0 },
        attempts: u32::from(!cached),
        failure: None,
        error,
        log: None,
        summary: summary.map(Box::new),
    }
}

fn record(i: usize, start_ms: u64) -> RunRecord {
    let fails = i % 20 == 7;
    let refused = !fails && i % 33 == 5;
    let deploys = !fails && !refused && i.is_multiple_of(10);
    let mut tasks = Vec::new();
    let mut counts = Counts::default();
    for (k, name) in TASKS.iter().enumerate() {
        let (status, error, summary) = match (k, fails, refused, deploys) {
            (2, true, _, _) => (TaskStatus::Failed, Some("exit code 1".to_owned()), None),
            (3.., true, _, _) | (4.., _, true, _) => (TaskStatus::Skipped, Some("upstream failed".to_owned()), None),
            (3, _, true, _) => {
                let reason = "accuracy 0.81 < champion v0003 0.84 (margin 0)";
                let summary = serde_json::json!({"verdict": "refuse", "reason": reason,
                    "shortfall": {"metric": "accuracy", "value": 0.81, "threshold": 0.84, "by": 0.03}});
                (TaskStatus::Refused, Some(format!("gate refused: {reason}")), Some(summary))
            }
            (2.., _, _, true) => (TaskStatus::Succeeded, None, None),
            _ => (TaskStatus::Cached, None, None),
        };
        counts.add(status);
        tasks.push(task(name, status, error, summary));
    }
    let version = |n: usize| Some(format!("v{:04}", n + 1));
    let deployed = i / 10;
    let registry = vec![RegistryChange {
        registry: "registry".into(),
        name: "churn".into(),
        before: version(deployed.saturating_sub(usize::from(deploys))),
        after: if i % 200 == 105 { version(deployed.saturating_sub(1)) } else { version(deployed) },
    }];
    let status = match (fails, refused) {
        (true, _) => RunStatus::Failed,
        (_, true) => RunStatus::Refused,
        _ => RunStatus::Succeeded,
    };
    RunRecord {
        version: RUN_RECORD_VERSION,
        id: format!("{}-{i:05}", dagrun_exec::new_run_id(start_ms)),
        workflow: "workflows/retrain.ron".into(),
        workflow_name: if i.is_multiple_of(4) { "monitor".into() } else { "retrain".into() },
        started_ms: start_ms,
        finished_ms: Some(start_ms + 30_000),
        status,
        saved_ms: tasks.iter().map(|t| t.saved_ms).sum(),
        counts,
        tasks,
        registry,
        manual_minutes: Some(45),
        pid: None,
        pid_started: None,
    }
}

fn generate(state: &Path, runs: usize) {
    let store = Store::open(state, Durability::NoFsync).unwrap();
    let now = dagrun_cache::now_ms();
    let span: u64 = 300 * 86_400_000;
    for i in 0..runs {
        let start = now - span + span * i as u64 / runs as u64;
        record(i, start).save(&store).unwrap();
    }
    let history = dagrun_history::History::open(state).unwrap();
    for k in 0..100 {
        let detected = (now - span + k * 3 * 86_400_000) as i64;
        history.drift_alert("monitor", "/w/registry", "churn", "bench", detected).unwrap();
        if k < 90 {
            history
                .resolve_incidents("/w/registry", "churn", "bench", "deployed", detected + (k as i64 + 1) * 600_000)
                .unwrap();
        }
    }
}

fn time(dir: &Path, args: &[&str]) -> (Duration, usize) {
    let started = Instant::now();
    let out = Command::new(BIN).args(args).current_dir(dir).stdin(Stdio::null()).output().unwrap();
    let took = started.elapsed();
    assert!(out.status.success(), "dagrun {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    (took, out.stdout.len())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let runs: usize = std::env::var("DAGRUN_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let repeat: usize = std::env::var("DAGRUN_BENCH_REPEAT").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    generate(&dir.path().join(".dagrun"), runs);
    println!("generated {runs} run records and 100 drift incidents in {}", ms(started.elapsed()));

    let (first, _) = time(dir.path(), &["report", "--since", "365d", "--format", "json"]);
    println!("first report (imports {runs} JSON records into the history store): {}", ms(first));
    let out = Command::new(BIN)
        .args(["report", "--since", "365d", "--format", "json"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["total"]["runs"].as_u64(), Some(runs as u64), "every run is in the window");
    for format in ["json", "table", "html"] {
        let mut times: Vec<Duration> =
            (0..repeat).map(|_| time(dir.path(), &["report", "--since", "365d", "--format", format]).0).collect();
        times.sort_unstable();
        let bytes = time(dir.path(), &["report", "--since", "365d", "--format", format]).1;
        println!(
            "warm report --format {format:5} over {runs} runs: median {}, worst {} ({repeat} runs; {bytes} bytes)",
            ms(times[times.len() / 2]),
            ms(*times.last().unwrap())
        );
    }
    let newest = dagrun_history::History::open(&dir.path().join(".dagrun")).unwrap().runs(None, 1).unwrap();
    time_ui(dir.path(), repeat, &newest[0].id);
}

/// `dagrun ui` on the generated history: every page, timed over loopback.
fn time_ui(dir: &Path, repeat: usize, run_id: &str) {
    let mut child = Command::new(BIN)
        .args(["ui", "--addr", "127.0.0.1:0"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("dagrun ui listens").unwrap();
        if let Some(rest) = line.strip_prefix("listening on http://") {
            break rest.trim_end_matches('/').to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let run = format!("/runs/{run_id}");
    let pages =
        ["/", "/runs", &run, "/workflows/retrain", "/workflows/retrain/backfill", "/models", "/drift", "/payoff"];
    for page in pages {
        let get = || {
            let started = Instant::now();
            let mut c = std::net::TcpStream::connect(&addr).unwrap();
            write!(c, "GET {page} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
            let mut out = Vec::new();
            c.read_to_end(&mut out).unwrap();
            assert!(
                out.starts_with(b"HTTP/1.1 200"),
                "{page}: {}",
                String::from_utf8_lossy(&out[..out.len().min(200)])
            );
            (started.elapsed(), out.len())
        };
        let mut times: Vec<Duration> = (0..repeat).map(|_| get().0).collect();
        times.sort_unstable();
        println!(
            "dagrun ui {page:28} median {}, worst {} ({repeat} requests; {} bytes)",
            ms(times[times.len() / 2]),
            ms(*times.last().unwrap()),
            get().1
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}
