#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test of every crate. This is the
# README's test command and what CI (.ci/run) runs.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
[[ -f "$HOME/.cargo/env" ]] && source "$HOME/.cargo/env"

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export PROPTEST_CASES="${PROPTEST_CASES:-1000}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked --no-fail-fast
