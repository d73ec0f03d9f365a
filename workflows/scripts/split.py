"""Splits a CSV into train and test sets (every k-th row goes to test)."""
import json, os

k = json.loads(os.environ["DAGRUN_PARAMS"])["test_every"]
with open(os.environ["DAGRUN_IN_DATA"]) as f:
    header, *rows = f.read().splitlines()
for name, part in (("TRAIN", [r for i, r in enumerate(rows) if i % k]), ("TEST", rows[::k])):
    with open(os.environ[f"DAGRUN_OUT_{name}"], "w") as out:
        out.write("\n".join([header, *part]) + "\n")
