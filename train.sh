#!/bin/sh
# Train with the paper settings (SPEC section 5), or the authors' 2023 code's (--variant v2023).
#   sh train.sh DRIVE_AV|LES-AV|HRF-AV [extra scripts/train.py options]   (job name: paper, or $JOB)
#   sh train.sh DRIVE_AV --variant v2023 [options]   the 2023 README's command (job name: paper_v2023)
#   sh train.sh MYDATA --image-size W H [options]   any folder of $AVSEG_DATA in the same layout
#   sh train.sh demo [options]    synthetic data (generated when missing), small and fast on a CPU
#   NPROC=4 sh train.sh DRIVE_AV [options]   4 processes on this machine (torchrun; one per GPU)
#   TORCHRUN_ARGS="--nnodes 2 --node-rank 0 --rdzv-backend c10d --rdzv-endpoint HOST:29500" NPROC=4 sh train.sh ...
set -e

. "$(dirname "$0")/_python.sh"
TRAIN=$(command_for train)
DATASET=${1:-DRIVE_AV}
[ $# -gt 0 ] && shift
DATA=${AVSEG_DATA:-data}
VARIANT=$(variant_of "$@")
SUFFIX=$([ "$VARIANT" = v2021 ] || echo "_$VARIANT")
case "$DATASET" in
    demo)
        # the demo's set (24 training and 12 test images, wider vessels than the tests' set); redrawn when an
        # older recipe is found. Validation every 2 epochs: test.sh demo scores the best one (README, Quick start)
        $PY -m scripts.synthetic --out "$DATA" --size 128 --vessel-width 1.5 --train 24 --test 12
        exec $TRAIN --dataset SYNTHETIC --data-root "$DATA" --job_name "${JOB:-demo$SUFFIX}" \
            --epochs 55 --n-filters 8 --image-size 112 112 --val-every 2 --save-from 49 --save-every 3 \
            --channels-last on "$@" ;;
    -*|"")
        echo "usage: sh train.sh DRIVE_AV|LES-AV|HRF-AV|MYDATA|demo [options]" >&2
        exit 2 ;;
    *)
        if [ "$VARIANT" = v2023 ]; then  # its README's command (docs/training_v2023.md); best.pt is its checkpoint
            exec $TRAIN --dataset "$DATASET" --data-root "$DATA" --job_name "${JOB:-paper$SUFFIX}" \
                --epochs 500 --batch-size 2 --learning-rate 8e-4 --alpha 0.5 --beta 1.1 --gama 0.08 \
                --seed_num 42 --validation 10 --n-filters 32 --uniform --val-every 1 --save-from 500 --save-every 50 "$@"
        fi
        exec $TRAIN --dataset "$DATASET" --data-root "$DATA" --job_name "${JOB:-paper}" \
            --epochs 1500 --batch-size 2 --learning-rate 8e-4 --alpha 0.5 --beta 1.1 --gama 0.08 \
            --seed_num 42 --validation 10 --n-filters 32 --save-from 1300 --save-every 10 --val-every 10 "$@" ;;
esac
