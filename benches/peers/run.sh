#!/usr/bin/env bash
# Side by side with Snakemake and Luigi (issue #16): the same workloads, the same trivial `sh -c`
# commands, two jobs at a time, paired runs, and the process-start floor. One command:
#
#   benches/peers/run.sh
#
# 1. makes (once, then reuses) a venv with the pins of requirements.txt (Snakemake, Luigi);
# 2. builds dagrun (release) into $CARGO_TARGET_DIR, unless DAGRUN_BIN names a binary;
# 3. runs peers.py: for each workload, one untimed round that checks every tool writes the same
#    files with the same content, then BENCH_REPEAT timed rounds, the tools alternating:
#      W1  200 tasks in 10 independent chains of 20: first run, cached re-run
#      W2  a 50-task fan-out/fan-in DAG: first run, cached re-run
#      W3  a 365-day daily backfill: first run, nothing changed, 3 days' input files changed
#          (exactly those 3 must run again, checked for every tool)
#    dagrun: workflow.ron with `Command` tasks (`dagrun run -j 2`; W3 partitioned daily, `dagrun
#    backfill --from --to -j 2`); Snakemake: a Snakefile (`snakemake --cores 2`); Luigi:
#    `luigi.build(..., workers=2, local_scheduler=True)`; floor: the commands spawned directly;
# 4. prints a table of medians (wall seconds, peak RSS) with the ratios peer/dagrun and
#    dagrun/floor, and writes it as markdown to $BENCH_OUT when set.
#
# Each run gets a fresh copy of the workload, kept until the whole benchmark ends: on ext4 without
# a journal, creating files soon after many were deleted is slow (the allocator skips inodes freed
# in the last minutes), so deleting as it goes would charge each tool for the previous one's
# cleanup. For the same reason, leave ~5 minutes between two benchmark runs on such a filesystem.
#
# Environment (all optional):
#   BENCH_REPEAT=5                 timed rounds per workload (medians of these)
#   BENCH_WARMUP=1                 untimed checking rounds before them
#   BENCH_WORKLOADS="w1 w2 w3"     which workloads
#   BENCH_TOOLS="floor dagrun snakemake luigi"   which tools (the ratios need dagrun and floor)
#   BENCH_JOBS=2                   tasks at a time, for every tool
#   BENCH_STEP_TIMEOUT=300         seconds before a single run is declared stuck (then it fails)
#   BENCH_OUT=path.md              also write the table there (default: stdout only)
#   DAGRUN_BENCH_VENV=~/.cache/dagrun/venv-bench-peers   the venv (made or updated here)
#   DAGRUN_BIN=path/to/dagrun      use this binary instead of building one
#   BENCH_COMMIT="abc1234"         what to call that binary in the table (default: its path)
#   CARGO_TARGET_DIR               cargo's target directory (default: ~/.cache/dagrun/target-bench)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
VENV=${DAGRUN_BENCH_VENV:-$HOME/.cache/dagrun/venv-bench-peers}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/dagrun/target-bench}

say() { printf '\n== %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

[ -x /usr/bin/time ] || die "/usr/bin/time is missing (apt-get install time): it measures peak memory"
command -v python3 >/dev/null || die "python3 is missing"

# --- 1. the venv -----------------------------------------------------------------------------
say "Snakemake and Luigi (venv $VENV)"
reqs="$here/requirements.txt"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
fi
if ! cmp -s "$reqs" "$VENV/.bench-peers-requirements.txt"; then
    "$VENV/bin/pip" install -q -r "$reqs"
    cp "$reqs" "$VENV/.bench-peers-requirements.txt"
fi
"$VENV/bin/pip" freeze | grep -iE '^(snakemake|luigi)==' | tr '\n' ' '
echo

# --- 2. dagrun -------------------------------------------------------------------------------
say "dagrun (release)"
if [ -n "${DAGRUN_BIN:-}" ]; then
    dagrun=$DAGRUN_BIN
    commit=${BENCH_COMMIT:-$DAGRUN_BIN}
else
    (cd "$root" && cargo build --release -p dagrun --quiet)
    dagrun=$CARGO_TARGET_DIR/release/dagrun
    commit=$(git -C "$root" log -1 --format='%h' 2>/dev/null || echo '?')
    if [ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
        commit="$commit + uncommitted changes"
    fi
fi
[ -x "$dagrun" ] || die "no dagrun binary at $dagrun"
"$root/scripts/symbol-order.sh" --check "$dagrun" || true
dagrun=$(cd "$(dirname "$dagrun")" && pwd)/$(basename "$dagrun")
echo "$dagrun ($commit)"

# --- 3. and 4. the runs and the table --------------------------------------------------------
say "runs"
args=(
    --dagrun "$dagrun" --venv "$VENV" --commit "$commit"
    --repeat "${BENCH_REPEAT:-5}" --warmup "${BENCH_WARMUP:-1}" --jobs "${BENCH_JOBS:-2}"
    --workloads "${BENCH_WORKLOADS:-w1 w2 w3}" --tools "${BENCH_TOOLS:-floor dagrun snakemake luigi}"
    --step-timeout "${BENCH_STEP_TIMEOUT:-300}"
)
if [ -n "${BENCH_OUT:-}" ]; then
    args+=(--out "$BENCH_OUT")
fi
python3 "$here/peers.py" "${args[@]}"
