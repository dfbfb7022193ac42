#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test of every crate. This is the
# README's test command and what CI (.ci/run) runs.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --test-tools
[[ -f "$HOME/.cargo/env" ]] && source "$HOME/.cargo/env"

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export PROPTEST_CASES="${PROPTEST_CASES:-1000}"
# CI keeps its build directory between runs (see .ci/run); incremental caches there only
# pile up, one set per changed crate and run (19 GB after a few weeks), and a run compiles
# each changed crate once anyway.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked --no-fail-fast
