"""What ``last.pt`` holds, and which settings a resumed run must keep."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from scripts.core.seeding import rng_state
from scripts.io import checkpoint as ckpt

# Settings that define the model, the data or the method: a resumed run must keep them. The others
# (epochs, device, workers, step mode, precision, compile, CUDA graph, intervals, time limit, output
# folders, data location) may change on --resume.
OLDER_VARIANT = "v2021"  # what a config written before runs recorded their variant trained
RESUME_LOCKED = (
    "variant",
    "dataset",
    "n_filters",
    "seed",
    "batch_size",
    "image_size",
    "uniform",
    "validation",
    "learning_rate",
    "alpha",
    "beta",
    "gamma",
    "adv_double_sigmoid",
)


def last_state(
    nets: dict[str, nn.Module], trainer, cfg: dict, epoch: int, step_in_epoch: int, global_step: int, best: float
) -> dict:
    """Everything ``--resume`` needs: all four networks, the optimisers and schedulers, the RNGs and
    where in the schedule the run is (``epoch``/``step_in_epoch``: the next step to take)."""
    return {
        "format": ckpt.FORMAT,
        "config": cfg,
        "versions": ckpt.versions(),
        "epoch": epoch,
        "step_in_epoch": step_in_epoch,
        "global_step": global_step,
        "best_f1": best,
        "nets": {k: n.state_dict() for k, n in nets.items()},
        "trainer": trainer.state_dict(),
        "rng": rng_state(),
    }


def load_resume(path: Path, asked: dict, device: torch.device) -> dict:
    """The ``last.pt`` at ``path``, checked: a resumable file of this project, complete, trained with
    the ``asked`` values of every locked setting (an ``image_size`` of None means "the saved one")."""
    if not path.is_file():
        raise ckpt.CheckpointError(
            f"--resume: no checkpoint at {path}; start without --resume, or give "
            "--resume PATH/last.pt (and the same --job_name and --out as the run)"
        )
    resume = ckpt.load(path, device)
    if not isinstance(resume, dict) or resume.get("format") != ckpt.FORMAT or "trainer" not in resume:
        raise ckpt.CheckpointError(
            f"--resume {path}: not a resumable last.pt of this project (snapshots and "
            "best.pt hold only the generators; resume from the job's last.pt)"
        )
    ckpt.require_parts(
        resume,
        path,
        {"config": RESUME_LOCKED[1:5], "nets": (*ckpt.GENERATORS, "D"), "trainer": ("opts", "scheds"), "rng": ()},
    )
    if "lr" not in next(iter(resume["trainer"]["scheds"].values()), {}):
        raise ckpt.CheckpointError(
            f"{path}: written by an older version of this project (host-side "
            "schedulers); finish it with that version or start a new job"
        )
    saved = resume["config"]
    variant = saved.get("variant", OLDER_VARIANT)
    if variant != asked["variant"]:
        raise ckpt.CheckpointError(
            f"--resume {path}: this run trains the {variant} variant and cannot be continued as "
            f"{asked['variant']} (other networks and losses). Resume it with --variant {variant}, or start a new "
            "job (--job_name)."
        )
    for key in RESUME_LOCKED[1:]:
        value = asked[key]
        if key == "image_size":
            value = list(value) if value else saved.get(key)
        if key in saved and saved[key] != value:
            raise ckpt.CheckpointError(
                f"--resume: the run was trained with {key.replace('_', '-')}={saved[key]!r}, this command asks "
                f"for {value!r}. Resume with the same setting, or start a new job (--job_name). Settings that "
                "may change on resume: epochs, device, workers, step, amp, compile, intervals, time limit."
            )
    return resume
