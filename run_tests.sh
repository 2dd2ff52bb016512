#!/bin/sh
# Install into .venv (first time), then run the test suite.
set -e
cd "$(dirname "$0")"
sh setup.sh
.venv/bin/python -m pytest -q "$@"
