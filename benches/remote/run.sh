#!/usr/bin/env bash
# The remote cache against a local SeaweedFS (`weed mini` on 127.0.0.1, credentials enforced):
#   1. restore throughput of a remote hit: one task with one 256 MiB output, run on machine A
#      (miss + upload), then on machine B (a remote hit: download, verify, restore);
#   2. per-task overhead: 200 tiny tasks — a miss without a remote, a miss that publishes, a
#      local hit, and a remote hit on a fresh machine.
# "Machines" are separate workflow and state directories sharing one bucket.
#   benches/remote/run.sh                     # builds dagrun (release) in its own target dir
#   DAGRUN_BIN=path/to/dagrun benches/remote/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
WEED="${DAGRUN_WEED:-$HOME/.cache/dagrun/venv-infra-s3/bin/weed}"
SIZE_MIB="${DAGRUN_BENCH_MIB:-256}"
TASKS="${DAGRUN_BENCH_TASKS:-200}"
if [ -z "${DAGRUN_BIN:-}" ]; then
    export CARGO_TARGET_DIR="${DAGRUN_BENCH_TARGET_DIR:-$HOME/.cache/dagrun/target-bench}"
    cargo build --release -p dagrun
    DAGRUN_BIN="$CARGO_TARGET_DIR/release/dagrun"
fi
work="$(mktemp -d)"
weed_pid=""
cleanup() { [ -n "$weed_pid" ] && kill "$weed_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

ports=($(python3 -c 'import socket
ss=[socket.socket() for _ in range(10)]
[s.bind(("127.0.0.1",0)) for s in ss]
print(" ".join(str(s.getsockname()[1]) for s in ss))'))
key=bench-key secret=bench-secret-0123456789
cat >"$work/ids.json" <<JSON
{"identities":[{"name":"bench","credentials":[{"accessKey":"$key","secretKey":"$secret"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
mkdir -p "$work/weed"
"$WEED" mini -dir="$work/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false -admin.ui=false -webdav=false \
    -master.port="${ports[0]}" -master.port.grpc="${ports[1]}" -volume.port="${ports[2]}" -volume.port.grpc="${ports[3]}" \
    -filer.port="${ports[4]}" -filer.port.grpc="${ports[5]}" -s3.port="${ports[6]}" -s3.port.grpc="${ports[7]}" \
    -admin.port="${ports[8]}" -admin.port.grpc="${ports[9]}" -s3.port.iceberg=0 -s3.port.lance=0 \
    -s3.autoCreateBucket=false -s3.config="$work/ids.json" -bucket=bench >/dev/null 2>&1 &
weed_pid=$!
for _ in $(seq 1 300); do
    curl -s -o /dev/null "http://127.0.0.1:${ports[4]}/buckets/bench/" && break
    sleep 0.1
done
sleep 1
export AWS_ENDPOINT_URL="http://127.0.0.1:${ports[6]}" AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret" AWS_REGION=us-east-1
export DAGRUN_REMOTE_CACHE=s3://bench/remote DAGRUN_NOTIFY_BUDGET_MS=0
unset DAGRUN_STATE_DIR DAGRUN_REMOTE_CACHE_MODE

# Seconds a dagrun command takes (its output to $work/last.json).
timed() {
    local dir=$1; shift
    local t0 t1
    t0=$(date +%s.%N)
    (cd "$dir" && "$DAGRUN_BIN" "$@" --json >"$work/last.json" 2>"$work/last.err") || { cat "$work/last.err"; exit 1; }
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc
}
count() { grep "\"event\":\"task_finished\"" "$work/last.json" | grep -c "\"status\":\"$1\"" || true; }
remote_hits() { grep -c '"event":"remote_hit"' "$work/last.json" || true; }

echo "== 1. one ${SIZE_MIB} MiB output"
for m in a b; do
    mkdir -p "$work/big-$m"
    cat >"$work/big-$m/wf.ron" <<RON
Workflow(name: "big", tasks: [Task(name: "big", kind: Command(run: "head -c ${SIZE_MIB}M /dev/urandom > out/big.bin"), outputs: {"o": "out/big.bin"})])
RON
done
t=$(timed "$work/big-a" run wf.ron)
echo "machine A, miss + upload: ${t}s ($(count succeeded) ran)"
t=$(timed "$work/big-b" run wf.ron)
ms=$(grep '"event":"remote_hit"' "$work/last.json" | sed 's/.*"ms":\([0-9]*\).*/\1/')
echo "machine B, remote hit:    ${t}s wall, ${ms} ms in the hit ($(remote_hits) remote hit): $(echo "scale=1; $SIZE_MIB * 1000 / $ms" | bc) MiB/s download+verify+restore"
cmp "$work/big-a/out/big.bin" "$work/big-b/out/big.bin" && echo "outputs identical"

echo "== 2. ${TASKS} tiny tasks"
for m in a b c; do
    mkdir -p "$work/tiny-$m"
    {
        echo 'Workflow(name: "tiny", tasks: ['
        for i in $(seq 1 "$TASKS"); do
            echo "  Task(name: \"t$i\", kind: Command(run: \"printf $i > out/$i.txt\"), outputs: {\"o\": \"out/$i.txt\"}),"
        done
        echo '])'
    } >"$work/tiny-$m/wf.ron"
done
t=$(timed "$work/tiny-c" run wf.ron --remote-cache=off)
echo "miss, no remote:          ${t}s ($(count succeeded) ran)"
t=$(timed "$work/tiny-a" run wf.ron)
echo "miss, publishing:         ${t}s ($(count succeeded) ran, $(grep -o '"published":[0-9]*' "$work/last.json") )"
t=$(timed "$work/tiny-a" run wf.ron)
echo "local hits:               ${t}s ($(count cached) cached)"
t=$(timed "$work/tiny-b" run wf.ron)
echo "remote hits, fresh state: ${t}s ($(count cached) cached, $(remote_hits) from the remote)"
