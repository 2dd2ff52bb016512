"""What a job folder ``<out>/<DATASET>/<job>/`` holds, and which of its snapshots make the paper row.

A job folder holds one training run: ``config.json``, ``timing.json``, ``last.pt``, ``best.pt``,
``epoch_XXXX.pt`` (the protocol's snapshots: every ``--save-every`` epochs from ``--save-from``)
and ``stop_epoch_XXXX.pt`` (the weights of an epoch where a run ended off that grid: a time limit,
or an ``--epochs`` shorter than ``--save-from``). Training holds ``.train.lock`` while it runs.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import torch

from scripts.core.errors import UserError, name_list
from scripts.io.checkpoint import FORMAT

log = logging.getLogger("avseg")
LOCK_NAME = ".train.lock"
RUN_FILES = ("config.json", "timing.json", "last.pt", "best.pt", "epoch_*.pt", "stop_epoch_*.pt")
SNAPSHOT_RULES = ("protocol", "all", "best")
_EPOCH = re.compile(r"(?:^|_)epoch_(\d+)$")


class JobFolderError(UserError):
    """A job folder that holds another run, or no usable snapshot; the message says the ways on."""


def _one_name(name: str, what: str) -> str:
    """A name that becomes one folder: not empty, not '.' or '..', no path separator."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise JobFolderError(
            f"{what} {name!r} must be a plain folder name (no '/', not '.' or '..'): it names a folder "
            "inside the output folder, and nothing outside it may be written or deleted"
        )
    return name


def job_folder(out: Path, dataset: str, job: str) -> Path:
    """``<out>/<DATASET>/<job>/``: the folder of one training run (the one place this path is made)."""
    return Path(out) / _one_name(dataset, "the dataset name") / _one_name(job, "the job name")


def runs_folder(runs_dir: Path, job: str) -> Path:
    """``<runs-dir>/<job>/``: the run's TensorBoard events (the one place this path is made)."""
    return Path(runs_dir) / _one_name(job, "the job name")


def results_folder(dataset: str, run: str) -> Path:
    """``results/<DATASET>/<run>/``: test.py's default tables and figures of a run."""
    return Path("results") / _one_name(dataset, "the dataset name") / _one_name(run, "the job name")


def maps_folder(dataset: str, run: str) -> Path:
    """``Final_pre/<DATASET>/<run>/``: test.py's default probability maps of a run (one folder per run, so
    testing one job never replaces another's maps)."""
    return Path("Final_pre") / _one_name(dataset, "the dataset name") / _one_name(run, "the job name")


def snapshot_kind(epoch: int, save_from: int, save_every: int, last_epoch: bool) -> str | None:
    """Which snapshot epoch ``epoch`` gets: ``"protocol"`` on the grid (every ``save_every`` epochs
    from ``save_from``; the paper: every 10 from 1300), ``"stop"`` for the last epoch of a run that
    ends off the grid (so a shortened run can still be tested, with ``--snapshots all``), else None."""
    if epoch >= save_from and (epoch - save_from) % save_every == 0:
        return "protocol"
    return "stop" if last_epoch else None


def snapshot_path(job_dir: Path, epoch: int, kind: str) -> Path:
    return job_dir / (f"epoch_{epoch:04d}.pt" if kind == "protocol" else f"stop_epoch_{epoch:04d}.pt")


def snapshot_epoch(path: Path) -> int | None:
    """The epoch in a snapshot's name (``epoch_0094.pt``, ``stop_epoch_0005.pt``), else None."""
    match = _EPOCH.search(Path(path).stem)
    return int(match.group(1)) if match else None


def run_files(job_dir: Path) -> list[Path]:
    """The files of a training run in ``job_dir`` (empty for a new or empty folder)."""
    return sorted({p for pattern in RUN_FILES for p in Path(job_dir).glob(pattern) if p.is_file()})


def written_by_a_run(path: Path) -> bool:
    """Whether ``path`` is provably a file a training run of this project wrote: a checkpoint with this
    project's format tag, a ``config.json`` naming it in its versions, or a ``timing.json`` with the run's
    keys. ``--overwrite`` deletes nothing else."""
    try:
        if path.suffix == ".pt":
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            return isinstance(state, dict) and state.get("format") == FORMAT
        content = json.loads(path.read_text(encoding="utf-8"))
    except Exception:  # not a zip checkpoint, not JSON, unreadable: not provably ours
        return False
    if not isinstance(content, dict):
        return False
    if path.name == "config.json":
        return isinstance(content.get("versions"), dict) and content["versions"].get("format") == FORMAT
    return {"step_mode", "steps_per_epoch", "ms_per_step"} <= content.keys()


def _unsaved(found: list[Path]) -> bool:
    return bool(found) and all(p.suffix == ".json" and written_by_a_run(p) for p in found)


def unsaved_run(job_dir: Path) -> list[Path]:
    """The files of a run that stopped before it saved any checkpoint (killed in its first epoch: only
    ``config.json``/``timing.json``, provably ours); nothing of it is lost by starting again. Else []."""
    found = run_files(job_dir)
    return found if _unsaved(found) else []


def check_free(job_dir: Path, resume: bool, overwrite: bool) -> list[Path]:
    """Refuse to start a new run in a folder that holds one; returns the files ``--overwrite`` removes
    (only files :func:`written_by_a_run`: a folder holding anything else under those names is refused).
    A run that saved no checkpoint (:func:`unsaved_run`) does not hold the folder."""
    found = run_files(job_dir)
    if not found or resume or _unsaved(found):
        return []
    if overwrite:
        foreign = [p.name for p in found if not written_by_a_run(p)]
        if foreign:
            raise JobFolderError(
                f"--overwrite deletes only files that a training run of this project wrote, and {job_dir} holds "
                f"{name_list(foreign, 6)}, which are not (not this project's checkpoints, config or timing). Nothing "
                "was deleted. Move them away, or train under another --job_name."
            )
        return found
    raise JobFolderError(
        f"{job_dir} already holds a training run ({name_list([p.name for p in found], 6)}). Continue it with --resume, train a new run under "
        "another --job_name, or give --overwrite to delete that run's files (and its TensorBoard logs) first."
    )


def find_snapshots(job_dir: Path, rule: str = "protocol") -> list[Path]:
    """The checkpoints of the paper row, by ``rule``: ``protocol`` (default) the grid snapshots
    ``epoch_XXXX.pt``; ``all`` also ``stop_epoch_XXXX.pt``; ``best`` the run's ``best.pt``. Sorted by epoch."""
    job_dir = Path(job_dir)
    protocol = sorted(job_dir.glob("epoch_*.pt"), key=snapshot_epoch)
    stops = sorted(job_dir.glob("stop_epoch_*.pt"), key=snapshot_epoch)
    best = job_dir / "best.pt"
    if rule == "best":
        found = [best] if best.is_file() else []
    elif rule == "all":
        found = sorted(protocol + stops, key=snapshot_epoch)
    else:
        found = protocol
    if found:
        return found
    if not run_files(job_dir):
        raise JobFolderError(
            f"no checkpoints in {job_dir.resolve()}; train this job first (sh train.sh <DATASET>) "
            "or pass --checkpoint PATH"
        )
    others = []
    if rule == "protocol" and stops:
        others.append(
            f"{', '.join(p.name for p in stops)}, written where the run ended before its snapshot epochs "
            "(--snapshots all scores them)"
        )
    if rule != "best" and best.is_file():
        others.append("best.pt (--snapshots best)")
    wanted = {
        "protocol": "snapshots at the protocol's epochs (epoch_XXXX.pt, from --save-from every --save-every)",
        "all": "snapshots (epoch_XXXX.pt or stop_epoch_XXXX.pt)",
        "best": "best.pt",
    }[rule]
    raise JobFolderError(
        f"{job_dir.resolve()}: no {wanted}"
        + (f"; it holds {'; '.join(others)}" if others else "")
        + ". Finish the run (sh train.sh ... --resume) or pass --checkpoint PATH."
    )
