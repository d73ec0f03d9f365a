//! Backfill benchmark: a 365-day workflow (one small task per day reading a tiny file and
//! writing one). Reports wall time and peak memory for the first backfill, a re-run with
//! nothing changed, and a re-run with 3 days changed.
//!
//! Run with `cargo bench -p dagrun --bench backfill` (release build).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_dagrun");

const WORKFLOW: &str = r#"Workflow(
    name: "year",
    partitions: {"daily": Daily(start: "2025-01-01", end: "2025-12-31")},
    tasks: [
        Task(name: "prep", partitioned: "daily", kind: Command(run: "cat $DAGRUN_IN_RAW > $DAGRUN_OUT_CLEAN"),
             inputs: {"raw": File("data/{date}.csv")}, outputs: {"clean": "out/{date}.csv"}),
    ],
)"#;

fn backfill(dir: &Path) -> (Duration, u64, serde_json::Value) {
    let start = Instant::now();
    let out = Command::new(BIN)
        .args(["backfill", "wf.ron", "--from", "2025-01-01", "--to", "2025-12-31", "--json"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let wall = start.elapsed();
    assert!(out.status.success());
    let last: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    (wall, last["peak_rss_kb"].as_u64().unwrap_or(0), last["counts"].clone())
}

/// The run's counts are exactly these (`refused` is 0).
fn assert_counts(counts: &serde_json::Value, succeeded: u64, cached: u64) {
    let want = serde_json::json!({"succeeded": succeeded, "cached": cached, "failed": 0, "skipped": 0, "refused": 0});
    assert_eq!(counts, &want);
}

fn main() {
    let repeat: usize = std::env::var("DAGRUN_BENCH_REPEAT").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let mut first = Vec::new();
    let mut unchanged = Vec::new();
    let mut three = Vec::new();
    for round in 0..repeat {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("wf.ron"), WORKFLOW).unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let start = dagrun_workflow::partition::days_from_civil(2025, 1, 1);
        for i in 0..365 {
            let (y, m, d, _) = dagrun_workflow::partition::civil((start + i) * 86_400);
            std::fs::write(dir.path().join(format!("data/{y}-{m:02}-{d:02}.csv")), format!("{i}\n")).unwrap();
        }
        let r = backfill(dir.path());
        assert_counts(&r.2, 365, 0);
        first.push(r);
        let r = backfill(dir.path());
        assert_counts(&r.2, 0, 365);
        unchanged.push(r);
        for d in ["2025-02-03", "2025-07-14", "2025-11-30"] {
            std::fs::write(dir.path().join(format!("data/{d}.csv")), format!("changed {round}\n")).unwrap();
        }
        let r = backfill(dir.path());
        assert_counts(&r.2, 3, 362);
        three.push(r);
    }
    println!("365-day backfill, one small task per day, {repeat} rounds (median wall, max peak memory)");
    for (what, mut v) in
        [("first backfill", first), ("re-run, nothing changed", unchanged), ("re-run, 3 days changed", three)]
    {
        v.sort_by_key(|r| r.0);
        let peak = v.iter().map(|r| r.1).max().unwrap_or(0);
        println!(
            "{what:<26} {:>9.1} ms   peak {:>5.1} MiB",
            v[v.len() / 2].0.as_secs_f64() * 1e3,
            peak as f64 / 1024.0
        );
    }
}
