#!/bin/sh
# Evaluate a run on its test split with the paper protocol (SPEC section 6; a v2023 job: SPEC 9.4).
#   sh test.sh DRIVE_AV|LES-AV|HRF-AV|MYDATA [extra scripts/test.py options]   (job name: paper, or $JOB)
#   sh test.sh DRIVE_AV --variant v2023 [options]   the job of sh train.sh DRIVE_AV --variant v2023
#   sh test.sh demo [options]
set -e

. "$(dirname "$0")/_python.sh"
DATASET=${1:-DRIVE_AV}
[ $# -gt 0 ] && shift
DATA=${AVSEG_DATA:-data}
VARIANT=$(variant_of "$@")
SUFFIX=$([ "$VARIANT" = v2021 ] || echo "_$VARIANT")
case "$DATASET" in
    demo)
        # best.pt, the best of the run's validations: the demo's score (README, Quick start); --snapshots protocol
        # scores the snapshots of epochs 49, 52 and 55 as the paper protocol does
        exec $PY -m scripts.test --dataset SYNTHETIC --data-root "$DATA" --job_name "${JOB:-demo$SUFFIX}" \
            --snapshots best "$@" ;;
    -*|"")
        echo "usage: sh test.sh DRIVE_AV|LES-AV|HRF-AV|MYDATA|demo [options]" >&2
        exit 2 ;;
    *)
        exec $PY -m scripts.test --dataset "$DATASET" --data-root "$DATA" --job_name "${JOB:-paper$SUFFIX}" "$@" ;;
esac
