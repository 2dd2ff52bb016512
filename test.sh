#!/bin/sh
# Evaluate a run on its test split with the paper protocol (SPEC section 6).
#   sh test.sh DRIVE_AV|LES-AV|HRF-AV [extra scripts/test.py options]   (job name: paper, or $JOB)
#   sh test.sh demo [options]
set -e

. "$(dirname "$0")/_python.sh"
DATASET=${1:-DRIVE_AV}
[ $# -gt 0 ] && shift
DATA=${AVSEG_DATA:-data}
case "$DATASET" in
    DRIVE_AV|LES-AV|HRF-AV)
        exec $PY -m scripts.test --dataset "$DATASET" --data-root "$DATA" --job_name "${JOB:-paper}" "$@" ;;
    demo)
        exec $PY -m scripts.test --dataset SYNTHETIC --data-root "$DATA" --job_name "${JOB:-demo}" "$@" ;;
    *)
        echo "usage: sh test.sh DRIVE_AV|LES-AV|HRF-AV|demo [options]; unknown dataset '$DATASET'" >&2
        exit 2 ;;
esac
