//! Times `read_table` on a generated CSV and a snappy Parquet file of the same numbers.
//!
//! `cargo run --release -p dagrun-table --example read_bench -- [rows] [columns] [dir]`
//! (defaults: 1000000 rows, 20 columns, /tmp/dagrun-table-bench; the files are made once).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{ArrayRef, Float64Array, RecordBatch};
use dagrun_table::{ReadOptions, read_table};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows: usize = args.get(1).map_or(1_000_000, |a| a.parse().expect("rows"));
    let cols: usize = args.get(2).map_or(20, |a| a.parse().expect("columns"));
    let dir = Path::new(args.get(3).map_or("/tmp/dagrun-table-bench", String::as_str)).to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join(format!("{rows}x{cols}.csv"));
    let pq = dir.join(format!("{rows}x{cols}.parquet"));
    if !csv.exists() || !pq.exists() {
        eprintln!("writing {} and {}", csv.display(), pq.display());
        generate(rows, cols, &csv, &pq);
    }
    for path in [&csv, &pq] {
        let size = std::fs::metadata(path).unwrap().len() as f64 / 1e6;
        let (mut best, mut best_cpu) = (f64::MAX, f64::MAX);
        for _ in 0..5 {
            let (start, cpu) = (Instant::now(), cpu_seconds());
            let t = read_table(path, &ReadOptions::default()).unwrap();
            best = best.min(start.elapsed().as_secs_f64());
            best_cpu = best_cpu.min(cpu_seconds() - cpu);
            assert_eq!(t.rows as usize, rows);
        }
        println!(
            "{}: {size:.0} MB, best of 5: {:.0} ms wall, {:.0} ms CPU (all threads)",
            path.display(),
            best * 1e3,
            best_cpu * 1e3
        );
    }
}

/// CPU time of this process so far (user + system, all threads), from /proc (0 elsewhere).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(") ").map_or(vec![], |(_, rest)| rest.split(' ').collect());
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0 // utime, stime: fields 14 and 15 of the line, in 1/100 s
}

/// Numbers with four decimals (`-52.1234`), the same in both files.
fn generate(rows: usize, cols: usize, csv: &Path, pq: &Path) {
    let mut rng = fastrand::Rng::with_seed(7);
    let data: Vec<Vec<f64>> =
        (0..cols).map(|_| (0..rows).map(|_| ((rng.f64() - 0.5) * 2e6).round() / 1e4).collect()).collect();
    let mut out = std::io::BufWriter::new(std::fs::File::create(csv).unwrap());
    let header: Vec<String> = (0..cols).map(|c| format!("x{c}")).collect();
    writeln!(out, "{}", header.join(",")).unwrap();
    for r in 0..rows {
        for (c, col) in data.iter().enumerate() {
            let sep = if c + 1 == cols { "\n" } else { "," };
            write!(out, "{}{sep}", col[r]).unwrap();
        }
    }
    out.flush().unwrap();
    let batch = RecordBatch::try_from_iter(
        header.iter().zip(data).map(|(h, v)| (h.as_str(), Arc::new(Float64Array::from(v)) as ArrayRef)),
    )
    .unwrap();
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let mut w = ArrowWriter::try_new(std::fs::File::create(pq).unwrap(), batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}
