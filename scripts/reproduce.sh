#!/bin/sh
# Reproduce one row of the paper table in one command: train with the paper settings, then test.
#   sh scripts/reproduce.sh DATASET OUTDIR [extra scripts/train.py options, e.g. --amp, --compile]
# DATASET: DRIVE_AV, LES-AV, HRF-AV or any folder of $AVSEG_DATA (default ./data) in the same layout.
# The fastest exact training step for the device (--step auto; float32 unless --amp is given; on CUDA
# the whole-step CUDA graph when it measures faster), DataLoader workers sized to the machine.
# Writes OUTDIR/{train.log,test.log,paper_row.json,timing.json,figures/} (checkpoints under
# OUTDIR/DATASET/reproduce/, TensorBoard under OUTDIR/runs/). The training log says after 200 steps
# how long the whole run will take.
# Quick try on a CPU: AVSEG_DATA=data sh scripts/reproduce.sh SYNTHETIC /tmp/r --n-filters 8 --image-size 64 64 --epochs 3
set -eu
if [ $# -lt 2 ]; then
    echo "usage: sh scripts/reproduce.sh DATASET OUTDIR [train options]" >&2
    exit 2
fi
DATASET=$1
OUT=$2
shift 2
REPO=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
START=$(date +%s)
echo "== train $DATASET with the paper settings (log: $OUT/train.log)"
# POSIX sh has no pipefail: the exit code travels through a file
{ rc=0; JOB=reproduce sh "$REPO/train.sh" "$DATASET" --out "$OUT" --runs-dir "$OUT/runs" --workers auto \
    "$@" 2>&1 || rc=$?; echo $rc > "$OUT/.train_rc"; } | tee "$OUT/train.log"
RC=$(cat "$OUT/.train_rc"); rm -f "$OUT/.train_rc"
if [ "$RC" != 0 ]; then
    echo "training failed (exit $RC); see $OUT/train.log" >&2
    exit "$RC"
fi
TRAINED=$(( $(date +%s) - START ))
echo "== test the snapshots (log: $OUT/test.log)"
{ rc=0; JOB=reproduce sh "$REPO/test.sh" "$DATASET" --out "$OUT" --maps-dir "$OUT/Final_pre" \
    --results "$OUT/results" 2>&1 || rc=$?; echo $rc > "$OUT/.test_rc"; } | tee "$OUT/test.log"
RC=$(cat "$OUT/.test_rc"); rm -f "$OUT/.test_rc"
if [ "$RC" != 0 ]; then
    echo "testing failed (exit $RC); see $OUT/test.log" >&2
    exit "$RC"
fi
cp "$OUT/results/paper_row.json" "$OUT/paper_row.json"
rm -rf "$OUT/figures" && cp -r "$OUT/results/figures" "$OUT/figures"
TOTAL=$(( $(date +%s) - START ))
# timing.json: the training run's own figures, plus the wall time of both stages
. "$REPO/_python.sh"
$PY - "$OUT/$DATASET/reproduce/timing.json" "$OUT/timing.json" "$TRAINED" "$TOTAL" <<'PY'
import json, sys
src, dst, trained, total = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
timing = json.load(open(src))
timing.update({"train_wall_s": trained, "test_wall_s": total - trained, "total_wall_s": total})
open(dst, "w").write(json.dumps(timing, indent=1) + "\n")
PY
echo "== done in $TOTAL s (training $TRAINED s): $OUT/paper_row.json, $OUT/timing.json, $OUT/figures/"
