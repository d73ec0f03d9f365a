//! End-to-end drift detection on files: the bad inputs of issue #11 (empty files, a header only,
//! columns on one side, NaN/inf/empty cells, constant columns, mismatched types, a tiny current
//! sample, an unsupported Parquet type), the two default paths (KS up to 1,000 values, Wasserstein above), the dataset rule,
//! Parquet beside CSV, the HTML report, and prediction drift through ONNX Runtime.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use dagrun_monitor::drift::{
    ColumnKind, DriftError, DriftInputs, DriftOptions, DriftReport, DriftStatus, Method, TestSpec, detect, write_html,
};
use parquet::arrow::ArrowWriter;

/// Normal samples from a seeded generator (Box–Muller).
fn normal(rng: &mut fastrand::Rng, n: usize, mean: f64, sd: f64) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let (u, v) = (1.0 - rng.f64(), rng.f64());
            mean + sd * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        })
        .collect()
}

fn text(values: &[f64]) -> Vec<String> {
    values.iter().map(f64::to_string).collect()
}

/// Writes a CSV with the given columns (all of the same length).
fn write_csv(dir: &Path, name: &str, columns: &[(&str, Vec<String>)]) -> PathBuf {
    let mut s = columns.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(",");
    s.push('\n');
    let rows = columns.first().map_or(0, |(_, v)| v.len());
    for i in 0..rows {
        s.push_str(&columns.iter().map(|(_, v)| v[i].as_str()).collect::<Vec<_>>().join(","));
        s.push('\n');
    }
    let p = dir.join(name);
    std::fs::write(&p, s).unwrap();
    p
}

fn run(dir: &Path, reference: &Path, current: &Path, opts: &DriftOptions) -> Result<DriftReport, DriftError> {
    let inputs = DriftInputs {
        reference: reference.to_path_buf(),
        current: current.to_path_buf(),
        model: None,
        work_dir: dir.join("work"),
    };
    detect(&inputs, opts)
}

/// Reference and current files, `n` rows each, with an unshifted column `same` and a column
/// `shifted` whose current mean moved by `shift` standard deviations.
fn shifted_pair(dir: &Path, n: usize, shift: f64, seed: u64) -> (PathBuf, PathBuf) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let (s1, s2) = (normal(&mut rng, n, 0.0, 1.0), normal(&mut rng, n, 10.0, 2.0));
    let (c1, c2) = (normal(&mut rng, n, 0.0, 1.0), normal(&mut rng, n, 10.0 + 2.0 * shift, 2.0));
    let r = write_csv(dir, "ref.csv", &[("same", text(&s1)), ("shifted", text(&s2))]);
    let c = write_csv(dir, "cur.csv", &[("same", text(&c1)), ("shifted", text(&c2))]);
    (r, c)
}

#[test]
fn an_empty_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    let other = write_csv(dir.path(), "cur.csv", &[("a", text(&[1.0, 2.0]))]);
    let e = run(dir.path(), &empty, &other, &DriftOptions::default()).unwrap_err();
    assert!(matches!(e, DriftError::Table(dagrun_table::TableError::Empty { .. })), "{e}");
    assert!(e.to_string().contains("empty.csv is empty"), "{e}");
}

#[test]
fn a_header_only_file_is_insufficient_data_not_drift() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = fastrand::Rng::with_seed(1);
    let r = write_csv(dir.path(), "ref.csv", &[("a", text(&normal(&mut rng, 100, 0.0, 1.0)))]);
    let c = dir.path().join("cur.csv");
    std::fs::write(&c, "a\n").unwrap();
    let report = run(dir.path(), &r, &c, &DriftOptions::default()).unwrap();
    assert_eq!(report.status, DriftStatus::InsufficientData);
    assert!(!report.drifted);
    assert_eq!(report.current.rows, 0);
    let a = &report.columns[0];
    assert_eq!((a.decision, a.current.values, a.statistic), (DriftStatus::InsufficientData, 0, None));
    assert_eq!(a.reason, "current has 0 usable values, fewer than min_rows 30");
}

#[test]
fn columns_on_one_side_only_are_skipped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = fastrand::Rng::with_seed(2);
    let mut col = || text(&normal(&mut rng, 50, 0.0, 1.0));
    let r = write_csv(dir.path(), "ref.csv", &[("id", col()), ("a", col()), ("old", col()), ("b", col())]);
    let c = write_csv(dir.path(), "cur.csv", &[("b", col()), ("new", col()), ("a", col()), ("id", col())]);
    let opts = DriftOptions { exclude: vec!["id".into()], ..DriftOptions::default() };
    let report = run(dir.path(), &r, &c, &opts).unwrap();
    let names: Vec<&str> = report.columns.iter().map(|c| c.column.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(report.skipped.only_in_reference, ["old"]);
    assert_eq!(report.skipped.only_in_current, ["new"]);
    assert_eq!(report.skipped.excluded, ["id"]);

    let opts = DriftOptions { columns: Some(vec!["a".into(), "old".into()]), ..DriftOptions::default() };
    let e = run(dir.path(), &r, &c, &opts).unwrap_err().to_string();
    assert!(e.starts_with("`columns` lists `old`, which is not in ") && e.contains("cur.csv"), "{e}");
    let opts = DriftOptions { critical: vec!["new".into()], ..DriftOptions::default() };
    let e = run(dir.path(), &r, &c, &opts).unwrap_err().to_string();
    assert!(e.starts_with("critical column `new` is not compared: it is not in ") && e.contains("ref.csv"), "{e}");
}

#[test]
fn nan_inf_and_empty_cells_are_counted_never_tested() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = fastrand::Rng::with_seed(33);
    let mut r = text(&normal(&mut rng, 100, 0.0, 1.0));
    let mut c = text(&normal(&mut rng, 100, 0.0, 1.0));
    for (i, bad) in ["NaN", "", "inf", "-inf", "NA", "nan"].into_iter().enumerate() {
        r[i * 7] = bad.into();
    }
    for (i, bad) in ["", "", "Infinity"].into_iter().enumerate() {
        c[i * 5] = bad.into();
    }
    // A second column, so that an empty cell is not a blank line (which CSV readers skip).
    let ids: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    let rp = write_csv(dir.path(), "ref.csv", &[("x", r), ("id", ids.clone())]);
    let cp = write_csv(dir.path(), "cur.csv", &[("x", c), ("id", ids)]);
    let report = run(dir.path(), &rp, &cp, &DriftOptions::default()).unwrap();
    let x = &report.columns[0];
    assert_eq!(x.kind, ColumnKind::Numeric);
    assert_eq!(
        (x.reference.values, x.reference.missing.empty, x.reference.missing.nan, x.reference.missing.inf),
        (94, 2, 2, 2)
    );
    assert_eq!((x.current.values, x.current.missing.empty, x.current.missing.inf), (97, 2, 1));
    assert_eq!(x.decision, DriftStatus::NoDrift, "{}", x.reason);
    assert!(x.statistic.unwrap().is_finite() && x.p_value.unwrap().is_finite());
}

#[test]
fn constant_columns_compare_without_dividing_by_zero() {
    let dir = tempfile::tempdir().unwrap();
    let fives = vec!["5".to_string(); 200];
    let sixes = vec!["6".to_string(); 200];
    let r = write_csv(dir.path(), "ref.csv", &[("same", fives.clone()), ("moved", fives.clone())]);
    let c = write_csv(dir.path(), "cur.csv", &[("same", fives), ("moved", sixes)]);
    // By default a constant column has one distinct value: it is compared as a category.
    let report = run(dir.path(), &r, &c, &DriftOptions::default()).unwrap();
    let (same, moved) = (&report.columns[0], &report.columns[1]);
    assert_eq!(
        (same.kind, same.test, same.decision),
        (ColumnKind::Categorical, Method::ChiSquare, DriftStatus::NoDrift)
    );
    assert_eq!(same.p_value, Some(1.0));
    assert_eq!(moved.decision, DriftStatus::Drift, "{}", moved.reason);
    assert_eq!(moved.unseen_categories, ["6"]);
    // Forced to Wasserstein: the normed distance of a constant reference.
    let mut opts = DriftOptions::default();
    for c in ["same", "moved"] {
        opts.tests.insert(c.into(), TestSpec { method: Some(Method::Wasserstein), threshold: None });
    }
    let report = run(dir.path(), &r, &c, &opts).unwrap();
    let (same, moved) = (&report.columns[0], &report.columns[1]);
    assert_eq!((same.decision, same.statistic), (DriftStatus::NoDrift, Some(0.0)));
    assert_eq!((moved.decision, moved.statistic), (DriftStatus::Drift, Some(1.0)));
    assert!(moved.reason.starts_with("reference is constant (std 0) and current differs"), "{}", moved.reason);
    assert!(!moved.stats.contains_key("wasserstein_normed"));
    DriftReport::from_json(report.to_json().as_bytes()).expect("no NaN or infinity in drift.json");
}

#[test]
fn mismatched_types_are_drift_unless_declared_categorical() {
    let dir = tempfile::tempdir().unwrap();
    let numbers: Vec<String> = (0..100).map(|i| (i % 10).to_string()).collect();
    let words: Vec<String> = (0..100).map(|i| if i % 2 == 0 { "low".into() } else { (i % 10).to_string() }).collect();
    let r = write_csv(dir.path(), "ref.csv", &[("v", numbers)]);
    let c = write_csv(dir.path(), "cur.csv", &[("v", words)]);
    let report = run(dir.path(), &r, &c, &DriftOptions::default()).unwrap();
    let v = &report.columns[0];
    assert_eq!((v.decision, v.statistic, v.kind), (DriftStatus::Drift, None, ColumnKind::Numeric));
    assert!(
        v.reason.starts_with("type changed: numbers in the reference, text in the current (e.g. \"low\")"),
        "{}",
        v.reason
    );
    assert!(report.drifted);

    let opts = DriftOptions { categorical: vec!["v".into()], ..DriftOptions::default() };
    let report = run(dir.path(), &r, &c, &opts).unwrap();
    let v = &report.columns[0];
    assert_eq!((v.kind, v.test, v.decision), (ColumnKind::Categorical, Method::ChiSquare, DriftStatus::Drift));
    assert_eq!(v.unseen_categories, ["low"]);
    assert!(v.statistic.unwrap() > 0.0);
}

#[test]
fn a_ten_row_current_sample_is_insufficient_data_not_drift() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = fastrand::Rng::with_seed(4);
    let r = write_csv(dir.path(), "ref.csv", &[("x", text(&normal(&mut rng, 1000, 0.0, 1.0)))]);
    let c = write_csv(dir.path(), "cur.csv", &[("x", text(&normal(&mut rng, 10, 5.0, 1.0)))]);
    let report = run(dir.path(), &r, &c, &DriftOptions::default()).unwrap();
    assert_eq!(report.status, DriftStatus::InsufficientData);
    assert!(!report.drifted && report.drifted_columns.is_empty());
    let x = &report.columns[0];
    assert_eq!(x.decision, DriftStatus::InsufficientData);
    assert_eq!(x.reason, "current has 10 usable values, fewer than min_rows 30");
    assert!(x.p_value.unwrap() < 1e-6, "measured all the same: {x:?}");
}

#[test]
fn ks_on_small_samples_flags_the_shifted_column_only() {
    let dir = tempfile::tempdir().unwrap();
    let (r, c) = shifted_pair(dir.path(), 1000, 0.5, 5);
    let report = run(dir.path(), &r, &c, &DriftOptions::default()).unwrap();
    let (same, shifted) = (&report.columns[0], &report.columns[1]);
    for col in [same, shifted] {
        assert_eq!((col.kind, col.test, col.threshold), (ColumnKind::Numeric, Method::Ks, 0.05));
        for key in ["ks_statistic", "ks_p_value", "wasserstein", "wasserstein_normed", "psi", "jensen_shannon"] {
            assert!(col.stats.contains_key(key), "{key} missing: {:?}", col.stats);
        }
        assert_eq!(col.histogram.as_ref().unwrap().edges.len(), 21);
    }
    assert_eq!(same.decision, DriftStatus::NoDrift, "{}", same.reason);
    assert!(same.p_value.unwrap() > 0.05);
    assert_eq!(shifted.decision, DriftStatus::Drift, "{}", shifted.reason);
    assert!(shifted.p_value.unwrap() < 1e-10, "{}", shifted.reason);
    assert!(shifted.reason.starts_with("KS p-value "), "{}", shifted.reason);
    assert_eq!(report.status, DriftStatus::Drift, "1 of 2 reaches drift_share 0.5");
    assert_eq!(report.share, 0.5);
    assert_eq!(report.drifted_columns, ["shifted"]);
    assert_eq!(report.reason, "1 of 2 columns drifted (share 0.5 ≥ drift_share 0.5)");
}

#[test]
fn wasserstein_on_large_samples() {
    let dir = tempfile::tempdir().unwrap();
    let (r, c) = shifted_pair(dir.path(), 5000, 0.5, 6);
    let report = run(dir.path(), &r, &c, &DriftOptions::default()).unwrap();
    let (same, shifted) = (&report.columns[0], &report.columns[1]);
    for col in [same, shifted] {
        assert_eq!((col.test, col.threshold, col.p_value), (Method::Wasserstein, 0.1, None));
        assert_eq!(col.statistic, Some(col.stats["wasserstein_normed"]));
    }
    assert!(same.statistic.unwrap() < 0.1 && same.decision == DriftStatus::NoDrift, "{}", same.reason);
    let w = shifted.statistic.unwrap();
    assert!((0.4..0.6).contains(&w) && shifted.decision == DriftStatus::Drift, "{}", shifted.reason);
    assert!(
        shifted.reason.starts_with("normed Wasserstein 0.") && shifted.reason.ends_with(" ≥ 0.1"),
        "{}",
        shifted.reason
    );
    // A stricter share keeps the dataset quiet; a per-column threshold can silence a column.
    let opts = DriftOptions { drift_share: 0.75, ..DriftOptions::default() };
    assert_eq!(run(dir.path(), &r, &c, &opts).unwrap().status, DriftStatus::NoDrift);
    let mut opts = DriftOptions::default();
    opts.tests.insert("shifted".into(), TestSpec { method: None, threshold: Some(0.9) });
    let report = run(dir.path(), &r, &c, &opts).unwrap();
    assert_eq!((report.columns[1].test, report.status), (Method::Wasserstein, DriftStatus::NoDrift));
}

#[test]
fn a_critical_column_drifting_alone_makes_the_dataset_drifted() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = fastrand::Rng::with_seed(7);
    let mut cols_r = Vec::new();
    let mut cols_c = Vec::new();
    for (name, shift) in [("a", 0.0), ("b", 0.0), ("c", 0.0), ("key", 1.0)] {
        cols_r.push((name, text(&normal(&mut rng, 500, 0.0, 1.0))));
        cols_c.push((name, text(&normal(&mut rng, 500, shift, 1.0))));
    }
    let r = write_csv(dir.path(), "ref.csv", &cols_r);
    let c = write_csv(dir.path(), "cur.csv", &cols_c);
    let report = run(dir.path(), &r, &c, &DriftOptions::default()).unwrap();
    assert_eq!((report.status, report.share), (DriftStatus::NoDrift, 0.25), "{}", report.reason);
    assert_eq!(report.reason, "1 of 4 columns drifted (share 0.25 < drift_share 0.5)");
    let opts = DriftOptions { critical: vec!["key".into()], ..DriftOptions::default() };
    let report = run(dir.path(), &r, &c, &opts).unwrap();
    assert_eq!(report.status, DriftStatus::Drift);
    assert!(report.reason.starts_with("critical column `key` (KS p-value "), "{}", report.reason);
    assert!(report.columns[3].critical && !report.columns[0].critical);
    assert_eq!(report.critical, ["key"]);
}

#[test]
fn categorical_columns_use_chi_square_and_report_unseen_categories() {
    let dir = tempfile::tempdir().unwrap();
    let cities = |n: usize, new: usize| -> Vec<String> {
        (0..n).map(|i| if i < new { "Zürich".into() } else { ["Oslo", "Lima", "Pune"][i % 3].into() }).collect()
    };
    let r = write_csv(dir.path(), "ref.csv", &[("city", cities(300, 0))]);
    let c = write_csv(dir.path(), "cur.csv", &[("city", cities(300, 3))]);
    let report = run(dir.path(), &r, &c, &DriftOptions::default()).unwrap();
    let city = &report.columns[0];
    assert_eq!((city.kind, city.test), (ColumnKind::Categorical, Method::ChiSquare));
    assert_eq!(city.unseen_categories, ["Zürich"]);
    assert_eq!(city.stats["unseen_share"], 0.01);
    assert_eq!(city.decision, DriftStatus::NoDrift, "1% new values is not drift at p 0.05: {}", city.reason);
    let c = write_csv(dir.path(), "cur.csv", &[("city", cities(300, 100))]);
    let report = run(dir.path(), &r, &c, &DriftOptions::default()).unwrap();
    assert_eq!(report.columns[0].decision, DriftStatus::Drift, "{}", report.columns[0].reason);
    let labels = &report.columns[0].histogram.as_ref().unwrap().labels;
    assert_eq!(labels.len(), 4);
}

#[test]
fn parquet_current_against_a_csv_reference() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = fastrand::Rng::with_seed(8);
    let x = normal(&mut rng, 400, 0.0, 1.0);
    let r = write_csv(dir.path(), "ref.csv", &[("x", text(&x)), ("kind", vec!["a".to_string(); 400])]);
    let current: Vec<(&str, ArrayRef)> = vec![
        ("x", Arc::new(Float64Array::from(normal(&mut rng, 400, 2.0, 1.0)))),
        ("kind", Arc::new(StringArray::from(vec!["a"; 400]))),
    ];
    let batch = RecordBatch::try_from_iter(current).unwrap();
    let c = dir.path().join("cur.parquet");
    let mut w = ArrowWriter::try_new(std::fs::File::create(&c).unwrap(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let report = run(dir.path(), &r, &c, &DriftOptions::default()).unwrap();
    assert_eq!((report.reference.format.as_str(), report.current.format.as_str()), ("csv", "parquet"));
    assert_eq!(report.current.rows, 400);
    assert_eq!(report.columns[0].decision, DriftStatus::Drift);
    assert_eq!(report.columns[1].decision, DriftStatus::NoDrift);
}

#[test]
fn an_unsupported_parquet_type_is_an_error_naming_the_column_unless_excluded() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = fastrand::Rng::with_seed(11);
    let x = normal(&mut rng, 100, 0.0, 1.0);
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("x", Arc::new(Float64Array::from(x.clone()))),
        ("seen_at", Arc::new(TimestampMillisecondArray::from((0..100).collect::<Vec<i64>>()))),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let p = dir.path().join("cur.parquet");
    let mut w = ArrowWriter::try_new(std::fs::File::create(&p).unwrap(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let times: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    let r = write_csv(dir.path(), "ref.csv", &[("x", text(&x)), ("seen_at", times)]);
    let e = run(dir.path(), &r, &p, &DriftOptions::default()).unwrap_err().to_string();
    assert!(e.contains("column `seen_at` (Timestamp(ms)) has a type dagrun cannot read"), "{e}");
    assert!(e.contains("exclude: [\"seen_at\"]"), "{e}");
    let opts = DriftOptions { exclude: vec!["seen_at".into()], ..DriftOptions::default() };
    let report = run(dir.path(), &r, &p, &opts).unwrap();
    assert_eq!(report.columns.len(), 1);
    assert_eq!(report.columns[0].decision, DriftStatus::NoDrift, "the same sample");
}

#[test]
fn html_report_escapes_user_text_and_stays_small() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = fastrand::Rng::with_seed(9);
    let name = "<script>alert('x')</script>";
    let mut cols_r = vec![(name, text(&normal(&mut rng, 200, 0.0, 1.0)))];
    let mut cols_c = vec![(name, text(&normal(&mut rng, 200, 1.0, 1.0)))];
    let names: Vec<String> = (0..200).map(|i| format!("c{i}")).collect();
    for n in &names {
        cols_r.push((n, text(&normal(&mut rng, 200, 0.0, 1.0))));
        cols_c.push((n, text(&normal(&mut rng, 200, 0.0, 1.0))));
    }
    let r = write_csv(dir.path(), "ref.csv", &cols_r);
    let c = write_csv(dir.path(), "cur.csv", &cols_c);
    let report = run(dir.path(), &r, &c, &DriftOptions::default()).unwrap();
    let out = dir.path().join("drift.html");
    write_html(&report, &out).unwrap();
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(!html.contains("<script"), "a column name became markup");
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    assert!(html.contains("<svg") && html.contains("class=\"tag drift\""));
    assert!(!html.contains("http://") && !html.contains("https://"), "opens offline");
    let per_column = html.len() / report.columns.len();
    assert!(per_column < 1500, "{per_column} bytes per column");
    let e = write_html(&report, &dir.path().join("missing/dir/drift.html")).unwrap_err();
    assert!(matches!(e, DriftError::Write { .. }), "{e}");
}

#[test]
fn drift_json_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let (r, c) = shifted_pair(dir.path(), 300, 1.0, 10);
    let report = run(dir.path(), &r, &c, &DriftOptions::default()).unwrap();
    let back = DriftReport::from_json(report.to_json().as_bytes()).unwrap();
    // serde_json parses floats to within an ulp, not always exactly: compare what is not a float
    // exactly, and the floats closely.
    assert_eq!(back.reference.path, r.display().to_string());
    assert_eq!(
        (back.status, &back.reason, &back.drifted_columns),
        (report.status, &report.reason, &report.drifted_columns)
    );
    for (b, c) in back.columns.iter().zip(&report.columns) {
        assert_eq!((&b.column, b.decision, &b.reason, b.test), (&c.column, c.decision, &c.reason, c.test));
        assert_eq!(b.stats.keys().collect::<Vec<_>>(), c.stats.keys().collect::<Vec<_>>());
        for (x, y) in b.stats.values().zip(c.stats.values()) {
            assert!((x - y).abs() <= 1e-15 * y.abs(), "{x} vs {y}");
        }
    }
}

use dagrun_onnx::runtime::required_by_tests as runtime_required;

#[test]
fn prediction_drift_with_an_onnx_classifier() {
    if !runtime_required() {
        return;
    }
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/onnx/logreg_binary");
    let data = std::fs::read_to_string(fixture.join("test.csv")).unwrap();
    let mut lines = data.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let features = header.len() - 1; // the last column is the label: left out for the model
    let rows: Vec<Vec<f64>> =
        lines.map(|l| l.split(',').take(features).map(|v| v.parse().unwrap()).collect()).collect();
    let column = |rows: &[Vec<f64>], j: usize, shift: f64| -> Vec<String> {
        rows.iter().map(|r| (r[j] + shift).to_string()).collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, rows: &[Vec<f64>], shift: f64| -> PathBuf {
        let cols: Vec<(&str, Vec<String>)> = (0..features).map(|j| (header[j], column(rows, j, shift))).collect();
        write_csv(dir.path(), name, &cols)
    };
    let (first, second) = rows.split_at(rows.len() / 2);
    let reference = write("ref.csv", first, 0.0);
    let steady = write("steady.csv", second, 0.0);
    let moved = write("moved.csv", second, 4.0);
    let model = fixture.join("model.onnx");
    let inputs = |current: &Path| DriftInputs {
        reference: reference.clone(),
        current: current.to_path_buf(),
        model: Some(model.clone()),
        work_dir: dir.path().join("work"),
    };
    let report = detect(&inputs(&steady), &DriftOptions::default()).unwrap();
    let names: Vec<&str> = report.predictions.iter().map(|c| c.column.as_str()).collect();
    assert_eq!(names, ["prediction", "proba_1"]);
    assert_eq!(report.predictions[0].kind, ColumnKind::Categorical);
    assert_eq!(report.predictions[1].kind, ColumnKind::Numeric);
    assert!(report.predictions.iter().all(|c| c.decision == DriftStatus::NoDrift), "{:?}", report.predictions);
    assert!(dir.path().join("work/reference_predictions.csv").exists());
    assert_eq!(report.model.as_deref(), Some(model.display().to_string().as_str()));

    let report = detect(&inputs(&moved), &DriftOptions::default()).unwrap();
    assert!(report.predictions.iter().any(|c| c.decision == DriftStatus::Drift), "{:?}", report.predictions);
    assert!(report.drifted);
    assert!(report.reason.contains("the predictions drifted"), "{}", report.reason);

    // Data that still holds its label: excluding it leaves it out of the model's features too.
    let labelled = DriftInputs { reference: fixture.join("test.csv"), ..inputs(&fixture.join("test.csv")) };
    let opts = DriftOptions { exclude: vec!["label".into()], ..DriftOptions::default() };
    let report = detect(&labelled, &opts).unwrap();
    assert!(report.predictions.iter().all(|c| c.decision == DriftStatus::NoDrift), "{:?}", report.predictions);
    assert!(!report.drifted, "{}", report.reason);
}
