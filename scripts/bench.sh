#!/usr/bin/env bash
# Produces BENCHMARKS.md: every figure of issue 6, the machine it ran on, and how to reproduce
# it. One entry point, one machine, one run:
#
#   scripts/bench.sh                      # writes BENCHMARKS.md at the repository root
#
# It installs what it needs into a private virtualenv (moto's server and Cloud Custodian),
# builds hanko in release, starts its own moto on 127.0.0.1 (a free port), stops everything it
# started when it ends (normally, on error, on Ctrl-C or at the time limit) and is bounded in
# time. It is not part of CI's critical path.
#
# Environment (all optional):
#   HANKO_BENCH_ROUNDS        rounds of the side-by-side with Cloud Custodian (default 10)
#   HANKO_BENCH_DRILL_ROUNDS  rounds of `cargo bench --bench drill` (default 20)
#   HANKO_BENCH_FLOOR_ROUNDS  rounds of `cargo bench --bench floor` (default 10)
#   HANKO_BENCH_CORE=1        also run `cargo bench --bench core` (long: builds a 1,000,000-event log)
#   HANKO_BENCH_SCALE         burst sizes of the scale curve, §10 (default 1000,10000,100000)
#   HANKO_BENCH_SMOKE=1       the system benchmarks (§1-§5) with small counts: checks the wiring
#                             in a few minutes, measures nothing (the file says so)
#   HANKO_BENCH_TIME_LIMIT    seconds before the whole run is stopped (default 5400)
#   HANKO_BENCH_OUT           output file (default BENCHMARKS.md at the repository root)
#   HANKO_BENCH_VENV          virtualenv for moto and c7n (default ~/.cache/hanko/bench-venv)
#   HANKO_FIXTURES            the fixtures folder (default: tests/fixtures in the repository)
#   CARGO_TARGET_DIR          cargo's build directory (default ~/.cache/hanko/target)
#
# Layout: one function per section writes a Markdown fragment (and optionally summary-table
# rows) into a temporary directory; `assemble` joins them in file-name order. To add a
# figure, write a `section_*` function and call it from `main`.
set -euo pipefail

# Bound the whole run: re-run this script under `timeout`, which signals the whole process
# group (cargo, python, moto) when the limit passes; the trap below then cleans up.
if [[ -z "${HANKO_BENCH_BOUNDED:-}" ]]; then
    export HANKO_BENCH_BOUNDED=1
    exec timeout --kill-after=30 "${HANKO_BENCH_TIME_LIMIT:-5400}" bash "$0" "$@"
fi

cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${HANKO_BENCH_OUT:-$ROOT/BENCHMARKS.md}
ROUNDS=${HANKO_BENCH_ROUNDS:-10}
DRILL_ROUNDS=${HANKO_BENCH_DRILL_ROUNDS:-20}
FLOOR_ROUNDS=${HANKO_BENCH_FLOOR_ROUNDS:-10}
SMOKE=$([[ "${HANKO_BENCH_SMOKE:-}" == 1 ]] && echo 1 || true)
export HANKO_BENCH_SMOKE=${SMOKE:-0}
VENV=${HANKO_BENCH_VENV:-$HOME/.cache/hanko/bench-venv}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/hanko/target}

FRAG=$(mktemp -d "${TMPDIR:-/tmp}/hanko-bench.XXXXXX")
MOTO_PID=
cleanup() {
    local rc=$?
    if [[ -n "$MOTO_PID" ]]; then
        kill "$MOTO_PID" 2>/dev/null || true
        wait "$MOTO_PID" 2>/dev/null || true
    fi
    rm -rf "$FRAG"
    if [[ $rc -ne 0 ]]; then
        echo "bench: stopped with status $rc; $OUT was not (re)written" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { echo "bench: $*" >&2; }

# ---- prerequisites ---------------------------------------------------------------------

find_fixtures() {
    local d
    if [[ -n "${HANKO_FIXTURES:-}" ]]; then
        for d in "$HANKO_FIXTURES/guardduty" "$HANKO_FIXTURES"; do
            [[ -d "$d/api" ]] && { echo "$d"; return; }
        done
        echo "bench: HANKO_FIXTURES=$HANKO_FIXTURES holds neither guardduty/api nor api" >&2
        exit 2
    fi
    d="$ROOT/tests/fixtures/guardduty"
    [[ -d "$d/api" ]] && { echo "$d"; return; }
    echo "bench: GuardDuty fixtures not found in $d (part of the repository)" \
         "or set HANKO_FIXTURES=/path/to/fixtures" >&2
    exit 2
}

install_python_tools() {
    if [[ ! -x "$VENV/bin/python" ]]; then
        say "creating virtualenv $VENV"
        python3 -m venv "$VENV"
    fi
    if ! "$VENV/bin/python" -c 'import moto, c7n, boto3, flask' 2>/dev/null; then
        say "installing moto's server and Cloud Custodian into $VENV (pip install 'moto[server]' c7n)"
        "$VENV/bin/pip" install --quiet 'moto[server]>=5.1,<6' 'c7n>=0.9,<0.10'
    fi
    for bin in moto_server custodian; do
        [[ -x "$VENV/bin/$bin" ]] || { echo "bench: $VENV/bin/$bin missing after pip install" >&2; exit 2; }
    done
    # `cargo bench --bench drill` and `--bench floor` start `moto_server` from PATH: the same
    # version.
    export PATH="$VENV/bin:$PATH"
}

build_hanko() {
    # One build for every section: the bench targets (release profile) and the `hanko` binary
    # cargo builds with them (`CARGO_BIN_EXE_hanko`, which §1-§5 run). A separate
    # `cargo build --release` would resolve features without the dev-dependencies and compile
    # every dependency a second time (half an hour on a shared 2-core machine) for a binary
    # that differs only in the features of shared dependencies.
    say "building hanko and the benches (release) into $CARGO_TARGET_DIR"
    local benches=(--bench system --bench drill --bench floor)
    [[ "${HANKO_BENCH_CORE:-}" == 1 ]] && benches+=(--bench core)
    cargo bench --locked --no-run "${benches[@]}" >&2
    HANKO="$CARGO_TARGET_DIR/release/hanko"
    [[ -x "$HANKO" ]] || { echo "bench: $HANKO not built" >&2; exit 2; }
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_moto() {
    local port i
    port=$(free_port)
    "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$FRAG/moto.log" 2>&1 &
    MOTO_PID=$!
    for i in $(seq 1 300); do
        if ! kill -0 "$MOTO_PID" 2>/dev/null; then
            echo "bench: moto_server exited early:" >&2; cat "$FRAG/moto.log" >&2; exit 2
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            MOTO_ENDPOINT="http://127.0.0.1:$port"
            say "moto listening on $MOTO_ENDPOINT (pid $MOTO_PID)"
            return
        fi
        sleep 0.1
    done
    echo "bench: moto_server did not listen on 127.0.0.1:$port within 30 s" >&2
    exit 2
}

# ---- sections: each writes $FRAG/NN-name.md, and may add rows to $FRAG/NN-name.summary ------
# Summary rows: "| figure | value | section |".

# The system benchmarks (`cargo bench --bench system -- PART`): the release binary against the
# Discord fake, moto and the GuardDuty stand-in. The bench prints `md<TAB>N<TAB>line` (section
# N's Markdown) and `summary<TAB>N<TAB>figure<TAB>value`; a part that fails or overruns its
# bound leaves its sections marked, and the rest of the run goes on.
SYSTEM_TITLES=([1]="Approval to containment" [2]="Finding to card" [3]="Burst" [4]="Audit" [5]="Footprint" [10]="Scale curve"
    [12]="Approval to containment on DynamoDB" [13]="Finding to card on DynamoDB")
SYSTEM_CMD="cargo bench --locked --bench system -- PART"

system_part() { # part, time bound in seconds, section numbers...
    local part=$1 bound=$2 out="$FRAG/system-$1.out" n title anchor
    shift 2
    say "cargo bench --bench system -- $part${SMOKE:+ (smoke)} (at most ${bound} s)"
    local status=0
    timeout --kill-after=10 "$bound" cargo bench --locked --bench system -- "$part" \
        >"$out" 2>"$FRAG/system-$part.err" || status=$?
    for n in "$@"; do
        title=${SYSTEM_TITLES[$n]}
        anchor="#$n-$(echo "$title" | tr 'A-Z ' 'a-z-')"
        {
            echo "## $n. $title"
            echo
            awk -F'\t' -v n="$n" '$1 == "md" && $2 == n { sub(/^md\t[0-9]+\t/, ""); print }' "$out"
            if [[ $status -ne 0 ]]; then
                echo "**Not (fully) measured in this run**: \`${SYSTEM_CMD/PART/$part}\` stopped with status $status$([[ $status -eq 124 ]] && echo " at its ${bound} s bound"). Its last lines:"
                echo
                echo '```'
                tail -n 15 "$FRAG/system-$part.err"
                echo '```'
            fi
            echo
            echo "Made by \`${SYSTEM_CMD/PART/$part}\` (\`benches/system.rs\`)."
            echo
        } >"$FRAG/$(printf %02d "$n")-section.md"
        awk -F'\t' -v n="$n" -v a="$anchor" '$1 == "summary" && $2 == n { printf "| %s | %s | [§%s](%s) |\n", $3, $4, n, a }' \
            "$out" >"$FRAG/$(printf %02d "$n")-section.summary"
        if [[ ! -s "$FRAG/$(printf %02d "$n")-section.summary" ]]; then
            echo "| $n. $title | not measured (the bench stopped: see §$n) | [§$n]($anchor) |" \
                >"$FRAG/$(printf %02d "$n")-section.summary"
        fi
    done
    if [[ $status -ne 0 ]]; then
        say "system $part stopped with status $status (see its section)"
    fi
}

section_approval() {
    # §1 and §2 run in one bot process: each SQS finding's card is then approved.
    system_part approval 1200 1 2
}

section_finding_to_card() {
    :   # measured with §1 (section_approval)
}

section_burst() {
    system_part burst 900 3
}

section_audit() {
    system_part audit 1500 4
}

section_scale() {
    # The burst at 1,000, 10,000 and 100,000 findings (HANKO_BENCH_SCALE), one process each.
    system_part scale 1800 10
}

section_dynamodb() {
    say "cargo bench --bench dynamodb (the store on DynamoDB, moto)"
    local out="$FRAG/dynamodb.out" anchor="#11-the-store-on-dynamodb-cargo-bench---bench-dynamodb"
    if ! timeout 1800 cargo bench --locked --bench dynamodb >"$out" 2>"$FRAG/dynamodb.err"; then
        say "dynamodb bench stopped (see its section)"
    fi
    {
        echo "## 11. The store on DynamoDB (\`cargo bench --bench dynamodb\`)"
        echo
        awk -F'\t' '$1 == "md" && $2 == 11 { sub(/^md\t11\t/, ""); print }' "$out"
        echo
    } >"$FRAG/11-dynamodb.md"
    awk -F'\t' -v a="$anchor" '$1 == "summary" && $2 == 11 { printf "| %s | %s | [§11](%s) |\n", $3, $4, a }' \
        "$out" >"$FRAG/11-dynamodb.summary"
}

section_footprint() {
    system_part footprint 900 5
}

section_approval_dynamodb() {
    # §1 and §2 with the store on DynamoDB (moto), one replica.
    system_part approval-dynamodb 1500 12 13
}

section_side_by_side() {
    say "side by side with Cloud Custodian: $ROUNDS rounds (+1 warm-up)"
    local versions
    versions="moto $("$VENV/bin/python" -c 'import moto; print(moto.__version__)'), $("$VENV/bin/custodian" version 2>/dev/null | sed 's/^/c7n /'), boto3 $("$VENV/bin/python" -c 'import boto3; print(boto3.__version__)'), Python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())')."
    "$VENV/bin/python" "$ROOT/scripts/bench/side_by_side.py" \
        --endpoint "$MOTO_ENDPOINT" --hanko "$HANKO" --custodian "$VENV/bin/custodian" \
        --fixtures "$FIXTURES/api" --workdir "$FRAG/side-by-side" --rounds "$ROUNDS" \
        --versions "$versions" --raw "$FRAG/side-by-side.json" \
        --summary "$FRAG/06-side-by-side.summary" >"$FRAG/06-side-by-side.md"
    echo >>"$FRAG/06-side-by-side.md"
}

section_drill() {
    say "cargo bench --bench drill ($DRILL_ROUNDS rounds)"
    local out="$FRAG/drill.out"
    HANKO_BENCH_ROUNDS=$DRILL_ROUNDS cargo bench --locked --bench drill >"$out"
    {
        echo "## 7. In-process drill (\`cargo bench --bench drill\`)"
        echo
        echo "One full drill per playbook (plan, request, approval, execution, verification) in"
        echo "one process through the real aws-sdk clients against its own moto server: no process"
        echo "start-up, no store opening. $DRILL_ROUNDS rounds, fresh resources every round."
        echo
        echo '```'
        grep '^drill/' "$out"
        echo '```'
        echo
    } >"$FRAG/07-drill.md"
    grep '^drill/' "$out" | while read -r name _ n _ median _ _ p90 _ _ min _; do
        echo "| 7. ${name#drill/} playbook in process (median, p90, min over $n) | $median ms, $p90 ms, $min ms | [§7](#7-in-process-drill-cargo-bench---bench-drill) |"
    done >"$FRAG/07-drill.summary"
}

# §9: `hanko drill` against the floor, a process that makes exactly the AWS calls of the same
# containment and nothing else (`benches/floor.rs`, `benches/support/floor_calls.rs`). The bench
# prints `floor/key` and `floor/instance` (medians, p90, min, ratio, n), `floor/calls` (a census
# of both tools' operations through a proxy), `floor/list` (each floor's calls) and
# `floor/goal`.
section_floor() {
    say "cargo bench --bench floor ($FLOOR_ROUNDS rounds, hanko drill from $HANKO)"
    local out="$FRAG/floor.out" anchor="#9-floor-cargo-bench---bench-floor"
    HANKO_BIN="$HANKO" HANKO_BENCH_ROUNDS=$FLOOR_ROUNDS cargo bench --locked --bench floor >"$out"
    # field: 1 name, 4 hanko median, 7 p90, 10 min, 15 floor median, 18 p90, 21 min, 25 ratio, 28 n
    local rows
    rows=$(awk '$1 == "floor/key" || $1 == "floor/instance"' "$out")
    {
        echo "## 9. Floor (\`cargo bench --bench floor\`)"
        echo
        echo "\`hanko drill\` against a floor: a process that makes exactly the AWS calls of the same"
        echo "containment and nothing else, with the real aws-sdk clients, on the same moto. The floor is"
        echo "the bench binary started again, so it pays process start, a tokio runtime and"
        echo "\`aws_config\` loading like hanko; then hanko's calls (capture, apply and verify of each"
        echo "step), each call waiting only for the answers it needs, without store, audit or planning."
        echo "hanko is the release binary: \`hanko drill FINDING --db FRESH --approve-as bench --json\`."
        echo "Both timed from process start to exit, fresh resources every run, the order alternating;"
        echo "one warm-up and one census round (through a logging proxy) unmeasured. The end state of"
        echo "every run is read back from moto and must be the same for both. The goal of issue 14 for"
        echo "the leaked key: \`hanko drill\` at most 1.2 times the floor."
        echo
        echo "| containment | floor median (p90, min) | \`hanko drill\` median (p90, min) | ratio (medians) | n |"
        echo "|---|---|---|---|---|"
        echo "$rows" | awk '{
            what = ($1 == "floor/key") ? "leaked key (deactivate, revoke older sessions)" \
                : "instance, two interfaces and two volumes (snapshot, protect, keep volumes, isolate, tag)"
            printf "| %s | %s ms (%s, %s) | %s ms (%s, %s) | %s | %s |\n", what, $15, $18, $21, $4, $7, $10, $25, $28
        }'
        echo
        echo "The leaked key against the goal: $(sed -n 's/^floor\/goal key: //p' "$out")."
        echo
        echo "Operations each tool made in the census round:"
        echo
        sed -n 's/^floor\/calls \([a-z]*\): /- \1: /p' "$out"
        echo
        echo "The floors' calls (\`→\` after, \`‖\` at the same time; in full in \`benches/support/floor_calls.rs\`):"
        echo
        sed -n 's/^floor\/list \([a-z]*\): /- \1: /p' "$out"
        echo
    } >"$FRAG/09-floor.md"
    # The key's row carries the goal's verdict (`goal ≤ 1.2: met`).
    echo "$rows" | awk -v a="$anchor" -v goal="$(sed -n 's/^floor\/goal key: ratio [0-9.]*, //p' "$out")" '{
        what = ($1 == "floor/key") ? "leaked key" : "two-interface instance"
        printf "| 9. %s: `hanko drill` vs the floor (medians over %s) | %s ms vs %s ms (ratio %s%s) | [§9](%s) |\n",
            what, $28, $4, $15, $25, ($1 == "floor/key") ? "; " goal : "", a
    }' >"$FRAG/09-floor.summary"
}

section_core() {
    if [[ "${HANKO_BENCH_CORE:-}" != 1 ]]; then
        {
            echo "## 8. Core (\`cargo bench --bench core\`)"
            echo
            echo "Not run in this pass (set \`HANKO_BENCH_CORE=1\`: it builds a 1,000,000-event audit log first and takes long)."
            echo
        } >"$FRAG/08-core.md"
        echo "| 8. core (parse, plan, vote, audit queries) | not run (HANKO_BENCH_CORE=1) | [§8](#8-core-cargo-bench---bench-core) |" >"$FRAG/08-core.summary"
        return
    fi
    say "cargo bench --bench core (long)"
    local out="$FRAG/core.out"
    cargo bench --locked --bench core >"$out"
    {
        echo "## 8. Core (\`cargo bench --bench core\`)"
        echo
        echo "criterion's figures ([low median high] of the mean time per iteration):"
        echo
        echo '```'
        grep -v '^Benchmarking\|^$\|^Gnuplot\|^Found [0-9]* outliers\|^  [0-9]* (' "$out" || true
        echo '```'
        echo
    } >"$FRAG/08-core.md"
    echo "| 8. core (parse, plan, vote, audit queries) | criterion figures | [§8](#8-core-cargo-bench---bench-core) |" >"$FRAG/08-core.summary"
}

machine() {
    {
        echo "## Machine"
        echo
        echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), hanko commit \`$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)\`$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
        echo "- \`nproc\`: $(nproc)"
        echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (the machine may be shared: see the spread)"
        echo "- \`uname -a\`: \`$(uname -a)\`"
        echo "- $(rustc --version), $(cargo --version)"
        echo "- moto $("$VENV/bin/python" -c 'import moto; print(moto.__version__)'), c7n $("$VENV/bin/custodian" version 2>/dev/null), boto3 $("$VENV/bin/python" -c 'import boto3; print(boto3.__version__)'), Python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())')"
        echo
        echo '`free -h`:'
        echo
        echo '```'
        free -h
        echo '```'
        echo
    } >"$FRAG/00-machine.md"
}

reproduce() {
    {
        echo "## How to reproduce"
        echo
        echo "From a clone, with Rust and Python 3:"
        echo
        echo '```sh'
        echo "HANKO_BENCH_ROUNDS=$ROUNDS HANKO_BENCH_DRILL_ROUNDS=$DRILL_ROUNDS HANKO_BENCH_FLOOR_ROUNDS=$FLOOR_ROUNDS${HANKO_BENCH_CORE:+ HANKO_BENCH_CORE=$HANKO_BENCH_CORE} scripts/bench.sh"
        echo '```'
        echo
        echo "It creates a virtualenv (\`$([[ $VENV == "$HOME"/* ]] && echo "~${VENV#"$HOME"}" || echo "$VENV")\`) with \`moto[server]\` and \`c7n\`, builds \`hanko\`"
        echo "in release, starts moto on a free port of 127.0.0.1 and writes this file. It stops itself after"
        echo "\`HANKO_BENCH_TIME_LIMIT\` seconds (default 5400). The side-by-side logic is"
        echo "\`scripts/bench/side_by_side.py\`; §9 is \`benches/floor.rs\`; §1–§5 are \`benches/system.rs\` (one part at a time:"
        echo "\`cargo bench --bench system -- approval|burst|audit|footprint\`, \`HANKO_BENCH_SMOKE=1\` for a"
        echo "quick check with small counts); per-section notes are in \`scripts/bench.sh\`."
        echo
    } >"$FRAG/99-reproduce.md"
}

assemble() {
    local tmp="$OUT.tmp"
    {
        echo "# hanko benchmarks"
        echo
        echo "Generated by \`scripts/bench.sh\` on one machine in one run; do not edit by hand."
        echo "Times are wall-clock milliseconds; a latency is a p50/p99 over many samples, any other figure a"
        echo "median over repeated runs with its spread."
        [[ -n "$SMOKE" ]] && echo && echo "**Smoke run (\`HANKO_BENCH_SMOKE=1\`): §1–§5 ran with small counts; they check the wiring, not the figures.**"
        echo
        echo "| figure | value | section |"
        echo "|---|---|---|"
        cat "$FRAG"/*.summary 2>/dev/null || true
        echo
        for f in "$FRAG"/[0-9][0-9]-*.md; do
            cat "$f"
        done
    } >"$tmp"
    mv "$tmp" "$OUT"
    say "wrote $OUT"
}

main() {
    FIXTURES=$(find_fixtures)
    export HANKO_FIXTURES="$FIXTURES"
    install_python_tools
    build_hanko
    start_moto
    machine
    section_approval
    section_finding_to_card
    section_burst
    section_scale
    section_audit
    section_footprint
    section_side_by_side
    section_drill
    section_core
    section_floor
    section_dynamodb
    section_approval_dynamodb
    reproduce
    assemble
}

main "$@"
