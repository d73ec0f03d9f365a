"""Trains a logistic regression on every day of a trailing window (DAGRUN_IN_DAYS lists the files)."""
import json, math, os

p = json.loads(os.environ["DAGRUN_PARAMS"])
xs, ys = [], []
for path in os.environ["DAGRUN_IN_DAYS"].splitlines():
    with open(path) as f:
        for r in f.read().splitlines()[1:]:
            *x, y = [float(v) for v in r.split(",")]
            xs.append(x)
            ys.append(y)
n, d = len(xs), len(xs[0])
w, b = [0.0] * d, 0.0
for _ in range(p["epochs"]):
    gw, gb = [0.0] * d, 0.0
    for x, y in zip(xs, ys):
        err = 1 / (1 + math.exp(-(b + sum(wi * xi for wi, xi in zip(w, x))))) - y
        gb += err
        for i in range(d):
            gw[i] += err * x[i]
    w = [wi - p["learning_rate"] * g / n for wi, g in zip(w, gw)]
    b -= p["learning_rate"] * gb / n
with open(os.environ["DAGRUN_OUT_MODEL"], "w") as f:
    json.dump({"weights": [round(v, 6) for v in w], "bias": round(b, 6), "rows": n}, f)
    f.write("\n")
