#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL 15 cluster and TRAINYARD_TEST_DATABASE_URL pointing
# at an empty database in it; the cluster is stopped and deleted afterwards, whatever happens.
#
#   bash scripts/with-postgres.sh cargo test -p trainyard-store
#
# Needs the PostgreSQL 15 server binaries (Debian: `apt-get install -y postgresql-15`), looked
# for in $TRAINYARD_POSTGRES_BIN_DIR, default /usr/lib/postgresql/15/bin. Without them it fails,
# unless TRAINYARD_ALLOW_NO_POSTGRES=1, when it runs the command without a database (the
# PostgreSQL tests then report themselves skipped).
#
# The server refuses to run as root, so as root it runs as the `postgres` OS user; the command
# itself runs as the caller. It listens on 127.0.0.1 only, with trust authentication, on the
# first free port from $TRAINYARD_POSTGRES_PORT (default 55432). Durability is switched off
# (fsync=off): the cluster lives for one test run.

set -euo pipefail

readonly DATABASE_NAME="trainyard_test"
readonly POSTGRES_BIN_DIR="${TRAINYARD_POSTGRES_BIN_DIR:-/usr/lib/postgresql/15/bin}"
readonly FIRST_PORT="${TRAINYARD_POSTGRES_PORT:-55432}"
readonly PORTS_TO_TRY=100

say() {
    printf 'with-postgres: %s\n' "$*" >&2
}

if [[ $# -eq 0 ]]; then
    say "usage: $0 COMMAND [ARGUMENT...]"
    exit 2
fi

missing_binaries=()
for binary in initdb pg_ctl createdb pg_isready; do
    [[ -x "$POSTGRES_BIN_DIR/$binary" ]] || missing_binaries+=("$POSTGRES_BIN_DIR/$binary")
done
if [[ ${#missing_binaries[@]} -gt 0 ]]; then
    say "PostgreSQL 15 server binaries are missing (${missing_binaries[*]}),"
    say "so the PostgreSQL tests cannot run. Install them with: apt-get install -y postgresql-15"
    say "(or point TRAINYARD_POSTGRES_BIN_DIR at another PostgreSQL bin directory)."
    if [[ "${TRAINYARD_ALLOW_NO_POSTGRES:-}" == "1" ]]; then
        say "TRAINYARD_ALLOW_NO_POSTGRES=1: running the command without PostgreSQL."
        unset TRAINYARD_TEST_DATABASE_URL
        exec "$@"
    fi
    say "Set TRAINYARD_ALLOW_NO_POSTGRES=1 to run the command without PostgreSQL instead."
    exit 1
fi

# initdb and the server refuse to run as root: as root, the cluster belongs to `postgres`.
as_cluster_owner=()
if [[ $EUID -eq 0 ]]; then
    if ! id postgres >/dev/null 2>&1; then
        say "running as root, but there is no 'postgres' OS user to run the server as"
        exit 1
    fi
    as_cluster_owner=(runuser -u postgres --)
fi

cluster_directory="$(mktemp -d "${TMPDIR:-/tmp}/trainyard-postgres.XXXXXX")"
data_directory="$cluster_directory/data"
log_file="$cluster_directory/server.log"
server_started=0

cleanup() {
    local exit_status=$?
    if [[ $server_started -eq 1 ]]; then
        # Immediate: nothing in a throwaway cluster is worth a checkpoint.
        "${as_cluster_owner[@]}" "$POSTGRES_BIN_DIR/pg_ctl" -D "$data_directory" -m immediate -w stop >/dev/null 2>&1 ||
            say "could not stop the server (data directory $data_directory)"
    fi
    rm -rf "$cluster_directory"
    exit "$exit_status"
}
trap cleanup EXIT
# Turn signals into an ordinary exit so that the EXIT trap cleans up.
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ $EUID -eq 0 ]]; then
    chown postgres: "$cluster_directory"
fi

"${as_cluster_owner[@]}" "$POSTGRES_BIN_DIR/initdb" \
    --pgdata="$data_directory" --username=postgres --auth=trust --encoding=UTF8 --no-locale --no-sync \
    >"$cluster_directory/initdb.log" 2>&1 || {
    say "initdb failed:"
    cat "$cluster_directory/initdb.log" >&2
    exit 1
}

port_is_taken() {
    # A successful connect means something already listens there.
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

port=""
for ((candidate = FIRST_PORT; candidate < FIRST_PORT + PORTS_TO_TRY; candidate++)); do
    if ! port_is_taken "$candidate"; then
        port="$candidate"
        break
    fi
done
if [[ -z "$port" ]]; then
    say "no free port in $FIRST_PORT..$((FIRST_PORT + PORTS_TO_TRY - 1))"
    exit 1
fi

server_options="-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$cluster_directory"
server_options+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
server_started=1
"${as_cluster_owner[@]}" "$POSTGRES_BIN_DIR/pg_ctl" \
    -D "$data_directory" -l "$log_file" -o "$server_options" -w -t 60 start >/dev/null || {
    say "the PostgreSQL server did not start; its log:"
    cat "$log_file" >&2 || true
    exit 1
}

"$POSTGRES_BIN_DIR/pg_isready" -q -h 127.0.0.1 -p "$port" -t 30 || {
    say "the PostgreSQL server does not answer on 127.0.0.1:$port"
    exit 1
}
"$POSTGRES_BIN_DIR/createdb" -h 127.0.0.1 -p "$port" -U postgres "$DATABASE_NAME"

export TRAINYARD_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/$DATABASE_NAME"
say "$("$POSTGRES_BIN_DIR/pg_ctl" --version) is up: TRAINYARD_TEST_DATABASE_URL=$TRAINYARD_TEST_DATABASE_URL"

# Not `exec`: the EXIT trap must still run to stop and delete the cluster.
command_status=0
"$@" || command_status=$?
exit "$command_status"
