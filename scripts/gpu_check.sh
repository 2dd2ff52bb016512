#!/bin/sh
# The paper protocol on one GPU machine in one or two commands of at most 10 minutes each.
#   sh scripts/gpu_check.sh WORKDIR [DATA_ROOT]             # 1st: measure, then train DRIVE_AV for the time left
#   sh scripts/gpu_check.sh --continue WORKDIR [DATA_ROOT]  # 2nd (same machine): resume, finish, test
# 1st command (CUDA): the memory plan checked against the GPU (python -m scripts.benchmark --memory --verify:
# planned vs measured peak and ms per step, with and without activation checkpointing, at the three datasets'
# paper sizes; at most MEMORY_S s), then the variant matrix (python -m scripts.benchmark --matrix: ceilings, eager / host / GPU /
# CUDA-graph ms per step, peak memory, gradient error against float64, graph-vs-eager next to
# eager-vs-eager, two kernel profiles; at most MATRIX_S s), then DRIVE_AV training with the paper settings
# and the fastest exact flags the matrix found (float32/TF32 unless ALLOW_AMP=1) until TOTAL_S is spent
# (--time-limit: validation, snapshot and last.pt written at the stop). If the 1500 epochs complete, the
# snapshots are tested at once. Otherwise the 2nd command resumes from WORKDIR/DRIVE_AV/gpu/last.pt with
# the same flags, trains for its TOTAL_S, and tests when the schedule is complete (else it says where it
# stopped and prints itself again). WORKDIR must survive between the commands (a folder of the
# repository that git ignores, e.g. gpu_out/). DATASET (default DRIVE_AV), RESERVE_S (45: seconds kept for the
# stop, last.pt and testing). Logs, JSON and tables: WORKDIR; COPY_TO=DIR also copies
# the small files (no checkpoints) there. Output stays under 12,000 characters, the tables last.
# CPU rehearsal with tiny settings (minutes):
#   DEVICE=cpu SIZE=32 NF=4 MATRIX_S=40 TOTAL_S=75 TRAIN_ARGS="--epochs 12 --save-from 8 --save-every 2 --val-every 2" \
#       sh scripts/gpu_check.sh gpu_out data && ... sh scripts/gpu_check.sh --continue gpu_out data
set -u
CONTINUE=0
if [ "${1:-}" = "--continue" ]; then CONTINUE=1; shift; fi
WORK=${1:?usage: sh scripts/gpu_check.sh [--continue] WORKDIR [DATA_ROOT]}
DATA=${2:-${AVSEG_DATA:-../shared/data}}
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-592}
NF=${NF:-32}
TOTAL=${TOTAL_S:-540}
MATRIX=${MATRIX_S:-150}
MEMORY=${MEMORY_S:-150}
REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/_python.sh"
need_cuda() {
    if [ "$DEVICE" = cuda ] && ! $PY -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
        echo "error: DEVICE=cuda, but PyTorch sees no CUDA GPU here ($PY); on a machine without one rehearse with" >&2
        echo "       DEVICE=cpu SIZE=32 NF=4 MATRIX_S=40 TOTAL_S=75 (the header of scripts/gpu_check.sh)" >&2
        exit 2
    fi
}
if [ "$CONTINUE" = 0 ]; then need_cuda; fi
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
START=$(date +%s)
DATASET=${DATASET:-DRIVE_AV}
JOBDIR="$WORK/$DATASET/gpu"
SHAPE="--device $DEVICE --n-filters $NF --image-size $SIZE $SIZE ${TRAIN_ARGS:-}"

if [ "$CONTINUE" = 0 ]; then
    { nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv 2>/dev/null
      $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; nproc; } > "$WORK/machine.txt" 2>&1
    if [ "$DEVICE" = cuda ] && [ "$MEMORY" -gt 0 ]; then
        echo "== memory plan against the GPU (at most $MEMORY s): $WORK/memory.txt"
        timeout $((MEMORY + 120)) $PY -m scripts.benchmark --memory --verify --device cuda --budget-s "$MEMORY" \
            --dataset DRIVE_AV LES-AV HRF-AV --modes batched reuse --n-filters "$NF" --json "$WORK/memory.json" \
            > "$WORK/memory.txt" 2>&1 || echo "memory check ended early (exit $?)"
    fi
    echo "== variant matrix ($SIZE px, n=$NF, at most $MATRIX s): $WORK/matrix/"
    timeout $((MATRIX + 90)) $PY -m scripts.benchmark --matrix "$WORK/matrix" --device "$DEVICE" --sizes "$SIZE" \
        --n-filters "$NF" --budget-s "$MATRIX" > "$WORK/matrix.txt" 2>&1 || echo "matrix ended early (exit $?)"
    FLAGS=${FLAGS:-$($PY -c "
import sys; from pathlib import Path; from scripts.benchmarks.gpu_matrix import train_flags
print(' '.join(train_flags(Path(sys.argv[1]), sys.argv[2] == '1')))" "$WORK/matrix" "${ALLOW_AMP:-0}")}
    echo "$FLAGS" > "$WORK/train_flags.txt"
    RESUME=""
else
    [ -f "$JOBDIR/last.pt" ] || { echo "error: no $JOBDIR/last.pt to continue; run without --continue first" >&2; exit 2; }
    need_cuda
    FLAGS=$(cat "$WORK/train_flags.txt" 2>/dev/null || true)
    RESUME="--resume"
fi
LEFT=$((TOTAL - ($(date +%s) - START) - ${RESERVE_S:-45}))   # for the stop, the last validation, last.pt, testing
RUN=$((CONTINUE + 1))
if [ "$LEFT" -gt 5 ]; then
    MIN=$($PY -c "print(round($LEFT / 60, 2))")
    echo "== train $DATASET (command $RUN) for $MIN min with [$FLAGS]: $WORK/train$RUN.log"
    # shellcheck disable=SC2086
    AVSEG_DATA=$DATA JOB=gpu timeout $((LEFT + 120)) sh "$REPO/train.sh" "$DATASET" --out "$WORK" --runs-dir "$WORK/runs" \
        --workers auto --time-limit "$MIN" $SHAPE $FLAGS $RESUME > "$WORK/train$RUN.log" 2>&1 \
        || echo "training ended with exit $? (see $WORK/train$RUN.log)"
else
    echo "== no time left to train"
fi
grep -hE "^epoch [0-9]+: validation F1" "$WORK"/train*.log > "$WORK/validation_curve.txt" 2>/dev/null
EPOCHS=$($PY -c "import json; print(json.load(open('$JOBDIR/config.json'))['epochs'])" 2>/dev/null || echo 1500)
FINAL=$(printf %04d "$EPOCHS")
if [ -f "$JOBDIR/epoch_$FINAL.pt" ] || [ -f "$JOBDIR/stop_epoch_$FINAL.pt" ]; then
    # test.sh takes the protocol's snapshots only (every --save-every from --save-from): not the
    # stop_epoch_XXXX.pt that the first command's time-limit stop left behind
    echo "== schedule complete ($EPOCHS epochs): testing the snapshots of the protocol"
    AVSEG_DATA=$DATA JOB=gpu sh "$REPO/test.sh" "$DATASET" --out "$WORK" --results "$WORK/results" \
        --maps-dir "$WORK/Final_pre" --device "$DEVICE" > "$WORK/test.log" 2>&1 || echo "testing ended with exit $?"
    STATE="complete"
else
    STATE="incomplete"
fi
[ -n "${COPY_TO:-}" ] && mkdir -p "$COPY_TO" && (cd "$WORK" && cp -r ./*.txt ./*.log matrix "$COPY_TO"/ 2>/dev/null; \
    cp "$JOBDIR"/timing.json "$JOBDIR"/config.json memory.json "$COPY_TO"/ 2>/dev/null; cp -r results "$COPY_TO"/ 2>/dev/null; true)
# the tables last, so that the end of the output holds every answer
[ -f "$WORK/memory.txt" ] && grep -A40 "^memory plan against the GPU" "$WORK/memory.txt" | cut -c1-110
[ -f "$WORK/matrix/matrix.json" ] && $PY -m scripts.benchmark --report "$WORK/matrix" | cut -c1-150 | tail -50
echo "== training (flags: $FLAGS)"
grep -hE "step auto|memory plan|out of device memory|CUDA graph|timing:|time limit|resumed|done in|rror" "$WORK"/train*.log | cut -c1-220 | tail -12
echo "== validation F1 curve (last points of $(wc -l < "$WORK/validation_curve.txt") in $WORK/validation_curve.txt)"
tail -4 "$WORK/validation_curve.txt" | cut -c1-130
if [ "$STATE" = complete ]; then
    grep -A1 "Paper table row" "$WORK/test.log" | cut -c1-160
    grep -A10 "^Segments" "$WORK/test.log" | cut -c1-160
else
    echo "== schedule incomplete: continue on this machine with"
    echo "   DATASET=$DATASET DEVICE=$DEVICE SIZE=$SIZE NF=$NF TOTAL_S=$TOTAL TRAIN_ARGS=\"${TRAIN_ARGS:-}\" sh scripts/gpu_check.sh --continue $WORK $DATA"
fi
echo "== command $RUN: $(( $(date +%s) - START )) s"
