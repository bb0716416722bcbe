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
#   bench/run.sh --backend postgres --nodes 3   on PostgreSQL, a cluster of 3 nodes over NATS
#
# Each server listens on a free loopback port. CHATD_SKIP_UI=1 builds chatd without the web app:
# quicker, but scenario 8 then does not measure the real binary.
# --backend postgres gives each scenario a fresh database on the PostgreSQL server at
# CHATD_BENCH_POSTGRES (default postgres://postgres@127.0.0.1:5432/postgres, a user that may create
# databases), dropped afterwards; --nodes N > 1 runs N nodes on it that talk over the NATS server at
# CHATD_BENCH_NATS_URL (default nats://127.0.0.1:4222), with a subject prefix of the scenario's own.
# Scenarios 7 and 8 start or read a SQLite server of their own and are skipped on PostgreSQL.
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
backend=sqlite
nodes=1
extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --smoke) smoke="--smoke" ;;
        --no-build) build=0 ;;
        --scenarios) scenarios="$2"; shift ;;
        --out) out="$2"; shift ;;
        --backend) backend="${2:-}"; shift ;;
        --nodes) nodes="${2:-}"; shift ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
if [[ $backend != sqlite && $backend != postgres ]]; then
    echo "--backend is sqlite or postgres, not \`$backend\`" >&2
    exit 2
fi
if ! [[ $nodes =~ ^[1-9][0-9]?$ ]]; then
    echo "--nodes is a number of nodes from 1 to 99, not \`$nodes\`" >&2
    exit 2
fi
if [[ $nodes -gt 1 && $backend != postgres ]]; then
    echo "--nodes $nodes needs --backend postgres: the nodes of a cluster share one PostgreSQL database" >&2
    exit 2
fi
postgres="${CHATD_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}"
nats_url="${CHATD_BENCH_NATS_URL:-nats://127.0.0.1:4222}"
if [[ $backend == postgres ]]; then
    if ! psql "$postgres" -qAtX -c "SELECT 1" >/dev/null; then
        echo "PostgreSQL at $postgres does not answer (set CHATD_BENCH_POSTGRES)" >&2
        exit 1
    fi
    nats_address="${nats_url#nats://}"
    if [[ $nodes -gt 1 ]] && ! (exec 3<>"/dev/tcp/${nats_address%:*}/${nats_address##*:}") 2>/dev/null; then
        echo "NATS at $nats_url does not answer (set CHATD_BENCH_NATS_URL)" >&2
        exit 1
    fi
fi

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
server_pids=()
stop_server() {
    [[ ${#server_pids[@]} -gt 0 ]] || return 0
    kill -TERM "${server_pids[@]}" 2>/dev/null || true
    for _ in $(seq 1 200); do
        kill -0 "${server_pids[@]}" 2>/dev/null || break
        sleep 0.1
    done
    local pid
    for pid in "${server_pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    server_pids=()
}
# The scenario's PostgreSQL database while it exists.
database=""
drop_database() {
    if [[ -n "$database" ]]; then
        psql "$postgres" -qAtX -c "DROP DATABASE IF EXISTS \"$database\" WITH (FORCE)" >/dev/null ||
            echo "could not drop database $database" >&2
        database=""
    fi
}
server_logs() {
    local log
    for log in "$work"/server-"$1"*.log; do
        [[ -f "$log" ]] || continue
        echo "── $(basename "$log"):" >&2
        tail -n 20 "$log" >&2 || true
    done
}
trap 'stop_server; drop_database; rm -rf "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
# Nodes of one cluster share the secret their tokens are signed with.
secret="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"

failed=0
files=()
for n in $scenarios; do
    result="$work/scenario-$n.json"
    args=(scenario "$n" $smoke "${extra[@]}")
    case "$n" in
        7|8)
            if [[ $backend == postgres ]]; then
                echo "── scenario $n: skipped on postgres (it measures a SQLite server of its own; run it with --backend sqlite)" >&2
                continue
            fi
            args+=(--chatd "$chatd")
            [[ $n == 7 && -d "$work/data-5" ]] && args+=(--seeded-data-dir "$work/data-5")
            files+=("$result")
            ;;
        *)
            # A scenario whose servers do not start leaves an empty result: a missing row.
            files+=("$result")
            : >"$result"
            settings=()
            if [[ $backend == postgres ]]; then
                database="chatd_bench_$$_$n"
                if ! psql "$postgres" -qAtX -c "CREATE DATABASE \"$database\"" >/dev/null; then
                    database=""
                    failed=1
                    echo "scenario $n: could not create its database" >&2
                    continue
                fi
                settings+=(CHATD_DATABASE__URL="${postgres%/*}/$database" CHATD_AUTH__JWT_SECRET="$secret")
                if [[ $nodes -gt 1 ]]; then
                    settings+=(CHATD_CLUSTER__NATS_URL="$nats_url" CHATD_CLUSTER__SUBJECT_PREFIX="bench$$s$n$RANDOM")
                fi
                args+=(--postgres-db "$database")
            fi
            urls=()
            started=1
            # One node at a time: the first migrates the new database.
            for node in $(seq 1 "$nodes"); do
                port="$("$bench" free-port)"
                data="$work/data-$n"
                [[ $nodes -gt 1 ]] && data+="-node$node"
                log="$work/server-$n.log"
                [[ $nodes -gt 1 ]] && log="$work/server-$n-node$node.log"
                mkdir -p "$data"
                node_settings=("${settings[@]}")
                [[ $backend == postgres ]] && node_settings+=(CHATD_CLUSTER__NODE_NAME="node$node")
                env "${node_settings[@]}" CHATD_LISTEN="127.0.0.1:$port" CHATD_DATA_DIR="$data" "$chatd" serve >"$log" 2>&1 &
                server_pids+=($!)
                urls+=("http://127.0.0.1:$port")
                if ! "$bench" wait-ready --url "http://127.0.0.1:$port" --timeout 30 --pid "$!"; then
                    started=0
                    break
                fi
            done
            if [[ $started == 0 ]] || ! "$bench" wait-ready --url "$(IFS=,; echo "${urls[*]}")" --timeout 5; then
                failed=1
                echo "scenario $n: the server did not start; its log:" >&2
                server_logs "$n"
                stop_server
                drop_database
                continue
            fi
            args+=(--url "$(IFS=,; echo "${urls[*]}")" --server-pid "$(IFS=,; echo "${server_pids[*]}")")
            ;;
    esac
    echo "── scenario $n${database:+ on $database}$([[ $nodes -gt 1 ]] && echo ", $nodes nodes")" >&2
    if ! "$bench" "${args[@]}" >"$result"; then
        failed=1
        echo "scenario $n FAILED; server log tail:" >&2
        server_logs "$n"
    fi
    stop_server
    drop_database
done

if [[ -z "$out" ]]; then
    if [[ -n "$smoke" ]]; then out="$work/smoke.json"; else out="bench/results/$(date -u +%F).json"; fi
fi
command="bench/run.sh${smoke:+ --smoke}"
[[ $backend != sqlite ]] && command+=" --backend $backend"
[[ $nodes != 1 ]] && command+=" --nodes $nodes"
[[ "$scenarios" != "8 1 2 3 6 4 5 7 9" ]] && command+=" --scenarios \"$scenarios\""
[[ ${#extra[@]} -gt 0 ]] && command+=" -- ${extra[*]}"
"$bench" report --out "$out" --commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    --date "$(date -u +%F)" --command "$command" --backend "$backend" --nodes "$nodes" $smoke "${files[@]}"
[[ -n "$smoke" ]] || echo "results written to $out" >&2
exit "$failed"
