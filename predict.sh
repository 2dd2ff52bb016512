#!/bin/sh
# Run a trained model on photographs: sh predict.sh INPUT... --checkpoint PATH [--out DIR] [options]
#   sh predict.sh 'cohort/*.jpg' --checkpoint PATH --out DIR --cohort   photograph by photograph, resumable
#   NPROC=4 sh predict.sh ... --cohort   4 processes on this machine (torchrun; one per GPU), --out shared
#   TORCHRUN_ARGS="--nnodes 2 --node-rank 0 --rdzv-backend c10d --rdzv-endpoint HOST:29500" NPROC=4 sh predict.sh ...
set -e

. "$(dirname "$0")/_python.sh"
PREDICT=$(command_for predict)
exec $PREDICT "$@"
