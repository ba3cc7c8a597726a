#!/usr/bin/env bash
# CTR bench on MovieLens-100k: Trainyard's fm and ftrl_lr against Vowpal Wabbit 9.11.9 (PyPI) on
# the same examples and the same split, time and random. Builds the release binary, prepares the
# venv (.venv, shared with the kit and the SDK suite: tests/data/requirements.txt plus
# bench/requirements.txt), then runs bench/ctr_vw.py. See bench/README.md.
#
# Usage: bash bench/ctr.sh [--epochs N]
#
# Needs network access to PyPI on the first run (the recbole wheel that holds MovieLens and the
# vowpalwabbit wheel). Takes about two minutes after the build.

set -euo pipefail
cd "$(dirname "$0")/.."
readonly VENV_DIR="$PWD/.venv"
unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY
export no_proxy="127.0.0.1,localhost" NO_PROXY="127.0.0.1,localhost"
export PYTHONDONTWRITEBYTECODE=1

if [[ ! -x "$VENV_DIR/bin/python" ]]; then
    "${PYTHON:-python3}" -m venv "$VENV_DIR"
fi
"$VENV_DIR/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r tests/data/requirements.txt -r bench/requirements.txt

cargo build --release -p trainyard
exec "$VENV_DIR/bin/python" bench/ctr_vw.py --bin "${CARGO_TARGET_DIR:-$PWD/target}/release/trainyard" "$@"
