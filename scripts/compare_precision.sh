#!/bin/sh
# How well does the demo learn over seeds, and does a precision learn as well as float32? The demo
# (sh train.sh demo, then sh test.sh demo) trained with each precision and each seed at equal steps;
# prints the test F1 and the minutes of every run and, per precision, the mean, standard deviation,
# lowest value and spread (max - min) over the seeds, with the CPU it ran on.
#   sh scripts/compare_precision.sh OUTDIR [PRECISIONS] [SEEDS] [extra train.py options]
#   sh scripts/compare_precision.sh /tmp/prec "off bf16" "42 1 2" --step batched
#   sh scripts/compare_precision.sh /tmp/seeds off "1 2 3 4 5"     # the demo's five-seed check
# PRECISIONS: --amp values (off = float32, bf16, fp16). Results: OUTDIR/<precision>_<seed>/ and OUTDIR/table.txt.
set -eu
OUT=${1:?usage: sh scripts/compare_precision.sh OUTDIR [PRECISIONS] [SEEDS] [train options]}
PRECISIONS=${2:-off bf16}
SEEDS=${3:-42 1 2}
[ $# -gt 3 ] && shift 3 || shift $#
REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/_python.sh"
mkdir -p "$OUT"
for P in $PRECISIONS; do
    for S in $SEEDS; do
        RUN="$OUT/${P}_$S"
        if [ -f "$RUN/results/paper_row.json" ]; then
            echo "== $P seed $S: done before ($RUN)"
            continue
        fi
        echo "== $P seed $S"
        START=$(date +%s)
        RESUME=""  # a run that was interrupted continues where it stopped
        [ -f "$RUN/SYNTHETIC/prec/last.pt" ] && RESUME="--resume"
        JOB=prec sh "$REPO/train.sh" demo --amp "$P" --seed "$S" --out "$RUN" --runs-dir "$RUN/runs" $RESUME "$@" \
            > "$RUN.train.log" 2>&1 || { echo "training failed: $RUN.train.log"; tail -5 "$RUN.train.log"; exit 1; }
        JOB=prec sh "$REPO/test.sh" demo --out "$RUN" --results "$RUN/results" --maps-dir "$RUN/Final_pre" \
            --no-biomarkers > "$RUN.test.log" 2>&1 || { echo "testing failed: $RUN.test.log"; exit 1; }
        echo "$(( $(date +%s) - START ))" > "$RUN.seconds"
        echo "   $(( $(date +%s) - START )) s"
    done
done
$PY - "$OUT" "$PRECISIONS" "$SEEDS" <<'PY' | tee "$OUT/table.txt"
import json, statistics, sys
from pathlib import Path
from scripts.core.runtime import cpu_flags
out, precisions, seeds = Path(sys.argv[1]), sys.argv[2].split(), sys.argv[3].split()
def minutes(run: Path) -> str:
    return f"{int(run.with_suffix('.seconds').read_text()) / 60:.1f}" if run.with_suffix(".seconds").is_file() else "-"
shown = " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in cpu_flags())
print(f"test F1 % of the demo (its paper row, as test.sh demo scores it); minutes per run (train + test); CPU flags: {shown or 'unknown'}")
print(f"{'precision':<10}" + "".join(f"{'seed ' + s:>17}" for s in seeds) + f"{'mean':>8}{'std':>7}{'min':>8}{'spread':>8}")
for p in precisions:
    f1 = [json.loads((out / f"{p}_{s}" / "results" / "paper_row.json").read_text())["percent"]["F1"]["mean"] for s in seeds]
    sd = statistics.stdev(f1) if len(f1) > 1 else float("nan")
    texts = [f"{v:.2f} ({minutes(out / (p + '_' + s))} min)" for v, s in zip(f1, seeds)]
    cells = "".join(f"{t:>17}" for t in texts)
    print(f"{p:<10}" + cells + f"{statistics.mean(f1):>8.2f}{sd:>7.2f}{min(f1):>8.2f}{max(f1) - min(f1):>8.2f}")
PY
