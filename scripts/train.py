"""Train G_A, G_V, G and D adversarially (SPEC section 5).

    python -m scripts.train --dataset DRIVE_AV --job_name drive_paper            # paper settings
    python -m scripts.train --dataset DRIVE_AV --job_name drive_paper --resume   # continue it

Checkpoints go to ``<out>/<DATASET>/<job>/``: ``epoch_XXXX.pt`` snapshots (G_A, G_V, G; the last
epoch of a run always gets one), ``best.pt`` (best validation F1), ``last.pt`` (everything needed to
resume; written every ``--last-every-minutes``, at the end and on Ctrl-C), ``config.json`` and
``timing.json``. Checkpoints are handed to a background writer, so training does not wait for the
disk. TensorBoard logs go to ``<runs-dir>/<job>``: the mean losses and the learning rates every
``--log-every`` steps (the only time a step's values are read back from the device). Ctrl-C (or
SIGTERM) saves ``last.pt`` after the current step; ``--resume`` continues from it exactly.

Several processes (GPUs, or machines): ``torchrun --nproc_per_node=N scripts/train.py ...`` (or
``NPROC=N sh train.sh ...``); see ``scripts/training/distributed.py`` and the README ("Several GPUs").
Rank 0 alone writes files, logs and TensorBoard.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
import warnings
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

if __package__ in (None, ""):  # run as a file (python scripts/NAME.py, torchrun scripts/NAME.py): the
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # repository, not scripts/, is the import root

from scripts import checkpoint as ckpt
from scripts.atomic import WriteError, remove_stale_temporaries
from scripts.config import DATASETS, PAPER, default_data_root
from scripts.dataset import AVDataset, EpochSampler, split_ids
from scripts.images import DataError
from scripts.inference import Predictor, evaluate, iterate_predictions
from scripts.metrics import mean_metrics
from scripts.report import write_atomic
from scripts.runtime import (
    UsageError,
    ensure_folder,
    non_negative_int,
    positive_float,
    positive_int,
    resolve_amp,
    resolve_device,
    resolve_workers,
)
from scripts.seeding import rng_state, seed_everything, set_rng_state
from scripts.training import STEP_MODES, GANTrainer, LossWeights, auto_step_mode
from scripts.training.cuda_graph import GRAPH_MODES, GraphedStep, graph_unsupported
from scripts.training.distributed import Context, DistributedEpochSampler, init_from_env, local_batch
from scripts.training.saver import BackgroundSaver
from scripts.training.timing import RunTimer
from scripts.visualise import comparison_row

log = logging.getLogger("avseg")


def str2bool(v: str) -> bool:
    if v.lower() in ("1", "true", "yes", "y", "on"):
        return True
    if v.lower() in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {v!r}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", "-e", type=positive_int, default=PAPER.epochs)
    p.add_argument("--batch-size", "-b", type=positive_int, default=PAPER.batch_size)
    p.add_argument("--learning-rate", "-l", type=float, default=PAPER.learning_rate)
    p.add_argument("--alpha", type=float, default=PAPER.alpha, help="weight of the MSE loss")
    p.add_argument("--beta", type=float, default=PAPER.beta, help="weight of the BCE segmentation loss")
    p.add_argument("--gama", "--gamma", dest="gamma", type=float, default=PAPER.gamma, help="weight of the adversarial loss")
    p.add_argument("--dataset", default="DRIVE_AV", help=f"{', '.join(DATASETS)} or a folder name under --data-root")
    p.add_argument("--job_name", "--job-name", dest="job_name", default="job")
    p.add_argument("--seed_num", "--seed", dest="seed", type=int, default=PAPER.seed)
    p.add_argument("--validation", "-v", type=float, default=PAPER.validation_percent, help="validation percent")
    p.add_argument("--uniform", type=str2bool, nargs="?", const=True, default=False, help="all datasets at 912x912")
    p.add_argument("--discriminator", default="unet", choices=["unet"], help="discriminator type (U-Net)")
    p.add_argument("--data-root", type=Path, default=None, help="default: $AVSEG_DATA or ./data")
    p.add_argument("--n-filters", type=positive_int, default=PAPER.n_filters, help="base width n (32 in the paper)")
    p.add_argument("--image-size", type=int, nargs=2, metavar=("W", "H"), default=None,
                   help="model input size (default: the dataset's, SPEC section 2)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--workers", default="auto", help="DataLoader worker processes: a number, or auto (0 on the CPU, "
                   "else up to 8 by the machine's cores)")
    p.add_argument("--resume", nargs="?", const="auto", default=None, metavar="LAST_PT",
                   help="continue from last.pt (default: the job's own)")
    p.add_argument("--save-from", type=non_negative_int, default=PAPER.save_from, help="first snapshot epoch")
    p.add_argument("--save-every", type=positive_int, default=PAPER.save_every, help="epochs between snapshots")
    p.add_argument("--val-every", type=positive_int, default=10, help="epochs between validations")
    p.add_argument("--last-every-minutes", type=positive_float, default=10.0, metavar="MIN",
                   help="minutes between writes of the resumable last.pt (also written at the end and on Ctrl-C)")
    p.add_argument("--log-every", type=positive_int, default=10, help="steps between TensorBoard loss/lr points (interval means)")
    p.add_argument("--image-every", type=positive_int, default=5, help="validations between TensorBoard image grids")
    p.add_argument("--out", type=Path, default=Path("."), help="checkpoints go to OUT/<DATASET>/<job>")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="TensorBoard folder")
    p.add_argument("--step", dest="step_mode", choices=("auto", *STEP_MODES), default="auto",
                   help="how a training step runs; all three are exact (README, 'Training step'): literal = the "
                   "original's calls, reuse = one forward per generator, batched = reuse + batched D calls; "
                   "auto (default) = the fastest measured for the device: reuse on CPUs, batched on GPUs")
    p.add_argument("--cuda-graph", choices=GRAPH_MODES, default="auto",
                   help="replay the whole training step as one CUDA graph (same arithmetic, no per-operator host "
                   "cost). auto (default): on CUDA, time a few eager steps and a few replays and keep the faster; "
                   "on = always on CUDA (refused elsewhere); off = eager")
    p.add_argument("--deterministic", action="store_true",
                   help="on CUDA: deterministic cuDNN kernels and no cudnn.benchmark autotuning (slower; the "
                   "default autotunes). The CPU is deterministic either way")
    p.add_argument("--literal", dest="step_mode", action="store_const", const="literal", help="same as --step literal")
    p.add_argument("--channels-last", choices=["auto", "on", "off"], default="auto",
                   help="NHWC memory format (same math); auto = on for CUDA")
    p.add_argument("--amp", nargs="?", const="bf16", default=None, choices=["bf16", "fp16", "off"],
                   help="mixed precision (not exact): bf16 autocast (CPU or CUDA, default), fp16 with a gradient "
                   "scaler (CUDA), off = float32. On CPUs without bf16 units (AVX512-BF16/AMX) bf16 is slow")
    p.add_argument("--compile", nargs="?", const="default", default=None,
                   choices=["default", "reduce-overhead", "max-autotune"],
                   help="torch.compile the four networks (reduce-overhead: CUDA graphs); if compiling fails, "
                   "training goes on without it and says so")
    p.add_argument("--adv-double-sigmoid", action="store_true",
                   help="the original code's adversarial loss (sigmoid before BCE-with-logits); off per SPEC")
    p.add_argument("--max-steps", type=positive_int, default=None, help="stop (saving last.pt) after this many steps")
    p.add_argument("--time-limit", type=float, default=None, metavar="MINUTES",
                   help="end training cleanly (validation, snapshot, last.pt) after the first epoch past this")
    p.add_argument("--sync-bn", choices=["auto", "on", "off"], default="auto",
                   help="under torchrun: batch-norm statistics over the whole global batch (auto: on with "
                   "several processes, so the statistics are the single-process ones)")
    p.add_argument("--dist-timeout", type=positive_float, default=10.0, metavar="MIN",
                   help="under torchrun: minutes a process waits for the others before giving up with an error")
    return p


def last_state(nets, trainer: GANTrainer, cfg: dict, epoch: int, step_in_epoch: int, global_step: int,
               best: float) -> dict:
    """Everything ``--resume`` needs, for ``last.pt``."""
    return {"format": ckpt.FORMAT, "config": cfg, "versions": ckpt.versions(), "epoch": epoch,
            "step_in_epoch": step_in_epoch, "global_step": global_step, "best_f1": best,
            "nets": {k: n.state_dict() for k, n in nets.items()}, "trainer": trainer.state_dict(), "rng": rng_state()}


class StopFlag:
    """Set by SIGINT/SIGTERM; the loop checks it after each step."""

    def __init__(self) -> None:
        self.set = False
        self._old = {}

    def __enter__(self):
        self._pid = os.getpid()
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if os.getpid() != self._pid:  # a DataLoader worker (forked with this handler): the main process decides
            return
        if self.set:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.set = True
        log.warning("stop requested: finishing this step and saving last.pt (Ctrl-C again to abort)")

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


# Settings that define the model, the data or the method: a resumed run must keep them. The others
# (epochs, device, workers, step mode, precision, compile, intervals, time limit, output folders,
# data location) may change on --resume.
RESUME_LOCKED = ("dataset", "n_filters", "seed", "batch_size", "image_size", "uniform", "validation", "learning_rate",
                 "alpha", "beta", "gamma", "adv_double_sigmoid")


def _load_resume(args: argparse.Namespace, last_path: Path, device: torch.device) -> dict:
    """The checkpoint to resume from, checked against this command's settings (fills --image-size)."""
    path = last_path if args.resume == "auto" else Path(args.resume)
    if not path.is_file():
        raise ckpt.CheckpointError(f"--resume: no checkpoint at {path}; start without --resume, or give "
                                   "--resume PATH/last.pt (and the same --job_name and --out as the run)")
    resume = ckpt.load(path, device)
    if not isinstance(resume, dict) or resume.get("format") != ckpt.FORMAT or "trainer" not in resume:
        raise ckpt.CheckpointError(f"--resume {path}: not a resumable last.pt of this project (snapshots and "
                                   "best.pt hold only the generators; resume from the job's last.pt)")
    ckpt.require_parts(resume, path, {"config": RESUME_LOCKED[:4], "nets": (*ckpt.GENERATORS, "D"),
                                      "trainer": ("opts", "scheds"), "rng": ()})
    if "lr" not in next(iter(resume["trainer"]["scheds"].values()), {}):
        raise ckpt.CheckpointError(f"{path}: written by an older version of this project (host-side "
                                   "schedulers); finish it with that version or start a new job")
    saved = resume["config"]
    for key in RESUME_LOCKED:
        asked = getattr(args, key)
        if key == "image_size":
            asked = list(asked) if asked else saved.get(key)
        if key in saved and saved[key] != asked:
            raise ckpt.CheckpointError(
                f"--resume: the run was trained with {key.replace('_', '-')}={saved[key]!r}, this command asks "
                f"for {asked!r}. Resume with the same setting, or start a new job (--job_name). Settings that "
                "may change on resume: epochs, device, workers, step, amp, compile, intervals, time limit.")
    args.image_size = args.image_size or saved["image_size"]
    return resume


class _NoWriter:
    """TensorBoard on ranks other than 0: nothing."""

    def __getattr__(self, name):
        return lambda *a, **k: None


def run(args: argparse.Namespace) -> dict:
    device = resolve_device(args.device)
    ctx, device = init_from_env(device, args.dist_timeout)
    try:
        return _run(args, ctx, device)
    finally:
        ctx.close()


def _run(args: argparse.Namespace, ctx: Context, device: torch.device) -> dict:
    if ctx.active:
        if args.compile:
            raise UsageError("--compile is not supported with several processes yet; leave it out under torchrun")
        if not ctx.main:  # rank 0 speaks for all
            logging.getLogger("avseg").setLevel(logging.ERROR)
            warnings.filterwarnings("ignore")
    per_rank = local_batch(args.batch_size, ctx)
    workers = resolve_workers(args.workers, device)
    if ctx.active and args.workers == "auto" and workers:  # the machine's cores are shared by its processes
        workers = max(1, workers // int(os.environ.get("LOCAL_WORLD_SIZE", ctx.world)))
    args.amp = resolve_amp(args.amp, device)
    if args.step_mode == "auto":
        args.step_mode = auto_step_mode(device, args.n_filters)
        log.info("--step auto: %s (%s, n = %d)", args.step_mode, device.type, args.n_filters)
    if args.cuda_graph == "on" and device.type != "cuda":
        raise UsageError(f"--cuda-graph on needs a CUDA device (this run is on {device}); leave it out or use "
                         "--cuda-graph off")
    data_root = args.data_root or default_data_root()
    job_dir = args.out / args.dataset / args.job_name
    last_path = job_dir / "last.pt"
    resume = None
    if args.resume:
        # rank 0 reads last.pt (other machines need not see it) and hands it to the others
        problem = None
        try:
            resume = _load_resume(args, last_path, device) if ctx.main else None
        except ckpt.CheckpointError as err:
            resume, problem = None, str(err)
        if ctx.active:
            box = [resume, args.image_size, problem]
            torch.distributed.broadcast_object_list(box, src=0, group=ctx.control)
            resume, args.image_size, problem = box
        if problem:
            raise ckpt.CheckpointError(problem)
        if resume["epoch"] > args.epochs:  # before any data is read or network built
            log.warning("this run had already finished its %d epochs: nothing was trained. Give a larger --epochs "
                        "to continue it.", resume["epoch"] - 1)
            return {"stopped": False, "history": [], "job_dir": job_dir, "trained": False}
    seed_everything(args.seed, deterministic=args.deterministic)
    full = AVDataset(args.dataset, "training", data_root, train=True, image_size=args.image_size, uniform=args.uniform)
    cfg = _config(args, list(full.model_size))
    train_idx, val_idx = split_ids(len(full), args.validation, args.seed)
    train_ds = AVDataset(args.dataset, "training", data_root, train=True, image_size=full.model_size, indices=train_idx)
    val_ds = AVDataset(args.dataset, "training", data_root, train=False, image_size=full.model_size, indices=val_idx) \
        if val_idx else None
    for ds in (train_ds, val_ds):  # every file decoded and checked before the first step
        if ds is not None:
            ds.preload()
    precision = f"{args.amp} autocast" if args.amp else (
        "float32 (TF32 convolutions)" if device.type == "cuda" and torch.backends.cudnn.allow_tf32 else "float32")
    log.info("train %d / validation %d images at %dx%d on %s; step: %s, %s", len(train_ds), len(val_idx),
             *full.model_size, device, args.step_mode, precision)
    if ctx.active:
        log.info("%d processes (torchrun), global batch %d = %d per process, batch norm %s", ctx.world,
                 args.batch_size, per_rank, "synchronised" if sync_bn(args, ctx) else "per process")

    nets = {k: v.to(device) for k, v in ckpt.build_networks(args.n_filters, with_discriminator=True).items()}
    weights = LossWeights(args.alpha, args.beta, args.gamma, args.adv_double_sigmoid)
    channels_last = args.channels_last == "on" or (args.channels_last == "auto" and device.type == "cuda")
    trainer = GANTrainer(nets, args.learning_rate, weights, mode=args.step_mode,
                         amp_dtype={"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp),
                         channels_last=channels_last, fused_adam=args.step_mode != "literal")
    start_epoch, skip, global_step, best = 1, 0, 0, -1.0
    if resume is not None:
        for k, net in nets.items():
            net.load_state_dict(resume["nets"][k])
        trainer.load_state_dict(resume["trainer"])
        set_rng_state(resume["rng"])
        start_epoch, skip = resume["epoch"], resume["step_in_epoch"]
        global_step, best = resume["global_step"], resume["best_f1"]
        log.info("resumed %s at epoch %d, step %d", last_path, start_epoch, skip)

    steps_per_epoch = -(-len(train_ds) // args.batch_size)
    if ctx.active:
        trainer.distribute(ctx, device_ids=[device.index] if device.type == "cuda" else None, sync_bn=sync_bn(args, ctx))
    if args.compile:
        w, h = full.model_size
        example = (torch.zeros(args.batch_size, 3, h, w, device=device), torch.zeros(args.batch_size, 3, h, w, device=device))
        log.info("compiling the networks (torch.compile, mode %s): the first steps take longer", args.compile)
        trainer.compile(args.compile, example)
    step = trainer.step
    if args.cuda_graph != "off":  # after resume and compile: the graph captures the state they left
        why_not = graph_unsupported(trainer, device, ctx.active, args.compile)
        if why_not and args.cuda_graph == "on":
            log.warning("--cuda-graph on: %s; training runs eagerly", why_not)
        elif not why_not:
            step = GraphedStep(trainer, args.cuda_graph)
    problem = None
    if ctx.main:
        try:
            ensure_folder(job_dir, "--out")
            ensure_folder(args.runs_dir / args.job_name, "--runs-dir")
            remove_stale_temporaries(job_dir)
            write_atomic(job_dir / "config.json", json.dumps({**cfg, "versions": ckpt.versions(),
                                                              "processes": ctx.world}, indent=1) + "\n")
        except (UsageError, WriteError) as err:
            problem = err
    if ctx.any(problem is not None):  # the other ranks stop with rank 0 instead of waiting for it
        raise problem or UsageError("rank 0 could not set up the output folders (its message says why)")
    sampler = DistributedEpochSampler(len(train_ds), args.seed, args.batch_size, ctx) if ctx.active \
        else EpochSampler(len(train_ds), args.seed)
    loader = DataLoader(train_ds, batch_size=per_rank, sampler=sampler, num_workers=workers,
                        persistent_workers=workers > 0, pin_memory=device.type == "cuda")
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(args.runs_dir / args.job_name)) if ctx.main else _NoWriter()
    saver = BackgroundSaver()
    history: list[dict] = []
    n_validations = 0
    started = time.perf_counter()
    timer = RunTimer(args.epochs * steps_per_epoch, global_step,
                     validations_left=0 if val_ds is None else args.epochs // args.val_every)
    last_written = time.monotonic()
    sums: dict[str, torch.Tensor] = {}
    n_summed = 0
    shown: dict[str, float] = {}

    def write_timing() -> None:
        if not ctx.main:
            return
        write_atomic(job_dir / "timing.json", json.dumps({"device": str(device), "step_mode": args.step_mode,
                                                           "cuda_graph": step.status if isinstance(step, GraphedStep) else "off",
                                                           "amp": args.amp, "compile": args.compile, "workers": workers,
                                                           "batch_size": args.batch_size, "steps_per_epoch": steps_per_epoch,
                                                           **timer.summary()}, indent=1) + "\n")

    def checkpoint(obj: dict, path: Path, wait: bool = False) -> None:
        if not ctx.main:
            return
        t = time.perf_counter()
        saver.submit(obj, path, wait=wait)
        timer.checkpoint += time.perf_counter() - t

    with StopFlag() as stop:
        for epoch in range(start_epoch, args.epochs + 1):
            sampler.set_epoch(epoch, skip * args.batch_size)
            step_in_epoch = skip
            skip = 0
            bar = tqdm(loader, desc=f"epoch {epoch}/{args.epochs}", leave=False, dynamic_ncols=True,
                       disable=None if ctx.main else True)
            waited = time.perf_counter()
            for batch in bar:
                timer.data_wait += time.perf_counter() - waited
                losses = step(batch["image"].to(device, non_blocking=True),
                              batch["target"].to(device, non_blocking=True))
                global_step += 1
                step_in_epoch += 1
                for k, v in losses.items():
                    sums[k] = sums[k] + v if k in sums else v.clone()
                n_summed += 1
                if global_step % args.log_every == 0:  # the only device-to-host read of the training loop
                    values = torch.stack([*sums.values(), *trainer.lrs().values()]).double().cpu().tolist()
                    shown = {k: v / n_summed for k, v in zip(sums, values)}
                    for k, v in shown.items():
                        writer.add_scalar(f"loss/{k}", v, global_step)
                    for k, v in zip(trainer.lrs(), values[len(sums):]):
                        writer.add_scalar(f"lr/{k}", v, global_step)
                    bar.set_postfix({k: f"{v:.3f}" for k, v in shown.items()})
                    sums, n_summed = {}, 0
                message = timer.step_done()
                if message:
                    log.info(message)
                done = step_in_epoch >= steps_per_epoch
                position = (epoch + 1, 0) if done else (epoch, step_in_epoch)
                # every rank stops after the same step when any of them is asked to (a host-side all-reduce)
                if ctx.any(stop.set or (args.max_steps is not None and global_step >= args.max_steps)):
                    checkpoint(last_state(nets, trainer, cfg, *position, global_step, best), last_path, wait=True)
                    writer.close()
                    write_timing()
                    log.warning("saved %s at epoch %d step %d; continue with --resume", last_path, epoch, step_in_epoch)
                    return {"stopped": True, "history": history, "job_dir": job_dir}
                if time.monotonic() - last_written > 60 * args.last_every_minutes:
                    checkpoint(last_state(nets, trainer, cfg, *position, global_step, best), last_path)
                    last_written = time.monotonic()
                waited = time.perf_counter()
            last_epoch = epoch == args.epochs or (
                args.time_limit is not None and time.perf_counter() - started > 60 * args.time_limit)
            if val_ds is not None and (epoch % args.val_every == 0 or last_epoch):
                t_val = time.perf_counter()
                predictor = Predictor({k: nets[k] for k in ckpt.GENERATORS}, "v2021", val_ds.model_size)
                scores = mean_metrics(validate(predictor, val_ds, device, ctx))
                n_validations += 1
                for cls, values in scores.items():
                    for k, v in values.items():
                        writer.add_scalar(f"val_{cls}/{k}", v, epoch)
                f1 = scores["average"]["f1"]
                history.append({"epoch": epoch, "val_f1": f1, "val_sensitivity": scores["average"]["sensitivity"]})
                (tqdm.write if ctx.main else str)(f"epoch {epoch}: validation F1 {100 * f1:.2f}  sensitivity "
                           f"{100 * scores['average']['sensitivity']:.2f}  mean losses "
                           + " ".join(f"{k} {v:.3f}" for k, v in shown.items()))
                if (n_validations - 1) % args.image_every == 0 and ctx.main:
                    first = next(iterate_predictions(predictor, torch.utils.data.Subset(val_ds, [0]), device))
                    writer.add_image("val/photo_truth_prediction_errors", comparison_row(
                        val_ds, 0, first["raw"], first["label"], first["mask"], first["binary"]), epoch,
                        dataformats="HWC")
                timer.validation += time.perf_counter() - t_val
                timer.validations += 1
                if f1 > best:
                    best = f1
                    checkpoint(ckpt.generators_state(nets, cfg, epoch, {"val_f1": f1}), job_dir / "best.pt")
            if (epoch >= args.save_from and (epoch - args.save_from) % args.save_every == 0) or last_epoch:
                if last_epoch and epoch < args.save_from:
                    log.info("epoch %d ends the run before --save-from %d: saving its snapshot for test.sh", epoch,
                             args.save_from)
                checkpoint(ckpt.generators_state(nets, cfg, epoch), job_dir / f"epoch_{epoch:04d}.pt")
            if last_epoch:
                checkpoint(last_state(nets, trainer, cfg, epoch + 1, 0, global_step, best), last_path)
            if last_epoch and epoch < args.epochs:
                log.warning("time limit of %.1f min reached after epoch %d; --resume continues", args.time_limit, epoch)
                break
    writer.close()
    if val_ds is None:  # no validation split: the final weights are the "best"
        checkpoint(ckpt.generators_state(nets, cfg, args.epochs), job_dir / "best.pt")
    saver.wait(strict=True)
    if ctx.active:
        torch.distributed.barrier(group=ctx.control)  # no rank leaves before rank 0's files are written
    write_timing()
    return {"stopped": False, "history": history, "job_dir": job_dir}


def sync_bn(args: argparse.Namespace, ctx: Context) -> bool:
    """Synchronised batch statistics: with several processes unless --sync-bn off."""
    return ctx.active and args.sync_bn != "off"


def validate(predictor: Predictor, val_ds: AVDataset, device: torch.device, ctx: Context) -> list[dict]:
    """Per-image validation metrics in dataset order; under torchrun each process scores every
    world-th image and all gather the results, so every process holds the single-process numbers."""
    mine = ctx.shard(len(val_ds))
    scored = evaluate(predictor, torch.utils.data.Subset(val_ds, mine), device, with_prob_auc=False)
    gathered = ctx.gather([(i, r) for i, (_, r) in zip(mine, scored)])
    return [r for _, r in sorted(gathered, key=lambda item: item[0])]


def _config(args: argparse.Namespace, image_size) -> dict:
    keys = ("dataset", "job_name", "epochs", "batch_size", "learning_rate", "alpha", "beta", "gamma", "seed",
            "validation", "uniform", "discriminator", "n_filters", "save_from", "save_every", "val_every",
            "step_mode", "amp", "compile", "channels_last", "cuda_graph", "deterministic", "adv_double_sigmoid")
    cfg = {k: getattr(args, k) for k in keys}
    cfg["image_size"] = list(image_size) if image_size is not None else None
    cfg["data_root"] = str(args.data_root or default_data_root())
    cfg["forward_reuse"] = args.step_mode != "literal"
    return cfg


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        start = time.perf_counter()
        result = run(args)
    except (DataError, ckpt.CheckpointError, UsageError, ValueError, WriteError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            raise
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"error: rank {os.environ.get('RANK')}: lost contact with the other processes ({first}); one of them "
              f"stopped or died (see its messages above), or did not answer within --dist-timeout. Resume from "
              "last.pt with --resume.", file=sys.stderr)
        return 3
    if result["stopped"]:
        return 130 if args.max_steps is None else 0
    if result.get("trained", True):
        log.info("done in %.1f s; checkpoints in %s", time.perf_counter() - start, result["job_dir"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
