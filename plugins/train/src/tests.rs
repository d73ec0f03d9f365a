use super::*;
use crate::rng::SplitMix64;

/// A small binary problem: `y = 1` when `2a - b + noise > 0.5`, plus a 3-class variant and a
/// regression target.
fn csv(rows: usize) -> String {
    let mut rng = SplitMix64::new(42);
    let mut out = String::from("a,b,c,name,y,k,target\n");
    for i in 0..rows {
        let (a, b, c) = (rng.next_f64() * 4.0 - 2.0, rng.next_f64() * 10.0, (i % 7) as f64);
        let noise = rng.next_f64() - 0.5;
        let y = u8::from(2.0 * a - 0.2 * b + noise > 0.5);
        let k = if a < -0.7 {
            3
        } else if a < 0.7 {
            5
        } else {
            8
        };
        let target = 1.5 * a - 0.3 * b + 0.1 * c + noise;
        out.push_str(&format!("{a:.4},{b:.3},{c},row{i},{y},{k},{target:.5}\n"));
    }
    out
}

fn params(json: &str) -> Params {
    serde_json::from_str(json).unwrap()
}

fn run(json: &str) -> Trained {
    train(&csv(600), &params(json), &mut |_, _, _| {}).unwrap()
}

#[test]
fn logistic_binary() {
    let t = run(r#"{"label": "y", "epochs": 300}"#);
    let m = &t.metrics;
    assert_eq!(m.features, ["a", "b", "c", "k", "target"], "default: every other numeric column");
    assert_eq!(m.classes.as_deref(), Some(&[0, 1][..]));
    assert!(m.train["accuracy"] > 0.9, "{m:?}");
    assert_eq!(m.epochs_run, Some(300));
    assert_eq!(t.predictions.len(), 600);
    assert!(t.predictions_csv.starts_with("label,p_0,p_1\n"));
    assert_eq!(m.first_predictions.len(), 5);
}

#[test]
fn multiclass_and_labels() {
    let t = run(r#"{"label": "k", "features": ["a", "b"], "epochs": 400, "learning_rate": 1.0}"#);
    assert_eq!(t.metrics.classes.as_deref(), Some(&[3, 5, 8][..]));
    assert!(t.metrics.train["accuracy"] > 0.9, "{:?}", t.metrics);
    let t = run(r#"{"model": "gbdt", "label": "k", "features": ["a", "b"], "trees": 20}"#);
    assert_eq!(t.metrics.trees, Some(60));
    assert!(t.metrics.train["accuracy"] > 0.97, "{:?}", t.metrics);
}

#[test]
fn regressions() {
    let t = run(r#"{"model": "linear", "label": "target", "features": ["a", "b", "c"]}"#);
    assert!(t.metrics.train["r2"] > 0.9 && t.metrics.train["rmse"] < 0.35, "{:?}", t.metrics);
    let t = run(r#"{"model": "gbdt", "task": "regression", "label": "target", "features": ["a", "b", "c"]}"#);
    assert!(t.metrics.train["r2"] > 0.9, "{:?}", t.metrics);
    assert!(t.predictions_csv.starts_with("variable\n"));
}

#[test]
fn deterministic_bytes() {
    for p in [
        r#"{"label": "y", "features": ["a", "b"]}"#,
        r#"{"model": "linear", "label": "target"}"#,
        r#"{"model": "gbdt", "label": "y", "subsample": 0.7, "seed": 3, "trees": 20}"#,
    ] {
        let (a, b) = (run(p), run(p));
        assert_eq!(a.onnx, b.onnx, "{p}");
        assert_eq!(a.metrics, b.metrics, "{p}");
    }
    let a = run(r#"{"model": "gbdt", "label": "y", "subsample": 0.7, "seed": 3, "trees": 20}"#);
    let b = run(r#"{"model": "gbdt", "label": "y", "subsample": 0.7, "seed": 4, "trees": 20}"#);
    assert_ne!(a.onnx, b.onnx, "the seed matters when rows are sampled");
}

#[test]
fn invalid_params() {
    let err = |json: &str| train(&csv(50), &params(json), &mut |_, _, _| {}).unwrap_err().to_string();
    assert!(err(r#"{"label": "y", "trees": 5}"#).contains("`trees` applies to model \"gbdt\", not \"logistic\""));
    assert!(err(r#"{"model": "linear", "label": "y", "epochs": 5}"#).contains("`epochs`"));
    assert!(err(r#"{"model": "linear", "label": "y", "task": "classification"}"#).contains("cannot do task"));
    assert!(err(r#"{"label": "y", "learning_rate": 0}"#).contains("`learning_rate` must be > 0"));
    assert!(err(r#"{"model": "gbdt", "label": "y", "bins": 300}"#).contains("`bins`"));
    assert!(err(r#"{"label": "target"}"#).contains("is not an integer class"));
    assert!(err(r#"{"label": "y", "features": ["name"]}"#).contains("`row0` is not a number"));
    assert!(err(r#"{"label": "nope"}"#).contains("no label column `nope`"));
    assert!(serde_json::from_str::<Params>(r#"{"label": "y", "epoch": 5}"#).is_err(), "unknown fields are refused");
}
