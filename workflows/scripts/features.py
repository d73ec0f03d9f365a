"""Per-day feature preparation: clips outliers and adds an interaction feature f0*f2."""
import os

with open(os.environ["DAGRUN_IN_RAW"]) as f:
    header, *rows = f.read().splitlines()
with open(os.environ["DAGRUN_OUT_FEATURES"], "w") as out:
    out.write("f0,f1,f2,f3,f4,f0xf2,label\n")
    for r in rows:
        *x, y = [float(v) for v in r.split(",")]
        x = [max(-3.0, min(3.0, v)) for v in x]
        out.write(",".join(f"{v:.5f}" for v in x + [x[0] * x[2]]) + f",{int(y)}\n")
