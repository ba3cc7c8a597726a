#!/usr/bin/env bash
# Scan bench: builds a dataset of synthetic behavior events with DatasetStore (append_blocking in
# batches of 1000, then compaction to Parquet) and measures how fast snapshots scan it back, each
# scan in a child process of its own so that its peak RSS is its own. See bench/README.md.
#
# Usage: bash bench/scan.sh
#
# Knobs (environment variables, all optional; they are passed through to the bench):
#   TRAINYARD_BENCH_SCAN_EVENTS         events generated                              default 10000000
#   TRAINYARD_BENCH_SCAN_DAYS           days the events are spread over               default 30
#   TRAINYARD_BENCH_SCAN_BATCH          events per append_blocking call               default 1000
#   TRAINYARD_BENCH_SCAN_SEGMENT_BYTES  log segment rotation size                     default 33554432 (32 MiB)
#   TRAINYARD_BENCH_SCAN_ORDER          time (live traffic) or random (a backfill)    default time
#   TRAINYARD_BENCH_SCAN_PHASES         comma separated: compact, projected, projected_last_7_days,
#                                       projected_parallel, batches, records, direct_projected,
#                                       direct_batches                                default all
#   TRAINYARD_BENCH_SCAN_REUSE_DIR      keep the dataset there; reuse it when the settings match
#                                       (saves the generation, minutes at 10 M events) default none
#   TRAINYARD_BENCH_DATA_PARENT         where the dataset's temp dir is made           default $TMPDIR or /tmp
#   TRAINYARD_BENCH_RESULTS_DIR         where scan-<timestamp>.md is written           default bench/results
#
# 10 M events need about 4 GiB of free disk (the log, then the Parquet files) in the data parent.
# The bench exits non-zero if a scan returns the wrong number of rows.

set -euo pipefail
cd "$(dirname "$0")/.."

for variable in TRAINYARD_BENCH_SCAN_EVENTS TRAINYARD_BENCH_SCAN_DAYS TRAINYARD_BENCH_SCAN_BATCH \
    TRAINYARD_BENCH_SCAN_SEGMENT_BYTES TRAINYARD_BENCH_SCAN_ORDER TRAINYARD_BENCH_SCAN_PHASES \
    TRAINYARD_BENCH_SCAN_REUSE_DIR TRAINYARD_BENCH_DATA_PARENT TRAINYARD_BENCH_RESULTS_DIR; do
    if [[ -n "${!variable:-}" ]]; then
        echo "scan: $variable=${!variable}" >&2
        export "${variable?}"
    fi
done

exec cargo bench -p trainyard-data --bench scan "$@"
