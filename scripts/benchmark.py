"""Speed and memory of a training step and of inference, per step mode.

    python -m scripts.benchmark --sizes 128 256 512 --modes literal reuse batched --json bench.json
    python -m scripts.benchmark --segments HRF-AV --data-root data --limit 21   # segment evaluation, one core
    python -m scripts.benchmark --nproc 2 --sizes 128 --device cuda   # DDP: plain vs 1 and N processes
    python -m scripts.benchmark --matrix OUT --device cuda --sizes 592 --budget-s 270   # GPU variant matrix
    python -m scripts.benchmark --report OUT                          # its tables again

Modes (all exact but ``amp``; see scripts/training/step.py):
``literal`` the original's calls (every forward recomputed, D nine times; plain Adam, contiguous);
``reuse`` one forward per generator, no unused D weight gradients, fused Adam;
``batched`` ``reuse`` plus D's calls batched (2B per D update, 3B for the three generator updates);
``amp`` ``batched`` under bf16 autocast; ``compile`` ``batched`` with torch.compile'd networks
(compilation happens in the warm-up steps); ``auto`` the mode ``--step auto`` of train.py chooses
(the table names it). ``--channels-last auto`` uses NHWC on CUDA only. ``--matrix``: the GPU variant
matrix with CUDA-graph replay, kernel profiles and ceilings (``scripts/training/variants.py``).
Every (mode, size) runs in a fresh process so its peak memory is its own (RSS on CPU, max
allocated on CUDA). Times are medians after warm-up. FLOPs and the number of ATen operator calls
(about one kernel launch each on a GPU) are counted during the first warm-up step.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a file (python scripts/NAME.py, torchrun scripts/NAME.py): the
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # repository, not scripts/, is the import root

from scripts.benchmarks.ddp import ddp_benchmark
from scripts.benchmarks.gpu_matrix import Matrix, format_matrix
from scripts.benchmarks.segments import segments_benchmark
from scripts.benchmarks.steps import MODES, benchmark_steps, table
from scripts.cli.entry import run_command
from scripts.cli.types import positive_float, positive_int
from scripts.core.config import default_data_root
from scripts.core.errors import UsageError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--segments",
        metavar="DATASET",
        default=None,
        help="time segment-level evaluation on DATASET's labels instead of the networks",
    )
    p.add_argument("--data-root", type=Path, default=None, help="with --segments (default: $AVSEG_DATA or ./data)")
    p.add_argument("--split", default="training", help="with --segments")
    p.add_argument("--limit", type=positive_int, default=None, help="with --segments: the first N images")
    p.add_argument(
        "--nproc",
        type=positive_int,
        default=None,
        metavar="N",
        help="DDP throughput instead: plain vs DDP with 1 and N processes (first --sizes entry)",
    )
    p.add_argument(
        "--matrix",
        type=Path,
        default=None,
        metavar="OUT",
        help="the GPU variant matrix (first --sizes entry) into OUT/matrix.json, tables printed last",
    )
    p.add_argument("--budget-s", type=positive_float, default=270, help="with --matrix: seconds it may take")
    p.add_argument("--report", type=Path, default=None, metavar="OUT", help="print the tables of OUT/matrix.json")
    p.add_argument("--sizes", type=positive_int, nargs="+", default=[128, 256])
    p.add_argument("--modes", nargs="+", choices=MODES, default=["literal", "reuse", "batched"])
    p.add_argument("--channels-last", choices=["auto", "on", "off"], default="auto", help="NHWC memory format")
    p.add_argument("--n-filters", type=positive_int, default=32)
    p.add_argument("--batch-size", type=positive_int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--reps", type=positive_int, default=5)
    p.add_argument("--warmup", type=positive_int, default=2, help="untimed steps first (at least 1)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    return run_command(lambda: benchmark(a))


def benchmark(a: argparse.Namespace) -> int:
    """Run the measurement the options name and print its table."""
    if a.report:
        print(format_matrix(a.report))
    elif a.matrix:
        Matrix(
            torch.device(a.device), a.sizes[0], a.n_filters, a.matrix, a.budget_s, say=lambda t: print(t, flush=True)
        ).run()
        print(format_matrix(a.matrix))
    elif a.nproc:
        if a.device.startswith("cuda") and torch.cuda.device_count() < a.nproc:
            raise UsageError(f"--nproc {a.nproc} needs {a.nproc} GPUs, {torch.cuda.device_count()} visible")
        print(ddp_benchmark(a.nproc, a.sizes[0], a.n_filters, a.batch_size, a.device, a.reps, max(1, a.warmup)))
    elif a.segments:
        print(segments_benchmark(a.segments, a.data_root or default_data_root(), a.split, a.limit))
    else:
        if a.device.startswith("cuda") and not torch.cuda.is_available():
            raise UsageError(f"--device {a.device} asked for, but no CUDA GPU is visible")
        settings = dict(n_filters=a.n_filters, batch=a.batch_size, device_name=a.device, reps=a.reps, warmup=a.warmup)
        rows, device = benchmark_steps(
            a.sizes, a.modes, a.json, threads=a.threads, channels_last=a.channels_last, **settings
        )
        print(
            f"training step (batch {a.batch_size}, n={a.n_filters}) and inference on {a.device} ({device}), "
            f"torch {torch.__version__}"
        )
        print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
