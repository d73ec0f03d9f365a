#!/usr/bin/env bash
# The report benchmark: `dagrun report` and `dagrun ui` pages on a generated history of 10,000 runs (benches/report.rs),
# release build, in its own target directory (the first build takes 7-12 minutes).
#   benches/report/run.sh                      # 10,000 runs, 20 timings per format
#   DAGRUN_BENCH_RUNS=50000 benches/report/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${DAGRUN_BENCH_TARGET_DIR:-$HOME/.cache/dagrun/target-bench}"
cargo bench -p dagrun --bench report
