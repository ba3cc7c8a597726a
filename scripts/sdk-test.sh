#!/usr/bin/env bash
# Runs the official-Python-SDK suite (tests/sdk/test_sdk.py) against a freshly started server.
#
#   bash scripts/sdk-test.sh                 # whole suite
#   bash scripts/sdk-test.sh -k task -x      # extra arguments go to pytest
#
# It creates (or reuses) a virtual environment in .venv at the repository root and installs
# tests/sdk/requirements.txt into it (again only when that file changed), builds the server
# (`cargo build -p trainyard`, debug) unless TRAINYARD_BIN names a binary to use, starts it on a
# free loopback port with a throwaway data dir and fixed test keys, runs pytest against it, and
# stops the server and removes the data dir on exit, whatever happens. The exit status is
# pytest's (non-zero on any failure), or non-zero when any step before it fails.
#
# The server trains tasks (the suite waits for some to end and serves their models). It runs
# with TRAINYARD_WORKER_CONCURRENCY=1, so that a task queued behind others stays pending (the
# suite relies on that to test pending tasks and cancellation), and with
# TRAINYARD_TASK_HEARTBEAT_MILLIS=100 (default 1000), so that a running task's Progress is
# written, and a cancellation seen, every 100 ms, and TRAINYARD_TASK_POLL_MILLIS=50 (default
# 500), so that a new task is picked up quickly.
#
# A second server, with the same keys, a rate limit of one request per 5 s and a burst of 2, is
# started for the throttling test (TRAINYARD_SDK_THROTTLED_ENDPOINT); it trains nothing.
#
# Environment: PYTHON (default python3) creates the venv; TRAINYARD_BIN skips the build;
# SDK_TEST_KEEP_DATA=1 keeps the data dir and server log for inspection; TRAINYARD_DATABASE_URL
# (read by the server itself) puts its metadata in PostgreSQL instead of SQLite.

set -euo pipefail

readonly REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly VENV_DIR="$REPO_ROOT/.venv"
readonly REQUIREMENTS="$REPO_ROOT/tests/sdk/requirements.txt"
readonly TEST_FILE="$REPO_ROOT/tests/sdk/test_sdk.py"
readonly ACCESS_KEY_ID="TYSDKTESTKEY0000000001"
readonly ACCESS_KEY_SECRET="sdk-test-secret-do-not-use-elsewhere"
readonly START_TIMEOUT_SECONDS=60

say() {
    printf 'sdk-test: %s\n' "$*" >&2
}

# Loopback only: a proxy must never see these requests.
unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY
export no_proxy="127.0.0.1,localhost" NO_PROXY="127.0.0.1,localhost"
export PYTHONDONTWRITEBYTECODE=1

work_dir=""
server_pid=""
throttled_pid=""

cleanup() {
    local status=$?
    if [[ -n "$throttled_pid" ]] && kill -0 "$throttled_pid" 2>/dev/null; then
        kill -KILL "$throttled_pid" 2>/dev/null || true
        wait "$throttled_pid" 2>/dev/null || true
    fi
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$server_pid" 2>/dev/null; then
            say "the server did not stop within 5 s; killing it"
            kill -KILL "$server_pid" 2>/dev/null || true
        fi
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ -n "$work_dir" && -d "$work_dir" ]]; then
        if [[ "${SDK_TEST_KEEP_DATA:-}" == "1" ]]; then
            say "kept the data dir and server log in $work_dir"
        else
            rm -rf "$work_dir"
        fi
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- Python environment ----
python="${PYTHON:-python3}"
if [[ ! -x "$VENV_DIR/bin/python" ]]; then
    say "creating $VENV_DIR"
    "$python" -m venv "$VENV_DIR"
fi
readonly STAMP="$VENV_DIR/.sdk-test-requirements.sha256"
wanted="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$wanted" ]]; then
    say "installing $REQUIREMENTS"
    "$VENV_DIR/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
    printf '%s\n' "$wanted" > "$STAMP"
fi

# ---- server binary ----
if [[ -n "${TRAINYARD_BIN:-}" ]]; then
    binary="$TRAINYARD_BIN"
else
    say "building the server (cargo build -p trainyard)"
    (cd "$REPO_ROOT" && cargo build -p trainyard)
    target_dir="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
    binary="$target_dir/debug/trainyard"
fi
if [[ ! -x "$binary" ]]; then
    say "no server binary at $binary"
    exit 1
fi

# ---- start the server ----
work_dir="$(mktemp -d "${TMPDIR:-/tmp}/trainyard-sdk-test.XXXXXX")"
mkdir "$work_dir/data"
TRAINYARD_ACCESS_KEY_ID="$ACCESS_KEY_ID" \
    TRAINYARD_ACCESS_KEY_SECRET="$ACCESS_KEY_SECRET" \
    TRAINYARD_SHUTDOWN_GRACE_SECONDS=2 \
    TRAINYARD_WORKER_CONCURRENCY=1 \
    TRAINYARD_TASK_HEARTBEAT_MILLIS=100 \
    TRAINYARD_TASK_POLL_MILLIS=50 \
    "$binary" serve --listen 127.0.0.1:0 --data-dir "$work_dir/data" \
    >"$work_dir/server.out" 2>"$work_dir/server.log" &
server_pid=$!

address=""
deadline=$((SECONDS + START_TIMEOUT_SECONDS))
while [[ -z "$address" ]]; do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        say "the server exited before listening; its output:"
        cat "$work_dir/server.out" "$work_dir/server.log" >&2 || true
        exit 1
    fi
    if ((SECONDS >= deadline)); then
        say "the server did not print its address within ${START_TIMEOUT_SECONDS} s"
        cat "$work_dir/server.out" "$work_dir/server.log" >&2 || true
        exit 1
    fi
    address="$(sed -n 's#^trainyard listening on http://\([0-9.]*:[0-9]*\)[[:space:]]*$#\1#p' "$work_dir/server.out" | head -n 1)"
    [[ -n "$address" ]] || sleep 0.1
done
say "server (pid $server_pid) listening on $address"
sleep 0.2
grep '^metadata: ' "$work_dir/server.out" | sed 's/^/sdk-test: /' >&2 || true

# ---- a second server with a tiny per-AccessKey rate limit, for the throttling test ----
mkdir "$work_dir/throttled"
TRAINYARD_ACCESS_KEY_ID="$ACCESS_KEY_ID" \
    TRAINYARD_ACCESS_KEY_SECRET="$ACCESS_KEY_SECRET" \
    TRAINYARD_WORKER_CONCURRENCY=0 \
    TRAINYARD_RATE_LIMIT_PER_SECOND=0.2 \
    TRAINYARD_RATE_LIMIT_BURST=2 \
    "$binary" serve --listen 127.0.0.1:0 --data-dir "$work_dir/throttled" \
    >"$work_dir/throttled.out" 2>"$work_dir/throttled.log" &
throttled_pid=$!
throttled_address=""
deadline=$((SECONDS + START_TIMEOUT_SECONDS))
while [[ -z "$throttled_address" ]]; do
    if ! kill -0 "$throttled_pid" 2>/dev/null || ((SECONDS >= deadline)); then
        say "the rate-limited server did not start; its output:"
        cat "$work_dir/throttled.out" "$work_dir/throttled.log" >&2 || true
        exit 1
    fi
    throttled_address="$(sed -n 's#^trainyard listening on http://\([0-9.]*:[0-9]*\)[[:space:]]*$#\1#p' "$work_dir/throttled.out" | head -n 1)"
    [[ -n "$throttled_address" ]] || sleep 0.1
done
say "rate-limited server (pid $throttled_pid) listening on $throttled_address"

# ---- run the suite ----
status=0
(
    cd "$REPO_ROOT"
    TRAINYARD_SDK_THROTTLED_ENDPOINT="$throttled_address" \
    TRAINYARD_SDK_ENDPOINT="$address" \
        TRAINYARD_SDK_ACCESS_KEY_ID="$ACCESS_KEY_ID" \
        TRAINYARD_SDK_ACCESS_KEY_SECRET="$ACCESS_KEY_SECRET" \
        "$VENV_DIR/bin/python" -m pytest "$TEST_FILE" -p no:cacheprovider -q -rfE "$@"
) || status=$?

if ! kill -0 "$server_pid" 2>/dev/null; then
    say "the server died during the run; its log:"
    tail -n 50 "$work_dir/server.log" >&2 || true
    status=1
elif [[ "$status" -ne 0 ]]; then
    say "suite failed (status $status); last lines of the server log:"
    tail -n 30 "$work_dir/server.log" >&2 || true
fi
exit "$status"
