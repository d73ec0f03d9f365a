//! How long `detect` takes on 1,000,000 rows × 20 numeric columns (Parquet and CSV), reference
//! vs current, default tests: a measurement, not a timed test (ignored by default).
//!
//! `cargo test --release -p dagrun-monitor --test drift_speed -- --ignored --nocapture`
//! (`DAGRUN_DRIFT_SPEED_ROWS` changes the rows, `DAGRUN_DRIFT_SPEED_FORMAT=parquet` keeps one format). The files are written once into the system's
//! temporary directory and reused.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{ArrayRef, Float64Array, RecordBatch};
use dagrun_monitor::drift::{DriftInputs, DriftOptions, detect};
use dagrun_table::{ReadOptions, read_table};
use parquet::arrow::ArrowWriter;

const COLUMNS: usize = 20;

/// CPU time of this process so far (user + system), from /proc (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, r)| r).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn columns(rows: usize, seed: u64, shift: f64) -> Vec<(String, Vec<f64>)> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..COLUMNS)
        .map(|c| {
            // Every other column drifts in the current data.
            let s = if c % 2 == 0 { shift } else { 0.0 };
            let v = (0..rows)
                .map(|_| {
                    let (u, w) = (1.0 - rng.f64(), rng.f64());
                    c as f64 + s + (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * w).cos()
                })
                .collect();
            (format!("f{c}"), v)
        })
        .collect()
}

fn write_parquet(path: &Path, cols: &[(String, Vec<f64>)]) {
    let arrays: Vec<(&str, ArrayRef)> =
        cols.iter().map(|(n, v)| (n.as_str(), Arc::new(Float64Array::from(v.clone())) as ArrayRef)).collect();
    let batch = RecordBatch::try_from_iter(arrays).unwrap();
    let mut w = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn write_csv(path: &Path, cols: &[(String, Vec<f64>)]) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(out, "{}", cols.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(",")).unwrap();
    for i in 0..cols[0].1.len() {
        let row: Vec<String> = cols.iter().map(|(_, v)| v[i].to_string()).collect();
        writeln!(out, "{}", row.join(",")).unwrap();
    }
}

fn files(rows: usize) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dagrun-drift-speed-{rows}"));
    if !dir.join("done").exists() {
        std::fs::create_dir_all(&dir).unwrap();
        for (stem, seed, shift) in [("reference", 1, 0.0), ("current", 2, 0.3)] {
            let cols = columns(rows, seed, shift);
            write_parquet(&dir.join(format!("{stem}.parquet")), &cols);
            write_csv(&dir.join(format!("{stem}.csv")), &cols);
        }
        std::fs::write(dir.join("done"), "").unwrap();
    }
    dir
}

#[test]
#[ignore = "a measurement: run with --release --ignored --nocapture"]
fn one_million_rows_twenty_columns() {
    let rows = std::env::var("DAGRUN_DRIFT_SPEED_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let dir = files(rows);
    let formats = std::env::var("DAGRUN_DRIFT_SPEED_FORMAT").unwrap_or_else(|_| "parquet,csv".into());
    for format in formats.split(',') {
        let reference = dir.join(format!("reference.{format}"));
        let current = dir.join(format!("current.{format}"));
        let start = Instant::now();
        std::thread::scope(|s| {
            let r = s.spawn(|| read_table(&reference, &ReadOptions::default()).unwrap());
            drop(read_table(&current, &ReadOptions::default()).unwrap());
            drop(r.join().unwrap());
        });
        let read_both = start.elapsed();
        let inputs = DriftInputs { reference, current, model: None, work_dir: dir.join("work") };
        let (mut best, mut cpu) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..3 {
            let (start, cpu_start) = (Instant::now(), cpu_seconds());
            let report = detect(&inputs, &DriftOptions::default()).unwrap();
            best = best.min(start.elapsed().as_secs_f64());
            cpu = cpu.min(cpu_seconds() - cpu_start);
            assert_eq!(report.columns.len(), COLUMNS);
            assert_eq!(report.drifted_columns.len(), COLUMNS / 2, "{}", report.reason);
        }
        println!(
            "{format}: {rows} rows × {COLUMNS} columns: detect {best:.3} s wall, {cpu:.2} s CPU (best of 3); reading both files alone {:.3} s",
            read_both.as_secs_f64()
        );
    }
}

#[test]
#[ignore = "a measurement: run with --release --ignored --nocapture"]
fn where_one_column_spends_its_time() {
    use dagrun_monitor::stats;
    for n in [1_000_000usize, 10_000] {
        let cols = columns(n, 3, 0.0);
        let (mut a, mut b) = (cols[0].1.clone(), cols[2].1.clone());
        let time = |what: &str, f: &mut dyn FnMut()| {
            let start = Instant::now();
            f();
            println!("{n} values a side: {what}: {:.2} ms", start.elapsed().as_secs_f64() * 1e3);
        };
        time("sort both", &mut || {
            stats::sort(&mut a);
            stats::sort(&mut b);
        });
        time("compare (KS with p-value, Wasserstein)", &mut || {
            std::hint::black_box(stats::compare(&a, &b));
        });
        time("std_dev", &mut || {
            std::hint::black_box(stats::std_dev(&a));
        });
        time("quantile edges, bins, PSI, JS", &mut || {
            let edges = stats::quantile_edges(&a, 10);
            let (r, c) = (stats::bin_counts(&a, &edges), stats::bin_counts(&b, &edges));
            std::hint::black_box((stats::psi(&r, &c), stats::js_distance(&r, &c)));
        });
    }
}
