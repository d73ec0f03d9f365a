#!/usr/bin/env python3
"""Data and Python baselines for the drift benchmark (`cargo bench -p dagrun --bench drift`).

Run it with the venv that `scripts/bench-drift-venv.sh` makes (Evidently 0.7.23, pandas, numpy,
SciPy, pyarrow). Three subcommands:

  generate OUTDIR [--rows N] [--cols C] [--seed S]
      Writes reference.{csv,parquet} and current.{csv,parquet}: float64 columns f0..f{C-1}, N rows
      each, from numpy's default generator seeded with S (the same arguments give the same files).
      Current differs from reference in the columns listed in CHANGES below (about a third);
      every other column is a fresh draw from the same distribution. Parquet is written by pyarrow
      with snappy compression; CSV by pyarrow, which prints each float in its shortest form that
      reads back to the same double (checked after writing).

  evidently DIR FORMAT
      Evidently's data drift preset, `Report([DataDriftPreset()], include_tests=True)`, on
      DIR/reference.FORMAT and DIR/current.FORMAT (FORMAT is csv or parquet), read with pandas.
      Writes the report's JSON to DIR/out/evidently.json (no HTML).

  scipy DIR FORMAT
      Plain SciPy, column by column, with Evidently's default rule for numeric columns: reference
      with at most 1000 rows: drifted when `scipy.stats.ks_2samp` gives p < 0.05; more rows:
      drifted when `scipy.stats.wasserstein_distance(ref, cur) / max(np.std(ref), 0.001) >= 0.1`.
      The dataset is drifted when at least half of the columns are. (Evidently switches numeric
      columns with five or fewer distinct values to other tests; the generated data never has so
      few, and this script refuses such a column rather than guess.)

Both baselines print one JSON line:
  {"tool", "format", "rows", "load_s", "compute_s", "total_s", "drifted", "share",
   "drifted_columns", "columns"}
where load_s is reading both files with pandas, compute_s everything after that (including writing
the result), and total_s their sum; interpreter start and imports are not in them (the benchmark
harness times the whole process, and measures its peak memory, from outside).
"""

import argparse
import json
import os
import sys
import time

import numpy as np

# Columns of `current` that differ from `reference`: (kind, amount). "shift" adds amount × the
# column's standard deviation; "scale" stretches the column around its mean by amount. With
# Evidently's default rule (normed Wasserstein distance >= 0.1 above 1000 rows) every one of these
# drifts except f18, whose shift of 0.02 standard deviations stays under the threshold (while a
# KS test on a million rows would flag it).
CHANGES = {
    0: ("shift", 0.5),
    3: ("scale", 1.5),
    6: ("shift", -0.3),
    9: ("scale", 0.6),
    12: ("shift", 1.0),
    15: ("scale", 2.0),
    18: ("shift", 0.02),
}


def draw(rng, column, rows):
    """Draws `rows` values of column `column`'s base distribution (one of four, by column % 4)."""
    kind = column % 4
    if kind == 0:
        return rng.normal(loc=float(column), scale=1.0 + column / 10.0, size=rows)
    if kind == 1:
        return rng.lognormal(mean=0.0, sigma=0.5, size=rows)
    if kind == 2:
        return rng.uniform(low=0.0, high=10.0, size=rows)
    return rng.exponential(scale=2.0, size=rows)


def change(values, kind, amount):
    """Applies one entry of CHANGES to a column of `current`."""
    if kind == "shift":
        return values + amount * values.std()
    mean = values.mean()
    return mean + (values - mean) * amount


def write(table, outdir, stem):
    """Writes one table as OUTDIR/stem.parquet (snappy) and OUTDIR/stem.csv, and checks the CSV."""
    import pyarrow.csv
    import pyarrow.parquet

    pyarrow.parquet.write_table(table, os.path.join(outdir, stem + ".parquet"), compression="snappy")
    csv_path = os.path.join(outdir, stem + ".csv")
    options = pyarrow.csv.WriteOptions(quoting_style="none", quoting_header="none")
    pyarrow.csv.write_csv(table, csv_path, write_options=options)
    back = pyarrow.csv.read_csv(csv_path)
    if not back.equals(table):
        sys.exit(f"generate: {csv_path} does not read back to the same values")


def generate(args):
    import pyarrow

    os.makedirs(args.outdir, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    names = [f"f{i}" for i in range(args.cols)]
    reference = {name: draw(rng, i, args.rows) for i, name in enumerate(names)}
    current = {}
    for i, name in enumerate(names):
        values = draw(rng, i, args.rows)
        if i in CHANGES:
            values = change(values, *CHANGES[i])
        current[name] = values
    write(pyarrow.table(reference), args.outdir, "reference")
    write(pyarrow.table(current), args.outdir, "current")
    changed = [names[i] for i in sorted(CHANGES) if i < args.cols]
    print(json.dumps({"outdir": args.outdir, "rows": args.rows, "cols": args.cols, "seed": args.seed,
                      "changed_columns": changed}))


def load(directory, fmt):
    """Reads DIR/reference.FMT and DIR/current.FMT with pandas."""
    import pandas as pd

    if fmt not in ("csv", "parquet"):
        sys.exit(f"unknown format {fmt!r}: csv or parquet")
    read = pd.read_csv if fmt == "csv" else pd.read_parquet
    return read(os.path.join(directory, "reference." + fmt)), read(os.path.join(directory, "current." + fmt))


def report(tool, fmt, rows, load_s, compute_s, drifted_columns, columns):
    """Prints the one JSON line both baselines end with."""
    share = len(drifted_columns) / len(columns) if columns else 0.0
    print(json.dumps({
        "tool": tool,
        "format": fmt,
        "rows": rows,
        "load_s": load_s,
        "compute_s": compute_s,
        "total_s": load_s + compute_s,
        "drifted": share >= 0.5,
        "share": share,
        "drifted_columns": sorted(drifted_columns, key=column_order),
        "columns": len(columns),
    }))


def column_order(name):
    """Sorts f2 before f10."""
    return (len(name), name)


def run_evidently(args):
    from evidently import Report
    from evidently.presets import DataDriftPreset

    t0 = time.perf_counter()
    reference, current = load(args.dir, args.format)
    t1 = time.perf_counter()
    snapshot = Report([DataDriftPreset()], include_tests=True).run(current, reference)
    result = snapshot.dict()
    os.makedirs(os.path.join(args.dir, "out"), exist_ok=True)
    with open(os.path.join(args.dir, "out", "evidently.json"), "w") as f:
        f.write(snapshot.json())
    t2 = time.perf_counter()
    # Evidently's own verdict per column: each ValueDrift metric carries a test named "drift"
    # that fails when the column drifted.
    drifted = [
        test["metric_config"]["params"]["column"]
        for test in result["tests"]
        if test["id"] == "drift" and test["status"] == "FAIL"
    ]
    report("evidently", args.format, len(reference), t1 - t0, t2 - t1, drifted, list(reference.columns))


def run_scipy(args):
    from scipy import stats

    t0 = time.perf_counter()
    reference, current = load(args.dir, args.format)
    t1 = time.perf_counter()
    drifted = []
    columns = {}
    for name in reference.columns:
        ref = reference[name].to_numpy(dtype=np.float64)
        cur = current[name].to_numpy(dtype=np.float64)
        # A cheap guard (the first 1000 values of each), not Evidently's full count of distinct
        # values: it only has to catch data this script was not written for.
        if len(np.unique(np.concatenate([ref[:1000], cur[:1000]]))) <= 5:
            sys.exit(f"scipy: column {name} has five or fewer distinct values; this script only "
                     "implements Evidently's rule for continuous numeric columns")
        if len(ref) <= 1000:
            test, score = "ks", float(stats.ks_2samp(ref, cur).pvalue)
            is_drift = score < 0.05
        else:
            norm = max(float(np.std(ref)), 0.001)
            test, score = "wasserstein", float(stats.wasserstein_distance(ref, cur)) / norm
            is_drift = score >= 0.1
        columns[name] = {"test": test, "score": score, "drifted": is_drift}
        if is_drift:
            drifted.append(name)
    os.makedirs(os.path.join(args.dir, "out"), exist_ok=True)
    with open(os.path.join(args.dir, "out", "scipy.json"), "w") as f:
        json.dump(columns, f)
    t2 = time.perf_counter()
    report("scipy", args.format, len(reference), t1 - t0, t2 - t1, drifted, list(reference.columns))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write reference and current as CSV and Parquet")
    gen.add_argument("outdir")
    gen.add_argument("--rows", type=int, default=1_000_000)
    gen.add_argument("--cols", type=int, default=20)
    gen.add_argument("--seed", type=int, default=11)
    gen.set_defaults(func=generate)
    for name, func in (("evidently", run_evidently), ("scipy", run_scipy)):
        p = sub.add_parser(name, help=f"drift of DIR's files with {name}")
        p.add_argument("dir")
        p.add_argument("format", choices=["csv", "parquet"])
        p.set_defaults(func=func)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
