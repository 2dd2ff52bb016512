#!/bin/sh
# One prepared command for a GPU machine (PyTorch installed, no downloads, < 9 minutes):
#   sh scripts/gpu_check.sh OUTDIR [DATA_ROOT]
# 1. benchmark at 592x592: literal fp32 vs optimised bf16 (and optimised fp32);
# 2. train DRIVE_AV with the paper settings for about $MINUTES minutes (default 6);
# 3. test the last snapshots on the DRIVE_AV test split and print the paper row.
# Logs and JSON go to OUTDIR. On a CPU, prove it works with tiny settings:
#   DEVICE=cpu SIZE=64 NF=8 MINUTES=0.3 BENCH_SIZE=64 sh scripts/gpu_check.sh /tmp/check
set -eu
OUT=${1:?usage: sh scripts/gpu_check.sh OUTDIR [DATA_ROOT]}
DATA=${2:-${AVSEG_DATA:-../shared/data}}
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-592}
NF=${NF:-32}
MINUTES=${MINUTES:-6}
BENCH_SIZE=${BENCH_SIZE:-592}
REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/_python.sh"
mkdir -p "$OUT"
START=$(date +%s)
{ nvidia-smi || true; $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" \
    || true; } > "$OUT/machine.txt" 2>&1
echo "== benchmark ($BENCH_SIZE px)"
timeout 150 $PY -m scripts.benchmark --device "$DEVICE" --sizes "$BENCH_SIZE" --modes literal optimised amp \
    --reps 5 --warmup 2 --n-filters "$NF" --json "$OUT/benchmark.json" 2>&1 | tee "$OUT/benchmark.txt"
echo "== train DRIVE_AV for ~$MINUTES min"
WORKERS=$(( $(nproc) > 8 ? 8 : $(nproc) ))
timeout $(( ${MINUTES%.*} * 60 + 150 )) $PY -m scripts.train --dataset DRIVE_AV --data-root "$DATA" \
    --job_name gpu_check --out "$OUT" --runs-dir "$OUT/runs" --device "$DEVICE" --workers "$WORKERS" \
    --n-filters "$NF" --image-size "$SIZE" "$SIZE" --epochs 1500 --time-limit "$MINUTES" \
    --save-from 1 --save-every 10 --val-every 10 --last-every 50 > "$OUT/train.log" 2>&1 \
    || { echo "training failed, see $OUT/train.log"; tail -20 "$OUT/train.log"; exit 1; }
grep -E "validation F1|time limit|done in" "$OUT/train.log" | tail -5
echo "== test DRIVE_AV (last 3 snapshots)"
set --
for f in $(ls "$OUT/DRIVE_AV/gpu_check"/epoch_*.pt | tail -3); do set -- "$@" --checkpoint "$f"; done
$PY -m scripts.test --dataset DRIVE_AV --data-root "$DATA" --device "$DEVICE" "$@" \
    --maps-dir "$OUT/Final_pre" --results "$OUT/results" 2>&1 | grep -v Warning | tee "$OUT/test.txt"
echo "== total $(( $(date +%s) - START )) s; logs and JSON in $OUT"
