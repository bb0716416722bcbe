# Sourced by the test scripts that run a real `chatd serve`: start_chatd BIN WORK_DIR [NAME=VALUE...]
# starts one on a free loopback port with a fresh data directory under WORK_DIR (extra CHATD_*
# settings as arguments), waits until it is ready, and sets chatd_pid and chatd_base;
# stop_chatd stops it (TERM, then KILL after 10 s). The log is WORK_DIR/server.log.
chatd_pid=
chatd_base=

start_chatd() {
    local bin work=$2
    bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
    shift 2
    local port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    chatd_base="http://127.0.0.1:$port"
    mkdir -p "$work/data"
    (cd "$work" && exec env CHATD_LISTEN="127.0.0.1:$port" CHATD_DATA_DIR="$work/data" "$@" "$bin" serve) >"$work/server.log" 2>&1 &
    chatd_pid=$!
    for _ in $(seq 1 150); do
        curl -fsS "$chatd_base/api/ready" >/dev/null 2>&1 && return 0
        kill -0 "$chatd_pid" 2>/dev/null || break
        sleep 0.2
    done
    echo "chatd did not become ready:" >&2
    cat "$work/server.log" >&2
    return 1
}

stop_chatd() {
    if [ -n "$chatd_pid" ] && kill -0 "$chatd_pid" 2>/dev/null; then
        kill -TERM "$chatd_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$chatd_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$chatd_pid" 2>/dev/null || true
        wait "$chatd_pid" 2>/dev/null || true
    fi
    chatd_pid=
}
