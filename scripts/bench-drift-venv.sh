#!/usr/bin/env bash
# Creates (or reuses) the benchmark-only Python venv for `cargo bench -p dagrun --bench drift`:
# Evidently's data drift preset and plain SciPy, the tools dagrun's Drift kind is compared with.
#
# The venv lives at ${DAGRUN_BENCH_VENV:-$HOME/.cache/dagrun/venv-bench-drift}. A marker file in
# it holds the pinned list below; when the marker matches, nothing is installed again. Change a
# pin and the next run reinstalls. Prints the venv's python path on the last line of stdout.
#
# Pins: the newest versions PyPI serves for Python 3.11 that Evidently 0.7.23 accepts
# (Evidently 0.7 needs pandas < 3).
set -euo pipefail

VENV="${DAGRUN_BENCH_VENV:-$HOME/.cache/dagrun/venv-bench-drift}"
PINS=(
    "evidently==0.7.23"
    "pandas==2.3.3"
    "numpy==2.4.6"
    "scipy==1.17.1"
    "pyarrow==26.0.1"
)
exec "$(dirname "$0")/pinned-venv.sh" bench-drift-venv "$VENV" .dagrun-bench-pins "import evidently, pandas, numpy, scipy, pyarrow" "${PINS[@]}"
