#!/usr/bin/env bash
# API latency bench: starts the real `trainyard` binary (built with the `bench` profile, which
# inherits `release`) and drives it with N concurrent signed clients. See bench/README.md.
#
# Usage: bash bench/api_latency.sh
#
# Knobs (environment variables, all optional; they are passed through to the bench):
#   TRAINYARD_BENCH_SECONDS         measured seconds per (operation, concurrency)   default 5
#   TRAINYARD_BENCH_WARMUP_SECONDS  unrecorded warm-up before each measurement      default 1
#   TRAINYARD_BENCH_CONCURRENCY     concurrent clients, comma separated              default 1,16,64
#   TRAINYARD_BENCH_OPERATIONS      comma separated, from create_instance, get_instance,
#                                   list_tasks, create_task                          default the first three
#   TRAINYARD_BENCH_CLIENT_THREADS  tokio worker threads of the client               default nproc
#   TRAINYARD_BENCH_DATA_PARENT     where the server's temporary data dir is made    default $TMPDIR or /tmp
#                                   (its file system decides what an fsync costs)
#   TRAINYARD_BENCH_RESULTS_DIR     where api_latency-<timestamp>.md is written      default bench/results
#
# Example: TRAINYARD_BENCH_SECONDS=10 TRAINYARD_BENCH_CONCURRENCY=1,4,16,64 bash bench/api_latency.sh
#
# The bench exits non-zero if any measured request answered anything but HTTP 200.

set -euo pipefail
cd "$(dirname "$0")/.."

for variable in TRAINYARD_BENCH_SECONDS TRAINYARD_BENCH_WARMUP_SECONDS TRAINYARD_BENCH_CONCURRENCY \
    TRAINYARD_BENCH_OPERATIONS TRAINYARD_BENCH_CLIENT_THREADS TRAINYARD_BENCH_DATA_PARENT \
    TRAINYARD_BENCH_RESULTS_DIR; do
    if [[ -n "${!variable:-}" ]]; then
        echo "api_latency: $variable=${!variable}" >&2
        export "${variable?}"
    fi
done

exec cargo bench -p trainyard --bench api_latency "$@"
