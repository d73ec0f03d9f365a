#!/usr/bin/env bash
# Creates (or reuses) a Python venv holding exactly the pinned packages given; the one body of
# scripts/serve-venv.sh, bench-drift-venv.sh and bench-onnx-venv.sh.
#
#   pinned-venv.sh NAME VENV MARKER IMPORTS PIN...
#
# NAME prefixes the messages; MARKER is a file name in VENV holding the pinned list: when it
# matches PIN..., nothing is installed again. IMPORTS is Python run once after installing, so a
# broken import fails here rather than later. Prints the venv's python path on the last line of
# stdout. PYTHON picks the interpreter that makes the venv (default python3).
set -euo pipefail

NAME="$1" VENV="$2" MARKER="$2/$3" IMPORTS="$4"
shift 4
WANT="$(printf '%s\n' "$@")"

if [ -x "$VENV/bin/python" ] && [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$WANT" ]; then
    echo "$NAME: reusing $VENV" >&2
else
    PYTHON="${PYTHON:-python3}"
    echo "$NAME: creating $VENV with $*" >&2
    rm -f "$MARKER"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
    "$VENV/bin/python" -c "$IMPORTS"
    printf '%s\n' "$WANT" > "$MARKER"
fi
echo "$VENV/bin/python"
