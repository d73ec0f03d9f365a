"""Writes a deterministic tabular classification dataset (numeric features, noisy binary label)."""
import json, os, random

params = json.loads(os.environ["DAGRUN_PARAMS"])
rng = random.Random(params["seed"])
weights = [1.5, -2.0, 0.7, 0.0, 1.1]
with open(os.environ["DAGRUN_OUT_DATA"], "w") as f:
    f.write("f0,f1,f2,f3,f4,label\n")
    for _ in range(params["rows"]):
        x = [rng.gauss(0, 1) for _ in weights]
        score = sum(w * v for w, v in zip(weights, x)) + rng.gauss(0, params["noise"])
        f.write(",".join(f"{v:.5f}" for v in x) + f",{int(score > 0)}\n")
