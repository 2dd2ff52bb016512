"""A training run from its settings to its checkpoints (what ``scripts/train.py`` runs), one epoch at a time.

``TrainingRun(opts, ctx, device).run()`` prepares the data, the networks, the step and the output
folder, then trains epoch by epoch; its policies are small methods and functions that tests call
directly: what is saved when and under which name (:class:`~scripts.training.checkpoints.CheckpointSaver`),
when a run stops (time limit, ``--max-steps``, Ctrl-C: :class:`StopFlag`), what ``last.pt`` holds and
where a resumed run starts (:mod:`scripts.io.resume`). A job folder holds one run: a new run refuses a folder that holds
another (unless ``--overwrite``), and the live run holds a lock on it (:mod:`scripts.io.job`,
:mod:`scripts.io.lock`). Under torchrun, rank 0 writes every file, log line and TensorBoard
point; the others train their share and agree on stopping after the same step.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
import warnings
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from model import build_networks
from scripts.core.config import decide_model_size, default_data_root
from scripts.core.distributed import Context, local_batch
from scripts.core.errors import UsageError, UserError
from scripts.core.runtime import ensure_folder, resolve_amp, resolve_workers
from scripts.core.seeding import seed_everything, set_rng_state
from scripts.data.augment import init_worker
from scripts.data.dataset import AVDataset, DistributedEpochSampler, EpochSampler, split_ids
from scripts.evaluation.metrics import mean_metrics
from scripts.evaluation.scoring import score_sharded
from scripts.figures.visualise import comparison_row
from scripts.inference.predictor import Predictor, iterate_predictions
from scripts.io import checkpoint as ckpt
from scripts.io.atomic import remove_stale_temporaries, write_atomic
from scripts.io.job import LOCK_NAME, check_free, job_folder, runs_folder, unsaved_run
from scripts.io.lock import FolderLock
from scripts.io.resume import RESUME_LOCKED, last_state, load_resume
from scripts.training.checkpoints import CheckpointSaver
from scripts.training.cuda_graph import GraphedStep, graph_unsupported
from scripts.training.memory import Choice, StepConfig, candidates, choose, leaner
from scripts.training.objective import example_targets
from scripts.training.oom import RecoveringStep
from scripts.training.options import TrainOptions
from scripts.training.step import GANTrainer, LossWeights, auto_step_mode
from scripts.training.timing import RunTimer

log = logging.getLogger("avseg")
CONFIG_KEYS = (
    "dataset",
    "job_name",
    "epochs",
    "batch_size",
    "learning_rate",
    "alpha",
    "beta",
    "gamma",
    "seed",
    "validation",
    "uniform",
    "discriminator",
    "n_filters",
    "save_from",
    "save_every",
    "val_every",
    "step_mode",
    "activation_checkpointing",
    "amp",
    "compile",
    "channels_last",
    "cuda_graph",
    "deterministic",
    "adv_double_sigmoid",
)


class StopFlag:
    """Set by SIGINT/SIGTERM; the loop checks it after each step."""

    def __init__(self) -> None:
        self.set = False
        self._old: dict = {}

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


class LossMeans:
    """Sums the step losses on the device; ``read`` returns their means since the last read (the
    training loop's only device-to-host read, every ``--log-every`` steps)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.n = 0
        self.shown: dict[str, float] = {}

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        for k, v in losses.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
        self.n += 1

    def read(self, lrs: dict[str, torch.Tensor]) -> tuple[dict[str, float], dict[str, float]]:
        values = torch.stack([*self.sums.values(), *lrs.values()]).double().cpu().tolist()
        self.shown = {k: v / self.n for k, v in zip(self.sums, values)}
        rates = dict(zip(lrs, values[len(self.sums) :]))
        self.sums, self.n = {}, 0
        return self.shown, rates


class _NoWriter:
    """TensorBoard on ranks other than 0: nothing."""

    def __getattr__(self, name):
        return lambda *a, **k: None


def resolve(opts: TrainOptions, device: torch.device) -> TrainOptions:
    """``opts`` with the device-dependent choices made (precision; off CUDA the step mode and activation
    checkpointing, on CUDA :meth:`TrainingRun.fit_memory` makes those); refuses a CUDA graph asked for
    off CUDA. Returns new options: ``opts`` itself is not changed."""
    if opts.cuda_graph == "on" and device.type != "cuda":
        raise UsageError(
            f"--cuda-graph on needs a CUDA device (this run is on {device}); leave it out or use --cuda-graph off"
        )
    step_mode, checkpointing = opts.step_mode, opts.activation_checkpointing
    if device.type != "cuda":  # on CUDA the memory plan decides both, once the model size is known
        step_mode = auto_step_mode(device, opts.n_filters) if step_mode == "auto" else step_mode
        checkpointing = "off" if checkpointing == "auto" else checkpointing
    return replace(opts, amp=resolve_amp(opts.amp, device), step_mode=step_mode, activation_checkpointing=checkpointing)


class TrainingRun:
    """One ``scripts/train.py`` run (module docstring); ``run()`` returns ``{"stopped", "history", "job_dir"}``."""

    def __init__(self, opts: TrainOptions, ctx: Context, device: torch.device) -> None:
        self.opts, self.ctx, self.device = opts, ctx, device
        self.job_dir = job_folder(opts.out, opts.dataset, opts.job_name)
        self.runs_dir = runs_folder(opts.runs_dir, opts.job_name)
        self.last_path = self.job_dir / "last.pt"
        self.history: list[dict] = []
        self.best, self.global_step, self.n_validations = -1.0, 0, 0
        self.last_losses: dict[str, torch.Tensor] | None = None  # the latest step's (v2023's schedulers)
        self.overwritten: list[Path] = []
        self.memory: Choice | None = None  # the memory plan's choice (CUDA)
        self.cleanup = contextlib.ExitStack()  # the job folder's lock, held until the run ends

    # -- settings ---------------------------------------------------------------------------------
    def resolve_settings(self) -> None:
        """Refuse what cannot work here, size the data loading, and keep the options with every 'auto'
        resolved for this device (:func:`resolve`)."""
        opts, ctx, device = self.opts, self.ctx, self.device
        if ctx.active:
            if opts.compile:
                raise UsageError("--compile is not supported with several processes yet; leave it out under torchrun")
            if not ctx.main:  # rank 0 speaks for all
                logging.getLogger("avseg").setLevel(logging.ERROR)
                warnings.filterwarnings("ignore")
        self.per_rank = local_batch(opts.batch_size, ctx)
        self.workers = resolve_workers(opts.workers, device)
        if ctx.active and opts.workers == "auto" and self.workers:  # the machine's cores are shared by its processes
            self.workers = max(1, self.workers // int(os.environ.get("LOCAL_WORLD_SIZE", ctx.world)))
        self.opts = resolve(opts, device)
        if opts.step_mode == "auto":
            log.info("--step auto: %s (%s, n = %d)", self.opts.step_mode, device.type, opts.n_filters)

    def load_resume(self) -> dict | None:
        """Rank 0 checks that the job folder is free for a new run (or, with --resume, reads and checks
        last.pt: other machines need not see it) and hands the result to the others; the saved model
        size fills a missing --image-size."""
        opts = self.opts
        if opts.resume and opts.overwrite:
            raise UsageError("--resume continues the job's run and --overwrite deletes it: give one of them")
        problem, resume = None, None
        if self.ctx.main:
            try:
                check_free(self.job_dir, bool(opts.resume), opts.overwrite)  # before any data is read
                if opts.resume == "auto" and not self.last_path.exists() and unsaved_run(self.job_dir):
                    log.warning(
                        "--resume: the run in %s stopped before it saved its first last.pt (written after the first "
                        "epoch): nothing to resume, so it starts from the beginning",
                        self.job_dir,
                    )
                    self.opts = opts = replace(opts, resume=None)
                if opts.resume:
                    path = self.last_path if opts.resume == "auto" else Path(opts.resume)
                    resume = load_resume(path, {k: getattr(opts, k) for k in RESUME_LOCKED}, self.device)
            except UserError as err:
                problem = err
        resume, problem = self.ctx.broadcast((resume, problem))
        if problem:
            raise problem
        if resume is None:
            return None
        self.opts = replace(opts, image_size=decide_model_size(opts.image_size, resume["config"].get("image_size")))
        return resume

    def config(self, image_size) -> dict:
        cfg = {"variant": self.opts.variant, **{k: getattr(self.opts, k) for k in CONFIG_KEYS}}
        cfg["image_size"] = list(image_size) if image_size is not None else None
        cfg["data_root"] = str(self.opts.data_root or default_data_root())
        cfg["forward_reuse"] = self.opts.step_mode != "literal"
        return cfg

    # -- set-up -----------------------------------------------------------------------------------
    def build_data(self, resume: dict | None = None) -> None:
        """Training and validation splits, every file decoded and checked before the first step; a
        resumed run must find the same image files (the split depends on them)."""
        opts = self.opts
        data_root = opts.data_root or default_data_root()
        full = AVDataset(
            opts.dataset,
            "training",
            data_root,
            train=True,
            image_size=opts.image_size,
            uniform=opts.uniform,
            variant=opts.variant,
        )
        self.model_size = full.model_size
        self.cfg = self.config(list(full.model_size))
        self.cfg["data_files"] = [item.image.name for item in full.items]
        saved = (resume or {}).get("config", {}).get("data_files")
        if saved is not None and saved != self.cfg["data_files"]:
            added = sorted(set(self.cfg["data_files"]) - set(saved))
            removed = sorted(set(saved) - set(self.cfg["data_files"]))
            raise ckpt.CheckpointError(
                f"--resume: the run was trained on {len(saved)} images of {data_root / opts.dataset / 'training'}, "
                f"which now holds {len(self.cfg['data_files'])}"
                + (f"; added: {', '.join(added[:5])}" if added else "")
                + (f"; removed: {', '.join(removed[:5])}" if removed else "")
                + ". The split would change mid-run: restore those files, or start a new job (--job_name)."
            )
        train_idx, val_idx = split_ids(len(full), opts.validation, opts.seed)

        def split(train: bool, indices: list[int]) -> AVDataset:
            return AVDataset(
                opts.dataset,
                "training",
                data_root,
                train=train,
                image_size=full.model_size,
                indices=indices,
                variant=opts.variant,
            )

        self.train_ds = split(True, train_idx)
        self.val_ds = split(False, val_idx) if val_idx else None
        for ds in (self.train_ds, self.val_ds):
            if ds is not None:
                ds.preload()
        precision = (
            f"{opts.amp} autocast"
            if opts.amp
            else (
                "float32 (TF32 convolutions)"
                if self.device.type == "cuda" and torch.backends.cudnn.allow_tf32
                else "float32"
            )
        )
        self.describe = (
            f"train {len(self.train_ds)} / validation {len(val_idx)} images at {full.model_size[0]}x"
            f"{full.model_size[1]} on {self.device}; {precision}"
        )
        if self.ctx.active:
            log.info(
                "%d processes (torchrun), global batch %d = %d per process, batch norm %s",
                self.ctx.world,
                opts.batch_size,
                self.per_rank,
                "synchronised" if self.sync_bn else "per process",
            )

    @property
    def sync_bn(self) -> bool:
        """Synchronised batch statistics: with several processes unless --sync-bn off."""
        return self.ctx.active and self.opts.sync_bn != "off"

    @property
    def channels_last(self) -> bool:
        return self.opts.channels_last == "on" or (self.opts.channels_last == "auto" and self.device.type == "cuda")

    @property
    def step_config(self) -> StepConfig:
        """What decides the step's memory, as the options now say."""
        opts = self.opts
        return StepConfig(
            mode=opts.step_mode if opts.step_mode != "auto" else "batched",
            checkpointing=opts.activation_checkpointing == "on",
            amp=opts.amp,
            channels_last=self.channels_last,
            n_filters=opts.n_filters,
            batch_size=self.per_rank,
            width=self.model_size[0],
            height=self.model_size[1],
            variant=opts.variant,
        )

    @property
    def configuration(self) -> str:
        return self.step_config.label

    def fit_memory(self) -> None:
        """On CUDA: ``--step auto`` and ``--activation-checkpointing auto`` become the fastest exact
        configuration whose planned peak, with the margin, fits the GPU's free memory (under torchrun:
        the least free on any process); the choice is logged with its numbers. Nothing that fits stops
        the run here, before training, with what to change."""
        opts, device = self.opts, self.device
        self.memory = None
        if device.type != "cuda":
            return
        free, total = torch.cuda.mem_get_info(device)
        free = min(self.ctx.gather([free]))
        self.memory = choose(self.step_config, opts.step_mode, opts.activation_checkpointing, free)
        self.memory.total = total
        explicit = len(candidates(opts.step_mode, opts.activation_checkpointing)) == 1
        if self.memory.plan is None and not explicit:
            leanest = min(self.memory.tried, key=lambda p: p.needed)
            raise UsageError(
                f"{opts.dataset} at {self.model_size[0]}x{self.model_size[1]}, batch {self.per_rank}"
                f"{' per process' if self.ctx.active else ''}, n = {opts.n_filters} does not fit this GPU: even the "
                f"leanest exact step ({leanest.config.label}) needs {leanest.needed / 2**30:.1f} GiB (planned peak "
                f"{leanest.peak / 2**30:.1f} GiB + margin, docs/memory.md), and {free / 2**30:.1f} GiB of "
                f"{total / 2**30:.1f} GiB are free on {device}. Free the memory another process holds (nvidia-smi), "
                "or make the step smaller: --image-size W H (multiples of 16), --batch-size 1, or --amp bf16 "
                "(about 40 %% less memory, but not exact: docs/training_step.md#precision)".replace("%%", "%")
            )
        if self.memory.plan is None:
            plan = self.memory.tried[-1]
            log.warning(
                "memory plan: the %s step asked for needs %.1f GiB with the margin, %.1f GiB are free; going on as "
                "asked (an out-of-memory error would stop the run)",
                plan.config.label,
                plan.needed / 2**30,
                free / 2**30,
            )
            self.memory.plan = plan
        else:
            log.info(self.memory.describe())
        chosen = self.memory.plan.config
        self.opts = replace(
            opts, step_mode=chosen.mode, activation_checkpointing="on" if chosen.checkpointing else "off"
        )

    def build_trainer(self, resume: dict | None) -> None:
        """Networks, optimisers and schedulers (resumed if asked), then DDP, compile and the CUDA graph,
        in that order: each works on the state the previous one left."""
        opts, device = self.opts, self.device
        nets = build_networks(opts.n_filters, with_discriminator=True, variant=opts.variant)
        self.nets = {k: v.to(device) for k, v in nets.items()}
        channels_last = self.channels_last
        self.trainer = GANTrainer(
            self.nets,
            opts.learning_rate,
            LossWeights(opts.alpha, opts.beta, opts.gamma, opts.adv_double_sigmoid),
            mode=opts.step_mode,
            amp_dtype={"bf16": torch.bfloat16, "fp16": torch.float16}.get(opts.amp),
            channels_last=channels_last,
            fused_adam=opts.step_mode != "literal",
            checkpointing=opts.activation_checkpointing == "on",
            variant=opts.variant,
        )
        self.start_epoch, self.skip = 1, 0
        if resume is not None:
            for k, net in self.nets.items():
                net.load_state_dict(resume["nets"][k])
            self.trainer.load_state_dict(resume["trainer"])
            set_rng_state(resume["rng"])
            self.start_epoch, self.skip = resume["epoch"], resume["step_in_epoch"]
            self.global_step, self.best = resume["global_step"], resume["best_f1"]
            log.info("resumed %s at epoch %d, step %d", self.last_path, self.start_epoch, self.skip)
        if self.ctx.active:
            self.trainer.distribute(
                self.ctx, device_ids=[device.index] if device.type == "cuda" else None, sync_bn=self.sync_bn
            )
        if opts.compile:
            w, h = self.model_size
            example = (
                torch.zeros(opts.batch_size, 3, h, w, device=device),
                example_targets(opts.variant, opts.batch_size, h, w, device),
            )
            log.info("compiling the networks (torch.compile, mode %s): the first steps take longer", opts.compile)
            self.trainer.compile(opts.compile, example)
        why_not = graph_unsupported(self.trainer, device, self.ctx.active, opts.compile)
        if opts.cuda_graph == "on" and why_not:
            log.warning("--cuda-graph on: %s; training runs eagerly", why_not)

        def make_step():  # after resume and compile: the graph captures the state they left
            if opts.cuda_graph != "off" and not why_not:
                return GraphedStep(self.trainer, opts.cuda_graph)
            return self.trainer.step

        self.step = make_step()
        if device.type == "cuda":  # the first steps recover from running out of memory
            self.step = RecoveringStep(
                self.trainer,
                make_step,
                self.step_config,
                leaner(self.step_config, self.memory_asked[0], self.memory_asked[1]),
            )

    def prepare_outputs(self) -> None:
        """Rank 0 creates the job folder and locks it for this run, deletes the old run's files if
        --overwrite asked, removes stale temporaries and writes config.json; the other ranks stop with
        rank 0 when it cannot, instead of waiting for it."""
        opts, problem = self.opts, None
        if self.ctx.main:
            try:
                ensure_folder(self.job_dir, "--out")
                ensure_folder(self.runs_dir, "--runs-dir")
                self.cleanup.enter_context(FolderLock(self.job_dir / LOCK_NAME, f"the job folder {self.job_dir}"))
                self.overwritten = check_free(
                    self.job_dir, bool(opts.resume), opts.overwrite
                )  # a run started meanwhile
                if self.overwritten:
                    self.remove_old_run()
                elif not opts.resume and (unsaved := unsaved_run(self.job_dir)):
                    for path in unsaved:
                        path.unlink()
                    log.info("%s: the previous run stopped before it saved a checkpoint; starting again", self.job_dir)
                remove_stale_temporaries(self.job_dir)
                write_atomic(
                    self.job_dir / "config.json",
                    json.dumps({**self.cfg, "versions": ckpt.versions(), "processes": self.ctx.world}, indent=1) + "\n",
                )
            except UserError as err:
                problem = err
        if self.ctx.any(problem is not None):
            raise problem or UsageError("rank 0 could not set up the output folders (its message says why)")

    # -- the run ----------------------------------------------------------------------------------
    def remove_old_run(self) -> None:
        """--overwrite: the old run's files and TensorBoard events (nothing else in those folders)."""
        events = sorted(self.runs_dir.glob("events.out.tfevents.*"))
        for path in [*self.overwritten, *events]:
            path.unlink()
        log.warning(
            "--overwrite: deleted the previous run in %s (%d files) and %d TensorBoard event file(s)",
            self.job_dir,
            len(self.overwritten),
            len(events),
        )

    def run(self) -> dict:
        """The whole run; the job folder's lock is released however it ends."""
        with self.cleanup:
            return self._run()

    def _run(self) -> dict:
        self.memory_asked = (self.opts.step_mode, self.opts.activation_checkpointing)  # before resolving
        self.resolve_settings()
        resume = self.load_resume()
        opts = self.opts  # resolved for the device and the resumed run
        if resume is not None and resume["epoch"] > opts.epochs:  # before any data is read or network built
            log.warning(
                "this run had already finished its %d epochs: nothing was trained. Give a larger --epochs "
                "to continue it.",
                resume["epoch"] - 1,
            )
            return {"stopped": False, "history": [], "job_dir": self.job_dir, "trained": False}
        seed_everything(opts.seed, deterministic=opts.deterministic)
        self.build_data(resume)
        self.fit_memory()
        opts = self.opts
        self.cfg.update(
            step_mode=opts.step_mode,
            activation_checkpointing=opts.activation_checkpointing,
            forward_reuse=opts.step_mode != "literal",
        )
        log.info("%s; step: %s", self.describe, self.configuration)
        self.build_trainer(resume)
        self.prepare_outputs()
        self.steps_per_epoch = -(-len(self.train_ds) // opts.batch_size)
        self.sampler = (
            DistributedEpochSampler(len(self.train_ds), opts.seed, opts.batch_size, self.ctx)
            if self.ctx.active
            else EpochSampler(len(self.train_ds), opts.seed)
        )
        self.loader = DataLoader(
            self.train_ds,
            batch_size=self.per_rank,
            sampler=self.sampler,
            num_workers=self.workers,
            worker_init_fn=init_worker,
            persistent_workers=self.workers > 0,
            pin_memory=self.device.type == "cuda",
        )
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(self.runs_dir)) if self.ctx.main else _NoWriter()
        self.timer = RunTimer(
            opts.epochs * self.steps_per_epoch,
            self.global_step,
            validations_left=0 if self.val_ds is None else opts.epochs // opts.val_every,
        )
        self.saver = CheckpointSaver(
            self.job_dir,
            self.nets,
            lambda: self.cfg,
            self.last_state,
            opts.save_from,
            opts.save_every,
            opts.last_every_minutes,
            writes=self.ctx.main,
            timer=self.timer,
        )
        self.saver.best = self.best  # a resumed run's best validation F1
        self.losses = LossMeans()
        self.started = self.progress_shown = time.perf_counter()
        with StopFlag() as stop:
            for epoch in range(self.start_epoch, opts.epochs + 1):
                if self.train_epoch(epoch, stop):
                    return {"stopped": True, "history": self.history, "job_dir": self.job_dir}
                last_epoch = self.is_last_epoch(epoch)
                self.end_epoch(epoch, last_epoch)
                if last_epoch and epoch < opts.epochs:
                    log.warning(
                        "time limit of %.1f min reached after epoch %d; --resume continues", opts.time_limit, epoch
                    )
                    break
        self.writer.close()
        self.saver.finished(opts.epochs, validated=self.val_ds is not None)
        self.ctx.barrier()  # no rank leaves before rank 0's files are written
        self.write_timing()
        return {"stopped": False, "history": self.history, "job_dir": self.job_dir}

    def is_last_epoch(self, epoch: int) -> bool:
        """The schedule's last epoch, or the first one to end past --time-limit."""
        limit = self.opts.time_limit
        return epoch == self.opts.epochs or (limit is not None and time.perf_counter() - self.started > 60 * limit)

    def should_stop(self, stop: StopFlag) -> bool:
        """Ctrl-C/SIGTERM or --max-steps; every rank stops after the same step when any of them is asked to."""
        steps = self.opts.max_steps
        return self.ctx.any(stop.set or (steps is not None and self.global_step >= steps))

    def train_epoch(self, epoch: int, stop: StopFlag) -> bool:
        """The epoch's steps (from a resumed position); True when the run stopped inside it (last.pt written)."""
        opts = self.opts
        self.sampler.set_epoch(epoch, self.skip * opts.batch_size)
        step_in_epoch, self.skip = self.skip, 0
        bar = tqdm(
            self.loader,
            desc=f"epoch {epoch}/{opts.epochs}",
            leave=False,
            dynamic_ncols=True,
            disable=None if self.ctx.main else True,
        )
        waited = time.perf_counter()
        for batch in bar:
            self.timer.data_wait += time.perf_counter() - waited
            self.last_losses = self.step(
                batch["image"].to(self.device, non_blocking=True),
                batch["target"].to(self.device, non_blocking=True),
            )
            self.losses.add(self.last_losses)
            self.global_step += 1
            step_in_epoch += 1
            if self.global_step % opts.log_every == 0:
                self.log_losses(bar)
            message = self.timer.step_done()
            if message:
                self.first_report(message)
            if bar.disable and self.ctx.main and time.perf_counter() - self.progress_shown >= opts.progress_every:
                self.progress_shown = time.perf_counter()
                log.info(self.progress_line(epoch))
            position = (epoch + 1, 0) if step_in_epoch >= self.steps_per_epoch else (epoch, step_in_epoch)
            if self.should_stop(stop):
                if step_in_epoch >= self.steps_per_epoch:  # its last step: end the epoch first, as a run going on
                    self.end_epoch(epoch, self.is_last_epoch(epoch))  # would (validation, snapshot, schedulers)
                self.saver.stopped(position)
                self.writer.close()
                self.write_timing()
                log.warning(
                    "saved %s at epoch %d step %d; continue with --resume", self.last_path, epoch, step_in_epoch
                )
                return True
            self.saver.step_done(position)
            waited = time.perf_counter()
        return False

    def progress_line(self, epoch: int) -> str:
        """What a progress bar would show, as one log line (output to a file: no bar)."""
        total = self.timer.total_steps
        per_step = self.timer.per_step()
        losses = " ".join(f"{k} {v:.3f}" for k, v in self.losses.shown.items())
        return (
            f"step {self.global_step}/{total} (epoch {epoch}/{self.opts.epochs})"
            + (f"  losses {losses}" if losses else "")
            + f"  {1 / per_step:.2f} steps/s  {self.timer.seconds_left() / 60:.1f} min left"
        )

    def log_losses(self, bar) -> None:
        shown, rates = self.losses.read(self.trainer.lrs())
        for k, v in shown.items():
            self.writer.add_scalar(f"loss/{k}", v, self.global_step)
        for k, v in rates.items():
            self.writer.add_scalar(f"lr/{k}", v, self.global_step)
        bar.set_postfix({k: f"{v:.3f}" for k, v in shown.items()})

    def end_epoch(self, epoch: int, last_epoch: bool) -> None:
        """Validation (every --val-every epochs and at the end), then the checkpoints the policy asks for
        (:class:`~scripts.training.checkpoints.CheckpointSaver`)."""
        opts = self.opts
        if self.last_losses is not None:  # v2023: the schedulers step once per epoch
            self.trainer.end_epoch(self.last_losses)
        if self.val_ds is not None and (epoch % opts.val_every == 0 or last_epoch):
            self.validate(epoch)
        self.saver.epoch_done(epoch, last_epoch)

    def validate(self, epoch: int) -> None:
        started = time.perf_counter()
        predictor = Predictor({k: self.nets[k] for k in ckpt.GENERATORS}, self.opts.variant, self.val_ds.model_size)
        scores = mean_metrics(
            [
                r
                for _, r in score_sharded(
                    predictor, self.val_ds, self.device, self.ctx, with_prob_auc=False, nan_policy="zero"
                )
            ]
        )
        self.n_validations += 1
        for cls, values in scores.items():
            for k, v in values.items():
                self.writer.add_scalar(f"val_{cls}/{k}", v, epoch)
        f1, sens = scores["average"]["f1"], scores["average"]["sensitivity"]
        self.history.append({"epoch": epoch, "val_f1": f1, "val_sensitivity": sens})
        (tqdm.write if self.ctx.main else str)(
            f"epoch {epoch}: validation F1 {100 * f1:.2f}  sensitivity {100 * sens:.2f}  mean losses "
            + " ".join(f"{k} {v:.3f}" for k, v in self.losses.shown.items())
        )
        if (self.n_validations - 1) % self.opts.image_every == 0 and self.ctx.main:
            first = next(iterate_predictions(predictor, torch.utils.data.Subset(self.val_ds, [0]), self.device))
            self.writer.add_image(
                "val/photo_truth_prediction_errors",
                comparison_row(
                    self.val_ds,
                    0,
                    first["raw"],
                    first["label"],
                    first["mask"],
                    first["binary"],
                    title=f"validation image {first['id']}, epoch {epoch}",
                ),
                epoch,
                dataformats="HWC",
            )
        self.timer.validation += time.perf_counter() - started
        self.timer.validations += 1
        if self.saver.validated(epoch, f1):
            self.best = f1

    # -- files ------------------------------------------------------------------------------------
    def last_state(self, epoch: int, step_in_epoch: int) -> dict:
        return last_state(self.nets, self.trainer, self.cfg, epoch, step_in_epoch, self.global_step, self.best)

    def peak_memory(self) -> tuple[float, float, str]:
        """(peak MiB used, MiB the device has, what was measured) so far."""
        if self.device.type == "cuda":
            total = torch.cuda.get_device_properties(self.device).total_memory
            return torch.cuda.max_memory_allocated(self.device) / 2**20, total / 2**20, "device memory (max allocated)"
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
        return rss, total, "process memory (peak RSS)"

    def first_report(self, timing_message: str) -> None:
        """Within the first minute: what the run costs, in the log, timing.json and TensorBoard."""
        peak, total, what = self.peak_memory()
        self.first = {
            "configuration": self.live_configuration(),
            "ms_per_step": 1000 * self.timer.per_step(),
            "data_wait_share": self.timer.data_wait_share(),
            "peak_mb": peak,
            "device_total_mb": total,
            "memory_measured": what,
            "projected_total_min": (self.timer.predicted_total or 0) / 60,
            "after_steps": self.timer.predicted_at,
        }
        log.info(
            "%s; %s step; peak %s %.0f of %.0f MiB", timing_message, self.first["configuration"], what, peak, total
        )
        self.writer.add_scalar("memory/peak_mb", peak, self.global_step)
        self.write_timing()

    def live_configuration(self) -> str:
        """The step as it runs now (an out-of-memory recovery may have changed it)."""
        t = self.trainer
        label = t.mode + (" + checkpointing" if t.checkpointing else "")
        return label + (f" ({self.opts.amp})" if self.opts.amp else "")

    def memory_summary(self) -> dict | None:
        """The memory plan's choice and any out-of-memory recovery, for timing.json."""
        if self.memory is None:
            return None
        mib = 2**20
        plan = self.memory.plan
        return {
            "chosen": plan.config.label if plan else None,
            "planned_peak_mb": plan.peak / mib if plan else None,
            "needed_mb": plan.needed / mib if plan else None,
            "free_mb": self.memory.free / mib,
            "device_total_mb": self.memory.total / mib,
            "left_out": {p.config.label: p.needed / mib for p in self.memory.left_out},
            "recoveries": getattr(self.step, "changes", []),
        }

    def write_timing(self) -> None:
        if not self.ctx.main:
            return
        opts = self.opts
        write_atomic(
            self.job_dir / "timing.json",
            json.dumps(
                {
                    "device": str(self.device),
                    "step_mode": self.trainer.mode,
                    "activation_checkpointing": self.trainer.checkpointing,
                    "cuda_graph": getattr(self.step, "status", "off"),
                    "cuda_graph_check": getattr(self.step, "check", None),
                    "memory_plan": self.memory_summary(),
                    "first_minute": getattr(self, "first", None),
                    "amp": opts.amp,
                    "compile": opts.compile,
                    "workers": self.workers,
                    "batch_size": opts.batch_size,
                    "steps_per_epoch": self.steps_per_epoch,
                    **self.timer.summary(),
                },
                indent=1,
            )
            + "\n",
        )
