#!/usr/bin/env bash
# Per-task overhead of remote execution: a trivial Command task (`echo`) run N times with
# `--force` locally, as a Slurm job and as a Ray job, through a real S3 remote cache.
#   benches/remote/exec.sh [N]    (default 10)
# Needs: a built dagrun (DAGRUN, default target/release/dagrun), SeaweedFS (DAGRUN_WEED), Slurm
# (SLURM_CONF; scripts/infra/slurm.sh start DIR) and Ray (DAGRUN_RAY_ADDRESS, default
# http://127.0.0.1:28265; scripts/infra/ray.sh start). Prints the median and min wall time of
# one `dagrun run` per executor and the overhead over local.
set -euo pipefail
n="${1:-10}"
dagrun="${DAGRUN:-target/release/dagrun}"
dagrun="$(cd "$(dirname "$dagrun")" && pwd)/$(basename "$dagrun")"
weed="${DAGRUN_WEED:?set DAGRUN_WEED to SeaweedFS weed binary}"
ray_address="${DAGRUN_RAY_ADDRESS:-http://127.0.0.1:28265}"
work="$(mktemp -d)"
trap 'kill "$weed_pid" 2>/dev/null; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ports=(); for _ in $(seq 10); do ports+=("$(free_port)"); done
cat > "$work/ids.json" <<JSON
{"identities":[{"name":"bench","credentials":[{"accessKey":"bench-key","secretKey":"bench-secret-0123456789"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
mkdir -p "$work/s3"
"$weed" mini -dir="$work/s3" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false -admin.ui=false -webdav=false \
    -master.port="${ports[0]}" -master.port.grpc="${ports[1]}" -volume.port="${ports[2]}" -volume.port.grpc="${ports[3]}" \
    -filer.port="${ports[4]}" -filer.port.grpc="${ports[5]}" -s3.port="${ports[6]}" -s3.port.grpc="${ports[7]}" \
    -admin.port="${ports[8]}" -admin.port.grpc="${ports[9]}" -s3.port.iceberg=0 -s3.port.lance=0 \
    -s3.config="$work/ids.json" -bucket=bench >/dev/null 2>&1 &
weed_pid=$!
for _ in $(seq 300); do curl -fs "http://127.0.0.1:${ports[4]}/buckets/bench/" >/dev/null 2>&1 && break; sleep 0.1; done
export AWS_ENDPOINT_URL="http://127.0.0.1:${ports[6]}" AWS_ACCESS_KEY_ID=bench-key AWS_SECRET_ACCESS_KEY=bench-secret-0123456789 AWS_REGION=us-east-1
export DAGRUN_REMOTE_CACHE=s3://bench/exec NO_COLOR=1
sleep 2 # the S3 identities load a moment after the port opens

bench() { # name executor
    local dir="$work/$1"
    mkdir -p "$dir"
    cat > "$dir/wf.ron" <<RON
Workflow(name: "bench", tasks: [
    Task(name: "t", kind: Command(run: "echo x > \$DAGRUN_OUT_O"), executor: $2, outputs: {"o": "out/o.txt"}),
])
RON
    (cd "$dir" && "$dagrun" run wf.ron >/dev/null 2>&1) # warm-up (state dir, first upload)
    local times=()
    for _ in $(seq "$n"); do
        local t0 t1
        t0=$(date +%s%N)
        (cd "$dir" && "$dagrun" run wf.ron --force >/dev/null 2>&1) || { echo "$1: run failed" >&2; (cd "$dir" && "$dagrun" run wf.ron --force) || true; exit 1; }
        t1=$(date +%s%N)
        times+=($(( (t1 - t0) / 1000000 )))
    done
    printf '%s\n' "${times[@]}" | sort -n > "$work/$1.ms"
    local median min
    median=$(sed -n "$(( (n + 1) / 2 ))p" "$work/$1.ms")
    min=$(head -1 "$work/$1.ms")
    echo "$1 $median $min $(tr '\n' ' ' < "$work/$1.ms")"
}

results=()
results+=("$(bench local Local)")
results+=("$(bench slurm 'Slurm()')")
results+=("$(bench ray "Ray(address: \"$ray_address\")")")
local_median=$(echo "${results[0]}" | awk '{print $2}')
printf '%-6s %12s %9s %14s   %s\n' executor "median ms" "min ms" "overhead ms" "all (ms, sorted)"
for r in "${results[@]}"; do
    set -- $r
    name=$1 median=$2 min=$3
    shift 3
    printf '%-6s %12s %9s %14s   %s\n' "$name" "$median" "$min" "$(( median - local_median ))" "$*"
done
echo "($n runs each with --force, a trivial echo task; $(nproc) cores)"
