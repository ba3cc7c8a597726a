#!/usr/bin/env bash
# Ingest bench: starts the real `trainyard` binary (built with the `bench` profile, which inherits
# `release`), pushes behavior events to it over HTTP from N concurrent signed clients (1000 events
# per request), runs the same bodies through DatasetStore::push_blocking in process for reference,
# and times `trainyard import` of a generated file, twice (the second run is the resume path).
# See bench/README.md.
#
# Usage: bash bench/ingest.sh
#
# Knobs (environment variables, all optional; they are passed through to the bench):
#   TRAINYARD_BENCH_INGEST_PARTS        comma separated: http, direct, import          default all three
#   TRAINYARD_BENCH_SECONDS             measured seconds per row                       default 10
#   TRAINYARD_BENCH_WARMUP_SECONDS      unrecorded warm-up before each row             default 2
#   TRAINYARD_BENCH_CONCURRENCY         concurrent HTTP clients, comma separated       default 1,4,16
#   TRAINYARD_BENCH_INGEST_BATCH        events per request (at most 1000)              default 1000
#   TRAINYARD_BENCH_INGEST_BODIES       distinct pre-built request bodies, cycled      default 64
#   TRAINYARD_BENCH_INGEST_SIGNER       fast (the server's sha2-based signing code, as
#                                       trainyard import) or support (tests/http/support.rs,
#                                       a plain SHA-256)                               default fast
#   TRAINYARD_BENCH_CLIENT_THREADS      tokio worker threads of the client             default nproc
#   TRAINYARD_BENCH_IMPORT_ROWS         rows of the generated import file              default 1000000
#   TRAINYARD_BENCH_IMPORT_FORMATS      comma separated: csv, jsonl                    default csv
#   TRAINYARD_BENCH_IMPORT_CONCURRENCY  --concurrency of trainyard import              default import's (4)
#   TRAINYARD_BENCH_COMPACTION_INTERVAL_SECONDS  the server's compactor period         default 3600
#   TRAINYARD_BENCH_DATA_PARENT         where the server's data dir and the files go   default $TMPDIR or /tmp
#   TRAINYARD_BENCH_RESULTS_DIR         where ingest-<timestamp>.md is written         default bench/results
#
# Example: TRAINYARD_BENCH_CONCURRENCY=1,2,4,8 TRAINYARD_BENCH_INGEST_PARTS=http bash bench/ingest.sh
#
# A default run writes about 3 GB of ingest log in the data parent (removed at the end). The bench
# exits non-zero if any measured push is not accepted whole, or an import's counts are wrong.

set -euo pipefail
cd "$(dirname "$0")/.."

for variable in TRAINYARD_BENCH_INGEST_PARTS TRAINYARD_BENCH_SECONDS TRAINYARD_BENCH_WARMUP_SECONDS \
    TRAINYARD_BENCH_CONCURRENCY TRAINYARD_BENCH_INGEST_BATCH TRAINYARD_BENCH_INGEST_BODIES \
    TRAINYARD_BENCH_INGEST_SIGNER TRAINYARD_BENCH_CLIENT_THREADS TRAINYARD_BENCH_IMPORT_ROWS \
    TRAINYARD_BENCH_IMPORT_FORMATS TRAINYARD_BENCH_IMPORT_CONCURRENCY \
    TRAINYARD_BENCH_COMPACTION_INTERVAL_SECONDS TRAINYARD_BENCH_DATA_PARENT TRAINYARD_BENCH_RESULTS_DIR; do
    if [[ -n "${!variable:-}" ]]; then
        echo "ingest: $variable=${!variable}" >&2
        export "${variable?}"
    fi
done

exec cargo bench -p trainyard --bench ingest "$@"
