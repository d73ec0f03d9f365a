"""Scores the week's model on the week's days; writes accuracy per day and for the week."""
import json, os

model = json.load(open(os.environ["DAGRUN_IN_MODEL"]))
per_day, correct, total = {}, 0, 0
for path in os.environ["DAGRUN_IN_DAYS"].splitlines():
    with open(path) as f:
        rows = f.read().splitlines()[1:]
    ok = 0
    for r in rows:
        *x, y = [float(v) for v in r.split(",")]
        z = model["bias"] + sum(w * v for w, v in zip(model["weights"], x))
        ok += int((z > 0) == (y > 0.5))
    per_day[os.path.basename(path)[:10]] = round(ok / len(rows), 4)
    correct, total = correct + ok, total + len(rows)
with open(os.environ["DAGRUN_OUT_METRICS"], "w") as f:
    json.dump({"week": os.environ["DAGRUN_PARTITION"], "accuracy": round(correct / total, 4), "days": per_day}, f, indent=2)
    f.write("\n")
