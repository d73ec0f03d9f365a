#!/usr/bin/env bash
# A one-node Ray cluster on 127.0.0.1 for the remote-execution tests and benchmark:
#   scripts/infra/ray.sh start   # Jobs API on http://127.0.0.1:${DAGRUN_RAY_DASHBOARD_PORT:-28265}
#   scripts/infra/ray.sh stop
# Ray comes from the venv at ${DAGRUN_RAY_VENV:-$HOME/.cache/dagrun/venv-infra-ray} (PyPI
# `ray[default]`, installed by scripts/test-infra.sh). Ports are not Ray's defaults (GCS 26379,
# dashboard 28265). `stop` runs `ray stop`, which stops every Ray node this user started here.
set -euo pipefail
venv="${DAGRUN_RAY_VENV:-$HOME/.cache/dagrun/venv-infra-ray}"
port="${DAGRUN_RAY_DASHBOARD_PORT:-28265}"
ray="$venv/bin/ray"
case "${1:-}" in
start)
    "$ray" start --head --node-ip-address=127.0.0.1 --port=26379 --dashboard-host=127.0.0.1 \
        --dashboard-port="$port" --include-dashboard=true --disable-usage-stats --num-cpus="$(nproc)" >/dev/null
    for _ in $(seq 120); do
        if curl -fsS "http://127.0.0.1:$port/api/version" >/dev/null 2>&1; then
            echo "ray: up (Jobs API on http://127.0.0.1:$port)"
            exit 0
        fi
        sleep 0.5
    done
    echo "ray: the Jobs API did not answer on :$port within 60 s" >&2
    exit 1
    ;;
stop)
    "$ray" stop --force >/dev/null 2>&1 || true
    ;;
*)
    echo "usage: ray.sh start|stop" >&2
    exit 2
    ;;
esac
