#!/usr/bin/env python3
"""Python counterpart of engine/onnx/benches/eval.rs: the same work with Python onnxruntime and numpy.

    python3 engine/onnx/benches/eval_python.py --model M.onnx --data D.csv --label label [--batch-size 4096]

Modes (each timed --repeat times, best reported), all over the same CSV and model at the same batch size:
  inference  batches already in memory as float32 numpy arrays; only session.run
  metrics    CSV read in batches (pandas' C parser if installed, else numpy.loadtxt), session.run, then
             scikit-learn's accuracy, precision, recall, F1 (binary + macro), ROC AUC and log loss
  full       metrics + predictions.csv written batch by batch (row,label,prediction,proba_0,proba_1)
Prints one JSON object: {"mode": rows_per_second, ...} plus details.
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

try:
    import pandas as pd
except ImportError:  # pragma: no cover
    pd = None


def session(model, threads):
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def batches(path, batch_size, label):
    """Yields (x float32 [n, f], y int64 [n]) batches, streaming the file."""
    if pd is not None:
        for chunk in pd.read_csv(path, chunksize=batch_size):
            y = chunk.pop(label).to_numpy(dtype=np.int64)
            yield chunk.to_numpy(dtype=np.float64).astype(np.float32), y
        return
    with open(path) as f:
        header = f.readline().strip().split(",")
        li = header.index(label)
        while True:
            block = np.loadtxt(f, delimiter=",", max_rows=batch_size, ndmin=2)
            if block.shape[0] == 0:
                return
            y = block[:, li].astype(np.int64)
            x = np.delete(block, li, axis=1).astype(np.float32)
            yield x, y
            if block.shape[0] < batch_size:
                return


def metrics(y, label, proba):
    from sklearn.metrics import accuracy_score, f1_score, log_loss, precision_score, recall_score, roc_auc_score

    return {
        "accuracy": accuracy_score(y, label),
        "precision": precision_score(y, label, zero_division=0),
        "recall": recall_score(y, label, zero_division=0),
        "f1": f1_score(y, label, zero_division=0),
        "precision_macro": precision_score(y, label, average="macro", zero_division=0),
        "recall_macro": recall_score(y, label, average="macro", zero_division=0),
        "f1_macro": f1_score(y, label, average="macro", zero_division=0),
        "roc_auc": roc_auc_score(y, proba[:, 1]),
        "log_loss": log_loss(y, np.clip(proba.astype(np.float64), 1e-15, 1 - 1e-15)),
    }


def run_inference(sess, data):
    name = sess.get_inputs()[0].name
    n = 0
    for x in data:
        label, proba = sess.run(None, {name: x})
        n += len(label)
    return n


def run_metrics(sess, path, batch_size, label_col, out=None):
    name = sess.get_inputs()[0].name
    ys, labels, probas = [], [], []
    row = 0
    for x, y in batches(path, batch_size, label_col):
        label, proba = sess.run(None, {name: x})
        ys.append(y)
        labels.append(label)
        probas.append(proba)
        if out is not None:
            rows = np.arange(row, row + len(y))
            if pd is not None:
                pd.DataFrame(
                    {"row": rows, "label": y, "prediction": label, "proba_0": proba[:, 0], "proba_1": proba[:, 1]}
                ).to_csv(out, header=(row == 0), index=False)
            else:
                if row == 0:
                    out.write("row,label,prediction,proba_0,proba_1\n")
                np.savetxt(out, np.column_stack([rows, y, label, proba]), fmt=["%d", "%d", "%d", "%.8g", "%.8g"],
                           delimiter=",")
        row += len(y)
    m = metrics(np.concatenate(ys), np.concatenate(labels), np.concatenate(probas))
    return row, m


def best_of(repeat, fn):
    best = None
    result = None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    return best, result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--label", default="label")
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--modes", default="inference,metrics,full")
    args = ap.parse_args()
    sess = session(args.model, args.threads)
    modes = args.modes.split(",")
    report = {
        "python": sys.version.split()[0],
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "csv_reader": "pandas " + pd.__version__ if pd is not None else "numpy.loadtxt",
        "batch_size": args.batch_size,
        "seconds": {},
        "rows_per_second": {},
    }
    if "inference" in modes:
        data = [x for x, _ in batches(args.data, args.batch_size, args.label)]
        rows = sum(len(x) for x in data)
        dt, _ = best_of(args.repeat, lambda: run_inference(sess, data))
        report["seconds"]["inference"] = dt
        report["rows_per_second"]["inference"] = rows / dt
        del data
    if "metrics" in modes:
        dt, (rows, m) = best_of(args.repeat, lambda: run_metrics(sess, args.data, args.batch_size, args.label))
        report["seconds"]["metrics"] = dt
        report["rows_per_second"]["metrics"] = rows / dt
        report["metrics"] = {k: float(v) for k, v in m.items()}
        report["rows"] = rows
    if "full" in modes:
        with tempfile.TemporaryDirectory() as tmp:
            out_path = os.path.join(tmp, "predictions.csv")

            def full():
                with open(out_path, "w") as out:
                    return run_metrics(sess, args.data, args.batch_size, args.label, out)

            dt, (rows, _) = best_of(args.repeat, full)
        report["seconds"]["full"] = dt
        report["rows_per_second"]["full"] = rows / dt
    print(json.dumps(report))


if __name__ == "__main__":
    main()
