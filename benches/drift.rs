//! Drift benchmark: the real `dagrun` (release build) running one native `Drift` task on
//! 1,000,000 rows × 20 float64 columns, reference vs current, default tests, beside Evidently's
//! data drift preset and plain SciPy on the same files (issue #11).
//!
//! Steps:
//! - `scripts/bench-drift-venv.sh` makes (or reuses) a benchmark-only Python venv with pinned
//!   Evidently, pandas, numpy, SciPy and pyarrow;
//! - `scripts/bench-drift.py generate` writes the data once under
//!   `<target dir>/bench-drift/data/` (reused while rows, columns, seed and the script are the same);
//! - `dagrun run wf.ron --force --json` on a Parquet and a CSV workflow: one first run (it hashes
//!   the inputs, as a run on new data does), then 5 timed runs; Evidently and SciPy 3 timed runs
//!   each per format (`scripts/bench-drift.py evidently|scipy DIR FORMAT`).
//!
//! Every tool is timed and measured the same way: wall time of the whole process, from spawn to
//! exit, its CPU time (`wait4`'s `ru_utime` + `ru_stime`; steadier than wall time when other work
//! shares the cores) and its peak resident memory (`ru_maxrss`). Prints a markdown table and
//! writes `<target dir>/bench-drift/results.json`. Checks that dagrun's drifted columns are the
//! ones SciPy decides with the same rule; a mismatch exits non-zero.
//!
//! Run with `cargo bench -p dagrun --bench drift`. Environment:
//! - `DAGRUN_BENCH_DRIFT_ROWS` (default 1000000): rows of each of reference and current;
//! - `DAGRUN_BENCH_DRIFT_REPEAT` (default 5) and `DAGRUN_BENCH_DRIFT_PY_REPEAT` (default 3):
//!   timed runs of dagrun and of each Python tool;
//! - `DAGRUN_BENCH_DRIFT_SKIP_DAGRUN=1`: only the Python tools (for a build without `Drift`);
//! - `DAGRUN_BENCH_VENV`: where the venv lives (default `~/.cache/dagrun/venv-bench-drift`).

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_dagrun");
const COLS: usize = 20;
const SEED: u64 = 11;
const FORMATS: [&str; 2] = ["parquet", "csv"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One finished process: wall time from spawn to exit, CPU time (user + system), peak resident
/// memory, its stdout.
struct Measured {
    wall: Duration,
    cpu: Duration,
    max_rss_kb: u64,
    stdout: String,
}

/// Runs `cmd` to completion and measures it. The child is reaped with `wait4`, whose
/// `ru_maxrss` is the child's peak resident set (KiB on Linux), so every tool is measured alike.
/// stderr goes to `stderr_to`, shown if the process fails.
#[allow(clippy::zombie_processes)] // reaped by wait4, not Child::wait
fn measure(cmd: &mut Command, stderr_to: &Path) -> Measured {
    let err = std::fs::File::create(stderr_to).unwrap();
    let start = Instant::now();
    let mut child =
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(err).spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    let (status, cpu, max_rss_kb) = wait4(child.id());
    let wall = start.elapsed();
    if status != 0 {
        let stderr = std::fs::read_to_string(stderr_to).unwrap_or_default();
        let tail: Vec<&str> = stderr.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect();
        panic!("{cmd:?} failed (wait status {status}):\n{}\n{stdout}", tail.join("\n"));
    }
    Measured { wall, cpu, max_rss_kb, stdout }
}

/// Reaps child `pid`: its wait status, CPU time (`ru_utime` + `ru_stime`) and `ru_maxrss`. The `Child` it came from must not be
/// waited on afterwards (dropping it does not wait).
#[allow(unsafe_code)]
fn wait4(pid: u32) -> (i32, Duration, u64) {
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in; both pointers are valid for the call.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(r, pid as libc::pid_t, "wait4: {}", std::io::Error::last_os_error());
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    (status, tv(usage.ru_utime) + tv(usage.ru_stime), usage.ru_maxrss as u64)
}

/// The venv's python, made or reused by `scripts/bench-drift-venv.sh` (its last stdout line).
fn venv_python() -> PathBuf {
    let script = repo().join("scripts/bench-drift-venv.sh");
    let out = Command::new("bash").arg(&script).stderr(Stdio::inherit()).output().expect("run bench-drift-venv.sh");
    assert!(out.status.success(), "{} failed", script.display());
    PathBuf::from(String::from_utf8(out.stdout).unwrap().lines().last().expect("venv python path").trim())
}

/// Writes the data under `work/data` unless it is there for the same rows, columns, seed and
/// generator script (recorded in `generated.json`).
fn generate(python: &Path, work: &Path, rows: usize) -> PathBuf {
    let script = repo().join("scripts/bench-drift.py");
    let data = work.join("data");
    let want = json!({
        "rows": rows,
        "cols": COLS,
        "seed": SEED,
        "script_blake3": blake3::hash(&std::fs::read(&script).unwrap()).to_hex().to_string(),
    });
    let marker = data.join("generated.json");
    if std::fs::read_to_string(&marker).ok().and_then(|s| serde_json::from_str::<Value>(&s).ok()) == Some(want.clone())
    {
        println!("data: reusing {}", data.display());
        return data;
    }
    let tmp = work.join("data.tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    let _ = std::fs::remove_dir_all(&data);
    let t0 = Instant::now();
    let out = Command::new(python)
        .arg(&script)
        .args(["generate", tmp.to_str().unwrap(), "--rows", &rows.to_string(), "--cols", &COLS.to_string()])
        .args(["--seed", &SEED.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "bench-drift.py generate failed");
    std::fs::write(tmp.join("generated.json"), serde_json::to_string_pretty(&want).unwrap()).unwrap();
    std::fs::rename(&tmp, &data).unwrap();
    println!("data: generated {rows} rows x {COLS} columns in {:.1} s: {}", t0.elapsed().as_secs_f64(), data.display());
    data
}

/// A directory holding the Drift workflow for `format`, with the data files linked into it.
fn workflow_dir(work: &Path, data: &Path, format: &str) -> PathBuf {
    let dir = work.join(format!("wf-{format}"));
    std::fs::create_dir_all(&dir).unwrap();
    for stem in ["reference", "current"] {
        let (src, dst) = (data.join(format!("{stem}.{format}")), dir.join(format!("{stem}.{format}")));
        let _ = std::fs::remove_file(&dst);
        if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
    std::fs::write(
        dir.join("wf.ron"),
        format!(
            r#"Workflow(
    name: "drift-bench",
    tasks: [
        Task(
            name: "drift",
            kind: Drift(reference: "reference", current: "current"),
            inputs: {{"reference": File("reference.{format}"), "current": File("current.{format}")}},
            outputs: {{"report": "out/drift.json", "html": "out/drift.html"}},
        ),
    ],
)
"#
        ),
    )
    .unwrap();
    dir
}

/// The timed runs of one tool on one format.
#[derive(Default)]
struct Sample {
    tool: &'static str,
    format: &'static str,
    walls: Vec<Duration>,
    cpus: Vec<Duration>,
    max_rss_kb: u64,
    /// dagrun: the run before the timed ones (hashes the inputs); else none.
    first: Option<Duration>,
    /// dagrun: the largest `peak_rss_kb` its `run_finished` events reported.
    self_reported_rss_kb: Option<u64>,
    /// Python tools: the script's own load and compute times, per run.
    load: Vec<f64>,
    compute: Vec<f64>,
    drifted_columns: BTreeSet<String>,
}

impl Sample {
    fn add(&mut self, m: &Measured) {
        self.walls.push(m.wall);
        self.cpus.push(m.cpu);
        self.max_rss_kb = self.max_rss_kb.max(m.max_rss_kb);
    }
    fn median(&self) -> Duration {
        median(&self.walls)
    }
    fn min(&self) -> Duration {
        *self.walls.iter().min().unwrap()
    }
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

fn median_f64(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

/// `drifted_columns` of a `drift.json`.
fn dagrun_drifted(report: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(report).unwrap_or_else(|e| panic!("{}: {e}", report.display()));
    let v: Value = serde_json::from_str(&text).unwrap();
    v["drifted_columns"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no drifted_columns array", report.display()))
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

/// One `dagrun run wf.ron --force --json` in `dir`, and the `peak_rss_kb` it reported.
fn dagrun_once(dir: &Path) -> (Measured, Option<u64>) {
    let m = measure(
        Command::new(BIN).args(["run", "wf.ron", "--force", "--json"]).current_dir(dir),
        &dir.join("stderr.txt"),
    );
    let finished = m
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["event"] == "run_finished")
        .unwrap_or_else(|| panic!("no run_finished event in:\n{}", m.stdout));
    let kb = finished["peak_rss_kb"].as_u64();
    (m, kb)
}

fn run_dagrun(dir: &Path, format: &'static str, repeat: usize) -> Sample {
    let mut s = Sample { tool: "dagrun", format, ..Default::default() };
    let (first, _) = dagrun_once(dir);
    s.first = Some(first.wall);
    for _ in 0..repeat {
        let (m, kb) = dagrun_once(dir);
        if let Some(kb) = kb {
            s.self_reported_rss_kb = Some(s.self_reported_rss_kb.unwrap_or(0).max(kb));
        }
        s.add(&m);
        eprintln!(
            "  dagrun {format}: {:.3} s, CPU {:.3} s, {} MiB",
            m.wall.as_secs_f64(),
            m.cpu.as_secs_f64(),
            m.max_rss_kb / 1024
        );
    }
    s.drifted_columns = dagrun_drifted(&dir.join("out/drift.json"));
    s
}

fn run_python(python: &Path, data: &Path, tool: &'static str, format: &'static str, repeat: usize) -> Sample {
    let mut s = Sample { tool, format, ..Default::default() };
    let script = repo().join("scripts/bench-drift.py");
    for _ in 0..repeat {
        let m = measure(
            Command::new(python).arg(&script).args([tool, data.to_str().unwrap(), format]),
            &data.join(format!("stderr-{tool}.txt")),
        );
        let line: Value = serde_json::from_str(m.stdout.lines().last().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{tool}: bad JSON line ({e}):\n{}", m.stdout));
        s.load.push(line["load_s"].as_f64().unwrap());
        s.compute.push(line["compute_s"].as_f64().unwrap());
        s.drifted_columns =
            line["drifted_columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
        s.add(&m);
        eprintln!(
            "  {tool} {format}: {:.2} s, CPU {:.2} s, {} MiB",
            m.wall.as_secs_f64(),
            m.cpu.as_secs_f64(),
            m.max_rss_kb / 1024
        );
    }
    s
}

fn secs(d: Duration) -> String {
    if d < Duration::from_secs(10) { format!("{:.3} s", d.as_secs_f64()) } else { format!("{:.1} s", d.as_secs_f64()) }
}

fn mib(kb: u64) -> String {
    format!("{:.0} MiB", kb as f64 / 1024.0)
}

fn cols(set: &BTreeSet<String>) -> String {
    let mut v: Vec<&String> = set.iter().collect();
    v.sort_by_key(|c| (c.len(), c.as_str()));
    v.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(",")
}

/// The 1-, 5- and 15-minute load averages: other work on the machine skews the timings.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let rows = env_usize("DAGRUN_BENCH_DRIFT_ROWS", 1_000_000);
    let repeat = env_usize("DAGRUN_BENCH_DRIFT_REPEAT", 5).max(1);
    let py_repeat = env_usize("DAGRUN_BENCH_DRIFT_PY_REPEAT", 3).max(1);
    let skip_dagrun = std::env::var("DAGRUN_BENCH_DRIFT_SKIP_DAGRUN").is_ok_and(|v| v == "1");
    // The target directory: BIN is <target>/release/dagrun.
    let target = Path::new(BIN).parent().and_then(Path::parent).expect("target dir").to_path_buf();
    let work = target.join("bench-drift");
    std::fs::create_dir_all(&work).unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load_before = loadavg();
    println!("drift benchmark: {rows} rows x {COLS} columns, {cores} cores, load average {load_before}, dagrun {BIN}");

    let python = venv_python();
    let data = generate(&python, &work, rows);

    let mut samples: Vec<Sample> = Vec::new();
    for format in FORMATS {
        if !skip_dagrun {
            let dir = workflow_dir(&work, &data, format);
            eprintln!("dagrun {format}: 1 first run + {repeat} timed runs");
            samples.push(run_dagrun(&dir, format, repeat));
        }
        for tool in ["scipy", "evidently"] {
            eprintln!("{tool} {format}: {py_repeat} timed runs");
            samples.push(run_python(&python, &data, tool, format, py_repeat));
        }
    }

    println!();
    println!(
        "| tool | format | wall (median of n) | min | CPU user+sys (median) | peak RSS | speedup vs Evidently | notes |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---|");
    for s in &samples {
        let evidently = samples.iter().find(|e| e.tool == "evidently" && e.format == s.format).unwrap();
        let speedup = evidently.median().as_secs_f64() / s.median().as_secs_f64();
        let inside = match (median_f64(&s.load), median_f64(&s.compute)) {
            (Some(l), Some(c)) => format!("in-process load {l:.2} s + compute {c:.2} s (medians)"),
            _ => match s.first {
                Some(f) => format!("first run (hashes inputs): {}", secs(f)),
                None => String::new(),
            },
        };
        println!(
            "| {} | {} | {} (n={}) | {} | {} | {} | {:.1}× | {inside} |",
            s.tool,
            s.format,
            secs(s.median()),
            s.walls.len(),
            secs(s.min()),
            secs(median(&s.cpus)),
            mib(s.max_rss_kb),
            speedup
        );
    }
    println!();

    // Sanity: dagrun's decision equals SciPy's with the same rule; Evidently's is shown too.
    let mut mismatch = false;
    for format in FORMATS {
        let scipy = &samples.iter().find(|s| s.tool == "scipy" && s.format == format).unwrap().drifted_columns;
        println!("{format}: SciPy drifted columns: [{}]", cols(scipy));
        for s in samples.iter().filter(|s| s.format == format && s.tool != "scipy") {
            if &s.drifted_columns == scipy {
                println!("{format}: {} agrees with SciPy", s.tool);
            } else {
                println!(
                    "\n!!!!! {format}: {} DISAGREES WITH SCIPY: [{}] vs SciPy [{}] !!!!!\n",
                    s.tool,
                    cols(&s.drifted_columns),
                    cols(scipy)
                );
                mismatch |= s.tool == "dagrun";
            }
        }
    }

    let load_after = loadavg();
    println!("load average (1, 5, 15 min) before: {load_before}; after: {load_after}");
    let unix = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let results = json!({
        "unix_time": unix,
        "rows": rows,
        "cols": COLS,
        "seed": SEED,
        "cores": cores,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "dagrun": BIN,
        "python": python,
        "measurement": "whole process: wall time from spawn to exit; CPU = wait4 ru_utime + ru_stime; peak RSS = wait4 ru_maxrss",
        "results": samples.iter().map(|s| json!({
            "tool": s.tool,
            "format": s.format,
            "walls_s": s.walls.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
            "median_s": s.median().as_secs_f64(),
            "min_s": s.min().as_secs_f64(),
            "cpu_s": s.cpus.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
            "max_rss_kb": s.max_rss_kb,
            "first_run_s": s.first.map(|d| d.as_secs_f64()),
            "self_reported_peak_rss_kb": s.self_reported_rss_kb,
            "load_s": s.load,
            "compute_s": s.compute,
            "drifted_columns": cols(&s.drifted_columns),
        })).collect::<Vec<_>>(),
        "dagrun_matches_scipy": !mismatch,
    });
    let path = work.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results).unwrap()).unwrap();
    println!("results: {}", path.display());
    if mismatch {
        eprintln!("drift benchmark: dagrun's drifted columns differ from SciPy's (see above)");
        std::process::exit(1);
    }
}
