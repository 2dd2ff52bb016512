"""A training run from its settings to its checkpoints (what ``scripts/train.py`` runs), one epoch at a time.

``TrainingRun(opts, ctx, device).run()`` prepares the data, the networks, the step and the output
folder, then trains epoch by epoch; its policies are small methods and functions that tests call
directly: which epochs get a snapshot (:func:`scripts.io.job.snapshot_kind`), when a run stops (time limit,
``--max-steps``, Ctrl-C: :class:`StopFlag`), what ``last.pt`` holds and where a resumed run starts
(:mod:`scripts.io.resume`). A job folder holds one run: a new run refuses a folder that holds
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
from scripts.io.job import LOCK_NAME, check_free, snapshot_kind, snapshot_path
from scripts.io.lock import FolderLock
from scripts.io.resume import RESUME_LOCKED, last_state, load_resume
from scripts.training.cuda_graph import GraphedStep, graph_unsupported
from scripts.training.options import TrainOptions
from scripts.training.saver import BackgroundSaver
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
    """``opts`` with the device-dependent choices made (precision, step mode); refuses a CUDA graph
    asked for off CUDA. Returns new options: ``opts`` itself is not changed."""
    if opts.cuda_graph == "on" and device.type != "cuda":
        raise UsageError(
            f"--cuda-graph on needs a CUDA device (this run is on {device}); leave it out or use --cuda-graph off"
        )
    step_mode = auto_step_mode(device, opts.n_filters) if opts.step_mode == "auto" else opts.step_mode
    return replace(opts, amp=resolve_amp(opts.amp, device), step_mode=step_mode)


class TrainingRun:
    """One ``scripts/train.py`` run (module docstring); ``run()`` returns ``{"stopped", "history", "job_dir"}``."""

    def __init__(self, opts: TrainOptions, ctx: Context, device: torch.device) -> None:
        self.opts, self.ctx, self.device = opts, ctx, device
        self.job_dir = opts.out / opts.dataset / opts.job_name
        self.last_path = self.job_dir / "last.pt"
        self.history: list[dict] = []
        self.best, self.global_step, self.n_validations = -1.0, 0, 0
        self.overwritten: list[Path] = []
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
        cfg = {k: getattr(self.opts, k) for k in CONFIG_KEYS}
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
            opts.dataset, "training", data_root, train=True, image_size=opts.image_size, uniform=opts.uniform
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
        self.train_ds = AVDataset(
            opts.dataset, "training", data_root, train=True, image_size=full.model_size, indices=train_idx
        )
        self.val_ds = (
            AVDataset(opts.dataset, "training", data_root, train=False, image_size=full.model_size, indices=val_idx)
            if val_idx
            else None
        )
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
        log.info(
            "train %d / validation %d images at %dx%d on %s; step: %s, %s",
            len(self.train_ds),
            len(val_idx),
            *full.model_size,
            self.device,
            opts.step_mode,
            precision,
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

    def build_trainer(self, resume: dict | None) -> None:
        """Networks, optimisers and schedulers (resumed if asked), then DDP, compile and the CUDA graph,
        in that order: each works on the state the previous one left."""
        opts, device = self.opts, self.device
        self.nets = {k: v.to(device) for k, v in build_networks(opts.n_filters, with_discriminator=True).items()}
        channels_last = opts.channels_last == "on" or (opts.channels_last == "auto" and device.type == "cuda")
        self.trainer = GANTrainer(
            self.nets,
            opts.learning_rate,
            LossWeights(opts.alpha, opts.beta, opts.gamma, opts.adv_double_sigmoid),
            mode=opts.step_mode,
            amp_dtype={"bf16": torch.bfloat16, "fp16": torch.float16}.get(opts.amp),
            channels_last=channels_last,
            fused_adam=opts.step_mode != "literal",
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
                torch.zeros(opts.batch_size, 3, h, w, device=device),
            )
            log.info("compiling the networks (torch.compile, mode %s): the first steps take longer", opts.compile)
            self.trainer.compile(opts.compile, example)
        self.step = self.trainer.step
        if opts.cuda_graph != "off":  # after resume and compile: the graph captures the state they left
            why_not = graph_unsupported(self.trainer, device, self.ctx.active, opts.compile)
            if why_not and opts.cuda_graph == "on":
                log.warning("--cuda-graph on: %s; training runs eagerly", why_not)
            elif not why_not:
                self.step = GraphedStep(self.trainer, opts.cuda_graph)

    def prepare_outputs(self) -> None:
        """Rank 0 creates the job folder and locks it for this run, deletes the old run's files if
        --overwrite asked, removes stale temporaries and writes config.json; the other ranks stop with
        rank 0 when it cannot, instead of waiting for it."""
        opts, problem = self.opts, None
        if self.ctx.main:
            try:
                ensure_folder(self.job_dir, "--out")
                ensure_folder(opts.runs_dir / opts.job_name, "--runs-dir")
                self.cleanup.enter_context(FolderLock(self.job_dir / LOCK_NAME, f"the job folder {self.job_dir}"))
                self.overwritten = check_free(
                    self.job_dir, bool(opts.resume), opts.overwrite
                )  # a run started meanwhile
                if self.overwritten:
                    self.remove_old_run()
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
        events = sorted((self.opts.runs_dir / self.opts.job_name).glob("events.out.tfevents.*"))
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

        self.writer = SummaryWriter(str(opts.runs_dir / opts.job_name)) if self.ctx.main else _NoWriter()
        self.saver = BackgroundSaver()
        self.timer = RunTimer(
            opts.epochs * self.steps_per_epoch,
            self.global_step,
            validations_left=0 if self.val_ds is None else opts.epochs // opts.val_every,
        )
        self.losses = LossMeans()
        self.started = time.perf_counter()
        self.last_written = time.monotonic()
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
        if self.val_ds is None:  # no validation split: the final weights are the "best"
            self.checkpoint(ckpt.generators_state(self.nets, self.cfg, opts.epochs), self.job_dir / "best.pt")
        self.saver.wait(strict=True)
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
            self.losses.add(
                self.step(
                    batch["image"].to(self.device, non_blocking=True),
                    batch["target"].to(self.device, non_blocking=True),
                )
            )
            self.global_step += 1
            step_in_epoch += 1
            if self.global_step % opts.log_every == 0:
                self.log_losses(bar)
            message = self.timer.step_done()
            if message:
                log.info(message)
            position = (epoch + 1, 0) if step_in_epoch >= self.steps_per_epoch else (epoch, step_in_epoch)
            if self.should_stop(stop):
                self.checkpoint(self.last_state(*position), self.last_path, wait=True)
                self.writer.close()
                self.write_timing()
                log.warning(
                    "saved %s at epoch %d step %d; continue with --resume", self.last_path, epoch, step_in_epoch
                )
                return True
            if time.monotonic() - self.last_written > 60 * opts.last_every_minutes:
                self.checkpoint(self.last_state(*position), self.last_path)
                self.last_written = time.monotonic()
            waited = time.perf_counter()
        return False

    def log_losses(self, bar) -> None:
        shown, rates = self.losses.read(self.trainer.lrs())
        for k, v in shown.items():
            self.writer.add_scalar(f"loss/{k}", v, self.global_step)
        for k, v in rates.items():
            self.writer.add_scalar(f"lr/{k}", v, self.global_step)
        bar.set_postfix({k: f"{v:.3f}" for k, v in shown.items()})

    def end_epoch(self, epoch: int, last_epoch: bool) -> None:
        """Validation (every --val-every epochs and at the end), best.pt, the snapshot, last.pt at the end."""
        opts = self.opts
        if self.val_ds is not None and (epoch % opts.val_every == 0 or last_epoch):
            self.validate(epoch)
        kind = snapshot_kind(epoch, opts.save_from, opts.save_every, last_epoch)
        if kind == "stop":
            log.info(
                "epoch %d ends the run off the snapshot epochs (from %d every %d): saving it as %s, which the "
                "paper row leaves out unless test.sh gets --snapshots all",
                epoch,
                opts.save_from,
                opts.save_every,
                snapshot_path(self.job_dir, epoch, kind).name,
            )
        if kind:
            self.checkpoint(
                ckpt.generators_state(self.nets, self.cfg, epoch, {"snapshot": kind}),
                snapshot_path(self.job_dir, epoch, kind),
            )
        if last_epoch:
            self.checkpoint(self.last_state(epoch + 1, 0), self.last_path)

    def validate(self, epoch: int) -> None:
        started = time.perf_counter()
        predictor = Predictor({k: self.nets[k] for k in ckpt.GENERATORS}, "v2021", self.val_ds.model_size)
        scores = mean_metrics(
            [r for _, r in score_sharded(predictor, self.val_ds, self.device, self.ctx, with_prob_auc=False)]
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
        if f1 > self.best:
            self.best = f1
            self.checkpoint(ckpt.generators_state(self.nets, self.cfg, epoch, {"val_f1": f1}), self.job_dir / "best.pt")

    # -- files ------------------------------------------------------------------------------------
    def last_state(self, epoch: int, step_in_epoch: int) -> dict:
        return last_state(self.nets, self.trainer, self.cfg, epoch, step_in_epoch, self.global_step, self.best)

    def checkpoint(self, obj: dict, path: Path, wait: bool = False) -> None:
        """Hand a checkpoint to the background writer (rank 0 only)."""
        if not self.ctx.main:
            return
        t = time.perf_counter()
        self.saver.submit(obj, path, wait=wait)
        self.timer.checkpoint += time.perf_counter() - t

    def write_timing(self) -> None:
        if not self.ctx.main:
            return
        opts = self.opts
        write_atomic(
            self.job_dir / "timing.json",
            json.dumps(
                {
                    "device": str(self.device),
                    "step_mode": opts.step_mode,
                    "cuda_graph": self.step.status if isinstance(self.step, GraphedStep) else "off",
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
