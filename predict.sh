#!/bin/sh
# Run a trained model on photographs: sh predict.sh INPUT... --checkpoint PATH [--out DIR] [options]
set -e

. "$(dirname "$0")/_python.sh"
exec $PY -m scripts.predict "$@"
