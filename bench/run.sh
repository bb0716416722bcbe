#!/usr/bin/env bash
# Runs chatd's benchmark suite: builds release `chatd` and `chatd-bench`, starts a fresh
# `chatd serve` on loopback with a temporary data directory for each scenario, writes
# bench/results/<date>.json and prints the table.
#
#   bench/run.sh                  the full suite (about 25 minutes on 2 cores)
#   bench/run.sh --smoke          seconds-long run with small counts, for CI
#   bench/run.sh --scenarios "1 2 8"   only these scenarios
#   bench/run.sh -- --runs 5      anything after -- goes to every `chatd-bench scenario`
#   bench/run.sh --no-build       use the release binaries already built
#
# Each server listens on a free loopback port. CHATD_SKIP_UI=1 builds chatd without the web app:
# quicker, but scenario 8 then does not measure the real binary.
# Exit status is non-zero if any scenario saw a protocol error, a lost or duplicated message.
set -euo pipefail

cd "$(dirname "$0")/.."
# The load comes from one address and a few users at rates far above a person's: the abuse limits
# would measure themselves, so the benchmarked servers run without them.
export CHATD_RATE_LIMITS__MESSAGES_PER_SECOND=0 CHATD_RATE_LIMITS__MESSAGE_BURST=0 \
    CHATD_RATE_LIMITS__SIGNUPS_PER_ADDRESS_PER_HOUR=0 \
    CHATD_RATE_LIMITS__SOCKETS_PER_USER=0 CHATD_RATE_LIMITS__SIGNIN_FAILURES_PER_ADDRESS_PER_MINUTE=0 \
    CHATD_RATE_LIMITS__SIGNIN_FAILURES_PER_ACCOUNT_PER_MINUTE=0 CHATD_RATE_LIMITS__SIGNIN_FAILURES_PER_ACCOUNT_PER_HOUR=0 \
    CHATD_RATE_LIMITS__SIGNINS_PER_ADDRESS_PER_MINUTE=0 CHATD_RATE_LIMITS__SIGNINS_PER_ACCOUNT_PER_MINUTE=0 \
    CHATD_RATE_LIMITS__SYNCS_PER_USER_PER_MINUTE=0 CHATD_RATE_LIMITS__CONNECTIONS_PER_ADDRESS=0
# Scenario 6 measures how fast 200 sign-ins at once are served, not how fast they are turned away
# (the default hashing queue, 16 per core, answers most of them 503 at once).
export CHATD_AUTH__HASH_QUEUE_PER_CORE=0
smoke=""
build=1
scenarios="8 1 2 3 6 4 5 7 9"
out=""
extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --smoke) smoke="--smoke" ;;
        --no-build) build=0 ;;
        --scenarios) scenarios="$2"; shift ;;
        --out) out="$2"; shift ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

if [[ $build == 1 ]]; then
    echo "building release chatd and chatd-bench…" >&2
    cargo build --release --quiet -p chatd -p chatd-bench
fi
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"

work="$(mktemp -d "${TMPDIR:-/tmp}/chatd-bench.XXXXXX")"
# Private copies, so that a rebuild in the shared target directory cannot swap them mid-suite.
cp "$target_dir/release/chatd" "$target_dir/release/chatd-bench" "$work/"
chatd="$work/chatd"
bench="$work/chatd-bench"
server_pid=""
stop_server() {
    if [[ -n "$server_pid" ]]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 200); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
trap 'stop_server; rm -rf "$work"' EXIT

failed=0
files=()
for n in $scenarios; do
    result="$work/scenario-$n.json"
    files+=("$result")
    args=(scenario "$n" $smoke "${extra[@]}")
    case "$n" in
        7)
            args+=(--chatd "$chatd")
            [[ -d "$work/data-5" ]] && args+=(--seeded-data-dir "$work/data-5")
            ;;
        8) args+=(--chatd "$chatd") ;;
        *)
            port="$("$bench" free-port)"
            data="$work/data-$n"
            mkdir -p "$data"
            CHATD_LISTEN="127.0.0.1:$port" CHATD_DATA_DIR="$data" "$chatd" serve >"$work/server-$n.log" 2>&1 &
            server_pid=$!
            if ! "$bench" wait-ready --url "http://127.0.0.1:$port" --timeout 30 --pid "$server_pid"; then
                failed=1
                echo "scenario $n: the server did not start; its log:" >&2
                tail -n 20 "$work/server-$n.log" >&2 || true
                stop_server
                continue
            fi
            args+=(--url "http://127.0.0.1:$port" --server-pid "$server_pid")
            ;;
    esac
    echo "── scenario $n" >&2
    if ! "$bench" "${args[@]}" >"$result"; then
        failed=1
        echo "scenario $n FAILED; server log tail:" >&2
        tail -n 20 "$work/server-$n.log" 2>/dev/null >&2 || true
    fi
    stop_server
done

if [[ -z "$out" ]]; then
    if [[ -n "$smoke" ]]; then out="$work/smoke.json"; else out="bench/results/$(date -u +%F).json"; fi
fi
command="bench/run.sh${smoke:+ --smoke}"
[[ "$scenarios" != "8 1 2 3 6 4 5 7 9" ]] && command+=" --scenarios \"$scenarios\""
[[ ${#extra[@]} -gt 0 ]] && command+=" -- ${extra[*]}"
"$bench" report --out "$out" --commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    --date "$(date -u +%F)" --command "$command" $smoke "${files[@]}"
[[ -n "$smoke" ]] || echo "results written to $out" >&2
exit "$failed"
