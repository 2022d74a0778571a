#!/usr/bin/env bash
# The whole test suite: setup, formatting and lints, then every unit,
# property and integration test of the workspace. Integration tests make
# network namespaces, so run it as root.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

start=$(date +%s)
echo "test: cargo fmt --check"
cargo fmt --all -- --check
echo "test: cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

if cargo nextest --version >/dev/null 2>&1; then
  # nextest does not run doctests; run them first so that nextest's summary
  # of every test closes the output.
  cargo test --doc --workspace --locked
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
echo "test: done in $(( $(date +%s) - start ))s"
