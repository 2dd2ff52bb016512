"""Speed and memory of a training step and of inference, per step mode.

    python -m scripts.benchmark --sizes 128 256 512 --modes literal reuse batched --json bench.json
    python -m scripts.benchmark --segments HRF-AV --data-root data --limit 21   # segment evaluation, one core
    python -m scripts.benchmark --nproc 2 --sizes 128 --device cuda   # DDP: plain vs 1 and N processes
    python -m scripts.benchmark --matrix OUT --device cuda --sizes 592 --budget-s 270   # GPU variant matrix
    python -m scripts.benchmark --report OUT                          # its tables again
    python -m scripts.benchmark --predict photos/ --checkpoint best.pt --photos 200   # predict.py's pipelines

Modes (all exact but ``amp``; see scripts/training/step.py):
``literal`` the original's calls (every forward recomputed, D nine times; plain Adam, contiguous);
``reuse`` one forward per generator, no unused D weight gradients, fused Adam;
``batched`` ``reuse`` plus D's calls batched (2B per D update, 3B for the three generator updates);
``amp`` ``batched`` under bf16 autocast; ``compile`` ``batched`` with torch.compile'd networks
(compilation happens in the warm-up steps); ``auto`` the mode ``--step auto`` of train.py chooses
(the table names it). ``--channels-last auto`` uses NHWC on CUDA only. ``--matrix``: the GPU variant
matrix with CUDA-graph replay, kernel profiles and ceilings (``scripts/benchmarks/gpu_matrix.py``).
Every (mode, size) runs in a fresh process so its peak memory is its own (RSS on CPU, max
allocated on CUDA). Times are medians after warm-up. FLOPs and the number of ATen operator calls
(about one kernel launch each on a GPU) are counted during the first warm-up step.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a file (python scripts/NAME.py, torchrun scripts/NAME.py): the
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # repository, not scripts/, is the import root

from scripts.benchmarks.ddp import ddp_benchmark
from scripts.benchmarks.gpu_matrix import Matrix, format_matrix
from scripts.benchmarks.memory import MODES as MEMORY_MODES
from scripts.benchmarks.memory import format_memory, format_verified, memory_rows, sizes_of, verify
from scripts.benchmarks.predict import predict_benchmark
from scripts.benchmarks.segments import segments_benchmark
from scripts.benchmarks.steps import MODES, benchmark_steps, table
from scripts.cli.entry import run_command
from scripts.cli.types import int_between, n_filters, positive_float, positive_int
from scripts.core.config import default_data_root
from scripts.core.errors import UsageError
from scripts.inference.pipeline import Workers
from scripts.io.atomic import write_atomic


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--segments",
        metavar="DATASET",
        default=None,
        help="time segment-level evaluation on DATASET's labels instead of the networks",
    )
    p.add_argument("--data-root", type=Path, default=None, help="with --segments (default: $AVSEG_DATA or ./data)")
    p.add_argument(
        "--predict",
        type=Path,
        default=None,
        metavar="FOLDER",
        help="time predict.py on FOLDER's photographs instead: the sequential pipeline and each of --pipelines",
    )
    p.add_argument("--checkpoint", type=Path, default=None, help="with --predict: the model (a .pt or job folder)")
    p.add_argument(
        "--photos", type=positive_int, default=100, help="with --predict: this many (FOLDER's photographs, cycled)"
    )
    p.add_argument(
        "--pipelines",
        nargs="+",
        default=["0,0", "1,1", "1,2"],
        metavar="D,F",
        help="with --predict: decode and finish worker processes of each pipeline timed (0,0: sequential)",
    )
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
    p.add_argument(
        "--memory",
        action="store_true",
        help="the memory plan instead (CUDA memory predicted on this CPU, docs/memory.md): planned peak per "
        "--modes (literal, reuse, batched, amp) and size, with and without activation checkpointing, and what "
        "the default picks on --cards",
    )
    p.add_argument("--dataset", nargs="+", default=None, metavar="NAME", help="with --memory: these datasets' sizes")
    p.add_argument(
        "--verify",
        action="store_true",
        help="with --memory on a GPU: also run every planned step for real and print measured against planned "
        "peaks and ms per step (at most --budget-s)",
    )
    p.add_argument(
        "--cards", type=positive_int, nargs="*", default=[16, 24, 40, 80], metavar="GB", help="with --memory"
    )
    p.add_argument(
        "--sizes",
        type=int_between(16, 4096, "a square model input side in pixels"),
        nargs="+",
        default=None,
        help="square sizes (default: 128 256)",
    )
    p.add_argument("--modes", nargs="+", choices=MODES, default=["literal", "reuse", "batched"])
    p.add_argument(
        "--activation-checkpointing",
        choices=("off", "on", "both"),
        default="off",
        help="step timings: with activation checkpointing, or both ways (its cost per step)",
    )
    p.add_argument("--channels-last", choices=["auto", "on", "off"], default="auto", help="NHWC memory format")
    p.add_argument("--n-filters", type=n_filters, default=32)
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="training steps: 2 unless given; --predict: 1 unless given",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--reps", type=positive_int, default=5)
    p.add_argument("--warmup", type=positive_int, default=2, help="untimed steps first (at least 1)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    return run_command(lambda: benchmark(a))


def benchmark(a: argparse.Namespace) -> int:
    """Run the measurement the options name and print its table."""
    if a.predict:
        pipelines = [Workers(*_pair(text)) for text in a.pipelines]
        print(predict_benchmark(a.predict, a.checkpoint, pipelines, a.photos, a.batch_size or 1, a.device, a.threads))
        return 0
    a.batch_size = a.batch_size or 2
    if a.memory:
        if a.verify and (not a.device.startswith("cuda") or not torch.cuda.is_available()):
            raise UsageError("--verify measures the plan against a CUDA GPU: give --device cuda on a GPU machine")
        modes = [m for m in a.modes if m in MEMORY_MODES]
        if not modes:
            raise UsageError(f"--memory plans the modes {', '.join(MEMORY_MODES)}; got --modes {' '.join(a.modes)}")
        rows = memory_rows(
            modes, sizes_of(a.sizes, a.dataset) or sizes_of([592], None), a.n_filters, a.batch_size, a.cards
        )
        if a.json:
            write_atomic(a.json, json.dumps({"memory_plan": rows}, indent=1) + "\n")
        if a.verify:  # on the GPU: the measured peaks, each written as it comes
            results: list[dict] = []

            def keep(result: dict) -> None:
                results.append(result)
                print(
                    f"  {result['size']} {result['mode']}{' + ckpt' if result['checkpointing'] else ''}: "
                    f"measured {result['measured_mb']} MiB",
                    file=sys.stderr,
                    flush=True,
                )
                if a.json:
                    write_atomic(a.json, json.dumps({"memory_plan": rows, "verified": results}, indent=1) + "\n")

            verify(rows, a.n_filters, a.batch_size, a.device, a.budget_s, keep)
        print(format_memory(rows, a.n_filters, a.batch_size))
        if a.verify:
            print(format_verified(results))
        return 0
    a.sizes = a.sizes or [128, 256]
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
        checkpointing = {"off": [False], "on": [True], "both": [False, True]}[a.activation_checkpointing]
        rows, device = benchmark_steps(
            a.sizes, a.modes, a.json, checkpointing, threads=a.threads, channels_last=a.channels_last, **settings
        )
        print(
            f"training step (batch {a.batch_size}, n={a.n_filters}) and inference on {a.device} ({device}), "
            f"torch {torch.__version__}"
        )
        print(table(rows))
    return 0


def _pair(text: str) -> tuple[int, int]:
    try:
        decode, finish = (int(v) for v in text.split(","))
    except ValueError:
        raise UsageError(
            f"--pipelines {text}: give two whole numbers D,F (decode and finish workers), e.g. 1,2"
        ) from None
    if min(decode, finish) < 0 or max(decode, finish) > 64:
        raise UsageError(f"--pipelines {text}: workers must lie in 0..64")
    return decode, finish


if __name__ == "__main__":
    sys.exit(main())
