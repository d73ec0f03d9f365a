"""Scores the model on the test set; writes metrics and fails (exit 1) below the accuracy gate."""
import json, os, sys

model = json.load(open(os.environ["DAGRUN_IN_MODEL"]))
min_acc = json.loads(os.environ["DAGRUN_PARAMS"])["min_accuracy"]
with open(os.environ["DAGRUN_IN_TEST"]) as f:
    _, *rows = f.read().splitlines()
correct = 0
for r in rows:
    *x, y = [float(v) for v in r.split(",")]
    z = model["bias"] + sum(w * v for w, v in zip(model["weights"], x))
    correct += int((z > 0) == (y > 0.5))
acc = correct / len(rows)
with open(os.environ["DAGRUN_OUT_METRICS"], "w") as f:
    json.dump({"accuracy": round(acc, 4), "rows": len(rows), "min_accuracy": min_acc}, f, indent=2)
    f.write("\n")
print(f"accuracy {acc:.4f} (gate: >= {min_acc})")
if acc < min_acc:
    sys.exit(f"gate refused: accuracy {acc:.4f} < {min_acc}")
