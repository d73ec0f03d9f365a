#!/usr/bin/env bash
# The serving benchmark: `dagrun serve` against the service users write today (FastAPI + uvicorn +
# onnxruntime), on the demo's churn model, with wrk as the load generator. One command does
# everything on a fresh machine (Debian/Ubuntu, Rust toolchain, python3 with venv):
#
#   benches/serve/run.sh
#
# 1. installs wrk (apt-get) and a benchmark-only venv with the pins of requirements.txt;
# 2. builds dagrun (release) and runs the demo's workflows/retrain.ron, which deploys the churn
#    model to workflows/registry (cached when it ran before); the current version is copied to a
#    temp registry, so both services load the same model.onnx;
# 3. checks that both services give the same predictions for the same rows;
# 4. for each service, alone on the machine: single-row requests at 1, 16 and 64 connections, at 16
#    connections paced below saturation (about 3,400 req/s for every service), and 1,000-row
#    requests at 1 and 16 connections, each WARMUP s of warm-up then DURATION s
#    measured, loopback only; resident memory of all the service's processes after the load;
# 5. prints the tables (and keeps them, with the raw results, in $BENCH_OUT).
#
# Environment (all optional):
#   BENCH_DURATION=10  BENCH_WARMUP=2      seconds per measured run / warm-up before it
#   BENCH_SERVICES="dagrun dagrun-t dagrun-wait fastapi fastapi-1t fastapi-w1"   which, in order:
#     dagrun: defaults (HTTP on half the cores, a worker per core, --max-wait 0ms); dagrun-t: --threads
#     (one HTTP thread per core); dagrun-wait: --max-wait 0.2ms --max-batch 64;
#     dagrun-w1 / dagrun-w2: --workers 1 / 2; fastapi: uvicorn --workers 2, onnxruntime's default
#     session options (as users write it); fastapi-1t: the same with intra_op_num_threads=1 per
#     worker (tuned); fastapi-w1: uvicorn --workers 1
#   BENCH_CONNECTIONS="1 16 64"  BENCH_BATCH_CONNECTIONS="1 16"  BENCH_BATCH_ROWS=1000
#   BENCH_WRK_THREADS=2                    wrk threads (at most one per connection)
#   BENCH_PACED_DELAY_MS=4                 also a paced single-row run: 16 connections, each waiting
#                                          this long before each request (~3,400 req/s in all; 0: none)
#   BENCH_PORT=18480                       first loopback port used (then PORT+1, +2, ... per service)
#   BENCH_OUT=$CARGO_TARGET_DIR/bench-serve   where results-<time>.{jsonl,md} are written
#   DAGRUN_BENCH_VENV=~/.cache/dagrun/venv-bench-serve   the venv (made or updated here)
#   DAGRUN_BIN=path/to/dagrun              use this binary instead of building one
#   CARGO_TARGET_DIR                       cargo's target directory (default: target/)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
SERVICES=${BENCH_SERVICES:-"dagrun dagrun-t dagrun-wait fastapi fastapi-1t fastapi-w1"}
CONNECTIONS=${BENCH_CONNECTIONS:-"1 16 64"}
BATCH_CONNECTIONS=${BENCH_BATCH_CONNECTIONS:-"1 16"}
BATCH_ROWS=${BENCH_BATCH_ROWS:-1000}
WRK_THREADS=${BENCH_WRK_THREADS:-2}
PACED_DELAY_MS=${BENCH_PACED_DELAY_MS:-4}
PORT=${BENCH_PORT:-18480}
VENV=${DAGRUN_BENCH_VENV:-$HOME/.cache/dagrun/venv-bench-serve}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
OUT=${BENCH_OUT:-$CARGO_TARGET_DIR/bench-serve}

say() { printf '\n== %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

work=$(mktemp -d "${TMPDIR:-/tmp}/dagrun-bench-serve.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# --- 1. tools --------------------------------------------------------------------------------
say "tools"
if ! command -v wrk >/dev/null; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
command -v wrk >/dev/null || die "wrk did not install (apt-get install wrk)"
reqs="$here/requirements.txt"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
fi
if ! cmp -s "$reqs" "$VENV/.bench-serve-requirements.txt"; then
    "$VENV/bin/pip" install -q -r "$reqs"
    cp "$reqs" "$VENV/.bench-serve-requirements.txt"
fi
py="$VENV/bin/python"
tools() { "$py" "$here/tools.py" "$@"; }
ort_lib=$("$py" -c 'import glob, os, onnxruntime as o; print(sorted(glob.glob(os.path.join(os.path.dirname(o.__file__), "capi", "libonnxruntime.so.*")))[0])')
export ORT_DYLIB_PATH=$ort_lib   # dagrun serve loads the very library the FastAPI service uses
echo "wrk: $(wrk -v 2>&1 | head -1)"
echo "python: $("$py" --version); $("$VENV/bin/pip" freeze | grep -iE '^(fastapi|starlette|pydantic|uvicorn|uvloop|httptools|onnxruntime|numpy)==' | tr '\n' ' ')"
echo "ONNX Runtime library: $ORT_DYLIB_PATH"

# --- 2. dagrun and the model -----------------------------------------------------------------
say "dagrun (release) and the demo's model"
if [ -n "${DAGRUN_BIN:-}" ]; then
    dagrun=$DAGRUN_BIN
else
    (cd "$root" && cargo build --release -p dagrun --quiet)
    dagrun=$CARGO_TARGET_DIR/release/dagrun
fi
[ -x "$dagrun" ] || die "no dagrun binary at $dagrun"
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2   # the workflow's plugins are built for it
fi
if ! (cd "$root" && "$dagrun" run workflows/retrain.ron); then
    [ -f "$root/workflows/registry/churn/current" ] || die "workflows/retrain.ron failed and deployed no model"
    echo "(retrain.ron failed; benchmarking the model already deployed)"
fi
version=$(tr -d '[:space:]' <"$root/workflows/registry/churn/current")
mkdir -p "$work/registry/churn"
cp -r "$root/workflows/registry/churn/$version" "$work/registry/churn/"
printf '%s' "$version" >"$work/registry/churn/current"
model=$work/registry/churn/$version/model.onnx
data=$root/workflows/out/retrain/test.csv
[ -f "$data" ] || data=$work/registry/churn/$version/reference.csv
tools bodies "$data" "$work/bodies" "$BATCH_ROWS"
echo "model: churn $version ($(stat -c %s "$model") bytes, blake3 $("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["digest"][:16])' "$work/registry/churn/$version/metadata.json")…); rows from $data"

# --- services --------------------------------------------------------------------------------
# start NAME PORT: starts a service in the background; sets pid, url, label.
start() {
    local name=$1 port=$2 flags=()
    case $name in
        dagrun) label="dagrun serve (defaults: $(( $(nproc) / 2 > 1 ? $(nproc) / 2 : 1 )) HTTP threads, $(nproc) workers)" ;;
        dagrun-t) label="dagrun serve (--threads $(nproc))"; flags=(--threads "$(nproc)") ;;
        dagrun-wait) label="dagrun serve (2 workers, --max-wait 0.2ms)"; flags=(--max-wait 0.2ms --max-batch 64) ;;
        dagrun-w1) label="dagrun serve (--workers 1)"; flags=(--workers 1) ;;
        dagrun-w2) label="dagrun serve (--workers 2)"; flags=(--workers 2) ;;
        fastapi) label="FastAPI + uvicorn (2 workers)" ;;
        fastapi-w1) label="FastAPI + uvicorn (1 worker)" ;;
        fastapi-1t) label="FastAPI + uvicorn (2 workers, 1 ORT thread each)" ;;
        *) die "unknown service $name (dagrun, dagrun-t, dagrun-wait, dagrun-w1, dagrun-w2, fastapi, fastapi-w1, fastapi-1t)" ;;
    esac
    case $name in
        dagrun*)
            "$dagrun" serve --registry "$work/registry" --addr "127.0.0.1:$port" "${flags[@]}" 2>"$work/$name.log" &
            pid=$!
            url=http://127.0.0.1:$port/predict/churn
            tools wait "http://127.0.0.1:$port/v2/health/ready" 60 || { cat "$work/$name.log"; die "$name did not start"; }
            ;;
        fastapi*)
            local workers=2 threads=
            [ "$name" = fastapi-w1 ] && workers=1
            [ "$name" = fastapi-1t ] && threads=1
            MODEL=$model ORT_INTRA_THREADS=$threads "$VENV/bin/uvicorn" fastapi_app:app --app-dir "$here" --host 127.0.0.1 --port "$port" \
                --workers "$workers" --loop uvloop --http httptools --no-access-log --log-level warning 2>"$work/$name.log" &
            pid=$!
            url=http://127.0.0.1:$port/predict
            tools wait "http://127.0.0.1:$port/health" 60 || { cat "$work/$name.log"; die "$name did not start"; }
            # every worker up: each answers /health only once its session is loaded; give stragglers a moment
            sleep 2
            ;;
    esac
    pids+=("$pid")
}

stop() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# --- 3. same predictions ---------------------------------------------------------------------
say "checking that both services predict the same"
start dagrun "$PORT"; d_pid=$pid; d_url=$url
start fastapi "$((PORT + 1))"; f_pid=$pid; f_url=$url
tools check "$d_url" "$f_url" "$work/bodies"
stop "$d_pid"; stop "$f_pid"

# --- 4. load ---------------------------------------------------------------------------------
mkdir -p "$OUT"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
results=$OUT/results-$stamp.jsonl
: >"$results"
load_start=$(loadavg)
say "load: ${WARMUP}s warm-up + ${DURATION}s per run; machine: $(nproc) cores, load average $(loadavg)"
idle_busy=$(tools busy 3)
echo "before the load, other work keeps $idle_busy cores busy"
if awk -v b="$idle_busy" 'BEGIN { exit !(b > 0.2) }'; then
    echo "warning: the machine is busy: other work shares the cores, the numbers will be low and noisy"
fi
# run NAME LABEL PID URL ROWS CONNECTIONS [DELAY_MS]
run() {
    local name=$1 label=$2 pid=$3 url=$4 rows=$5 conns=$6 body threads before after out load
    export DELAY_MS=${7:-0}
    body=$work/bodies/single.json
    [ "$rows" = 1 ] || body=$work/bodies/batch.json
    threads=$((conns < WRK_THREADS ? conns : WRK_THREADS))
    load=$(loadavg)
    BODY_FILE=$body wrk -t"$threads" -c"$conns" -d"${WARMUP}s" --timeout 10s -s "$here/post.lua" "$url" >/dev/null
    before=$(tools procs "$pid")
    head -1 /proc/stat >"$work/stat0"
    times >"$work/times0"   # CPU of this shell's children: wrk's, once it is waited for
    out=$(BODY_FILE=$body wrk -t"$threads" -c"$conns" -d"${DURATION}s" --timeout 10s --latency -s "$here/post.lua" "$url")
    times >"$work/times1"
    head -1 /proc/stat >"$work/stat1"
    after=$(tools procs "$pid")
    tools record "$name" "$label" "$rows" "$conns" "$load" "$before" "$after" "$out" "$work" "$DELAY_MS" >>"$results"
    tools summary "$results"
}

port=$PORT
for name in $SERVICES; do
    port=$((port + 1))
    start "$name" "$port"
    say "$label (pid $pid, $url)"
    for c in $CONNECTIONS; do run "$name" "$label" "$pid" "$url" 1 "$c"; done
    [ "$PACED_DELAY_MS" = 0 ] || run "$name" "$label" "$pid" "$url" 1 16 "$PACED_DELAY_MS"
    for c in $BATCH_CONNECTIONS; do run "$name" "$label" "$pid" "$url" "$BATCH_ROWS" "$c"; done
    stop "$pid"
done

# --- 5. tables -------------------------------------------------------------------------------
table=$OUT/results-$stamp.md
{
    echo "dagrun $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'), churn $version, $(nproc) cores, load average $load_start at the start of the load ($idle_busy cores busy before it), $(loadavg) at the end;"
    echo "wrk $WRK_THREADS threads, ${WARMUP}s warm-up + ${DURATION}s per run, loopback."
    echo
    tools format "$results"
} >"$table"
say "results ($results)"
cat "$table"
