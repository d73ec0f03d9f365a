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
MARKER="$VENV/.dagrun-bench-pins"
WANT="$(printf '%s\n' "${PINS[@]}")"

if [ -x "$VENV/bin/python" ] && [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$WANT" ]; then
    echo "bench-drift-venv: reusing $VENV" >&2
else
    PYTHON="${PYTHON:-python3}"
    echo "bench-drift-venv: creating $VENV with ${PINS[*]}" >&2
    rm -f "$MARKER"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
    # Fail here, not in the middle of a benchmark, if an import is broken.
    "$VENV/bin/python" -c "import evidently, pandas, numpy, scipy, pyarrow"
    printf '%s\n' "$WANT" > "$MARKER"
fi
echo "$VENV/bin/python"
