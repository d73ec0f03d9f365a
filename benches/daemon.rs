//! Daemon benchmark: the real `dagrun daemon` (release build) on a `FileLanded` workflow.
//!
//! Reports:
//! - file landed → first task started: p50 / p99 over 100 files, landed one at a time (each
//!   file appears atomically by rename; the task writes its start time);
//! - 1,000 files landing at once → time until all 1,000 are recorded in the event log, and how
//!   many runs they took (coalescing);
//! - an idle daemon: CPU over 60 s (`/proc/<pid>/stat` utime + stime) and resident memory.
//!
//! Run with `cargo bench -p dagrun --bench daemon`. `DAGRUN_BENCH_IDLE_SECS` (default 60)
//! shortens the idle measurement; `DAGRUN_BENCH_FILES` (default 100) the latency sample.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dagrun_automate::log::{EventLog, Source};

const BIN: &str = env!("CARGO_BIN_EXE_dagrun");

fn now_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

/// A workflow whose one task reads every landed file and appends its start time to `starts.txt`.
fn workflow(dir: &Path, settle: &str) {
    std::fs::create_dir_all(dir.join("landing")).unwrap();
    std::fs::write(
        dir.join("wf.ron"),
        format!(
            r#"Workflow(
    name: "landed",
    triggers: [FileLanded(glob: "landing/*.csv", settle: "{settle}")],
    tasks: [Task(
        name: "ingest",
        kind: Command(run: "date +%s%N >> starts.txt; cat landing/*.csv | wc -l > $DAGRUN_OUT_ROWS"),
        inputs: {{"data": Glob("landing/*.csv")}},
        outputs: {{"rows": "out/rows.txt"}},
    )],
)"#
        ),
    )
    .unwrap();
}

fn start(dir: &Path) -> Child {
    let child = Command::new(BIN)
        .args(["daemon", ".", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .env("DAGRUN_FSYNC", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join(".dagrun/daemon.json").exists() {
        assert!(Instant::now() < deadline, "daemon did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

fn land(dir: &Path, name: &str, rows: usize) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, "x,y\n".repeat(rows)).unwrap();
    std::fs::rename(&tmp, dir.join("landing").join(name)).unwrap();
}

fn starts(dir: &Path) -> Vec<u128> {
    std::fs::read_to_string(dir.join("starts.txt"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn latency(files: usize) {
    let dir = tempfile::tempdir().unwrap();
    workflow(dir.path(), "20ms");
    let mut daemon = start(dir.path());
    let mut ms = Vec::new();
    for i in 0..files {
        let before = starts(dir.path()).len();
        let t0 = now_ns();
        land(dir.path(), &format!("f{i:04}.csv"), 10);
        let deadline = Instant::now() + Duration::from_secs(30);
        let started = loop {
            let s = starts(dir.path());
            if s.len() > before {
                break s[before];
            }
            assert!(Instant::now() < deadline, "file {i} did not start a run");
            std::thread::sleep(Duration::from_millis(1));
        };
        ms.push((started.saturating_sub(t0)) as f64 / 1e6);
        // Let the run finish before the next file, so each file gets its own run.
        std::thread::sleep(Duration::from_millis(150));
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "file landed -> first task started ({files} files, settle 20ms): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(&ms, 0.5),
        pct(&ms, 0.99),
        ms[ms.len() - 1]
    );
    let _ = daemon.kill();
    let _ = daemon.wait();
}

fn burst(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    workflow(dir.path(), "200ms");
    let mut daemon = start(dir.path());
    let t0 = Instant::now();
    for i in 0..n {
        land(dir.path(), &format!("b{i:05}.csv"), 1);
    }
    let written = t0.elapsed();
    let log = EventLog::open(&dir.path().join(".dagrun")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let recorded = loop {
        let files =
            log.recent(Some("landed"), n + 10).unwrap().iter().filter(|e| e.event.source == Source::File).count();
        if files >= n {
            break t0.elapsed();
        }
        assert!(Instant::now() < deadline, "only {files} of {n} files recorded after 120 s");
        std::thread::sleep(Duration::from_millis(5));
    };
    // Wait for the queue to drain, then count runs.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let pending = log.counts("landed").unwrap().iter().any(|(s, n)| s.as_str() != "done" && *n > 0);
        if !pending {
            break;
        }
        assert!(Instant::now() < deadline, "events still pending after 120 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let runs: std::collections::BTreeSet<String> =
        log.recent(Some("landed"), n + 10).unwrap().into_iter().filter_map(|e| e.run_id).collect();
    println!(
        "{n} files at once: written in {:.0} ms, all recorded after {:.0} ms (settle 200ms), handled by {} run(s)",
        written.as_secs_f64() * 1e3,
        recorded.as_secs_f64() * 1e3,
        runs.len()
    );
    let _ = daemon.kill();
    let _ = daemon.wait();
}

fn proc_cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the command name.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn idle(secs: u64) {
    let dir = tempfile::tempdir().unwrap();
    workflow(dir.path(), "2s");
    let mut daemon = start(dir.path());
    std::thread::sleep(Duration::from_secs(2));
    let pid = daemon.id();
    let hz = 100.0; // USER_HZ on Linux
    let (c0, t0) = (proc_cpu_ticks(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(secs));
    let (c1, wall) = (proc_cpu_ticks(pid), t0.elapsed());
    let cpu_pct = (c1 - c0) as f64 / hz / wall.as_secs_f64() * 100.0;
    println!(
        "idle daemon over {secs} s: CPU {cpu_pct:.3} % of one core ({} ticks of 10 ms), resident memory {:.1} MiB",
        c1 - c0,
        rss_kb(pid) as f64 / 1024.0
    );
    let _ = daemon.kill();
    let _ = daemon.wait();
}

fn main() {
    let files = std::env::var("DAGRUN_BENCH_FILES").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let idle_secs = std::env::var("DAGRUN_BENCH_IDLE_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    latency(files);
    burst(1_000);
    idle(idle_secs);
}
