#!/usr/bin/env bash
# The API contract, checked as people building on chatd would use it: the OpenAPI document
# (`chatd openapi`) linted with Redocly, the AsyncAPI document (`chatd asyncapi`) validated, a
# Python client (openapi-python-client) and a TypeScript one (openapi-typescript + openapi-fetch)
# generated from the document, type-checked strictly and run through a chat flow against a real
# `chatd serve`, and docs/examples/chat_client.py run across a server restart.
#
#   CHATD_BIN   the server binary (default: target/debug/chatd)
#
# Installs what it needs from the npm registry (`npm ci`, into tests/contract/node_modules) and
# PyPI (a throwaway venv); nothing is downloaded at run time. Prints one line per check and ends
# with "contract: N passed, M failed"; exits non-zero when any check failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/tests/contract"
bin=${CHATD_BIN:-$root/target/debug/chatd}
[ -x "$bin" ] || { echo "no chatd binary at $bin (build it, or set CHATD_BIN)" >&2; exit 2; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

# No telemetry, update checks or install-time reports from the tools.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true SCARF_ANALYTICS=false
export NO_UPDATE_NOTIFIER=1 npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

work=$(mktemp -d)
. "$root/scripts/chatd-server.sh"
trap 'stop_chatd; rm -rf "$work"' EXIT

passed=0
failed=0
failures=()
check() {
    local name=$1
    shift
    echo "==> contract $name"
    local started=$SECONDS
    if "$@"; then
        passed=$((passed + 1))
        echo "--> $name: passed ($((SECONDS - started)) s)"
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "--> $name: FAILED ($((SECONDS - started)) s)"
    fi
}

# --- Installs. A failed install fails the checks that need it, each with its own line.
cd "$here"
node_ok=1
# npm ci starts from scratch every time; the stamp skips it when the lock file has not changed.
if ! cmp -s package-lock.json node_modules/.contract-lock 2>/dev/null; then
    echo "==> npm ci in tests/contract"
    if npm ci --no-audit --no-fund --loglevel=error; then
        cp package-lock.json node_modules/.contract-lock
    else
        node_ok=0
    fi
fi
bin_dir="$here/node_modules/.bin"

venv="$work/venv"
echo "==> python venv with tests/contract/requirements.txt"
python_ok=1
python3 -m venv "$venv" &&
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r requirements.txt || python_ok=0
needs_node() { [ "$node_ok" = 1 ] || { echo "npm ci failed" >&2; return 1; }; }
needs_python() { [ "$python_ok" = 1 ] || { echo "installing the Python tools failed" >&2; return 1; }; }

# --- The documents, as the binary prints them, into out/ (where .redocly.lint-ignore.yaml names them).
docs="$here/out"
rm -rf "$docs" && mkdir -p "$docs"
"$bin" openapi >"$docs/openapi.json" || echo "chatd openapi failed" >&2
"$bin" asyncapi >"$docs/asyncapi.json" 2>"$work/asyncapi.err" || true

# --- A server for the flows: a free loopback port, a fresh data directory, the default limits
# (the flows stay well within them).
start_chatd "$bin" "$work"
base=$chatd_base

openapi_lint() {
    needs_node && [ -s "$docs/openapi.json" ] &&
        "$bin_dir/redocly" lint --config "$here/redocly.yaml" --format=stylish --max-problems=1000 "$docs/openapi.json"
}

asyncapi_validate() {
    needs_node || return 1
    if [ ! -s "$docs/asyncapi.json" ]; then
        echo "chatd asyncapi printed no document:" >&2
        head -n 5 "$work/asyncapi.err" >&2
        return 1
    fi
    node "$here/asyncapi-validate.mjs" "$docs/asyncapi.json"
}

# Generation fails on any warning: a schema the generator cannot read is dropped from the client.
python_types() {
    needs_python || return 1
    rm -rf "$work/py" && mkdir "$work/py" &&
        PATH="$venv/bin:$PATH" "$venv/bin/openapi-python-client" generate --path "$docs/openapi.json" \
            --meta none --output-path "$work/py/chatd_client" --fail-on-warning &&
        (cd "$work" && MYPYPATH="$work/py" "$venv/bin/mypy" --config-file "$here/python/mypy.ini" \
            --cache-dir "$work/mypy-cache" "$here/python/flow.py")
}

python_flow() {
    needs_python && [ -d "$work/py/chatd_client" ] &&
        CHATD_URL="$base" PYTHONPATH="$work/py" "$venv/bin/python" "$here/python/flow.py"
}

typescript_types() {
    needs_node || return 1
    rm -rf typescript/generated typescript/build
    # From the temporary directory: openapi-typescript would otherwise lint with redocly.yaml
    # here, and the lint is a check of its own.
    (cd "$work" && "$bin_dir/openapi-typescript" "$docs/openapi.json" -o "$here/typescript/generated/chatd.ts") &&
        "$bin_dir/tsc" -p typescript --strict --noEmit
}

typescript_flow() {
    needs_node && [ -f typescript/generated/chatd.ts ] &&
        "$bin_dir/tsc" -p typescript && CHATD_URL="$base" node typescript/build/flow.js
}

example_client() {
    needs_python && CHATD_BIN="$bin" "$venv/bin/python" "$here/example_client.py"
}

check openapi-lint openapi_lint
check asyncapi-validate asyncapi_validate
check python-types python_types
check python-flow python_flow
check typescript-types typescript_types
check typescript-flow typescript_flow
stop_chatd
check example-client example_client

if [ "$failed" -gt 0 ]; then
    echo "contract checks that failed: ${failures[*]}"
    [ -s "$work/server.log" ] && { echo "the flows' server log (last lines):"; tail -n 20 "$work/server.log"; }
fi
echo "contract: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
