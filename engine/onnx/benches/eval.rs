//! OnnxEval against the Python a user would write for the same job, on realistic models.
//!
//! ```text
//! cargo bench -p dagrun-onnx --bench eval [-- --rows N --repeat N --models logreg,gb,rf --threads N --no-python]
//! ```
//!
//! The data (1,000,000 rows × 30 float features and a 0/1 label, ~270 MB of CSV) and the models (scikit-learn
//! LogisticRegression, GradientBoostingClassifier and RandomForestClassifier, exported with skl2onnx) are made by
//! `benches/eval_python.py make` in the venv of `scripts/bench-onnx-venv.sh`, once, into `<target>/onnx-bench/`.
//!
//! Each round runs, for each model, both sides in a fresh process each, alternating which goes first:
//! * dagrun: [`dagrun_onnx::evaluate`] (the `OnnxEval` task's work: CSV in, `metrics.json` and
//!   `predictions.csv` out), in a child process of this benchmark;
//! * Python: `eval_python.py run`: one `pandas.read_csv`, one `InferenceSession.run`, one `DataFrame.to_csv`,
//!   the metrics once with scikit-learn.
//!
//! Both time from loading the model to the metrics written (the ONNX Runtime library loaded, and Python's
//! imports done, beforehand), and report the CPU time (user + system, all threads) of that span and their
//! process's peak RSS. The CPU times say what the wall times mean on a loaded machine. A model's ratio is printed only after both
//! sides scored the same number of rows and agree on every metric to 1e-9. Times are medians over `--repeat`
//! rounds (default 3); peak memory is the largest seen.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

/// Both sides' metrics must agree this closely before a ratio is printed.
const AGREE: f64 = 1e-9;

struct Args {
    rows: usize,
    repeat: usize,
    models: Vec<String>,
    threads: Option<usize>,
    python: bool,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Args {
    let mut a = Args {
        rows: 1_000_000,
        repeat: 3,
        models: ["logreg", "gb", "rf"].map(String::from).to_vec(),
        threads: None,
        python: true,
    };
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().unwrap_or_else(|| panic!("{name} needs a value"));
        let num = |name: &str, v: String| -> usize { v.parse().unwrap_or_else(|_| panic!("{name} needs a number")) };
        match arg.as_str() {
            "--rows" => a.rows = num("--rows", value("--rows")),
            "--repeat" => a.repeat = num("--repeat", value("--repeat")).max(1),
            "--threads" => a.threads = Some(num("--threads", value("--threads"))),
            "--models" => a.models = value("--models").split(',').map(String::from).collect(),
            "--no-python" => a.python = false,
            _ => {} // `cargo bench` passes --bench
        }
    }
    a
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bench_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
    let target = if target.is_absolute() { target } else { root().join(target) };
    target.join("onnx-bench")
}

/// The benchmark venv's python (made by scripts/bench-onnx-venv.sh if needed).
fn venv_python() -> PathBuf {
    let out = Command::new("bash").arg(root().join("scripts/bench-onnx-venv.sh")).output().expect("run bash");
    assert!(out.status.success(), "bench-onnx-venv.sh failed:\n{}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8(out.stdout).unwrap().lines().last().expect("the venv's python").trim())
}

fn python_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/eval_python.py")
}

/// Peak resident memory of this process, in KiB (Linux).
fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap_or("VmHWM: 0 kB");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// CPU time (user + system) of this process so far, in seconds (Linux; 100 ticks a second).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which is in parentheses): utime and stime are the 12th and 13th.
    let after = stat.rsplit(')').next().unwrap_or("");
    let ticks: Vec<f64> = after.split_whitespace().skip(11).take(2).filter_map(|v| v.parse().ok()).collect();
    ticks.iter().sum::<f64>() / 100.0
}

/// The dagrun side, in a child process: `--child-eval MODEL DATA OUT [THREADS]`; prints its result as JSON.
fn child_eval(mut it: impl Iterator<Item = String>) {
    let (model, data, out) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    let threads = it.next().and_then(|t| t.parse().ok());
    dagrun_onnx::runtime::init().expect("ONNX Runtime");
    let mut opts = dagrun_onnx::EvalOptions::new("label");
    opts.intra_threads = threads;
    let (start, cpu) = (Instant::now(), cpu_seconds());
    let eval = dagrun_onnx::evaluate(Path::new(&model), Path::new(&data), Path::new(&out), &opts).unwrap();
    let (seconds, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    let metrics: Value = serde_json::from_str(&std::fs::read_to_string(eval.metrics_path.unwrap()).unwrap()).unwrap();
    let report = serde_json::json!({"seconds": seconds, "cpu_seconds": cpu, "peak_rss_kb": peak_rss_kb(),
                                    "rows": eval.rows, "metrics": metrics, "evaluator": eval.model.evaluator});
    println!("{report}");
}

/// One run of one side: its JSON report.
fn run_side(mut cmd: Command, what: &str) -> Value {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(text.lines().last().unwrap_or_default()).unwrap_or_else(|e| panic!("{what}: {e}: {text}"))
}

/// Both sides scored the same rows and agree on every metric Python computed (to [`AGREE`]).
fn assert_agree(model: &str, dagrun: &Value, python: &Value) {
    assert_eq!(dagrun["rows"], python["rows"], "{model}: row counts differ");
    for (name, want) in python["metrics"].as_object().unwrap() {
        let want = want.as_f64().unwrap();
        let have = dagrun["metrics"][name].as_f64().unwrap_or_else(|| panic!("{model}: dagrun has no `{name}`"));
        assert!((have - want).abs() <= AGREE, "{model}: {name}: dagrun {have} vs Python {want}");
    }
}

fn lines(path: &Path) -> usize {
    std::fs::read(path).unwrap().iter().filter(|&&b| b == b'\n').count()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[derive(Default)]
struct Side {
    seconds: Vec<f64>,
    cpu: Vec<f64>,
    peak_kb: u64,
}

impl Side {
    fn add(&mut self, r: &Value) {
        self.seconds.push(r["seconds"].as_f64().unwrap());
        self.cpu.push(r["cpu_seconds"].as_f64().unwrap());
        self.peak_kb = self.peak_kb.max(r["peak_rss_kb"].as_u64().unwrap_or(0));
    }
}

fn main() {
    let mut argv = std::env::args().skip(1).peekable();
    if argv.peek().map(String::as_str) == Some("--child-eval") {
        argv.next();
        return child_eval(argv);
    }
    let args = parse_args(argv);
    let rt = dagrun_onnx::discover().unwrap_or_else(|e| panic!("{e}"));
    let python = venv_python();
    let dir = bench_dir();
    let t = Instant::now();
    let status = Command::new(&python)
        .arg(python_script())
        .args(["make", "--dir", dir.to_str().unwrap(), "--rows", &args.rows.to_string(), "--features", "30"])
        .status()
        .unwrap();
    assert!(status.success(), "making the data and models failed");
    let data = dir.join(format!("data_{}x30.csv", args.rows));
    eprintln!("data: {} ({} rows, ready in {:.1}s)", data.display(), args.rows, t.elapsed().as_secs_f64());
    eprintln!("ONNX Runtime {} at {}", rt.version, rt.path.display());

    let out = tempfile::tempdir_in(&dir).unwrap();
    let threads = args.threads.map(|t| t.to_string());
    let mut results = Vec::new();
    let mut sides: Vec<(Side, Side)> = args.models.iter().map(|_| Default::default()).collect();
    for round in 0..args.repeat {
        for (m, model) in args.models.iter().enumerate() {
            let model_path = dir.join(format!("{model}_30.onnx"));
            let (d_out, p_out) =
                (out.path().join(format!("dagrun-{model}")), out.path().join(format!("python-{model}")));
            let mut ours = Command::new(std::env::current_exe().unwrap());
            ours.arg("--child-eval").args([&model_path, &data, &d_out]).args(threads.iter());
            let mut theirs = Command::new(&python);
            theirs.arg(python_script()).arg("run").args(["--model".as_ref(), model_path.as_os_str()]);
            theirs.args(["--data".as_ref(), data.as_os_str(), "--out".as_ref(), p_out.as_os_str()]);
            theirs.args(["--threads", threads.as_deref().unwrap_or("0")]);
            let (d, p) = if !args.python {
                (run_side(ours, "dagrun"), None)
            } else if round % 2 == 0 {
                let d = run_side(ours, "dagrun");
                (d, Some(run_side(theirs, "python")))
            } else {
                let p = run_side(theirs, "python");
                (run_side(ours, "dagrun"), Some(p))
            };
            assert_eq!(d["rows"].as_u64(), Some(args.rows as u64), "{model}: dagrun scored every row");
            assert_eq!(lines(&d_out.join("predictions.csv")), args.rows + 1, "{model}: dagrun's predictions");
            sides[m].0.add(&d);
            if let Some(p) = p {
                assert_agree(model, &d, &p);
                assert_eq!(lines(&p_out.join("predictions.csv")), args.rows + 1, "{model}: Python's predictions");
                sides[m].1.add(&p);
                if round == 0 {
                    eprintln!("{model}: both sides agree on {} rows and every metric to {AGREE:e}", args.rows);
                    results.push((model.clone(), p["versions"].clone()));
                }
            }
        }
    }

    println!(
        "\nOnnxEval vs Python (pandas read_csv + onnxruntime + to_csv + scikit-learn metrics): {} rows × 30 \
         features, median of {} paired rounds, intra-op threads {}",
        args.rows,
        args.repeat,
        args.threads.map_or("default".to_string(), |t| t.to_string())
    );
    if let Some((_, v)) = results.first() {
        println!("Python: {v}");
    }
    println!(
        "{:<8} {:>9} {:>9} {:>6} {:>10} {:>10} {:>6} {:>11} {:>11}",
        "model", "dagrun s", "python s", "ratio", "dagrun cpu", "python cpu", "ratio", "dagrun peak", "python peak"
    );
    let mut report = serde_json::Map::new();
    for (model, (ours, theirs)) in args.models.iter().zip(&mut sides) {
        let (d, d_cpu) = (median(&mut ours.seconds), median(&mut ours.cpu));
        let p = (!theirs.seconds.is_empty()).then(|| (median(&mut theirs.seconds), median(&mut theirs.cpu)));
        let mib = |kb: u64| kb as f64 / 1024.0;
        let show = |v: Option<f64>, digits: usize| v.map_or("-".into(), |v| format!("{v:.digits$}"));
        let (ratio, cpu_ratio) = (p.map(|p| p.0 / d), p.map(|p| p.1 / d_cpu));
        println!(
            "{model:<8} {d:>9.3} {:>9} {:>6} {d_cpu:>10.2} {:>10} {:>6} {:>7.0} MiB {:>7} MiB",
            show(p.map(|p| p.0), 3),
            show(ratio, 2),
            show(p.map(|p| p.1), 2),
            show(cpu_ratio, 2),
            mib(ours.peak_kb),
            show(p.map(|_| mib(theirs.peak_kb)), 0),
        );
        report.insert(
            model.clone(),
            serde_json::json!({"dagrun_seconds": d, "python_seconds": p.map(|p| p.0), "ratio": ratio,
                               "dagrun_cpu_seconds": d_cpu, "python_cpu_seconds": p.map(|p| p.1),
                               "cpu_ratio": cpu_ratio, "dagrun_peak_mib": mib(ours.peak_kb),
                               "python_peak_mib": mib(theirs.peak_kb)}),
        );
    }
    let path = dir.join("results.json");
    let report = serde_json::json!({"rows": args.rows, "repeat": args.repeat, "threads": args.threads,
                                    "onnxruntime": rt.version, "models": report});
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("(written to {})", path.display());
}
