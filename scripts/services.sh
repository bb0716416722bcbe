# Makes sure the services chatd's tests need are answering: PostgreSQL 15 (127.0.0.1:5432, trust
# auth, user postgres) and NATS 2.9 with JetStream (127.0.0.1:4222). A service that does not answer
# is started from its Debian package, which is installed first when missing (only as root under
# CI=true; a fresh install is given trust auth on loopback). Each function ends with one line saying
# how things stand. Under CI=true a service that cannot be made to answer is an error (status 1);
# elsewhere it is a warning (status 0) and the tests skip what needs it, saying so.
#
# Usage:            source scripts/services.sh && ensure_postgres && ensure_nats
#                   bash scripts/services.sh     (both, status 1 if either failed)
# Where to look:    CHATD_PG_HOST, CHATD_PG_PORT, CHATD_NATS_HOST, CHATD_NATS_PORT (defaults above).
# Only the default local address is ever started; pointed elsewhere, they only check (and report).

_services_answering() {  # SECONDS CHECK...: true once CHECK succeeds, trying once a second
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 1
    done
}

_services_unavailable() {  # MESSAGE
    if [ "${CI:-}" = true ]; then
        echo "services: ERROR: $1, and CI requires it" >&2
        return 1
    fi
    echo "services: warning: $1; the tests that need it will skip" >&2
}

_services_install() {  # PACKAGE: installs it, only as root under CI
    [ "${CI:-}" = true ] && [ "$(id -u)" = 0 ] || return 1
    echo "services: installing $1"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$1" \
        || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "$1"; }
}

_pg_answers() {
    local host=${CHATD_PG_HOST:-127.0.0.1} port=${CHATD_PG_PORT:-5432}
    if command -v pg_isready >/dev/null; then
        pg_isready -q -h "$host" -p "$port"
    else
        psql -h "$host" -p "$port" -U postgres -Atc 'SELECT 1' >/dev/null 2>&1
    fi
}

ensure_postgres() {
    local where="PostgreSQL at ${CHATD_PG_HOST:-127.0.0.1}:${CHATD_PG_PORT:-5432}" version
    if _pg_answers; then
        echo "services: $where answers"
        return 0
    elif [ "$where" != "PostgreSQL at 127.0.0.1:5432" ]; then
        _services_unavailable "$where does not answer (only 127.0.0.1:5432 is ever started here)"
        return
    fi
    if [ -z "$(ls /etc/postgresql 2>/dev/null)" ] && _services_install postgresql; then
        version=$(ls /etc/postgresql | sort -V | tail -n 1)
        # Debian's default asks for a password over TCP; the tests connect as postgres without one.
        sed -i '1i host all all 127.0.0.1/32 trust' "/etc/postgresql/$version/main/pg_hba.conf"
        pg_ctlcluster --skip-systemctl-redirect "$version" main reload 2>/dev/null || true  # if apt started it
    fi
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$version" ]; then
        _services_unavailable "$where does not answer and PostgreSQL is not installed"
        return
    fi
    echo "services: $where does not answer; starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true  # then wait either way
    if _services_answering 30 _pg_answers; then
        echo "services: $where answers (started)"
    else
        _services_unavailable "$where does not answer, 30 s after starting it"
    fi
}

_nats_info() {  # prints the INFO {...} line NATS greets every client with
    local host=${CHATD_NATS_HOST:-127.0.0.1} port=${CHATD_NATS_PORT:-4222}
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" && read -r -t 2 line <&3 && [[ $line == INFO* ]] &&
        echo "$line"' _ "$host" "$port" 2>/dev/null
}

_nats_answers() {  # with JetStream on, which the INFO line shows as "jetstream":true
    local info
    info=$(_nats_info) && [[ $info == *'"jetstream":true'* ]]
}

ensure_nats() {
    local where="NATS at ${CHATD_NATS_HOST:-127.0.0.1}:${CHATD_NATS_PORT:-4222}"
    if _nats_answers; then
        echo "services: $where answers, with JetStream"
        return 0
    elif _nats_info >/dev/null; then
        _services_unavailable "$where answers but without JetStream (nats-server -js)"
        return
    elif [ "$where" != "NATS at 127.0.0.1:4222" ]; then
        _services_unavailable "$where does not answer (only 127.0.0.1:4222 is ever started here)"
        return
    fi
    if [ ! -x /usr/sbin/nats-server ] && ! _services_install nats-server; then
        _services_unavailable "$where does not answer and nats-server is not installed"
        return
    fi
    echo "services: $where does not answer; starting nats-server with JetStream"
    # The pidfile keeps another nats-server (a test's own, on another port) from counting as this one.
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server \
        --pidfile /run/chatd-nats-server.pid --make-pidfile -- \
        -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log || true
    if _services_answering 15 _nats_answers; then
        echo "services: $where answers, with JetStream (started)"
    else
        _services_unavailable "$where does not answer, 15 s after starting it"
    fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then  # run rather than sourced
    status=0
    ensure_postgres || status=1
    ensure_nats || status=1
    exit "$status"
fi
