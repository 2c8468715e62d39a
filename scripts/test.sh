#!/usr/bin/env bash
# Runs hanko's whole test suite. Installs what the tests need first:
#  - moto's server (the AWS integration tests talk to it through the real aws-sdk clients);
#  - faketime (tests/e2e_binary.rs runs the binary with the wall clock moved forward).
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

if ! command -v faketime >/dev/null 2>&1; then
    echo "installing faketime (apt-get install faketime)..."
    if command -v apt-get >/dev/null 2>&1; then
        { apt-get update -qq && apt-get install -y -qq faketime; } >/dev/null 2>&1 || true
    fi
    # Not fatal here: the one test that needs it fails and says how to install it.
    command -v faketime >/dev/null 2>&1 || echo "could not install faketime (Debian package faketime); tests/e2e_binary.rs will fail" >&2
fi

# The tests talk to moto and local stand-ins only: never to the instance metadata service or a
# real account, whatever the machine has configured.
export AWS_EC2_METADATA_DISABLED=true
export AWS_ACCESS_KEY_ID="${HANKO_TEST_AWS_KEY:-testing}" AWS_SECRET_ACCESS_KEY=testing
unset AWS_PROFILE AWS_SESSION_TOKEN

# --no-fail-fast: every test binary runs even when one fails; cargo lists the failed ones together
# at the end. --features failpoints: the crash tests abort the binary at named points of a step
# (release builds have no failpoint code).
cargo test --locked --no-fail-fast --features failpoints "$@"
