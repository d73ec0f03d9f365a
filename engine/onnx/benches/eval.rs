//! OnnxEval throughput: rows/s evaluating 1,000,000 rows with the logistic-regression fixture model, in
//! dagrun-onnx and in Python onnxruntime (benches/eval_python.py) at the same batch size.
//!
//! ```text
//! cargo bench -p dagrun-onnx --bench eval [-- --rows N --batch-size N --repeat N --threads N --no-python]
//! ```
//!
//! The data is the fixture's 1,000-row test CSV repeated to N rows (so the metrics must equal the fixture's),
//! written once to `<target>/onnx-bench/`. Modes, each the best of `--repeat` runs:
//! * `inference`: batches already in memory; only running the model (and reading its outputs);
//! * `metrics`: CSV → batches → model → metrics ([`dagrun_onnx::evaluate_metrics`]);
//! * `full`: the OnnxEval task: metrics + `metrics.json` + `predictions.csv` ([`dagrun_onnx::evaluate`]);
//! * `parquet`: `metrics` from the same rows in a Parquet file (snappy; dagrun only).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dagrun_onnx::{EvalOptions, ModelOptions, OnnxModel, evaluate, evaluate_metrics};

struct Args {
    rows: usize,
    batch_size: usize,
    repeat: usize,
    threads: Option<usize>,
    python: bool,
}

fn parse_args() -> Args {
    let mut a = Args { rows: 1_000_000, batch_size: 4096, repeat: 3, threads: None, python: true };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = |name: &str| -> usize {
            it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match arg.as_str() {
            "--rows" => a.rows = num("--rows"),
            "--batch-size" => a.batch_size = num("--batch-size"),
            "--repeat" => a.repeat = num("--repeat").max(1),
            "--threads" => a.threads = Some(num("--threads")),
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

/// The fixture CSV repeated to `rows` data rows.
fn make_data(fixture_csv: &Path, rows: usize) -> PathBuf {
    let dir = bench_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("logreg_{rows}.csv"));
    let text = std::fs::read_to_string(fixture_csv).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let body: Vec<&str> = lines.collect();
    let expected_len = header.len() + 1 + (0..rows).map(|i| body[i % body.len()].len() + 1).sum::<usize>();
    if std::fs::metadata(&path).is_ok_and(|m| m.len() as usize == expected_len) {
        return path;
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    writeln!(out, "{header}").unwrap();
    for i in 0..rows {
        writeln!(out, "{}", body[i % body.len()]).unwrap();
    }
    out.flush().unwrap();
    path
}

/// The same rows as Parquet (Float64 features, Int64 label; snappy), next to the CSV.
fn make_parquet(csv_path: &Path) -> PathBuf {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
    let path = csv_path.with_extension("parquet");
    if std::fs::metadata(&path).is_ok_and(|m| m.modified().ok() >= std::fs::metadata(csv_path).unwrap().modified().ok())
    {
        return path;
    }
    let text = std::fs::read_to_string(csv_path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut columns: Vec<Vec<&str>> = vec![Vec::new(); header.len()];
    for line in lines {
        for (c, v) in columns.iter_mut().zip(line.split(',')) {
            c.push(v);
        }
    }
    let arrays = header.iter().zip(&columns).map(|(name, values)| {
        let array: ArrayRef = if *name == "label" {
            Arc::new(Int64Array::from_iter_values(values.iter().map(|v| v.parse::<i64>().unwrap())))
        } else {
            Arc::new(Float64Array::from_iter_values(values.iter().map(|v| v.parse::<f64>().unwrap())))
        };
        (*name, array)
    });
    let batch = RecordBatch::try_from_iter(arrays).unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), batch.schema(), Some(props))
            .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    path
}

fn best_of<T>(repeat: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..repeat {
        let t = Instant::now();
        let r = f();
        best = best.min(t.elapsed());
        last = Some(r);
    }
    (best, last.unwrap())
}

fn main() {
    let args = parse_args();
    if let Err(e) = dagrun_onnx::runtime::init() {
        eprintln!("{e}");
        std::process::exit(1);
    }
    let rt = dagrun_onnx::discover().unwrap();
    let fixture = root().join("tests/fixtures/onnx/logreg_binary");
    let model_path = fixture.join("model.onnx");
    let t = Instant::now();
    let data = make_data(&fixture.join("test.csv"), args.rows);
    eprintln!("data: {} ({} rows, ready in {:.1}s)", data.display(), args.rows, t.elapsed().as_secs_f64());
    eprintln!("ONNX Runtime {} at {}", rt.version, rt.path.display());

    let mut opts = EvalOptions::new("label");
    opts.batch_size = args.batch_size;
    opts.intra_threads = args.threads;

    // inference: batches parsed beforehand (to f32, what the model takes, as numpy's astype(np.float32)).
    let text = std::fs::read_to_string(&data).unwrap();
    let mut features: Vec<f32> = Vec::with_capacity(args.rows * 8);
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        features.extend(fields[..8].iter().map(|v| v.parse::<f64>().unwrap() as f32));
    }
    drop(text);
    let mut model =
        OnnxModel::load(&model_path, &ModelOptions { intra_threads: args.threads, ..Default::default() }).unwrap();
    assert!(model.takes_f32());
    let (inference, _) = best_of(args.repeat, || {
        let mut n = 0;
        for (b, chunk) in features.chunks(args.batch_size * 8).enumerate() {
            let rows = chunk.len() / 8;
            n += model.predict(chunk, rows, 8, (b * args.batch_size) as u64).unwrap().len();
        }
        assert_eq!(n, args.rows);
    });
    drop(features);

    let (metrics_time, eval) = best_of(args.repeat, || evaluate_metrics(&model_path, &data, &opts).unwrap());
    assert_eq!(eval.rows as usize, args.rows);
    let out = tempfile::tempdir().unwrap();
    let (full_time, _) = best_of(args.repeat, || evaluate(&model_path, &data, out.path(), &opts).unwrap());
    let parquet = make_parquet(&data);
    let (parquet_time, from_parquet) = best_of(args.repeat, || evaluate_metrics(&model_path, &parquet, &opts).unwrap());
    assert_eq!(
        serde_json::to_string(&from_parquet.metrics).unwrap(),
        serde_json::to_string(&eval.metrics).unwrap(),
        "the same metrics from Parquet"
    );

    // The repeated data has the fixture's metrics.
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("expected_metrics.json")).unwrap()).unwrap();
    for (name, want) in expected["metrics"].as_object().unwrap() {
        let have = eval.metrics.get(name).unwrap();
        assert!((have - want.as_f64().unwrap()).abs() < 1e-6, "{name}: {have} vs {want}");
    }

    let rps = |d: Duration| args.rows as f64 / d.as_secs_f64();
    let rust = [("inference", inference), ("metrics", metrics_time), ("full", full_time), ("parquet", parquet_time)];

    let python: Option<serde_json::Value> = if args.python {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/eval_python.py");
        let mut cmd = Command::new("python3");
        cmd.arg(&script).args(["--model", model_path.to_str().unwrap(), "--data", data.to_str().unwrap()]).args([
            "--batch-size",
            &args.batch_size.to_string(),
            "--repeat",
            &args.repeat.to_string(),
        ]);
        if let Some(t) = args.threads {
            cmd.args(["--threads", &t.to_string()]);
        }
        match cmd.output() {
            Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).ok(),
            Ok(o) => {
                eprintln!("python benchmark failed: {}", String::from_utf8_lossy(&o.stderr));
                None
            }
            Err(e) => {
                eprintln!("python benchmark not run: {e}");
                None
            }
        }
    } else {
        None
    };

    println!(
        "\nOnnxEval benchmark: {} rows, logistic regression (8 features), batch size {}, intra-op threads {}",
        args.rows,
        args.batch_size,
        args.threads.map_or("default".to_string(), |t| t.to_string())
    );
    if let Some(py) = &python {
        println!(
            "python {} / onnxruntime {} / numpy {} / reading CSV with {}",
            py["python"].as_str().unwrap_or("?"),
            py["onnxruntime"].as_str().unwrap_or("?"),
            py["numpy"].as_str().unwrap_or("?"),
            py["csv_reader"].as_str().unwrap_or("?")
        );
    }
    println!("{:<10} {:>16} {:>16} {:>8}", "mode", "dagrun rows/s", "python rows/s", "ratio");
    let mut results = serde_json::Map::new();
    for (mode, d) in rust {
        let ours = rps(d);
        let theirs = python.as_ref().and_then(|p| p["rows_per_second"][mode].as_f64());
        match theirs {
            Some(t) => println!("{mode:<10} {ours:>16.0} {t:>16.0} {:>8.2}", ours / t),
            None => println!("{mode:<10} {ours:>16.0} {:>16} {:>8}", "-", "-"),
        }
        results.insert(
            mode.to_string(),
            serde_json::json!({"dagrun_rows_per_second": ours, "python_rows_per_second": theirs,
                               "ratio": theirs.map(|t| ours / t)}),
        );
    }
    let report = serde_json::json!({
        "rows": args.rows, "batch_size": args.batch_size, "threads": args.threads,
        "onnxruntime": rt.version, "modes": results, "python": python,
    });
    let path = bench_dir().join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("(written to {})", path.display());
}
