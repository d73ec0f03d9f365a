//! The same fixtures as tests/fixtures.rs, written to Parquet by the test: evaluation and prediction from
//! Parquet give exactly the metrics and prediction files they give from the CSV.
//!
//! These tests need ONNX Runtime, like tests/fixtures.rs (`DAGRUN_SKIP_ONNX=1` skips them).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use dagrun_onnx::{EvalOptions, PredictOptions, evaluate, predict};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/onnx")
}

use dagrun_onnx::runtime::required_by_tests as runtime_required;

/// Writes `csv` as Parquet: a column of integers as Int64, of other numbers as Float64, else Utf8 (an
/// empty cell is null). Small row groups and batches, so reading crosses their boundaries.
fn csv_to_parquet(csv: &Path, out: &Path) {
    let mut reader = csv::Reader::from_path(csv).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let columns: Vec<(String, ArrayRef)> = header
        .iter()
        .enumerate()
        .map(|(c, name)| {
            let cells: Vec<Option<&str>> = rows.iter().map(|r| Some(&r[c]).filter(|s| !s.is_empty())).collect();
            let array: ArrayRef = if cells.iter().flatten().all(|s| s.parse::<i64>().is_ok()) {
                Arc::new(Int64Array::from(cells.iter().map(|s| s.map(|s| s.parse().unwrap())).collect::<Vec<_>>()))
            } else if cells.iter().flatten().all(|s| s.parse::<f64>().is_ok()) {
                Arc::new(Float64Array::from(cells.iter().map(|s| s.map(|s| s.parse().unwrap())).collect::<Vec<_>>()))
            } else {
                Arc::new(StringArray::from(cells))
            };
            (name.clone(), array)
        })
        .collect();
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let props = WriterProperties::builder().set_max_row_group_size(128).set_write_batch_size(50).build();
    let mut w = ArrowWriter::try_new(std::fs::File::create(out).unwrap(), batch.schema(), Some(props)).unwrap();
    for start in (0..batch.num_rows()).step_by(100) {
        w.write(&batch.slice(start, 100.min(batch.num_rows() - start))).unwrap();
    }
    w.close().unwrap();
}

/// A fixture's model, CSV data and options.
fn fixture(name: &str) -> (PathBuf, PathBuf, EvalOptions) {
    let dir = fixtures().join(name);
    let e: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("expected_metrics.json")).unwrap()).unwrap();
    let mut o = EvalOptions::new(e["label"].as_str().unwrap());
    o.features = e["features"].as_array().map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect());
    (dir.join(e["model"].as_str().unwrap()), dir.join(e["data"].as_str().unwrap()), o)
}

#[test]
fn parquet_and_csv_give_identical_metrics_and_predictions() {
    if !runtime_required() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // f32 and f64 models, classifiers with integer and string labels, regressors, one input per column.
    for name in
        ["rf_multiclass", "logreg_binary", "gb_binary_strings", "ridge_regressor", "ridge_per_column", "knn_regressor"]
    {
        let (model, csv, mut opts) = fixture(name);
        let pq = tmp.path().join(format!("{name}.data"));
        csv_to_parquet(&csv, &pq); // the magic bytes make it Parquet, whatever its name
        let header = std::fs::read_to_string(&csv).unwrap().lines().next().unwrap().to_string();
        if header.split(',').any(|h| h == "id") {
            opts.passthrough = vec!["id".into()];
        }
        for batch_size in [1000, 7] {
            opts.batch_size = batch_size;
            let (a, b) = (tmp.path().join(format!("{name}-csv")), tmp.path().join(format!("{name}-pq")));
            let from_csv = evaluate(&model, &csv, &a, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
            let from_pq = evaluate(&model, &pq, &b, &opts).unwrap_or_else(|e| panic!("{name} (Parquet): {e}"));
            assert_eq!(from_csv.rows, from_pq.rows, "{name}");
            assert_eq!(from_csv.features, from_pq.features, "{name}");
            for file in ["metrics.json", "predictions.csv"] {
                let (x, y) =
                    (std::fs::read_to_string(a.join(file)).unwrap(), std::fs::read_to_string(b.join(file)).unwrap());
                assert!(x == y, "{name}, batch {batch_size}: {file} differs:\n{x:.400}\n---\n{y:.400}");
            }
        }
        let po = PredictOptions {
            features: opts.features.clone(),
            label: Some(opts.label.clone()),
            passthrough: opts.passthrough.clone(),
            ..Default::default()
        };
        let (a, b) = (tmp.path().join(format!("{name}-csv.out")), tmp.path().join(format!("{name}-pq.out")));
        predict(&model, &csv, &a, &po).unwrap();
        predict(&model, &pq, &b, &po).unwrap();
        assert_eq!(std::fs::read_to_string(a).unwrap(), std::fs::read_to_string(b).unwrap(), "{name}: predict");
    }
}

#[test]
fn parquet_label_errors_name_the_row() {
    if !runtime_required() {
        return;
    }
    let (model, csv, opts) = fixture("logreg_binary");
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(csv).unwrap();
    let mut lines: Vec<String> = text.lines().take(5).map(String::from).collect();
    lines[3] = lines[3].rsplit_once(',').map(|(head, _)| format!("{head},7")).unwrap();
    let bad_csv = tmp.path().join("bad.csv");
    std::fs::write(&bad_csv, lines.join("\n")).unwrap();
    let bad = tmp.path().join("bad.parquet");
    csv_to_parquet(&bad_csv, &bad);
    let err = dagrun_onnx::evaluate_metrics(&model, &bad, &opts).unwrap_err().to_string();
    // Line 4 of the CSV is data row 2 (0-based, as in predictions.csv's `row`).
    assert!(err.contains("row 2: label `7` is not one of the model's classes"), "{err}");

    let garbage = tmp.path().join("garbage.parquet");
    std::fs::write(&garbage, "f0,label\n1,0\n").unwrap();
    let err = dagrun_onnx::evaluate_metrics(&model, &garbage, &opts).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}: not a readable Parquet file: ", garbage.display())), "{err}");
}

/// Drops the `row` column (the first) of a predictions file.
fn without_row_column(text: &str) -> Vec<String> {
    text.lines().map(|l| l.split_once(',').unwrap().1.to_string()).collect()
}

#[test]
fn unlabelled_rows_are_skipped_and_counted_in_csv_and_parquet() {
    if !runtime_required() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let missing = ["", "NA", "n/a", "NULL", "None", " nan "];
    for name in ["logreg_binary", "ridge_regressor"] {
        let (model, csv, mut opts) = fixture(name);
        let text = std::fs::read_to_string(csv).unwrap();
        let mut lines = text.lines();
        let header = lines.next().unwrap();
        // Every 10th label is missing (in every spelling); the first of them also has a feature that is not a
        // number, which is never parsed. The last rows are unlabelled too.
        let (mut partial, mut labelled) = (vec![header.to_string()], vec![header.to_string()]);
        let mut kept_rows = Vec::new();
        for (i, line) in lines.enumerate() {
            let (head, _) = line.rsplit_once(',').unwrap();
            if i % 10 == 3 || i >= 995 {
                let head = if i == 3 { format!("abc{}", &head[head.find(',').unwrap()..]) } else { head.to_string() };
                partial.push(format!("{head},{}", missing[i / 10 % missing.len()]));
            } else {
                partial.push(line.to_string());
                labelled.push(line.to_string());
                kept_rows.push(i.to_string());
            }
        }
        let unlabelled = (partial.len() - labelled.len()) as u64;
        assert_eq!(unlabelled, 100 + 5, "{name}");
        let (partial_csv, labelled_csv) = (tmp.path().join(format!("{name}-partial.csv")), tmp.path().join("l.csv"));
        std::fs::write(&partial_csv, partial.join("\n") + "\n").unwrap();
        std::fs::write(&labelled_csv, labelled.join("\n") + "\n").unwrap();
        let partial_pq = tmp.path().join(format!("{name}-partial.parquet"));
        csv_to_parquet(&partial_csv, &partial_pq);

        // By default a missing label is an error that says so.
        let err = dagrun_onnx::evaluate_metrics(&model, &partial_csv, &opts).unwrap_err().to_string();
        assert!(err.ends_with("line 5: column `f0`: `abc` is not a number"), "{name}: {err}");

        let reference = evaluate(&model, &labelled_csv, &tmp.path().join("ref"), &opts).unwrap();
        let expected = std::fs::read_to_string(tmp.path().join("ref/metrics.json")).unwrap();
        let expected_preds = std::fs::read_to_string(tmp.path().join("ref/predictions.csv")).unwrap();
        opts.skip_unlabelled = true;
        for data in [&partial_csv, &partial_pq] {
            for batch_size in [1000, 7] {
                opts.batch_size = batch_size;
                let out = tmp.path().join(format!("out-{batch_size}"));
                let e = evaluate(&model, data, &out, &opts).unwrap_or_else(|e| panic!("{name} {data:?}: {e}"));
                assert_eq!((e.rows, e.unlabelled), (reference.rows, unlabelled), "{name} {data:?}");
                assert_eq!(std::fs::read_to_string(out.join("metrics.json")).unwrap(), expected, "{name} {data:?}");
                let preds = std::fs::read_to_string(out.join("predictions.csv")).unwrap();
                assert_eq!(without_row_column(&preds), without_row_column(&expected_preds), "{name} {data:?}");
                // `row` is still the row's index in the data.
                let rows: Vec<&str> = preds.lines().skip(1).map(|l| l.split_once(',').unwrap().0).collect();
                assert_eq!(rows, kept_rows, "{name} {data:?}");
            }
        }

        // Nothing labelled at all.
        let none = tmp.path().join("none.csv");
        std::fs::write(&none, format!("{header}\n{}\n", partial[4])).unwrap();
        let err = dagrun_onnx::evaluate_metrics(&model, &none, &opts).unwrap_err().to_string();
        assert!(err.ends_with(&format!("no labelled rows: all 1 rows lack a label (`{}`)", opts.label)), "{err}");
    }
}

#[test]
fn a_missing_label_is_an_error_by_default_and_names_the_classes_plainly() {
    if !runtime_required() {
        return;
    }
    let (model, csv, opts) = fixture("logreg_binary");
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(csv).unwrap();
    let mut lines: Vec<String> = text.lines().take(5).map(String::from).collect();
    lines[1] = lines[1].rsplit_once(',').map(|(head, _)| format!("{head},")).unwrap();
    let bad = tmp.path().join("bad.csv");
    std::fs::write(&bad, lines.join("\n")).unwrap();
    let err = dagrun_onnx::evaluate_metrics(&model, &bad, &opts).unwrap_err().to_string();
    assert!(
        err.ends_with(
            "line 2: label `` is not one of the model's classes (0, 1); check the label column `label` (every row \
             needs a label)"
        ),
        "{err}"
    );
}
