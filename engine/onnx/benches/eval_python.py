#!/usr/bin/env python3
"""Python side of engine/onnx/benches/eval.rs: makes the benchmark's data and models, and runs the baseline.

    python eval_python.py make --dir DIR --rows 1000000 --features 30
        Writes DIR/data_<rows>x<features>.csv (the rows to score: <features> float columns f0.. and a 0/1
        `label`) and one model per kind, DIR/<kind>_<features>.onnx, trained with scikit-learn on 20,000 other
        rows of the same distribution and exported with skl2onnx (zipmap off, float input):
          logreg  LogisticRegression()
          gb      GradientBoostingClassifier() (100 trees, depth 3)
          rf      RandomForestClassifier(n_estimators=100, max_depth=12)
        Deterministic (fixed seeds); files that exist with the same parameters are kept.

    python eval_python.py run --model M.onnx --data D.csv --out DIR [--threads N]
        The baseline: what a user writes to do what dagrun's OnnxEval does -- one pandas read_csv, one
        InferenceSession.run over all rows, one DataFrame.to_csv of the predictions (row, label, prediction,
        proba_0, proba_1), the metrics computed once with scikit-learn and written as JSON. Prints one JSON
        object: seconds and CPU seconds (from creating the session to metrics.json written; imports excluded),
        the peak RSS of this process, the row count and the metrics.

Metric definitions are dagrun's (engine/onnx/src/metrics.rs), which are scikit-learn's with zero_division=0;
log loss on probabilities clipped to [1e-15, 1 - 1e-15] first (see tests/fixtures/onnx/make_fixtures.py).
"""

import argparse
import json
import os
import resource
import sys
import time
import warnings

import numpy as np
import onnxruntime as ort
import pandas as pd

EPS = 1e-15
TRAIN_ROWS = 20_000


def make(args):
    os.makedirs(args.dir, exist_ok=True)
    stamp = {"rows": args.rows, "features": args.features, "train_rows": TRAIN_ROWS, "version": 1}
    stamp_path = os.path.join(args.dir, f"made_{args.rows}x{args.features}.json")
    if os.path.exists(stamp_path):
        with open(stamp_path) as f:
            if json.load(f) == stamp:
                print(f"eval_python: reusing the data and models in {args.dir}", file=sys.stderr)
                return
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import make_classification
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    f = args.features
    x, y = make_classification(
        n_samples=TRAIN_ROWS + args.rows, n_features=f, n_informative=f // 2, n_redundant=f // 6,
        flip_y=0.05, class_sep=0.8, random_state=17,
    )
    # Six decimals, as a data export would write them; both sides read the same text.
    x = np.round(x, 6)
    models = {
        "logreg": LogisticRegression(max_iter=1000),
        "gb": GradientBoostingClassifier(random_state=0),
        "rf": RandomForestClassifier(n_estimators=100, max_depth=12, random_state=0, n_jobs=-1),
    }
    for kind, model in models.items():
        t = time.perf_counter()
        model.fit(x[:TRAIN_ROWS], y[:TRAIN_ROWS])
        onx = to_onnx(
            model, initial_types=[("input", FloatTensorType([None, f]))], options={id(model): {"zipmap": False}},
            target_opset={"": 17, "ai.onnx.ml": 3},
        )
        with open(os.path.join(args.dir, f"{kind}_{f}.onnx"), "wb") as out:
            out.write(onx.SerializeToString())
        print(f"eval_python: {kind} trained and exported in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    t = time.perf_counter()
    data = pd.DataFrame(x[TRAIN_ROWS:], columns=[f"f{i}" for i in range(f)])
    data["label"] = y[TRAIN_ROWS:]
    data.to_csv(os.path.join(args.dir, f"data_{args.rows}x{f}.csv"), index=False, float_format="%.6f")
    print(f"eval_python: {args.rows} rows written in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    with open(stamp_path, "w") as out:
        json.dump(stamp, out)


def metrics(y, pred, proba):
    from sklearn.metrics import accuracy_score, f1_score, log_loss, precision_score, recall_score, roc_auc_score

    # float32 probabilities sum to 1 only to float32 rounding; scikit-learn warns, and so does not change them.
    warnings.filterwarnings("ignore", message="The y_prob values do not sum to one")
    p = np.asarray(proba, dtype=np.float64)
    return {
        "accuracy": accuracy_score(y, pred),
        "precision": precision_score(y, pred, zero_division=0),
        "recall": recall_score(y, pred, zero_division=0),
        "f1": f1_score(y, pred, zero_division=0),
        "precision_macro": precision_score(y, pred, average="macro", zero_division=0),
        "recall_macro": recall_score(y, pred, average="macro", zero_division=0),
        "f1_macro": f1_score(y, pred, average="macro", zero_division=0),
        "roc_auc": roc_auc_score(y, p[:, 1]),
        "log_loss": log_loss(y, np.clip(p, EPS, 1 - EPS), labels=[0, 1]),
    }


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(args):
    start, cpu = time.perf_counter(), cpu_seconds()
    so = ort.SessionOptions()
    if args.threads:
        so.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
    df = pd.read_csv(args.data)
    y = df.pop("label").to_numpy()
    x = df.to_numpy(dtype=np.float32)
    label, proba = sess.run(None, {sess.get_inputs()[0].name: x})
    os.makedirs(args.out, exist_ok=True)
    pd.DataFrame({"row": np.arange(len(y)), "label": y, "prediction": label, "proba_0": proba[:, 0],
                  "proba_1": proba[:, 1]}).to_csv(os.path.join(args.out, "predictions.csv"), index=False)
    m = {k: float(v) for k, v in metrics(y, label, proba).items()}
    with open(os.path.join(args.out, "metrics.json"), "w") as out:
        json.dump(m, out, indent=2)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    print(json.dumps({
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "rows": int(len(y)),
        "metrics": m,
        "versions": {"python": sys.version.split()[0], "onnxruntime": ort.__version__, "pandas": pd.__version__,
                     "numpy": np.__version__},
    }))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="command", required=True)
    mk = sub.add_parser("make")
    mk.add_argument("--dir", required=True)
    mk.add_argument("--rows", type=int, default=1_000_000)
    mk.add_argument("--features", type=int, default=30)
    rn = sub.add_parser("run")
    rn.add_argument("--model", required=True)
    rn.add_argument("--data", required=True)
    rn.add_argument("--out", required=True)
    rn.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    make(args) if args.command == "make" else run(args)


if __name__ == "__main__":
    main()
