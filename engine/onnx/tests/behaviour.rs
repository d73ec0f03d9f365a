//! `behaviour`: how differently two real models behave on the same data, checked against an
//! independent count: both models' `predict` output (CSV), compared cell by cell.
//!
//! These tests need ONNX Runtime. Without it they fail with the install instructions; set
//! `DAGRUN_SKIP_ONNX=1` to skip them instead.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use dagrun_onnx::runtime::required_by_tests as runtime_required;
use dagrun_onnx::{Behaviour, EvalOptions, ModelKind, Outputs, PredictOptions, behaviour, evaluate_metrics, predict};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/onnx").join(path)
}

/// A fixture's model file.
fn model(name: &str) -> PathBuf {
    fixture(&format!("{name}/model.onnx"))
}

fn multiclass_features() -> Vec<String> {
    (0..10).map(|i| format!("x{i}")).collect()
}

fn options(label: &str, features: Option<Vec<String>>) -> EvalOptions {
    let mut o = EvalOptions::new(label);
    o.features = features;
    o.keep_outputs = true;
    o
}

/// The outputs an evaluation kept.
fn outputs(name: &str, data: &Path, opts: &EvalOptions) -> Outputs {
    let eval = evaluate_metrics(&model(name), data, opts).unwrap_or_else(|e| panic!("{name}: {e}"));
    eval.outputs.unwrap_or_else(|| panic!("{name}: keep_outputs keeps the outputs"))
}

/// A predictions CSV: its header and its rows (no field of these files is quoted).
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// `model`'s `predict` output on `data`, `label` left out of the features.
    fn predict(name: &str, data: &Path, label: &str, features: Option<Vec<String>>) -> Table {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("predictions.csv");
        let opts = PredictOptions { label: Some(label.into()), features, ..PredictOptions::default() };
        predict(&model(name), data, &out, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        let text = std::fs::read_to_string(&out).unwrap();
        let mut lines = text.lines().map(|l| l.split(',').map(str::to_owned).collect::<Vec<_>>());
        Table { header: lines.next().unwrap(), rows: lines.collect() }
    }

    fn column(&self, name: &str) -> usize {
        self.header.iter().position(|c| c == name).unwrap_or_else(|| panic!("no `{name}` in {:?}", self.header))
    }

    fn cell(&self, row: usize, name: &str) -> &str {
        &self.rows[row][self.column(name)]
    }

    fn number(&self, row: usize, name: &str) -> f64 {
        self.cell(row, name).parse().unwrap()
    }

    /// The `proba_<class>` column names.
    fn probability_columns(&self) -> Vec<&str> {
        self.header.iter().filter(|c| c.starts_with("proba_")).map(String::as_str).collect()
    }
}

/// What `behaviour` should say, computed from the two `predict` files over the rows in `keep` (all if
/// `None`): differing `prediction` cells, and the mean of ½ Σ |Δ proba_*| (classifiers) or |Δ prediction|.
fn expected(a: &Table, b: &Table, kind: ModelKind, keep: Option<&HashSet<String>>) -> Behaviour {
    assert_eq!(a.rows.len(), b.rows.len());
    let rows: Vec<usize> = (0..a.rows.len()).filter(|&r| keep.is_none_or(|k| k.contains(a.cell(r, "row")))).collect();
    let n = rows.len() as f64;
    if kind == ModelKind::Regressor {
        let sum: f64 = rows.iter().map(|&r| (a.number(r, "prediction") - b.number(r, "prediction")).abs()).sum();
        return Behaviour {
            rows: rows.len() as u64,
            changed: None,
            changed_share: None,
            mean_abs_change: Some(sum / n),
        };
    }
    let changed = rows.iter().filter(|&&r| a.cell(r, "prediction") != b.cell(r, "prediction")).count() as u64;
    let columns = a.probability_columns();
    assert_eq!(columns.len(), b.probability_columns().len(), "the same classes");
    let tv: f64 =
        rows.iter().map(|&r| 0.5 * columns.iter().map(|c| (a.number(r, c) - b.number(r, c)).abs()).sum::<f64>()).sum();
    Behaviour {
        rows: rows.len() as u64,
        changed: Some(changed),
        changed_share: Some(changed as f64 / n),
        mean_abs_change: (!columns.is_empty()).then_some(tv / n),
    }
}

/// Counts and shares equal; the mean change equal up to the CSV's float32 printing.
fn assert_agrees(got: &Behaviour, want: &Behaviour, what: &str) {
    assert_eq!((got.rows, got.changed, got.changed_share), (want.rows, want.changed, want.changed_share), "{what}");
    match (got.mean_abs_change, want.mean_abs_change) {
        (Some(g), Some(w)) => assert!((g - w).abs() < 1e-6, "{what}: mean |Δ| {g}, from the CSV files {w}"),
        (g, w) => assert_eq!(g, w, "{what}"),
    }
}

#[test]
fn different_classifiers_change_exactly_the_predictions_that_differ() {
    if !runtime_required() {
        return;
    }
    let pairs = [
        ("logreg_binary", "gb_binary", "logreg_binary/test.csv", "label", None),
        ("rf_multiclass", "logreg_multiclass", "rf_multiclass/test.csv", "species", Some(multiclass_features())),
    ];
    for (candidate, champion, data, label, features) in pairs {
        let data = fixture(data);
        let opts = options(label, features.clone());
        let got = behaviour(&outputs(candidate, &data, &opts), &outputs(champion, &data, &opts)).unwrap();
        let want = expected(
            &Table::predict(candidate, &data, label, features.clone()),
            &Table::predict(champion, &data, label, features),
            ModelKind::Classifier,
            None,
        );
        let what = format!("{candidate} vs {champion}");
        assert!(want.changed.unwrap() > 0, "{what}: the fixtures disagree somewhere: {want:?}");
        assert!(want.mean_abs_change.unwrap() > 0.0, "{what}");
        assert_agrees(&got, &want, &what);
        eprintln!("{what}: {got:?}");
    }
}

#[test]
fn identical_models_change_nothing() {
    if !runtime_required() {
        return;
    }
    let data = fixture("logreg_binary/test.csv");
    let opts = options("label", None);
    let logreg = outputs("logreg_binary", &data, &opts);
    let same = behaviour(&logreg, &outputs("logreg_binary", &data, &opts)).unwrap();
    assert_eq!(same, Behaviour { rows: 1000, changed: Some(0), changed_share: Some(0.0), mean_abs_change: Some(0.0) });
    // The same model with a ZipMap output: other bytes, the same predictions.
    let zipmap = behaviour(&logreg, &outputs("logreg_binary_zipmap", &data, &opts)).unwrap();
    assert_eq!((zipmap.rows, zipmap.changed, zipmap.changed_share), (1000, Some(0), Some(0.0)));
    assert!(zipmap.mean_abs_change.unwrap() < 1e-7, "{zipmap:?}");
    // Without keep_outputs nothing is kept.
    let plain = evaluate_metrics(&model("logreg_binary"), &data, &EvalOptions::new("label")).unwrap();
    assert_eq!(plain.outputs, None);
}

#[test]
fn regressors_change_by_the_mean_absolute_difference() {
    if !runtime_required() {
        return;
    }
    let data = fixture("regression_matrix/test.csv");
    let opts = options("target", None);
    let got = behaviour(&outputs("rf_regressor", &data, &opts), &outputs("linear_regressor", &data, &opts)).unwrap();
    let want = expected(
        &Table::predict("rf_regressor", &data, "target", None),
        &Table::predict("linear_regressor", &data, "target", None),
        ModelKind::Regressor,
        None,
    );
    assert!(want.mean_abs_change.unwrap() > 0.0, "{want:?}");
    assert_agrees(&got, &want, "rf_regressor vs linear_regressor");
}

/// Rows without a label are skipped by both evaluations, so the comparison is over the labelled rows.
#[test]
fn rows_skipped_as_unlabelled_are_left_out_on_both_sides() {
    if !runtime_required() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("test.csv");
    let text = std::fs::read_to_string(fixture("logreg_binary/test.csv")).unwrap();
    let mut labelled = HashSet::new();
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        // Data row i - 1; every 7th loses its label (the last column).
        if i > 0 && (i - 1) % 7 == 3 {
            out.push_str(&line[..line.rfind(',').unwrap() + 1]);
        } else {
            if i > 0 {
                labelled.insert((i - 1).to_string());
            }
            out.push_str(line);
        }
        out.push('\n');
    }
    std::fs::write(&data, out).unwrap();
    let mut opts = options("label", None);
    opts.skip_unlabelled = true;
    let got = behaviour(&outputs("logreg_binary", &data, &opts), &outputs("gb_binary", &data, &opts)).unwrap();
    let want = expected(
        &Table::predict("logreg_binary", &data, "label", None),
        &Table::predict("gb_binary", &data, "label", None),
        ModelKind::Classifier,
        Some(&labelled),
    );
    assert_eq!(want.rows, 857, "1000 rows, 143 without a label");
    assert!(want.changed.unwrap() > 0, "{want:?}");
    assert_agrees(&got, &want, "labelled rows only");
}

#[test]
fn models_that_cannot_be_compared_are_an_error() {
    if !runtime_required() {
        return;
    }
    let separable = fixture("separable/test.csv");
    let features = Some((0..5).map(|i| format!("f{i}")).collect::<Vec<_>>());
    let zero_one = outputs("rf_binary", &separable, &options("label", features.clone()));
    let signs = outputs("rf_binary_signs", &separable, &options("sign", features));
    let e = behaviour(&zero_one, &signs).unwrap_err().to_string();
    assert_eq!(
        e,
        "cannot compare the two models' predictions: the candidate's classes (0, 1) are not the champion's (-1, 1)"
    );

    let data = fixture("logreg_binary/test.csv");
    let classifier = outputs("logreg_binary", &data, &options("label", None));
    // A single score tensor is taken for a regressor.
    let regressor = outputs("score_binary", &data, &options("label", None));
    assert_eq!((classifier.kind(), regressor.kind()), (ModelKind::Classifier, ModelKind::Regressor));
    let e = behaviour(&classifier, &regressor).unwrap_err().to_string();
    assert!(e.ends_with("the candidate is a classifier and the champion a regressor"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let half = dir.path().join("half.csv");
    let text = std::fs::read_to_string(&data).unwrap();
    std::fs::write(&half, text.lines().take(501).collect::<Vec<_>>().join("\n") + "\n").unwrap();
    let e = behaviour(&classifier, &outputs("gb_binary", &half, &options("label", None))).unwrap_err().to_string();
    assert!(e.ends_with("the candidate scored 1000 rows and the champion 500"), "{e}");
}
