#!/usr/bin/env bash
# Runs hanko's whole test suite. Installs what the tests need first:
#  - moto's server (the AWS integration tests talk to it through the real aws-sdk clients);
#  - faketime (tests/binary/e2e_binary.rs runs the binary with the wall clock moved forward).
# Either missing and not installable: the script stops with how to install it (no silent skip).
# At the end, the failed tests of every test binary are listed together.
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
fi
command -v faketime >/dev/null 2>&1 || {
    echo "faketime is not installed and could not be installed here; tests/binary (e2e_binary)" \
        "needs it: install the Debian/Ubuntu package faketime (apt-get install faketime) or" \
        "libfaketime from your distribution, then run this script again" >&2
    exit 1
}

# The tests talk to moto and local stand-ins only: never to the instance metadata service or a
# real account, whatever the machine has configured.
export AWS_EC2_METADATA_DISABLED=true
export AWS_ACCESS_KEY_ID="${HANKO_TEST_AWS_KEY:-testing}" AWS_SECRET_ACCESS_KEY=testing
unset AWS_PROFILE AWS_SESSION_TOKEN

# --no-fail-fast: every test binary runs even when one fails. --features failpoints: the crash
# tests abort the binary at named points of a step (release builds have no failpoint code).
# The output is kept so the failures of every binary can be listed together at the end.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --locked --no-fail-fast --features failpoints "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

if [ "$status" -ne 0 ]; then
    echo
    echo "== failures (every test binary ran; the failed tests of all of them):"
    # "Running tests/chat/main.rs (...)" / "Running unittests src/lib.rs (...)" name the binary;
    # "test some::name ... FAILED" names a failed test in it.
    awk '/^ *Running / { bin = ($2 == "unittests") ? $3 : $2 }
         /^ *Doc-tests / { bin = "doc-tests " $2 }
         /^test .* \.\.\. FAILED$/ { sub(/^test /, ""); sub(/ \.\.\. FAILED$/, ""); print "  " bin "  " $0; n++ }
         END { if (n == 0) print "  (no single test failed: see the cargo errors below)" }' "$log"
    # A binary that crashed or did not build, as cargo reports it.
    grep -E '^error(\[|:)' "$log" | sed 's/^/  /' || true
fi
exit "$status"
