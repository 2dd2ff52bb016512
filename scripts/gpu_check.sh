#!/bin/sh
# One prepared command for a GPU machine (PyTorch installed, no downloads, under 10 minutes):
#   sh scripts/gpu_check.sh OUTDIR [DATA_ROOT]
# 1. benchmark at 592x592, batch 2, n=32: literal, reuse, batched, amp (batched + bf16), compile
#    (batched + torch.compile);
# 2. the cost of DistributedDataParallel on one device (plain vs DDP with one process);
# 3. scripts/reproduce.sh DRIVE_AV with the fastest exact mode for about $MINUTES minutes
#    (--time-limit; the log predicts the full 1500-epoch time after 200 steps), then test.sh.
# Logs and JSON go to OUTDIR. On a CPU, prove it works with tiny settings:
#   DEVICE=cpu SIZE=64 NF=8 MINUTES=0.2 BENCH_SIZE=64 MODES="literal batched" sh scripts/gpu_check.sh /tmp/check
set -eu
OUT=${1:?usage: sh scripts/gpu_check.sh OUTDIR [DATA_ROOT]}
DATA=${2:-${AVSEG_DATA:-../shared/data}}
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-592}
NF=${NF:-32}
MINUTES=${MINUTES:-4}
BENCH_SIZE=${BENCH_SIZE:-592}
MODES=${MODES:-literal reuse batched amp compile}
REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/_python.sh"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
START=$(date +%s)
{ nvidia-smi || true; $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" \
    || true; nproc; } > "$OUT/machine.txt" 2>&1
echo "== benchmark ($BENCH_SIZE px): $MODES"
# shellcheck disable=SC2086
timeout 200 $PY -m scripts.benchmark --device "$DEVICE" --sizes "$BENCH_SIZE" --modes $MODES \
    --reps 10 --warmup 3 --n-filters "$NF" --json "$OUT/benchmark.json" 2>&1 | tee "$OUT/benchmark.txt" || true
echo "== DDP overhead on one device ($BENCH_SIZE px): plain vs DistributedDataParallel with 1 process"
timeout 150 $PY -m scripts.benchmark --nproc 1 --device "$DEVICE" --sizes "$BENCH_SIZE" --n-filters "$NF" \
    --reps 10 --warmup 3 2>&1 | tee "$OUT/ddp.txt" || true
FASTEST=$($PY - "$OUT/benchmark.json" <<'PY'
import json, sys
try:
    rows = [r for r in json.load(open(sys.argv[1]))["rows"] if "error" not in r and r["mode"] != "amp"]
    print(min(rows, key=lambda r: r["ms_per_step"])["mode"] if rows else "batched")
except (OSError, ValueError, KeyError):
    print("batched")
PY
)
EXTRA=""
case "$FASTEST" in
    compile) EXTRA="--compile" ;;
    literal|reuse) EXTRA="--step $FASTEST" ;;
esac
echo "== reproduce DRIVE_AV for ~$MINUTES min with the fastest exact mode: $FASTEST"
# shellcheck disable=SC2086
AVSEG_DATA=$DATA timeout $(( ${MINUTES%.*} * 60 + 200 )) sh "$REPO/scripts/reproduce.sh" DRIVE_AV "$OUT/reproduce" \
    --device "$DEVICE" --n-filters "$NF" --image-size "$SIZE" "$SIZE" --time-limit "$MINUTES" $EXTRA \
    > "$OUT/reproduce.txt" 2>&1 || { echo "reproduce failed"; tail -30 "$OUT/reproduce.txt"; }
grep -E "timing:|validation F1|time limit|Paper table row|Sensitivity:|done in" "$OUT/reproduce.txt" | tail -12
echo "== total $(( $(date +%s) - START )) s; logs and JSON in $OUT"
