#!/usr/bin/env bash
# Regenerates engine/cli/symbol-order.txt: the functions a release `dagrun` executes on the
# benchmark workloads, which its release link places side by side (engine/cli/build.rs).
#
#   scripts/symbol-order.sh
#   scripts/symbol-order.sh --check BIN   how many listed functions BIN defines; fails when under
#                                         90% (the list no longer matches the release build)
#
# Why: the kernel maps a program's code in 64 KiB pieces around each page it runs. Spread over
# the 40 MB of code, the ~2 MB a run executes made 9.4 MiB of a run's memory; side by side,
# 2.6 MiB (docs/benchmarks.md, "Issue #16, tenth pass").
#
# How: each workload of benches/peers (W1, W2, W3: first run, then a cached re-run; W3 also after
# 3 days' inputs changed), a 1,000-task re-run with `--json` and `dagrun validate` run under
# valgrind's callgrind; every function of the binary it saw run is listed, one mangled name per
# line, sorted. Most names carry a hash that changes with the toolchain, Cargo.lock and the
# release profile: regenerate the list when those change (`--check` tells). A stale list does no
# harm: names the binary no longer defines are skipped. Paths that depend on the machine or on
# timing (other CPU features, lock contention) may differ from one regeneration to the next.
#
# Environment (all optional):
#   DAGRUN_BIN=path/to/dagrun    profile this binary instead of building one: a release build of
#                                this commit with the release profile as committed (the names
#                                must match the release build's)
#   CARGO_TARGET_DIR             cargo's target directory (default: ~/.cache/dagrun/target-bench)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$root/engine/cli/symbol-order.txt
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/dagrun/target-bench}

say() { printf '== %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

defined() { # BIN: the function names BIN defines, sorted
    nm --defined-only "$1" 2>/dev/null | awk '$2 ~ /^[tTwW]$/ { print $3 }' | LC_ALL=C sort -u
}

if [ "${1:-}" = --check ]; then
    [ -x "${2:-}" ] || die "usage: $0 --check BIN"
    nm "$2" >/dev/null || die "cannot read the symbols of $2"
    listed=$(grep -v '^#' "$out" | LC_ALL=C sort -u || true)
    total=$(printf '%s\n' "$listed" | grep -c . || true)
    found=$(LC_ALL=C comm -12 <(defined "$2") <(printf '%s\n' "$listed") | grep -c . || true)
    if [ "$total" -gt 0 ] && [ $((found * 10)) -ge $((total * 9)) ]; then
        say "symbol order: $found of $total functions of ${out#"$root"/} are in $2"
    else
        say "WARNING: only $found of $total functions of ${out#"$root"/} are in $2: the others" \
            "stay spread over the code (up to ~6 MiB more memory per run at 10,000 tasks)." \
            "Regenerate the list: $0"
        exit 1
    fi
    exit 0
fi

# The list must name the functions of the release build as committed (with DAGRUN_BIN, that
# binary's build is the caller's to vouch for).
if [ -z "${DAGRUN_BIN:-}" ]; then
    overrides=$(compgen -e | grep -E '^CARGO_PROFILE_RELEASE_|^CARGO_TARGET_.*_RUSTFLAGS$' || true)
    for var in RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS $overrides; do
        [ -z "${!var:-}" ] || die "$var is set: unset it (the list must match the release build as committed)"
    done
fi
if ! command -v valgrind >/dev/null; then
    say "installing valgrind (Debian)"
    sudo=$([ "$(id -u)" = 0 ] || echo sudo)
    $sudo apt-get update -q || true
    $sudo apt-get install -y -q valgrind || true
    command -v valgrind >/dev/null || die "valgrind is missing and could not be installed (apt-get install valgrind)"
fi
command -v nm >/dev/null || die "nm is missing (apt-get install binutils)"
command -v python3 >/dev/null || die "python3 is missing"

if [ -n "${DAGRUN_BIN:-}" ]; then
    bin=$DAGRUN_BIN
else
    say "building dagrun (release)"
    (cd "$root" && cargo build --release -p dagrun --quiet)
    bin=$CARGO_TARGET_DIR/release/dagrun
fi
[ -x "$bin" ] || die "no binary at $bin"

work=$(mktemp -d /tmp/dagrun-symbol-order.XXXXXX)
trap 'rm -rf "$work" "$out.tmp"' EXIT
python3 - "$root" "$work" <<'EOF'
import sys
root, work = sys.argv[1], sys.argv[2]
sys.path.insert(0, f"{root}/benches/peers")
sys.path.insert(0, f"{root}/benches/paired")
import peers, paired
for wl in ("w1", "w2", "w3"):
    peers.write_template(f"{work}/{wl}", wl)
paired.engine_workflow(f"{work}/engine", 1000)
EOF

profile() { # DIR NAME ARGS...: one run of dagrun under callgrind, in DIR, with its own state
    local dir=$1 name=$2
    shift 2
    say "callgrind: $name"
    if ! (cd "$dir" && env -u DAGRUN_STATE_DIR valgrind --tool=callgrind --demangle=no \
        --callgrind-out-file="$work/cg.$name" "$bin" "$@" >"$work/log.$name" 2>&1); then
        tail -n 20 "$work/log.$name" >&2
        die "dagrun $* failed in $dir (its output's end above)"
    fi
}
days=(--from 2025-01-01 --to 2025-12-31)
for step in first cached; do
    profile "$work/w1" "w1-$step" run workflow.ron -j 2
    profile "$work/w2" "w2-$step" run workflow.ron -j 2
    profile "$work/w3" "w3-$step" backfill workflow.ron "${days[@]}" -j 2
    profile "$work/engine" "engine-$step" run wf.ron --json
done
python3 - "$root" "$work/w3" <<'EOF'
import sys
sys.path.insert(0, f"{sys.argv[1]}/benches/peers")
import peers
peers.change_inputs(sys.argv[2], "symbol-order")
EOF
profile "$work/w3" w3-changed backfill workflow.ron "${days[@]}" -j 2
profile "$work/engine" validate validate wf.ron

defined "$bin" >"$work/defined"
{ grep -ho '^c\?fn=([0-9]*) .*' "$work"/cg.* || true; } | sed 's/^c\?fn=([0-9]*) //' | LC_ALL=C sort -u >"$work/seen"
{
    echo "# The functions a release dagrun runs on the benchmark workloads, placed side by side by"
    echo "# its link (engine/cli/build.rs). Generated by scripts/symbol-order.sh: do not edit."
    LC_ALL=C comm -12 "$work/defined" "$work/seen"
} >"$out.tmp"
listed=$(grep -vc '^#' "$out.tmp" || true)
[ "$listed" -gt 0 ] || die "no function of $bin was seen running (stripped binary?)"
mv "$out.tmp" "$out"
say "$listed functions listed in ${out#"$root"/}"
