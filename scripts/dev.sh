#!/usr/bin/env bash
# The main job: a local Holdfast cluster with demo data. Installs what it needs first.
# Extra arguments are passed to `holdfast dev` (e.g. --nodes 5, --base-port 7000).
#
# It builds the test suite's profile (`dev`: dependencies optimised, the workspace's own
# crates not), so that `./scripts/test.sh` afterwards reuses the build, RocksDB's C++
# included, instead of compiling everything a second time: the two commands together
# take about 21 minutes on a fresh clone of a 2-core machine instead of about 35.
# `HOLDFAST_PROFILE=release ./scripts/dev.sh` builds the optimised binary instead (what
# the benchmarks use; a separate build of its own).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
[[ -f "$HOME/.cargo/env" ]] && source "$HOME/.cargo/env"
profile="${HOLDFAST_PROFILE:-dev}"
case "$profile" in
  dev) directory=debug ;;
  release) directory=release ;;
  *) echo "HOLDFAST_PROFILE must be dev or release, not '$profile'" >&2; exit 2 ;;
esac
cargo build --profile "$profile" --locked -p holdfast-node --bin holdfast
exec "${CARGO_TARGET_DIR:-target}/$directory/holdfast" dev "$@"
