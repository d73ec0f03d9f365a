//! Engine benchmark: generates 200-, 1,000- and 10,000-task workflows of `Command` tasks and
//! reports plan time, first-run time beside its process-start floor (the same commands spawned
//! directly, two at a time), cached re-run wall time and peak memory.
//!
//! Run with `cargo bench -p dagrun --bench engine` (release build). Optional: `-- 1000` to
//! pick sizes, `DAGRUN_BENCH_REPEAT=N` for more cached re-runs (median is reported).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_dagrun");

/// Writes a workflow of `n` tasks: task i reads a shared input file and the output of task
/// (i-1)/2 (a binary tree: wide, like real fan-out pipelines), and writes one small file.
fn generate(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    for k in 0..100 {
        std::fs::write(dir.join(format!("data/in{k}.txt")), format!("input {k}\n")).unwrap();
    }
    let mut s = String::from("Workflow(\n    name: \"bench\",\n    tasks: [\n");
    for i in 0..n {
        let up = if i == 0 { String::new() } else { format!(", \"up\": Output(\"t{}\", \"o\")", (i - 1) / 2) };
        s.push_str(&format!(
            "        Task(name: \"t{i}\", kind: Command(run: \"cat $DAGRUN_IN_DATA > $DAGRUN_OUT_O\"), \
             inputs: {{\"data\": File(\"data/in{}.txt\"){up}}}, outputs: {{\"o\": \"out/t{i}.txt\"}}, \
             params: {{\"i\": {i}}}),\n",
            i % 100
        ));
    }
    s.push_str("    ],\n)\n");
    std::fs::write(dir.join("wf.ron"), s).unwrap();
}

struct Measured {
    wall: Duration,
    peak_rss_kb: Option<u64>,
    stdout: String,
}

fn dagrun(dir: &Path, args: &[&str]) -> Measured {
    let start = Instant::now();
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("run dagrun");
    let wall = start.elapsed();
    assert!(out.status.success(), "dagrun {args:?} failed: {:?}", out.status);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let peak_rss_kb = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "run_finished")
        .and_then(|e| e["peak_rss_kb"].as_u64());
    Measured { wall, peak_rss_kb, stdout }
}

/// The process-start floor of a first run: the same `sh -c` commands with the same inputs and
/// environment, spawned directly two at a time (two threads taking the next task in order).
fn floor(dir: &Path, n: usize) -> Duration {
    std::fs::create_dir_all(dir.join("floor")).unwrap();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let status = Command::new("sh")
                        .args(["-c", "cat $DAGRUN_IN_DATA > $DAGRUN_OUT_O"])
                        .env("DAGRUN_IN_DATA", dir.join(format!("data/in{}.txt", i % 100)))
                        .env("DAGRUN_OUT_O", dir.join(format!("floor/t{i}.txt")))
                        .current_dir(dir)
                        .stdin(Stdio::null())
                        .status()
                        .unwrap();
                    assert!(status.success());
                }
            });
        }
    });
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![200, 1000, 10_000] } else { sizes };
    let repeat: usize = std::env::var("DAGRUN_BENCH_REPEAT").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    println!(
        "dagrun engine benchmark ({} cores, {repeat} cached re-runs each, median)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:>7}  {:>12}  {:>12}  {:>12}  {:>8}  {:>12}  {:>14}  {:>14}  {:>12}",
        "tasks",
        "plan (cold)",
        "first run",
        "floor",
        "ratio",
        "plan (warm)",
        "cached re-run",
        "cached peak",
        "validate"
    );
    for n in sizes {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), n);
        let validate = dagrun(dir.path(), &["validate", "wf.ron"]).wall;
        let plan_cold = dagrun(dir.path(), &["plan", "wf.ron"]).wall;
        // First runs (fresh state and outputs each time; once at 10,000 tasks) and the floor.
        let firsts = if n <= 1000 { repeat.min(3) } else { 1 };
        let mut first_walls = Vec::new();
        let mut floors = Vec::new();
        for k in 0..firsts {
            if k > 0 {
                std::fs::remove_dir_all(dir.path().join(".dagrun")).unwrap();
                std::fs::remove_dir_all(dir.path().join("out")).unwrap();
            }
            let first = dagrun(dir.path(), &["run", "wf.ron", "--json"]);
            assert!(first.stdout.contains(&format!("\"succeeded\":{n},")), "first run did not run every task");
            first_walls.push(first.wall);
            floors.push(floor(dir.path(), n));
        }
        let (first, floor) = (median(first_walls), median(floors));
        // One warm-up re-run lets the stat cache trust the freshly written outputs.
        dagrun(dir.path(), &["run", "wf.ron", "--json"]);
        let plan_warm = dagrun(dir.path(), &["plan", "wf.ron"]).wall;
        let mut walls = Vec::new();
        let mut peak = 0;
        for _ in 0..repeat {
            let m = dagrun(dir.path(), &["run", "wf.ron", "--json"]);
            assert!(m.stdout.contains(&format!("\"cached\":{n},")), "re-run was not fully cached");
            walls.push(m.wall);
            peak = peak.max(m.peak_rss_kb.unwrap_or(0));
        }
        println!(
            "{n:>7}  {:>12}  {:>12}  {:>12}  {:>7.2}×  {:>12}  {:>14}  {:>11} MiB  {:>12}",
            ms(plan_cold),
            ms(first),
            ms(floor),
            first.as_secs_f64() / floor.as_secs_f64(),
            ms(plan_warm),
            ms(median(walls)),
            peak / 1024,
            ms(validate)
        );
    }
}
