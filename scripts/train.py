"""Train G_A, G_V, G and D adversarially (SPEC section 5; ``--variant v2023``: the authors' 2023 code,
docs/training_v2023.md).

    python -m scripts.train --dataset DRIVE_AV --job_name drive_paper            # paper settings
    python -m scripts.train --dataset DRIVE_AV --job_name drive_paper --resume   # continue it

Checkpoints go to ``<out>/<DATASET>/<job>/``, which holds one run (a folder with another run is
refused: ``--resume`` it, choose another ``--job_name`` or give ``--overwrite``; a live run holds a
lock on it): ``epoch_XXXX.pt`` snapshots (G_A, G_V, G, every ``--save-every`` epochs from
``--save-from``; a run ending off that grid saves its last epoch as ``stop_epoch_XXXX.pt``), ``best.pt`` (best validation F1), ``last.pt`` (everything needed to
resume; written every ``--last-every-minutes``, at the end and on Ctrl-C), ``config.json`` and
``timing.json``. Checkpoints are handed to a background writer, so training does not wait for the
disk. TensorBoard logs go to ``<runs-dir>/<job>``: the mean losses and the learning rates every
``--log-every`` steps (the only time a step's values are read back from the device). Ctrl-C (or
SIGTERM) saves ``last.pt`` after the current step; ``--resume`` continues from it exactly.

Several processes (GPUs, or machines): ``torchrun --nproc_per_node=N scripts/train.py ...`` (or
``NPROC=N sh train.sh ...``); see ``scripts/core/distributed.py`` and docs/multi_gpu.md.
Rank 0 alone writes files, logs and TensorBoard.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import fields
from pathlib import Path

if __package__ in (None, ""):  # run as a file (python scripts/NAME.py, torchrun scripts/NAME.py): the
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # repository, not scripts/, is the import root

from model.variants import VARIANTS
from scripts.cli.entry import quiet_parser, run_command
from scripts.cli.types import (
    boolean,
    learning_rate,
    n_filters,
    non_negative_float,
    non_negative_int,
    percent,
    positive_float,
    positive_int,
    seed,
)
from scripts.core.config import DATASETS
from scripts.core.distributed import init_from_env
from scripts.core.runtime import resolve_device
from scripts.training.loop import TrainingRun
from scripts.training.options import (
    AMP_CHOICES,
    AUTO_ON_OFF,
    COMPILE_MODES,
    DEFAULTS,
    GRAPH_MODES,
    STEP_MODES,
    TrainOptions,
)

log = logging.getLogger("avseg")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--variant",
        choices=VARIANTS,
        help="v2021: the MICCAI 2021 paper (SPEC section 5); v2023: the authors' 2023 code (softmax over "
        "4 classes, cross-entropy + MSE, all three generators on the full target, schedulers per epoch; "
        "docs/training_v2023.md). sh train.sh DATASET --variant v2023 gives its README's settings",
    )
    p.add_argument("--epochs", "-e", type=positive_int)
    p.add_argument("--batch-size", "-b", type=positive_int)
    p.add_argument("--learning-rate", "-l", type=learning_rate)
    p.add_argument("--alpha", type=non_negative_float, help="weight of the MSE loss")
    p.add_argument(
        "--beta", type=non_negative_float, help="weight of the segmentation loss (BCE; v2023: cross-entropy)"
    )
    p.add_argument(
        "--gama",
        "--gamma",
        dest="gamma",
        type=non_negative_float,
        help="weight of the adversarial loss",
    )
    p.add_argument("--dataset", help=f"{', '.join(DATASETS)} or a folder name under --data-root")
    p.add_argument("--job_name", "--job-name", dest="job_name")
    p.add_argument("--seed_num", "--seed", dest="seed", type=seed)
    p.add_argument("--validation", "-v", type=percent, help="validation percent")
    p.add_argument("--uniform", type=boolean, nargs="?", const=True, help="all datasets at 912x912 (v2023: 720x720)")
    p.add_argument("--discriminator", choices=["unet"], help="discriminator type (U-Net)")
    p.add_argument("--data-root", type=Path, help="default: $AVSEG_DATA or ./data")
    p.add_argument("--n-filters", type=n_filters, help="base width n (32 in the paper)")
    p.add_argument(
        "--image-size",
        type=positive_int,
        nargs=2,
        metavar=("W", "H"),
        help="model input size (default: the dataset's, SPEC section 2)",
    )
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument(
        "--workers",
        help="DataLoader worker processes: a number, or auto (0 on the CPU, else up to 8 by the machine's cores)",
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        metavar="LAST_PT",
        help="continue from last.pt (default: the job's own)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="the job folder holds an earlier run: delete its checkpoints, config, timing and TensorBoard "
        "events before training (without it such a folder is refused)",
    )
    p.add_argument("--save-from", type=non_negative_int, help="first snapshot epoch")
    p.add_argument("--save-every", type=positive_int, help="epochs between snapshots")
    p.add_argument("--val-every", type=positive_int, help="epochs between validations")
    p.add_argument(
        "--last-every-minutes",
        type=positive_float,
        metavar="MIN",
        help="minutes between writes of the resumable last.pt (also written at the end and on Ctrl-C)",
    )
    p.add_argument("--log-every", type=positive_int, help="steps between TensorBoard loss/lr points (interval means)")
    p.add_argument(
        "--progress-every",
        type=positive_float,
        metavar="SECONDS",
        help="when the output is not a terminal (a log file, a cluster job): seconds between progress lines "
        "(step, epoch, losses, speed, time left); on a terminal a progress bar shows them",
    )
    p.add_argument("--image-every", type=positive_int, help="validations between TensorBoard image grids")
    p.add_argument("--out", type=Path, help="checkpoints go to OUT/<DATASET>/<job>")
    p.add_argument("--runs-dir", type=Path, help="TensorBoard folder")
    p.add_argument(
        "--step",
        dest="step_mode",
        choices=("auto", *STEP_MODES),
        help="how a training step runs; all three are exact (docs/training_step.md): literal = the "
        "original's calls, reuse = one forward per generator, batched = reuse + batched D calls; "
        "auto (default) = on CPUs the fastest measured (reuse from n = 16, batched below: the demo's n = 8); on "
        "CUDA the fastest that fits the GPU's free memory by the memory plan (batched where it fits)",
    )
    p.add_argument(
        "--activation-checkpointing",
        choices=AUTO_ON_OFF,
        help="recompute the networks' activations in the backward pass instead of keeping them: the same "
        "numbers (bit for bit on the CPU), a fraction of the memory (DRIVE_AV's batched step: 15.1 -> 4.8 GiB), "
        "one more forward pass per step. auto (default): on CUDA, with --step auto, the fastest exact "
        "configuration that the memory plan fits in the GPU's free memory (docs/memory.md); off on CPUs",
    )
    p.add_argument(
        "--cuda-graph",
        choices=GRAPH_MODES,
        help="replay the whole training step as one CUDA graph (same arithmetic, no per-operator host "
        "cost). auto (default): on CUDA, time a few eager steps and a few replays and keep the faster; "
        "on = always on CUDA (refused elsewhere); off = eager",
    )
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="on CUDA: deterministic cuDNN kernels and no cudnn.benchmark autotuning (slower; the "
        "default autotunes). The CPU is deterministic either way",
    )
    p.add_argument("--literal", dest="step_mode", action="store_const", const="literal", help="same as --step literal")
    p.add_argument(
        "--channels-last",
        choices=AUTO_ON_OFF,
        help="NHWC memory format (same math); auto = on for CUDA",
    )
    p.add_argument(
        "--amp",
        nargs="?",
        const="bf16",
        choices=AMP_CHOICES,
        help="mixed precision (not exact): bf16 autocast (CPU or CUDA, default), fp16 with a gradient "
        "scaler (CUDA), off = float32. On CPUs without bf16 units (AVX512-BF16/AMX) bf16 is slow",
    )
    p.add_argument(
        "--compile",
        nargs="?",
        const="default",
        choices=COMPILE_MODES,
        help="torch.compile the four networks (reduce-overhead: CUDA graphs); if compiling fails, "
        "training goes on without it and says so",
    )
    p.add_argument(
        "--adv-double-sigmoid",
        action="store_true",
        help="the original code's adversarial loss (sigmoid before BCE-with-logits); off per SPEC",
    )
    p.add_argument("--max-steps", type=positive_int, help="stop (saving last.pt) after this many steps")
    p.add_argument(
        "--time-limit",
        type=non_negative_float,
        metavar="MINUTES",
        help="end training cleanly (validation, snapshot, last.pt) after the first epoch past this",
    )
    p.add_argument(
        "--sync-bn",
        choices=AUTO_ON_OFF,
        help="under torchrun: batch-norm statistics over the whole global batch (auto: on with "
        "several processes, so the statistics are the single-process ones)",
    )
    p.add_argument(
        "--dist-timeout",
        type=positive_float,
        metavar="MIN",
        help="under torchrun: minutes a process waits for the others before giving up with an error",
    )
    p.set_defaults(**{f.name: getattr(DEFAULTS, f.name) for f in fields(TrainOptions)})
    return p


def options(args: argparse.Namespace) -> TrainOptions:
    """The parsed command line as typed options."""
    values = vars(args)
    if values["image_size"] is not None:
        values = {**values, "image_size": tuple(values["image_size"])}
    return TrainOptions(**values)


def run(opts: TrainOptions) -> dict:
    """Train as ``opts`` say (under torchrun: this process's part); see :class:`TrainingRun`."""
    ctx, device = init_from_env(resolve_device(opts.device), opts.dist_timeout)
    try:
        return TrainingRun(opts, ctx, device).run()
    finally:
        ctx.close()


def main(argv: list[str] | None = None) -> int:
    args = quiet_parser(build_parser()).parse_args(argv)
    return run_command(lambda: train(options(args)))


def train(opts: TrainOptions) -> int:
    """Run and say how it ended: 0 done, 130 stopped by Ctrl-C (0 for a --max-steps stop)."""
    start = time.perf_counter()
    result = run(opts)
    if result["stopped"]:
        return 130 if opts.max_steps is None else 0
    if result.get("trained", True):
        log.info("done in %.1f s; checkpoints in %s", time.perf_counter() - start, result["job_dir"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
