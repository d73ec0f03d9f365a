#!/usr/bin/env bash
# Generates the SciPy reference cases for dagrun's drift statistics (issue #11):
#   scripts/scipy-fixtures.sh OUTDIR [--small]
# Creates (or reuses) a virtualenv with pinned numpy, SciPy and mpmath at
# ${DAGRUN_SCIPY_VENV:-$HOME/.cache/dagrun/venv-scipy} and runs scripts/scipy-fixtures.py in it.
# Then: DAGRUN_SCIPY_FIXTURES=OUTDIR cargo test --release -p dagrun-monitor --test scipy
set -euo pipefail

NUMPY_VERSION=2.4.6
SCIPY_VERSION=1.17.1
MPMATH_VERSION=1.4.1

if [ $# -lt 1 ]; then
    echo "usage: $0 OUTDIR [--small]" >&2
    exit 2
fi
here="$(cd "$(dirname "$0")" && pwd)"
venv="${DAGRUN_SCIPY_VENV:-$HOME/.cache/dagrun/venv-scipy}"
if ! "$venv/bin/python" -c "import numpy, scipy, sys; import mpmath; sys.exit(numpy.__version__ != '$NUMPY_VERSION' or scipy.__version__ != '$SCIPY_VERSION' or mpmath.__version__ != '$MPMATH_VERSION')" 2>/dev/null; then
    echo "setting up $venv (numpy $NUMPY_VERSION, scipy $SCIPY_VERSION, mpmath $MPMATH_VERSION)" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "numpy==$NUMPY_VERSION" "scipy==$SCIPY_VERSION" "mpmath==$MPMATH_VERSION"
fi
exec "$venv/bin/python" "$here/scipy-fixtures.py" "$@"
