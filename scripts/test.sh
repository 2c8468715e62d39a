#!/usr/bin/env bash
# Runs hanko's whole test suite. Installs what the tests need first:
#  - moto's server (the AWS integration tests talk to it through the real aws-sdk clients).
# The cargo build cache lives outside the clone (CARGO_TARGET_DIR), so repeated runs are fast.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hanko/target}"

if ! command -v moto_server >/dev/null 2>&1; then
    echo "installing moto (pip install 'moto[server]')..."
    python3 -m pip install --quiet 'moto[server]>=5.1,<6'
fi
command -v moto_server >/dev/null 2>&1 || {
    echo "moto_server is still not on PATH after pip install; add pip's bin directory to PATH" >&2
    exit 1
}

cargo test --locked "$@"
