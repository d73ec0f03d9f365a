//! Engine benchmark: generates 200-, 1,000- and 10,000-task workflows of `Command` tasks and
//! reports plan time, first-run time, cached re-run wall time and peak memory.
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
        "{:>7}  {:>12}  {:>12}  {:>12}  {:>14}  {:>14}  {:>12}",
        "tasks", "plan (cold)", "first run", "plan (warm)", "cached re-run", "cached peak", "validate"
    );
    for n in sizes {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), n);
        let validate = dagrun(dir.path(), &["validate", "wf.ron"]).wall;
        let plan_cold = dagrun(dir.path(), &["plan", "wf.ron"]).wall;
        let first = dagrun(dir.path(), &["run", "wf.ron", "--json"]);
        assert!(first.stdout.contains(&format!("\"succeeded\":{n},")), "first run did not run every task");
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
            "{n:>7}  {:>12}  {:>12}  {:>12}  {:>14}  {:>11} MiB  {:>12}",
            ms(plan_cold),
            ms(first.wall),
            ms(plan_warm),
            ms(median(walls)),
            peak / 1024,
            ms(validate)
        );
    }
}
