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
#                                                                                    (1,4 while training)
#   TRAINYARD_BENCH_OPERATIONS      comma separated, from create_instance, get_instance,
#                                   list_instances, list_tasks, create_task         default create_instance,
#                                                                                    get_instance,list_tasks
#                                                                                    (get_instance,list_instances
#                                                                                    while training)
#   TRAINYARD_BENCH_CLIENT_THREADS  tokio worker threads of the client               default nproc
#   TRAINYARD_BENCH_DATA_PARENT     where the server's temporary data dir is made    default $TMPDIR or /tmp
#                                   (its file system decides what an fsync costs)
#   TRAINYARD_BENCH_RESULTS_DIR     where api_latency-<timestamp>.md is written      default bench/results
#
# While training (off unless TRAINYARD_BENCH_TRAIN_DURING_EVENTS is set): the server runs one
# training worker; N behavior events are pushed over HTTP and compacted, a pop instance is trained
# (CreateFunctionTask) and the rows are measured while it trains (and, first, with the worker idle).
#   TRAINYARD_BENCH_TRAIN_DURING_EVENTS   behavior events to load and train pop on     default 0 (off)
#   TRAINYARD_BENCH_TRAIN_DURING_TASKS    pop tasks queued at once (one per instance),  default 1
#                                         trained back to back: training lasts ~K times as long
#   TRAINYARD_BENCH_TRAIN_BASELINE        0: skip the rows before the task starts      default 1
#   TRAINYARD_BENCH_TRAINER_NICE          the server's trainer_nice                    default the server's (10)
#   TRAINYARD_BENCH_TASK_HEARTBEAT_MILLIS how often the worker records progress        default the server's (1000)
#
# Example: TRAINYARD_BENCH_SECONDS=10 TRAINYARD_BENCH_CONCURRENCY=1,4,16,64 bash bench/api_latency.sh
# Example: TRAINYARD_BENCH_TRAIN_DURING_EVENTS=10000000 TRAINYARD_BENCH_SECONDS=2 bash bench/api_latency.sh
#
# The bench exits non-zero if any measured request answered anything but HTTP 200.

set -euo pipefail
cd "$(dirname "$0")/.."

for variable in TRAINYARD_BENCH_SECONDS TRAINYARD_BENCH_WARMUP_SECONDS TRAINYARD_BENCH_CONCURRENCY \
    TRAINYARD_BENCH_OPERATIONS TRAINYARD_BENCH_CLIENT_THREADS TRAINYARD_BENCH_DATA_PARENT \
    TRAINYARD_BENCH_RESULTS_DIR TRAINYARD_BENCH_TRAIN_DURING_EVENTS TRAINYARD_BENCH_TRAIN_DURING_TASKS \
    TRAINYARD_BENCH_TRAIN_BASELINE TRAINYARD_BENCH_TRAINER_NICE TRAINYARD_BENCH_TASK_HEARTBEAT_MILLIS; do
    if [[ -n "${!variable:-}" ]]; then
        echo "api_latency: $variable=${!variable}" >&2
        export "${variable?}"
    fi
done

exec cargo bench -p trainyard --bench api_latency "$@"
