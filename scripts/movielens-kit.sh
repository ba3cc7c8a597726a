#!/usr/bin/env bash
# MovieLens-100k as a Trainyard app group (docs/movielens-kit.md).
#
#   bash scripts/movielens-kit.sh [options] [ENDPOINT [APP]]   # load it into a running server
#   bash scripts/movielens-kit.sh --check                      # CI: throwaway server, load, train, verify
#
# ENDPOINT is host:port (default $TRAINYARD_ENDPOINT, else 127.0.0.1:8080); APP the app group
# (default movielens; created through the official SDK when missing).
#
# Options:
#   --shift-to-now    shift all times by whole days so the newest event falls on yesterday (UTC)
#   --data-dir DIR    data dir of a local server, whose root key file signs the requests (default:
#                     TRAINYARD_ACCESS_KEY_ID / TRAINYARD_ACCESS_KEY_SECRET, else ./trainyard-data)
#   --cache-dir DIR   where the downloaded wheel is kept (default ${XDG_CACHE_HOME:-~/.cache}/trainyard/movielens)
#   --out DIR         keep the generated JSON Lines files there (default: a temp dir, removed)
#
# Steps: a virtual environment in .venv (shared with scripts/sdk-test.sh; tests/data/requirements.txt
# installed again only when it changed), the server binary ($TRAINYARD_BIN, else `cargo build -p
# trainyard` and target/debug/trainyard), scripts/movielens_kit.py (download the recbole 1.2.1
# wheel from PyPI into the cache and check its sha256, derive the files, create the app group),
# one `trainyard import` per kind (--compact on the last), then `trainyard stats`.
# --check runs tests/data/check_movielens.py, which starts a server with a throwaway data dir,
# runs this script against it twice (app group movielens with the original times, movielens_now
# with --shift-to-now), checks both against its own reading of the raw files, then trains hot,
# hint and pop on movielens_now and checks the served lists and pop's holdout AUC.
#
# Environment: PYTHON (default python3) creates the venv; TRAINYARD_BIN skips the build.

set -euo pipefail

readonly REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly VENV_DIR="$REPO_ROOT/.venv"
readonly REQUIREMENTS="$REPO_ROOT/tests/data/requirements.txt"
readonly KIT="$REPO_ROOT/scripts/movielens_kit.py"
readonly CHECK="$REPO_ROOT/tests/data/check_movielens.py"

say() {
    printf 'movielens-kit: %s\n' "$*" >&2
}

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit "${1:-2}"
}

check=0
shift_to_now=()
data_dir=""
cache_dir=""
out_dir=""
positional=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --check) check=1 ;;
        --shift-to-now) shift_to_now=(--shift-to-now) ;;
        --data-dir) data_dir="${2:?--data-dir needs a value}"; shift ;;
        --cache-dir) cache_dir="${2:?--cache-dir needs a value}"; shift ;;
        --out) out_dir="${2:?--out needs a value}"; shift ;;
        -h | --help) usage 0 ;;
        -*) say "unknown option $1"; usage ;;
        *) positional+=("$1") ;;
    esac
    shift
done
[[ ${#positional[@]} -le 2 ]] || usage
endpoint="${positional[0]:-${TRAINYARD_ENDPOINT:-127.0.0.1:8080}}"
app="${positional[1]:-movielens}"

# Loopback only: a proxy must never see these requests.
unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY
export no_proxy="127.0.0.1,localhost" NO_PROXY="127.0.0.1,localhost"
export PYTHONDONTWRITEBYTECODE=1

# ---- Python environment ----
python="${PYTHON:-python3}"
if [[ ! -x "$VENV_DIR/bin/python" ]]; then
    say "creating $VENV_DIR"
    "$python" -m venv "$VENV_DIR"
fi
readonly STAMP="$VENV_DIR/.movielens-kit-requirements.sha256"
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
    binary="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/trainyard"
fi
if [[ ! -x "$binary" ]]; then
    say "no server binary at $binary"
    exit 1
fi

cache_args=()
[[ -z "$cache_dir" ]] || cache_args=(--cache-dir "$cache_dir")

if [[ "$check" -eq 1 ]]; then
    [[ ${#positional[@]} -eq 0 ]] || { say "--check starts its own server: give no ENDPOINT or APP"; usage; }
    [[ ${#shift_to_now[@]} -eq 0 ]] || { say "--check loads the data both with and without --shift-to-now"; usage; }
    exec "$VENV_DIR/bin/python" "$CHECK" --bin "$binary" "${cache_args[@]}"
fi

# ---- generate ----
work_dir=""
cleanup() {
    local status=$?
    [[ -z "$work_dir" ]] || rm -rf "$work_dir"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [[ -z "$out_dir" ]]; then
    work_dir="$(mktemp -d "${TMPDIR:-/tmp}/trainyard-movielens.XXXXXX")"
    out_dir="$work_dir"
fi

key_args=()
[[ -z "$data_dir" ]] || key_args=(--data-dir "$data_dir")

started=$SECONDS
"$VENV_DIR/bin/python" "$KIT" prepare --out "$out_dir" --endpoint "$endpoint" --app "$app" \
    "${cache_args[@]}" "${shift_to_now[@]}" "${key_args[@]}" >/dev/null

# ---- import ----
import_kind() {
    local step_started=$SECONDS
    say "trainyard import $*"
    "$binary" import --endpoint "$endpoint" --app "$app" "${key_args[@]}" "$@"
    say "  ($((SECONDS - step_started)) s)"
}
import_kind --kind documents --table movies --primary-key item_id "$out_dir/movies.jsonl"
import_kind --kind item-info "$out_dir/item_info.jsonl"
import_kind --kind users "$out_dir/users.jsonl"
import_kind --kind behavior "$out_dir/behavior.jsonl"
import_kind --kind query-log --compact "$out_dir/query_log.jsonl"

"$binary" stats --endpoint "$endpoint" --app "$app" "${key_args[@]}"
if [[ ${#shift_to_now[@]} -eq 0 ]]; then
    say "the events keep MovieLens' own times (1997-09-20 .. 1998-04-22): windows of the last N days" \
        "are empty; load with --shift-to-now (into another app group) for recent data"
fi
say "done in $((SECONDS - started)) s"
