#!/usr/bin/env bash
# Runs every chatd test: Rust unit and integration tests (real server, real SQLite, real HTTP and
# WebSocket clients), the web client's unit tests, the check that the generated API client matches
# the server's OpenAPI document, schemathesis against the OpenAPI document (anonymous and signed in),
# the API contract (the OpenAPI and AsyncAPI documents linted and validated, Python and TypeScript
# clients generated from the document and run against a server, the example WebSocket client),
# a 20-second run of each fuzz target, the browser end-to-end suite (Debian's Chromium, installed here
# when missing), and a seconds-long benchmark smoke run. Ends with one "N passed, N failed" line.
#
# Usage: bash scripts/test.sh [PART...]   with no PART, every part runs. Parts:
#   rust  cargo's tests, on SQLite (the cluster's tests on PostgreSQL and NATS)
#   rust-postgres  the same tests again with every server and CLI run on PostgreSQL
#   schemathesis  the OpenAPI fuzzing run    fuzz  the fuzz smoke run
#   client  unit tests and the API-client check    e2e  the browser suite    bench  the smoke run
#   contract  the documents linted, generated clients' flows, the example client
set -uo pipefail
cd "$(dirname "$0")/.."
export NG_CLI_ANALYTICS=false CARGO_TERM_COLOR=never
all_parts=(rust rust-postgres schemathesis contract fuzz client e2e bench)
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=("${all_parts[@]}")
for part in "${parts[@]}"; do
    if [[ " ${all_parts[*]} " != *" $part "* ]]; then
        echo "scripts/test.sh: unknown part \`$part\`; parts: ${all_parts[*]}" >&2
        exit 2
    fi
done
log_dir=$(mktemp -d)
failed_steps=()

# The tests' PostgreSQL server: CHATD_TEST_POSTGRES if set (CI gives one), or else a database made
# for this run on the local server when it answers, dropped on the way out. Test databases a crashed
# run left behind (chatd_t_<unix time>_…) are dropped once a day old.
postgres_for_tests() {
    source scripts/services.sh
    ensure_postgres || exit 1
    ensure_nats || exit 1
    local host=${CHATD_PG_HOST:-127.0.0.1} port=${CHATD_PG_PORT:-5432}
    _pg_answers || return 0
    local stale
    stale=$(psql -h "$host" -p "$port" -U postgres -d postgres -AtX -c "SELECT datname FROM pg_database
        WHERE datname ~ '^chatd_t_[0-9]+_' AND split_part(datname, '_', 3)::bigint < extract(epoch FROM now()) - 86400" 2>/dev/null)
    for db in $stale; do
        psql -h "$host" -p "$port" -U postgres -d postgres -qX -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1
    done
    [ -z "${CHATD_TEST_POSTGRES:-}" ] || return 0
    run_db="chatd_run_$(date +%Y%m%d%H%M%S)_$$"
    createdb -h "$host" -p "$port" -U postgres "$run_db" || return 0
    trap 'psql -h "'"$host"'" -p "'"$port"'" -U postgres -d postgres -qX -c "DROP DATABASE IF EXISTS \"'"$run_db"'\" WITH (FORCE)"' EXIT
    export CHATD_TEST_POSTGRES="postgres://postgres@$host:$port/$run_db"
    echo "tests: PostgreSQL database $run_db for this run"
}

wanted() {
    [[ " ${parts[*]} " == *" $1 "* ]]
}

step() {
    local name=$1
    shift
    echo "==> $name: $*"
    if "$@" 2>&1 | tee "$log_dir/$name.log"; then
        echo "==> $name: ok"
    else
        echo "==> $name: FAILED"
        failed_steps+=("$name")
    fi
}

step client-install bash -c '[ -d client/node_modules ] || npm --prefix client ci --no-audit --no-fund'
if wanted rust || wanted schemathesis || wanted contract || wanted client || wanted e2e; then
    step build cargo build --locked --workspace
fi
chatd_bin="$PWD/target/debug/chatd"
if wanted rust || wanted rust-postgres; then
    postgres_for_tests  # sets CHATD_TEST_POSTGRES to a database of this run's own, if none was given
fi
wanted rust && step rust env CHATD_TEST_BACKEND=sqlite cargo test --locked --workspace --no-fail-fast
if wanted rust-postgres; then
    if [ -n "${CHATD_TEST_POSTGRES:-}" ]; then
        step rust-postgres env CHATD_TEST_BACKEND=postgres cargo test --locked --workspace --no-fail-fast
    else
        echo "==> rust-postgres: skipped: PostgreSQL does not answer (CI requires it)"
    fi
fi
wanted schemathesis && step schemathesis env CHATD_BIN="$chatd_bin" bash tests/schemathesis/run.sh
wanted contract && step contract env CHATD_BIN="$chatd_bin" bash tests/contract/run.sh
wanted fuzz && step fuzz-smoke bash scripts/fuzz-smoke.sh
wanted client && step client-unit npm --prefix client run test:unit
wanted client && step api-check env CHATD_BIN="$chatd_bin" npm --prefix client run api:check
wanted e2e && step e2e env CHATD_BIN="$chatd_bin" npm --prefix client run e2e
# Keeps the load generator working: every scenario with small counts against a release server.
wanted bench && step bench-smoke env CHATD_SKIP_UI=1 bash bench/run.sh --smoke

# One closing line over every runner: cargo's "N passed; M failed", Vitest's "Tests  N passed",
# Playwright's "N passed" / "N failed", tests/contract/run.sh's "contract: N passed, M failed".
totals=$(cat "$log_dir"/*.log | python3 -c '
import re, sys
passed = failed = 0
for line in sys.stdin:
    line = re.sub(r"\x1b\[[0-9;]*m", "", line)  # runners colour their summaries
    m = re.search(r"test result: \w+\. (\d+) passed; (\d+) failed", line)
    if m:
        passed += int(m[1]); failed += int(m[2]); continue
    m = re.match(r"\s+Tests\s+(?:(\d+) failed \| )?(\d+) passed", line)
    if m:
        failed += int(m[1] or 0); passed += int(m[2]); continue
    m = re.match(r"contract: (\d+) passed, (\d+) failed$", line)
    if m:
        passed += int(m[1]); failed += int(m[2]); continue
    m = re.match(r"\s+(\d+) (passed|failed) \(\d", line)
    if m:
        if m[2] == "passed": passed += int(m[1])
        else: failed += int(m[1])
print(passed, failed)
')
read -r passed failed <<<"$totals"
if [ ${#failed_steps[@]} -gt 0 ]; then
    echo "failed steps: ${failed_steps[*]}"
    [ "$failed" -gt 0 ] || failed=${#failed_steps[@]}
fi
echo "tests: $passed passed, $failed failed"
[ ${#failed_steps[@]} -eq 0 ]
