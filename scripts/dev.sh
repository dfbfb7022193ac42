#!/usr/bin/env bash
# The main job: a local Holdfast cluster with demo data. Installs what it needs first.
# Extra arguments are passed to `holdfast dev` (e.g. --nodes 5, --base-port 7000).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
[[ -f "$HOME/.cargo/env" ]] && source "$HOME/.cargo/env"
cargo build --release --locked -p holdfast-node --bin holdfast
exec "${CARGO_TARGET_DIR:-target}/release/holdfast" dev "$@"
