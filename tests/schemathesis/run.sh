#!/usr/bin/env bash
# Property-based tests of the REST API with schemathesis: a real `chatd serve` on a free loopback
# port with a fresh data directory, tested from its own /api/openapi.json twice — anonymous, and
# signed in as a user who has a peer to message. Every default check runs; the few exclusions below
# are explained where they are made and in docs/security.md ("Hostile input").
#
#   CHATD_BIN            the server binary (default: target/debug/chatd)
#   SCHEMATHESIS_EXAMPLES  examples per operation and phase (default: 50)
#   SCHEMATHESIS_SEED      the seed, so a run can be repeated (default: 20261124)
#
# Exits non-zero on any failure. The server is always stopped.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

version=4.32.5
venv="$root/target/schemathesis-venv"
bin=${CHATD_BIN:-$root/target/debug/chatd}
examples=${SCHEMATHESIS_EXAMPLES:-50}
seed=${SCHEMATHESIS_SEED:-20261124}

[ -x "$bin" ] || { echo "no chatd binary at $bin (build it, or set CHATD_BIN)" >&2; exit 2; }

installed() { "$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null; }
if [ "$(installed)" != "$version" ]; then
    echo "==> installing schemathesis $version into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi

work=$(mktemp -d)
. "$root/scripts/chatd-server.sh"
trap 'stop_chatd; rm -rf "$work"' EXIT

# Abuse limits off: schemathesis signs in and sends far faster than any person, and a 429 is not
# what is under test here (tests/abuse.rs covers the limits).
start_chatd "$bin" "$work" \
    CHATD_RATE_LIMITS__SIGNUPS_PER_ADDRESS_PER_HOUR=0 \
    CHATD_RATE_LIMITS__SIGNIN_FAILURES_PER_ACCOUNT_PER_MINUTE=0 \
    CHATD_RATE_LIMITS__SIGNIN_FAILURES_PER_ADDRESS_PER_MINUTE=0 \
    CHATD_RATE_LIMITS__MESSAGES_PER_SECOND=0 \
    CHATD_RATE_LIMITS__SIGNINS_PER_ADDRESS_PER_MINUTE=0 \
    CHATD_RATE_LIMITS__SIGNINS_PER_ACCOUNT_PER_MINUTE=0 \
    CHATD_RATE_LIMITS__SIGNIN_FAILURES_PER_ACCOUNT_PER_HOUR=0 \
    CHATD_RATE_LIMITS__SYNCS_PER_USER_PER_MINUTE=0 \
    CHATD_RATE_LIMITS__CONNECTIONS_PER_ADDRESS=0 || exit 1
base=$chatd_base

json_post() { curl -fsS -X POST -H 'Content-Type: application/json' --data "$2" "$base$1"; }
password=schemathesis-password
json_post /api/signup "{\"username\":\"st_alice\",\"password\":\"$password\"}" >/dev/null
json_post /api/signup "{\"username\":\"st_bob\",\"password\":\"$password\"}" >/dev/null
token=$(json_post /api/signin "{\"username\":\"st_alice\",\"password\":\"$password\"}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
# One message, so that history, conversations and read markers have something to return, and a
# room st_alice owns with st_bob in it, for the operations on rooms and their members.
curl -fsS -X POST -H 'Content-Type: application/json' -H "Authorization: Bearer $token" \
    --data '{"body":"hello","client_id":"st-1"}' "$base/api/messages/st_bob" >/dev/null
ROOM_ID=$(curl -fsS -X POST -H 'Content-Type: application/json' -H "Authorization: Bearer $token" \
    --data '{"kind":"room","name":"schemathesis","members":["st_bob"]}' "$base/api/conversations" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
export ROOM_ID

common=(
    --max-examples "$examples"
    --seed "$seed"
    --workers 1
    --request-timeout 10
    --no-color
)
status=0

# schemathesis keeps a cache in the directory it runs from: the temporary one.
cd "$work"

echo "==> schemathesis, anonymous: $base/api/openapi.json"
"$venv/bin/st" --config-file "$root/tests/schemathesis/anonymous.toml" run "$base/api/openapi.json" "${common[@]}" || status=1

echo "==> schemathesis, signed in as st_alice: $base/api/openapi.json"
# Signing out would revoke the token the rest of the run uses, so sign-out is left to the anonymous
# run (401 without a token) and to tests/api.rs (revocation).
"$venv/bin/st" --config-file "$root/tests/schemathesis/signed-in.toml" run "$base/api/openapi.json" "${common[@]}" \
    -H "Authorization: Bearer $token" --exclude-operation-id signout || status=1
# The token must have stayed good throughout, or the signed-in run was not signed in.
if ! curl -fsS -o /dev/null -H "Authorization: Bearer $token" "$base/api/me"; then
    echo "the token stopped working during the signed-in run" >&2
    status=1
fi

if [ "$status" -ne 0 ]; then
    echo "==> schemathesis found failures; the server log:"
    tail -n 50 "$work/server.log"
fi
exit "$status"
