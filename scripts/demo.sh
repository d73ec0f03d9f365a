#!/usr/bin/env bash
# Runs the main demo end to end on a fresh machine: builds dagrun, then
#   1. retrains a model with WASM plugins, gates it natively with ONNX Runtime, deploys it;
#   2. re-runs: everything is cached;
#   3. runs a deliberately worse model: the gate refuses it (exit code 4), nothing is deployed;
#   4. shows what `plan` explains after a parameter change;
#   5. creates a plugin of your own with `dagrun plugin new` and runs it;
#   6. backfills a quarter of daily partitions;
#   7. monitors: a quarter of daily drift checks, then checks of the deployed model (drift against
#      its training data, prediction drift, live accuracy) before and after the data drifts;
#   8. heals itself: a landed day drifts, the model is retrained, gated and deployed by itself,
#      the next day is quiet again; every step notified (workflows/out/self-heal/notifications.jsonl);
#   9. serves the deployed model over HTTP (dagrun serve) and follows a rollback without a restart;
#  10. the payoff report: time saved, time to recovery after drift, bad deploys prevented
#      (workflows/out/report.html).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "demo: cargo is required (https://rustup.rs)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "demo: python3 is required (some demo tasks are Python scripts)" >&2; exit 1; }
rustup target add wasm32-wasip2 >/dev/null 2>&1 || { echo "demo: cannot install the wasm32-wasip2 target (rustup target add wasm32-wasip2)" >&2; exit 1; }
if ! python3 -c "import onnxruntime, sys; sys.exit(onnxruntime.__version__ != '1.31.1')" 2>/dev/null; then
    echo "demo: installing ONNX Runtime (pip install onnxruntime==1.31.1) for the evaluation gate"
    python3 -m pip install --quiet "onnxruntime==1.31.1"
fi

cargo build --quiet -p dagrun
dagrun=target/debug/dagrun
if [ -n "${CARGO_TARGET_DIR:-}" ]; then dagrun="$CARGO_TARGET_DIR/debug/dagrun"; fi
"$dagrun" doctor

echo
echo "== 1. retrain: generate data → train (WASM plugin) → evaluate + gate (ONNX Runtime) → deploy"
echo "   (the first run builds the plugins in plugins/ with cargo)"
"$dagrun" run workflows/retrain.ron
"$dagrun" models list --registry workflows/registry
echo
echo "== 2. the same run again: nothing changed, everything is cached"
"$dagrun" run workflows/retrain.ron
echo
echo "== 3. a deliberately worse model: the gate compares it with the deployed one and refuses it"
set +e
"$dagrun" run workflows/retrain-worse.ron
code=$?
set -e
echo "exit code: $code (4 = gate refused); the verdict says why:"
grep '"reason"' workflows/out/retrain-worse/verdict.json
"$dagrun" models list --registry workflows/registry
echo
echo "== 4. what would more trees re-run? (plan only; nothing runs)"
tmp=$(mktemp workflows/.retrain-trees-XXXXXX.ron)
plugin_dir=$(mktemp -d)
trap 'rm -f "$tmp"; rm -rf "$plugin_dir"' EXIT
sed 's/"trees": 60/"trees": 80/' workflows/retrain.ron > "$tmp"
"$dagrun" plan "$tmp" || true
echo
echo "== 5. a WASM plugin of your own: dagrun plugin new, then run its example workflow"
"$dagrun" plugin new my-scaler --dir "$plugin_dir/my-scaler"
# Plugins share one cargo target directory, so later builds reuse the compiled SDK.
DAGRUN_PLUGIN_TARGET_DIR="$PWD/target/plugins" "$dagrun" run "$plugin_dir/my-scaler/workflow.ron"
echo "scaled output:"; cat "$plugin_dir/my-scaler/out/scaled.csv"
echo
echo "== 6. a backfill: a quarter of daily partitions, weekly retraining on a 28-day window"
"$dagrun" backfill workflows/backfill.ron --from 2025-01-01 --to 2025-03-31
"$dagrun" backfill workflows/backfill.ron --from 2025-01-01 --to 2025-03-31 --plan | sed -n '1,3p'
echo
echo "== 7. monitoring: daily drift checks (the generated data drifts after 2025-03-01)"
"$dagrun" backfill workflows/monitor.ron --from 2025-01-01 --to 2025-03-31
for day in 2025-03-01 2025-03-02; do
    echo "$day: $(grep -m1 '"reason"' "workflows/out/monitor/drift/$day.json")"
done
echo "   and the deployed model: drift against its training data, live accuracy on labelled days"
"$dagrun" backfill workflows/live.ron --from 2025-02-27 --to 2025-03-04
for day in 2025-03-01 2025-03-02; do
    echo "$day: $(grep -m1 '"reason"' "workflows/out/live/performance/$day.json")"
done
echo "   report pages: workflows/out/monitor/drift/2025-03-02.html (opens offline)"
echo
echo "== 8. self-healing: a drifted day → retrain → gate → deploy (no person needed: 36% of predictions"
echo "   change, under the 40% limit), then the next day is quiet against the new model's data"
"$dagrun" backfill workflows/landing.ron --from 2025-02-27 --to 2025-03-03
for day in 2025-02-27 2025-03-02 2025-03-03; do
    set +e
    "$dagrun" run workflows/self-heal.ron --partition "$day" 2>&1 | tail -1
    code=${PIPESTATUS[0]}
    set -e
    echo "$day: exit code $code (0 = quiet, 6 = drift found and handled)"
done
"$dagrun" models list --registry workflows/registry
echo "notifications (also to Slack when SLACK_WEBHOOK_URL is set):"
python3 -c 'import json,sys; [print("  " + json.loads(l)["title"]) for l in open(sys.argv[1]) if l.strip()]' workflows/out/self-heal/notifications.jsonl
"$dagrun" approvals workflows/self-heal.ron
echo
echo "== 9. serving: dagrun serve answers with the deployed model and follows the registry"
serve_log=$(mktemp)
"$dagrun" serve --registry workflows/registry --addr 127.0.0.1:0 2>"$serve_log" &
serve_pid=$!
trap 'kill $serve_pid 2>/dev/null || true; rm -f "$tmp" "$serve_log"; rm -rf "$plugin_dir"' EXIT
for _ in $(seq 100); do grep -q '^listening on' "$serve_log" && break; sleep 0.1; done
addr=$(sed -n 's/^listening on http:\/\/\([^ ]*\).*/\1/p' "$serve_log")
row='[{"age": 39, "income": 19350, "tenure_months": 37, "region": 1, "num_purchases": 3, "avg_basket": 27.44, "days_since_last": 20, "support_calls": 0, "discount_rate": 0.21, "session_minutes": 0.9}]'
echo "\$ curl -s $addr/predict/churn -d '$row'"
curl -s "$addr/predict/churn" -d "$row"; echo
deployed=$(cat workflows/registry/churn/current)
if [ "$deployed" != v0001 ]; then
    echo "   a rollback is picked up by the running service (no restart):"
    "$dagrun" models rollback churn --registry workflows/registry
    curl -s "$addr/predict/churn" -d "$row"; echo
    "$dagrun" models rollback churn --to "$deployed" --registry workflows/registry >/dev/null
fi
kill -TERM $serve_pid; wait $serve_pid
sed 's/^/   serve: /' "$serve_log"
echo
echo "run history:"
"$dagrun" runs workflows/retrain.ron -n 5
echo
echo "== 10. the payoff: time saved, time to recovery after drift, bad deploys prevented"
"$dagrun" report --state-dir workflows/.dagrun
"$dagrun" report --state-dir workflows/.dagrun --format html --out workflows/out/report.html
