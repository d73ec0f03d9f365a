#!/usr/bin/env bash
# Runs the main demo end to end on a fresh machine: builds dagrun, runs workflows/demo.ron,
# runs it again (everything cached), then edits a parameter and shows what `plan` explains.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "demo: cargo is required (https://rustup.rs)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "demo: the demo's tasks run python3; install Python 3" >&2; exit 1; }
rustup target add wasm32-wasip2 >/dev/null 2>&1 || { echo "demo: cannot install the wasm32-wasip2 target (rustup target add wasm32-wasip2)" >&2; exit 1; }

cargo build --quiet -p dagrun
dagrun=target/debug/dagrun
if [ -n "${CARGO_TARGET_DIR:-}" ]; then dagrun="$CARGO_TARGET_DIR/debug/dagrun"; fi

echo "== 1. first run: every task runs"
"$dagrun" run workflows/demo.ron
echo
echo "== 2. second run: nothing changed, everything is restored from the cache"
"$dagrun" run workflows/demo.ron
echo
echo "== 3. what would a different learning rate re-run? (plan only; nothing runs)"
tmp=$(mktemp workflows/.demo-lr-XXXXXX.ron)
trap 'rm -f "$tmp"' EXIT
sed 's/"learning_rate": 0.5/"learning_rate": 0.3/' workflows/demo.ron > "$tmp"
"$dagrun" plan "$tmp"
echo
echo "== 4. run history"
"$dagrun" runs workflows/demo.ron -n 5
echo
echo "== 5. a WASM plugin of your own: dagrun plugin new, then run its example workflow"
plugin_dir=$(mktemp -d)
trap 'rm -f "$tmp"; rm -rf "$plugin_dir"' EXIT
"$dagrun" plugin new my-scaler --dir "$plugin_dir/my-scaler"
# Plugins share one cargo target directory, so later builds reuse the compiled SDK.
DAGRUN_PLUGIN_TARGET_DIR="$PWD/target/plugins" "$dagrun" run "$plugin_dir/my-scaler/workflow.ron"
echo "scaled output:"; cat "$plugin_dir/my-scaler/out/scaled.csv"
echo
echo "== 6. a backfill: a quarter of daily partitions, weekly retraining on a 28-day window"
"$dagrun" backfill workflows/backfill.ron --from 2025-01-01 --to 2025-03-31
"$dagrun" backfill workflows/backfill.ron --from 2025-01-01 --to 2025-03-31 --plan | sed -n '1,3p'
echo
echo "deployed model: workflows/deployed/model.json"
cat workflows/deployed/MODEL_CARD.txt
