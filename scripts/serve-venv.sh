#!/usr/bin/env bash
# Creates (or reuses) the test-only Python venv for `cargo test -p dagrun --test serve_oip`:
# NVIDIA's tritonclient (HTTP), a third-party Open Inference Protocol client that talks to
# `dagrun serve`, with numpy.
#
# The venv lives at ${DAGRUN_SERVE_VENV:-$HOME/.cache/dagrun/venv-serve}. A marker file in it
# holds the pinned list below; when the marker matches, nothing is installed again (fast). Change
# a pin and the next run reinstalls. Prints the venv's python path on the last line of stdout.
#
# Pins: tritonclient 2.73.0 with everything its `http` extra pulls in, as resolved for Python 3.11,
# so a run installs exactly what the tests were written against.
set -euo pipefail

VENV="${DAGRUN_SERVE_VENV:-$HOME/.cache/dagrun/venv-serve}"
PINS=(
    "tritonclient[http]==2.73.0"
    "numpy==2.4.6"
    "aiohappyeyeballs==2.7.1"
    "aiohttp==3.14.5"
    "aiosignal==1.4.0"
    "attrs==26.1.0"
    "brotli==1.2.1"
    "certifi==2026.10.19.post1"
    "frozenlist==1.8.0"
    "gevent==26.9.0"
    "geventhttpclient==2.6.1"
    "greenlet==3.3.2"
    "idna==3.20"
    "ml_dtypes==0.5.4"
    "multidict==7.2.1"
    "propcache==0.5.4"
    "python-rapidjson==1.25"
    "typing_extensions==4.16.0"
    "urllib3==2.8.0"
    "yarl==1.25.1"
    "zope.event==6.2"
    "zope.interface==8.7"
)
exec "$(dirname "$0")/pinned-venv.sh" serve-venv "$VENV" .dagrun-serve-pins "import numpy, tritonclient.http" "${PINS[@]}"
