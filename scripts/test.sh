#!/usr/bin/env bash
# Installs what the tests need on a Debian machine and runs every test:
# formatting, lints, unit and integration tests of every crate.
# Run as root (the end-to-end tests build network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
for p in build-essential pkg-config iproute2 curl python3; do
    dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing packages: ${need_pkgs[*]} (run as root to install them)" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}"
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install a Rust toolchain (rustup) first" >&2
    exit 1
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -q -- -D warnings
echo "== cargo test"
cargo test --workspace 2>&1 | tee /tmp/ferrovs-test.log | grep -E '^(test result|running|error|failures|---- )|panicked' || true
if grep -qE '^test result: FAILED|^error' /tmp/ferrovs-test.log; then
    echo "tests failed; full log in /tmp/ferrovs-test.log" >&2
    exit 1
fi
passed=$(grep -E '^test result:' /tmp/ferrovs-test.log | sed -E 's/.* ([0-9]+) passed; ([0-9]+) failed.*/\1 \2/' | awk '{p+=$1; f+=$2} END {print p" passed, "f" failed"}')
echo "cargo: $passed"
