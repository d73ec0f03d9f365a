"""Writes one day of a tabular classification problem, seeded by the date (so each day is
reproducible). After `drift_after` the label depends on the features differently."""
import hashlib, json, os, random

p = json.loads(os.environ["DAGRUN_PARAMS"])
day = os.environ["DAGRUN_PARTITION"]
rng = random.Random(int(hashlib.sha256(day.encode()).hexdigest()[:12], 16))
weights = [1.5, -2.0, 0.7, 0.0, 1.1]
if day >= p["drift_after"]:
    weights = [0.2, -2.0, 1.8, 1.0, -0.5]
with open(os.environ["DAGRUN_OUT_DATA"], "w") as f:
    f.write("f0,f1,f2,f3,f4,label\n")
    for _ in range(p["rows"]):
        x = [rng.gauss(0, 1) for _ in weights]
        score = sum(w * v for w, v in zip(weights, x)) + rng.gauss(0, p["noise"])
        f.write(",".join(f"{v:.5f}" for v in x) + f",{int(score > 0)}\n")
