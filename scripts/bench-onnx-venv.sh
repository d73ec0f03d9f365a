#!/usr/bin/env bash
# Creates (or reuses) the benchmark-only Python venv for `cargo bench -p dagrun-onnx --bench eval`:
# the Python baseline (pandas + onnxruntime + scikit-learn) and the data and models it scores
# (scikit-learn models exported with skl2onnx). See engine/onnx/benches/eval_python.py.
#
# The venv lives at ${DAGRUN_BENCH_ONNX_VENV:-$HOME/.cache/dagrun/venv-bench-onnx}. A marker file
# in it holds the pinned list below; when the marker matches, nothing is installed again. Change a
# pin and the next run reinstalls. Prints the venv's python path on the last line of stdout.
#
# Pins: the fixtures' versions (tests/fixtures/onnx/make_fixtures.py), plus pandas.
set -euo pipefail

VENV="${DAGRUN_BENCH_ONNX_VENV:-$HOME/.cache/dagrun/venv-bench-onnx}"
PINS=(
    "numpy==2.4.6"
    "scipy==1.17.1"
    "scikit-learn==1.9.1"
    "skl2onnx==1.20.0"
    "onnx==1.23.2"
    "onnxruntime==1.31.1"
    "pandas==2.3.3"
)
exec "$(dirname "$0")/pinned-venv.sh" bench-onnx-venv "$VENV" .dagrun-bench-pins "import numpy, sklearn, skl2onnx, onnx, onnxruntime, pandas" "${PINS[@]}"
