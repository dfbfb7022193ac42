#!/usr/bin/env bash
# Installs what building Holdfast needs on a fresh Debian machine, when it is missing:
# a C/C++ toolchain and libclang (the rocksdb crate builds RocksDB's C++ with bindgen) and a
# Rust toolchain new enough for tonic 0.14 and rocksdb. Safe to run any number of times.
# With --test-tools it also installs what the test suite drives besides Rust: Debian's
# chromium (the dashboard's browser tests), systemd-analyze (the unit file check), and from
# PyPI in virtualenvs kubernetes-validate (the Kubernetes manifests' check) and schemathesis
# (the fuzzing of /openapi.json against a real node).
set -euo pipefail

TEST_TOOLS=0
[[ "${1:-}" == "--test-tools" ]] && TEST_TOOLS=1
# Where kubernetes-validate is installed; tests/tests/deploy.rs looks there too.
K8S_VALIDATE_VENV="${HOLDFAST_TOOLS_DIR:-/var/tmp/holdfast-tools}/k8s-validate"
# Where schemathesis is installed (tests/tests/openapi_fuzz.rs looks there), and its version:
# the test reads its JUnit report, so a new version is taken on purpose.
SCHEMATHESIS_VENV="${HOLDFAST_TOOLS_DIR:-/var/tmp/holdfast-tools}/schemathesis"
SCHEMATHESIS_VERSION="4.32.5"

RUST_VERSION_MIN="1.85"

log() { printf '[setup] %s\n' "$*" >&2; }

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

apt_updated=0
apt_install() {
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  ((${#missing[@]})) || return 0
  if ((apt_updated == 0)); then
    log "apt-get update"
    as_root apt-get update -qq
    apt_updated=1
  fi
  log "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

version_at_least() { # version_at_least HAVE WANT
  [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" == "$2" ]]
}

rust_ok() {
  command -v cargo >/dev/null 2>&1 || return 1
  local have
  have=$(rustc --version 2>/dev/null | awk '{print $2}')
  [[ -n $have ]] && version_at_least "$have" "$RUST_VERSION_MIN"
}

if command -v apt-get >/dev/null 2>&1; then
  apt_install build-essential pkg-config libclang-dev clang ca-certificates curl iproute2
  if ((TEST_TOOLS)); then
    apt_install chromium systemd python3 python3-venv
  fi
else
  log "no apt-get: make sure a C++ compiler and libclang are installed"
fi

if ((TEST_TOOLS)) && [[ ! -x "$K8S_VALIDATE_VENV/bin/kubernetes-validate" ]]; then
  log "installing kubernetes-validate (PyPI) in $K8S_VALIDATE_VENV"
  python3 -m venv "$K8S_VALIDATE_VENV"
  "$K8S_VALIDATE_VENV/bin/pip" install -q --disable-pip-version-check kubernetes-validate
fi

if ((TEST_TOOLS)) && ! "$SCHEMATHESIS_VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  log "installing schemathesis $SCHEMATHESIS_VERSION (PyPI) in $SCHEMATHESIS_VENV"
  python3 -m venv "$SCHEMATHESIS_VENV"
  "$SCHEMATHESIS_VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

[[ -f "$HOME/.cargo/env" ]] && source "$HOME/.cargo/env"
if ! rust_ok; then
  if curl -fsS --max-time 10 https://sh.rustup.rs -o /tmp/rustup-init.sh 2>/dev/null; then
    log "installing Rust with rustup"
    sh /tmp/rustup-init.sh -y --profile minimal --component rustfmt,clippy >/dev/null
    source "$HOME/.cargo/env"
  else
    log "rustup is not reachable: installing Debian's rustc-web, cargo-web, rustfmt and clippy"
    apt_install rustc-web cargo-web rustfmt-web rust-web-clippy
  fi
fi
rust_ok || { log "a Rust toolchain >= $RUST_VERSION_MIN is required"; exit 1; }
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null 2>&1; then
      rustup component add "$component" >/dev/null 2>&1 || true
    elif command -v apt-get >/dev/null 2>&1; then
      case "$component" in
        rustfmt) apt_install rustfmt-web ;;
        clippy) apt_install rust-web-clippy ;;
      esac
    fi
  fi
  cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1 || { log "cargo ${component/rustfmt/fmt} is missing"; exit 1; }
done
log "ready: $(rustc --version)"
