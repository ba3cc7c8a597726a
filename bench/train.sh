#!/usr/bin/env bash
# Training bench: builds one app group's dataset with DatasetStore (behavior events for pop,
# query-log searches for hot; append_blocking in batches of 1000, then compaction to Parquet) and
# trains pop and hot on it with the catalog's default parameters, each in a child process of its
# own so that its peak RSS is its own; samples the progress the runner would see. See
# bench/README.md.
#
# Usage: bash bench/train.sh
#
# Knobs (environment variables, all optional; they are passed through to the bench):
#   TRAINYARD_BENCH_TRAIN_EVENTS         behavior events generated (pop's data)        default 10000000
#   TRAINYARD_BENCH_TRAIN_SEARCHES       query-log searches generated (hot's data)     default = the events
#   TRAINYARD_BENCH_TRAIN_DAYS           days the data is spread over, ending now       default 30
#   TRAINYARD_BENCH_TRAIN_ITEMS          distinct items (Zipf popularity)               default 100000
#   TRAINYARD_BENCH_TRAIN_USERS          distinct users                                 default 500000
#   TRAINYARD_BENCH_TRAIN_QUERIES        distinct queries (Zipf popularity)             default 50000
#   TRAINYARD_BENCH_TRAIN_FUNCTIONS      comma separated: pop, hot, hint                default pop,hot
#   TRAINYARD_BENCH_TRAIN_SAMPLE_MS      progress (and RSS) sampling period             default 100
#   TRAINYARD_BENCH_TRAIN_SEGMENT_BYTES  log segment rotation size                      default 33554432 (32 MiB)
#   TRAINYARD_BENCH_TRAIN_REUSE_DIR      keep the dataset there; reuse it when the settings match
#                                        (saves the generation and compaction, ~2 min at 10 M) default none
#   TRAINYARD_BENCH_DATA_PARENT          where the dataset's temp dir is made           default $TMPDIR or /tmp
#   TRAINYARD_BENCH_RESULTS_DIR          where train-<timestamp>.md is written          default bench/results
#
# 10 M events + 10 M searches need about 6 GiB of free disk (the log, then the Parquet files) in
# the data parent. The bench exits non-zero if a trainer fails.

set -euo pipefail
cd "$(dirname "$0")/.."

for variable in TRAINYARD_BENCH_TRAIN_EVENTS TRAINYARD_BENCH_TRAIN_SEARCHES TRAINYARD_BENCH_TRAIN_DAYS \
    TRAINYARD_BENCH_TRAIN_ITEMS TRAINYARD_BENCH_TRAIN_USERS TRAINYARD_BENCH_TRAIN_QUERIES \
    TRAINYARD_BENCH_TRAIN_FUNCTIONS TRAINYARD_BENCH_TRAIN_SAMPLE_MS TRAINYARD_BENCH_TRAIN_SEGMENT_BYTES \
    TRAINYARD_BENCH_TRAIN_REUSE_DIR TRAINYARD_BENCH_DATA_PARENT TRAINYARD_BENCH_RESULTS_DIR; do
    if [[ -n "${!variable:-}" ]]; then
        echo "train: $variable=${!variable}" >&2
        export "${variable?}"
    fi
done

exec cargo bench -p trainyard-train --bench train "$@"
