#!/usr/bin/env python3
"""Checks a model written by the `train` plugin against ONNX Runtime.

    python3 plugins/train/check_onnx.py MODEL.onnx DATA.csv METRICS.json [PREDICTIONS.csv]
        [--tolerance 1e-5] [--eval OTHER.csv ...] [--sklearn]

* MODEL.onnx, METRICS.json, PREDICTIONS.csv: the plugin's outputs `model`, `metrics` and
  `predictions` (param `"write_predictions": true`); DATA.csv: the CSV it was trained on.
* Checks the model with `onnx.checker` (if the `onnx` package is installed), its input/output
  names, types and metadata, then runs it in onnxruntime over DATA.csv and asserts that the
  outputs equal the plugin's in-WASM predictions: probabilities within TOLERANCE (absolute),
  regression values within TOLERANCE * max(1, |value|), labels equal except where the two most
  likely classes are within TOLERANCE of each other (a tie that float rounding may break either
  way; such rows are counted). Without PREDICTIONS.csv, only the first predictions recorded in
  the metrics are compared. The SHA-256 of PREDICTIONS.csv must equal `predictions_sha256`.
* --eval OTHER.csv: also prints onnxruntime's metrics on other CSV files (e.g. a test set, or
  data after a drift).
* --sklearn: also fits the scikit-learn counterpart on DATA.csv and prints its training metrics.

Requirements: pip install onnxruntime==1.31.1 numpy (optional: onnx, scikit-learn).
Exit status 0 when everything agrees, 1 otherwise.
"""

import argparse
import csv
import hashlib
import json
import sys

import numpy as np
import onnxruntime as ort


def read_csv(path, columns):
    """Columns of a CSV as float64 arrays (the plugin parses f64, then rounds features to f32)."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = [h.strip().strip('"') for h in next(reader)]
        index = [header.index(c) for c in columns]
        rows = [[float(r[i]) for i in index] for r in reader if r]
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(columns))


def run_model(session, x):
    outputs = [o.name for o in session.get_outputs()]
    results = [session.run(outputs, {"input": x[i : i + 65536]}) for i in range(0, len(x), 65536)]
    return {name: np.concatenate([r[k] for r in results]) for k, name in enumerate(outputs)}


def metrics_of(out, y, classes):
    if "probabilities" in out:
        p = out["probabilities"].astype(np.float64)
        idx = np.searchsorted(classes, y.astype(np.int64))
        return {
            "accuracy": float(np.mean(out["label"] == y.astype(np.int64))),
            "log_loss": float(np.mean(-np.log(np.clip(p[np.arange(len(y)), idx], 1e-15, 1)))),
        }
    v = out["variable"][:, 0].astype(np.float64)
    se = float(np.sum((v - y) ** 2))
    tot = float(np.sum((y - y.mean()) ** 2))
    return {"rmse": (se / len(y)) ** 0.5, "mae": float(np.mean(np.abs(v - y))), "r2": 1 - se / tot if tot else 0.0}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("metrics")
    ap.add_argument("predictions", nargs="?")
    ap.add_argument("--tolerance", type=float, default=1e-5)
    ap.add_argument("--eval", nargs="*", default=[])
    ap.add_argument("--sklearn", action="store_true")
    args = ap.parse_args()
    tol = args.tolerance
    failures = []

    def check(ok, message):
        print(("ok    " if ok else "FAIL  ") + message)
        if not ok:
            failures.append(message)

    with open(args.metrics) as f:
        metrics = json.load(f)
    features, label = metrics["features"], metrics["label"]
    classifier = metrics["task"] == "classification"
    classes = np.array(metrics.get("classes") or [], dtype=np.int64)

    with open(args.model, "rb") as f:
        model_bytes = f.read()
    check(hashlib.sha256(model_bytes).hexdigest() == metrics["model_sha256"], "model.onnx matches metrics.model_sha256")
    try:
        import onnx
    except ImportError:
        print("skip  onnx.checker (the onnx package is not installed)")
    else:
        m = onnx.load_from_string(model_bytes)
        onnx.checker.check_model(m, full_check=True)
        opsets = {o.domain or "ai.onnx": o.version for o in m.opset_import}
        meta = {p.key: p.value for p in m.metadata_props}
        check(True, f"onnx.checker full_check: ir_version {m.ir_version}, opsets {opsets}")
        check(json.loads(meta.get("features", "null")) == features, "metadata `features` equals metrics.features")

    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    check(inp.name == "input" and inp.type == "tensor(float)" and inp.shape[1] == len(features),
          f"input `{inp.name}` {inp.type} {inp.shape}")
    outs = {o.name: (o.type, o.shape) for o in session.get_outputs()}
    expected = ({"label": "tensor(int64)", "probabilities": "tensor(float)"} if classifier
                else {"variable": "tensor(float)"})
    check({k: v[0] for k, v in outs.items()} == expected, f"outputs {outs}")

    data = read_csv(args.data, features + [label])
    x, y = data[:, :-1].astype(np.float32), data[:, -1]
    check(len(x) == metrics["rows"], f"{len(x)} rows (metrics: {metrics['rows']})")
    out = run_model(session, x)

    if args.predictions:
        with open(args.predictions, "rb") as f:
            raw = f.read()
        check(hashlib.sha256(raw).hexdigest() == metrics["predictions_sha256"],
              "predictions.csv matches metrics.predictions_sha256")
        lines = raw.decode().splitlines()
        table = np.array([[float(v) for v in line.split(",")] for line in lines[1:]], dtype=np.float64)
    else:
        first = metrics["first_predictions"]
        table = np.array([[p["label"]] + p["probabilities"] if classifier else [p["variable"]] for p in first])
        print(f"note  no predictions file: comparing the first {len(table)} predictions of the metrics")
    n = len(table)
    check(n <= len(x), f"comparing {n} rows")

    if classifier:
        p_ort = out["probabilities"][:n].astype(np.float64)
        p_wasm = table[:, 1:]
        diff = np.abs(p_ort - p_wasm)
        check(diff.max() <= tol, f"probabilities: max |onnxruntime - plugin| = {diff.max():.3g} (tolerance {tol})")
        top2 = np.sort(p_wasm, axis=1)[:, -2:]
        near_tie = (top2[:, 1] - top2[:, 0]) <= tol
        differ = out["label"][:n] != table[:, 0].astype(np.int64)
        check(not np.any(differ & ~near_tie),
              f"labels: {n - differ.sum()} of {n} equal; {differ.sum()} differ, all at near-ties "
              f"({near_tie.sum()} near-tie rows)")
    else:
        v_ort = out["variable"][:n, 0].astype(np.float64)
        v_wasm = table[:, 0]
        diff = np.abs(v_ort - v_wasm)
        scaled = diff / np.maximum(1.0, np.abs(v_wasm))
        check(scaled.max() <= tol, f"variable: max |onnxruntime - plugin| = {diff.max():.3g}, "
                                   f"max relative (to max(1, |v|)) {scaled.max():.3g} (tolerance {tol})")

    ort_metrics = metrics_of(out, y, classes)
    for k, v in sorted(metrics["train"].items()):
        check(abs(ort_metrics[k] - v) <= max(tol, 1e-4 * abs(v)) if k != "accuracy" else abs(ort_metrics[k] - v) <= 1e-4,
              f"train {k}: onnxruntime {ort_metrics[k]:.6f}, plugin {v:.6f}")

    for path in args.eval:
        d = read_csv(path, features + [label])
        print(f"eval  {path}: onnxruntime {metrics_of(run_model(session, d[:, :-1].astype(np.float32)), d[:, -1], classes)}")

    if args.sklearn:
        sklearn_reference(metrics, x, y, args.eval, features, label)

    print("PASS" if not failures else f"FAILED: {len(failures)} check(s)")
    return 0 if not failures else 1


def sklearn_reference(metrics, x, y, evals, features, label):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    p = metrics["params"]
    kind, task = metrics["model"], metrics["task"]
    n = len(y)
    if kind == "logistic":
        # Same objective: mean log loss + l2/2 |w|^2  <=>  C = 1 / (l2 * n).
        est = make_pipeline(StandardScaler(), LogisticRegression(C=1.0 / (max(p["l2"], 1e-12) * n), max_iter=1000))
    elif kind == "linear":
        est = make_pipeline(StandardScaler(), Ridge(alpha=p["l2"] * n))
    elif task == "classification":
        est = HistGradientBoostingClassifier(max_iter=p["trees"], learning_rate=p["learning_rate"],
                                             max_depth=p["depth"], min_samples_leaf=p["min_leaf"],
                                             l2_regularization=p["l2"], max_bins=min(p["bins"], 255),
                                             early_stopping=False)
    else:
        est = HistGradientBoostingRegressor(max_iter=p["trees"], learning_rate=p["learning_rate"],
                                            max_depth=p["depth"], min_samples_leaf=p["min_leaf"],
                                            l2_regularization=p["l2"], max_bins=min(p["bins"], 255),
                                            early_stopping=False)
    est.fit(x, y.astype(np.int64) if task == "classification" else y)

    def score(xx, yy):
        if task == "classification":
            pr = est.predict_proba(xx)
            idx = np.searchsorted(est.classes_, yy.astype(np.int64))
            return {"accuracy": float(np.mean(est.predict(xx) == yy.astype(np.int64))),
                    "log_loss": float(np.mean(-np.log(np.clip(pr[np.arange(len(yy)), idx], 1e-15, 1))))}
        v = est.predict(xx)
        return {"rmse": float(np.sqrt(np.mean((v - yy) ** 2))), "r2": float(est.score(xx, yy))}

    print(f"sklearn {type(est).__name__ if not hasattr(est, 'steps') else est.steps[-1][0]}: train {score(x, y)}")
    for path in evals:
        d = read_csv(path, features + [label])
        print(f"sklearn {path}: {score(d[:, :-1].astype(np.float32), d[:, -1])}")


if __name__ == "__main__":
    sys.exit(main())
