#!/bin/sh
# The grading page: sh grade.sh FOLDER [--photos DIR] [--masks DIR] [--disc-csv F] [--pixel-um U] [--port N]
#   FOLDER: a predict.sh output folder, or a folder of A/V maps (then --photos). Opens a local server on
#   127.0.0.1 and prints its address; corrections are saved in FOLDER/corrections (docs/grading.md).
set -e

. "$(dirname "$0")/_python.sh"
exec $PY -m scripts.grade "$@"
