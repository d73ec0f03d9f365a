"""Trains a logistic regression with plain gradient descent; writes the model as JSON."""
import json, math, os

p = json.loads(os.environ["DAGRUN_PARAMS"])
with open(os.environ["DAGRUN_IN_TRAIN"]) as f:
    _, *rows = f.read().splitlines()
data = [[float(v) for v in r.split(",")] for r in rows]
xs, ys = [r[:-1] for r in data], [r[-1] for r in data]
n, d = len(xs), len(xs[0])
w, b = [0.0] * d, 0.0
for epoch in range(p["epochs"]):
    gw, gb = [0.0] * d, 0.0
    for x, y in zip(xs, ys):
        z = b + sum(wi * xi for wi, xi in zip(w, x))
        err = 1 / (1 + math.exp(-z)) - y
        gb += err
        for i in range(d):
            gw[i] += err * x[i]
    w = [wi - p["learning_rate"] * (g / n + p["l2"] * wi) for wi, g in zip(w, gw)]
    b -= p["learning_rate"] * gb / n
with open(os.environ["DAGRUN_OUT_MODEL"], "w") as f:
    json.dump({"weights": [round(v, 6) for v in w], "bias": round(b, 6), "epochs": p["epochs"]}, f, indent=2)
    f.write("\n")
