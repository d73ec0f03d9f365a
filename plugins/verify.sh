#!/usr/bin/env bash
# End-to-end check of the ML plugins (issue #4), through the real engine:
#   1. builds the plugins (wasm32-wasip2) and dagrun;
#   2. runs a workflow in a scratch directory: `generate` (train / test / drifted days, 100,000 × 20)
#      and `train` for every model kind (logistic binary + multiclass, linear, gbdt classification
#      + regression + multiclass), keeping the in-WASM predictions;
#   3. checks every model in onnxruntime against those predictions (plugins/train/check_onnx.py),
#      with test-set and drifted-day metrics for the binary classifiers;
#   4. times training on 100,000 × 20 in WASM (through dagrun) and natively (examples/bench.rs),
#      and checks that both write the same model bytes.
#
# Usage: plugins/verify.sh [SCRATCH_DIR]      (needs: pip install onnxruntime==1.31.1 numpy; optional onnx)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d -t dagrun-ml-XXXXXX)}
mkdir -p "$work"
export DAGRUN_PLUGIN_TARGET_DIR="$root/plugins/target"
dagrun="$root/target/debug/dagrun"

echo "== build"
cargo build --release --target wasm32-wasip2 --manifest-path "$root/plugins/Cargo.toml"
cargo build --release --manifest-path "$root/plugins/Cargo.toml" -p dagrun-train --example bench
(cd "$root" && cargo build -p dagrun)

train_task() { # name params
    cat <<EOF
        Task(
            name: "$1",
            kind: Wasm(plugin: "$root/plugins/train"),
            inputs: {"data": Output("gen", "data")},
            params: $2,
            outputs: {"model": "out/$1/model.onnx", "metrics": "out/$1/metrics.json", "predictions": "out/$1/predictions.csv"},
        ),
EOF
}
gen_task() { # name date rows
    cat <<EOF
        Task(
            name: "$1",
            kind: Wasm(plugin: "$root/plugins/generate"),
            params: {"rows": $3, "features": 20, "seed": 1, "date": "$2", "drift_after": "2025-03-01"},
            outputs: {"data": "out/$1.csv"},
        ),
EOF
}
{
    echo 'Workflow(name: "ml-plugins", tasks: ['
    gen_task gen 2025-01-31 100000
    gen_task gen_test 2025-02-01 20000
    gen_task gen_drift 2025-03-15 20000
    train_task logistic '{"model": "logistic", "label": "label", "write_predictions": true}'
    train_task gbdt '{"model": "gbdt", "label": "label", "seed": 7, "write_predictions": true}'
    train_task linear '{"model": "linear", "label": "num_purchases", "write_predictions": true}'
    train_task gbdt_reg '{"model": "gbdt", "task": "regression", "label": "num_purchases", "trees": 50, "subsample": 0.8, "write_predictions": true}'
    train_task logistic_multi '{"model": "logistic", "label": "support_calls", "epochs": 100, "write_predictions": true}'
    train_task gbdt_multi '{"model": "gbdt", "label": "region", "trees": 20, "depth": 4, "write_predictions": true}'
    echo '])'
} >"$work/ml.ron"

echo "== run ($work/ml.ron)"
"$dagrun" run "$work/ml.ron" -j 1

echo "== onnxruntime vs in-WASM predictions"
for m in logistic gbdt linear gbdt_reg logistic_multi gbdt_multi; do
    echo "-- $m"
    extra=()
    case $m in logistic | gbdt) extra=(--eval "$work/out/gen_test.csv" "$work/out/gen_drift.csv") ;; esac
    python3 "$root/plugins/train/check_onnx.py" "$work/out/$m/model.onnx" "$work/out/gen.csv" \
        "$work/out/$m/metrics.json" "$work/out/$m/predictions.csv" "${extra[@]}"
done

echo "== train time on 100,000 × 20: WASM (dagrun task time; plugin stage times) vs native"
for m in logistic gbdt; do
    # The params after defaults, as the WASM run recorded them.
    params=$(python3 -c "import json; print(json.dumps(json.load(open('$work/out/$m/metrics.json'))['params']))")
    for i in 1 2 3; do
        "$dagrun" run "$work/ml.ron" --only "$m" --force="$m" -j 1 2>&1 | grep -E "^$m +succeeded" | sed "s/^/wasm   /"
        log=$(ls -td "$work"/.dagrun/logs/*/ | head -1)
        grep -h "trained" "$log"/*"$m"* | sed 's/.*features: [^;]*; /       stages: /'
    done
    "$root/plugins/target/release/examples/bench" "$work/out/gen.csv" "$params" 3 | sed "s/^/native /"
    echo "wasm   model_sha256 $(python3 -c "import json; print(json.load(open('$work/out/$m/metrics.json'))['model_sha256'])")"
done
