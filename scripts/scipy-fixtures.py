#!/usr/bin/env python3
"""Generates the SciPy reference cases that engine/monitor/tests/scipy.rs checks dagrun's
drift statistics against (issue #11).

    scipy-fixtures.py OUTDIR [--small]

OUTDIR receives the samples as raw little-endian f64 files (unsorted, as drawn) and
cases.json, where every float is a string holding Python's repr (so it parses back exactly):

* "numeric": pairs of samples with scipy.stats.ks_2samp (statistic, pvalue),
  scipy.stats.wasserstein_distance, numpy.std, and the binned comparison of the second sample
  against the first: inner edges = unique numpy.quantile(a, k/bins), k = 1..bins-1; right-closed
  bins (-inf, e1], (e1, e2], ..., (ek, inf); PSI by the formula documented at
  dagrun_monitor::stats::psi; scipy.spatial.distance.jensenshannon of the counts.
* "categorical": pairs of count vectors (2 to 30 categories) with
  scipy.stats.chi2_contingency([ref, cur]) (statistic, pvalue, dof), jensenshannon and PSI.
* "kstwo": scipy.stats.kstwo.sf(d, n) over a grid that visits every branch of SciPy's _kolmogn.
* "gammaincc": scipy.special.gammaincc(a, x) over a grid, with mpmath's value.

--small keeps only samples of at most 1,000 values (the subset committed to
engine/monitor/tests/fixtures/scipy/); without it the set includes samples of 5,000 to
100,000 values (about 25 MB).
"""

import argparse
import json
import math
import os
import sys
import zlib

import mpmath
import numpy as np
import scipy
from scipy import special, stats
from scipy.spatial.distance import jensenshannon

PSI_EPSILON = 1e-4
BINS = 10
SEED = 20260811


def f(x):
    """A float as the exact string Python's repr gives (round-trips)."""
    return repr(float(x))


def psi(ref_counts, cur_counts):
    """sum((c - r) * ln(c / r)) over the proportions, an empty bin counting as PSI_EPSILON."""
    r = np.asarray(ref_counts, dtype=np.float64)
    c = np.asarray(cur_counts, dtype=np.float64)
    r = r / r.sum()
    c = c / c.sum()
    r = np.where(r == 0, PSI_EPSILON, r)
    c = np.where(c == 0, PSI_EPSILON, c)
    return float(np.sum((c - r) * np.log(c / r)))


def binned(a, b, bins=BINS):
    """Quantile edges of a (linear, duplicates removed) and right-closed bin counts of a and b."""
    edges = np.unique(np.quantile(a, np.arange(1, bins) / bins))

    def counts(x):
        s = np.sort(x)
        idx = np.searchsorted(s, edges, side="right")
        return np.diff(np.concatenate([[0], idx, [len(s)]])).astype(np.int64)

    return edges, counts(a), counts(b)


def draw(rng, dist, n1, n2):
    """Two samples: the reference a and the current b."""
    if dist == "normal":
        return rng.normal(0, 1, n1), rng.normal(0, 1, n2)
    if dist == "shift_small":
        return rng.normal(0, 1, n1), rng.normal(0.1, 1, n2)
    if dist == "shift_large":
        return rng.normal(0, 1, n1), rng.normal(1.0, 1, n2)
    if dist == "scale_shift":
        return rng.normal(10, 2, n1), rng.normal(10.3, 2.6, n2)
    if dist == "lognormal":
        return rng.lognormal(0, 1, n1), rng.lognormal(0.05, 1.1, n2)
    if dist == "uniform":
        return rng.uniform(-1, 1, n1), rng.uniform(-0.9, 1.1, n2)
    if dist == "rounded":
        # Many ties: half-unit grid of a normal.
        return np.round(rng.normal(0, 2, n1) * 2) / 2, np.round(rng.normal(0.2, 2, n2) * 2) / 2
    if dist == "poisson":
        return rng.poisson(3, n1).astype(np.float64), rng.poisson(3.2, n2).astype(np.float64)
    if dist == "identical":
        a = rng.normal(0, 1, n1)
        b = a.copy() if n1 == n2 else rng.permutation(np.resize(a, n2))
        return a, b
    raise ValueError(dist)


DISTS = ["normal", "shift_small", "shift_large", "scale_shift", "lognormal", "uniform", "rounded", "poisson",
         "identical"]
SMALL_SIZES = [(10, 10), (37, 37), (100, 100), (10, 37), (37, 100), (800, 1200)]
SMALL_SIZES_FEW = [(1000, 1000)]  # for a few distributions only (keeps the committed set small)
MID_SIZES = [(1000, 1000), (5000, 5000), (10000, 10000), (9000, 10000), (1000, 5000)]
LARGE_SIZES = [(20000, 20000), (10001, 10001), (50, 20000)]
HUGE_SIZES = [(100000, 100000), (15000, 100000)]
HUGE_DISTS = ["normal", "shift_small", "lognormal", "rounded", "identical"]


def numeric_plan(small):
    plan = []
    for dist in DISTS:
        plan += [(dist, n1, n2) for n1, n2 in SMALL_SIZES]
    for dist in ["rounded"]:
        plan += [(dist, n1, n2) for n1, n2 in SMALL_SIZES_FEW]
    if small:
        return plan
    for dist in DISTS:
        plan += [(dist, n1, n2) for n1, n2 in MID_SIZES + LARGE_SIZES if (dist, n1, n2) not in plan]
    for dist in HUGE_DISTS:
        plan += [(dist, n1, n2) for n1, n2 in HUGE_SIZES]
    return plan


def rng_for(name):
    """A generator of its own for each case, so the --small set is a subset of the full one."""
    return np.random.default_rng([SEED, zlib.crc32(name.encode())])


def numeric_cases(outdir, small):
    cases = []
    for dist, n1, n2 in numeric_plan(small):
        name = f"{dist}_{n1}_{n2}"
        a, b = draw(rng_for(name), dist, n1, n2)
        a.astype("<f8").tofile(os.path.join(outdir, name + "_a.f64"))
        b.astype("<f8").tofile(os.path.join(outdir, name + "_b.f64"))
        ks = stats.ks_2samp(a, b)
        edges, ref_counts, cur_counts = binned(a, b)
        cases.append({
            "name": name,
            "a": name + "_a.f64",
            "b": name + "_b.f64",
            "n1": n1,
            "n2": n2,
            "ks_statistic": f(ks.statistic),
            "ks_pvalue": f(ks.pvalue),
            "wasserstein": f(stats.wasserstein_distance(a, b)),
            "std_a": f(np.std(a)),
            "std_b": f(np.std(b)),
            "bins": BINS,
            "edges": [f(e) for e in edges],
            "ref_counts": ref_counts.tolist(),
            "cur_counts": cur_counts.tolist(),
            "psi": f(psi(ref_counts, cur_counts)),
            "js": f(jensenshannon(ref_counts, cur_counts)),
        })
    return cases


def categorical_tables():
    """(name, ref, cur) count vectors; no category is empty in both."""
    tables = [
        ("yates_small", [10, 20], [20, 10]),
        ("yates_within_half", [50, 50], [50, 51]),
        ("yates_zero_cell", [0, 12], [5, 7]),
        ("identical_3", [5, 10, 15], [10, 20, 30]),
        ("huge_difference", [100000, 1, 1], [1, 1, 100000]),
        ("one_sided_zero", [0, 40, 60, 3], [7, 35, 58, 0]),
    ]
    for k in [2, 2, 3, 4, 5, 8, 10, 15, 20, 25, 30]:
        for total in [60, 1000, 50000, 1000000]:
            rng = rng_for(f"categorical_{k}_{total}_{len(tables)}")
            p = rng.dirichlet(np.ones(k) * 2)
            q = p if rng.random() < 0.3 else rng.dirichlet(np.ones(k) * 2) * 0.3 + p * 0.7
            ref = rng.multinomial(total, p)
            cur = rng.multinomial(int(total * rng.uniform(0.5, 2)), q)
            keep = (ref + cur) > 0
            tables.append((f"k{k}_n{total}_{len(tables)}", ref[keep].tolist(), cur[keep].tolist()))
    return tables


def categorical_cases():
    cases = []
    for name, ref, cur in categorical_tables():
        res = stats.chi2_contingency([ref, cur])
        cases.append({
            "name": name,
            "ref": [int(x) for x in ref],
            "cur": [int(x) for x in cur],
            "chi2_statistic": f(res.statistic),
            "chi2_pvalue": f(res.pvalue),
            "chi2_dof": int(res.dof),
            "js": f(jensenshannon(ref, cur)),
            "psi": f(psi(ref, cur)),
        })
    return cases


def kstwo_cases():
    cases = []
    ns = [1, 2, 5, 10, 37, 100, 140, 141, 500, 1000, 5000, 10000, 50000, 100000, 100001, 500000, 1000001,
          3000000]
    for n in ns:
        ds = {0.4 / n, 0.6 / n, 0.9 / n, 1.0 / n, 1.5 / n, 0.3, 0.5, 0.7, 0.99, 1 - 1.0 / n, 1 - 0.5 / n}
        ds |= {math.sqrt(x / n) for x in [0.05, 0.2, 0.5, 0.754, 0.76, 1, 1.5, 2.19, 2.21, 3, 4, 5, 10, 18, 50,
                                         150, 300, 369, 371]}
        ds |= {(1.4 / n) ** (2 / 3) * s for s in [0.9, 1.1]}
        for d in sorted(ds):
            if 0 < d <= 1:
                cases.append({"n": n, "d": f(d), "sf": f(stats.kstwo.sf(d, n))})
    return cases


def gammaincc_cases():
    """SciPy's gammaincc, and the true value (mpmath, 40 digits): SciPy's own relative error
    reaches 1e-12 for a in the thousands."""
    mpmath.mp.dps = 40
    cases = []
    for a in [0.5, 1, 1.5, 2, 2.5, 3.5, 5, 7.5, 10, 14.5, 20, 50, 100, 500, 1000, 5000]:
        for x in sorted({a * s for s in [1e-3, 0.1, 0.5, 0.8, 0.95, 1, 1.05, 1.2, 1.5, 2, 3, 5, 10, 30]}
                        | {0.01, 0.5, 1, 1.1, 2, 10, 100, 700}):
            exact = mpmath.gammainc(a, x, mpmath.inf, regularized=True)
            cases.append({"a": f(a), "x": f(x), "q": f(special.gammaincc(a, x)), "q_mpmath": f(exact)})
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outdir")
    parser.add_argument("--small", action="store_true", help="only samples of at most 1,000 values")
    args = parser.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    for old in os.listdir(args.outdir):
        if old.endswith(".f64"):
            os.remove(os.path.join(args.outdir, old))
    doc = {
        "generator": "scripts/scipy-fixtures.py" + (" --small" if args.small else ""),
        "scipy": scipy.__version__,
        "numpy": np.__version__,
        "mpmath": mpmath.__version__,
        "small": args.small,
        "psi_epsilon": f(PSI_EPSILON),
        "numeric": numeric_cases(args.outdir, args.small),
        "categorical": categorical_cases(),
        "kstwo": kstwo_cases(),
        "gammaincc": gammaincc_cases(),
    }
    with open(os.path.join(args.outdir, "cases.json"), "w") as out:
        # One case a line: compact, and readable in a diff.
        out.write("{\n")
        for i, (key, value) in enumerate(doc.items()):
            sep = "," if i + 1 < len(doc) else ""
            if isinstance(value, list):
                rows = ",\n".join("  " + json.dumps(case, separators=(",", ":")) for case in value)
                out.write(f"{json.dumps(key)}: [\n{rows}\n]{sep}\n")
            else:
                out.write(f"{json.dumps(key)}: {json.dumps(value)}{sep}\n")
        out.write("}\n")
    counts = {k: len(v) for k, v in doc.items() if isinstance(v, list)}
    print(f"{args.outdir}: {counts} (scipy {scipy.__version__}, numpy {np.__version__})", file=sys.stderr)


if __name__ == "__main__":
    main()
