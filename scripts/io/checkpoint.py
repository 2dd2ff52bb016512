"""Checkpoints: atomic writes, safe loads, and rebuilding the networks from what was saved.

A project checkpoint is a dict with ``format`` = ``"avseg-v1"``, ``config`` (the resolved training
configuration), ``versions``, ``epoch`` and ``nets`` (state dicts of ``G_A``, ``G_V``, ``G`` and for the
resumable ``last.pt`` also ``D``) plus, in ``last.pt``, optimiser, scheduler and RNG states.
"""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path

import torch
from torch import nn

from model import build_networks, describe_state, is_original_state_dict, map_original_state_dict
from model.variants import VARIANTS
from scripts.core.errors import UserError, name_list
from scripts.io.atomic import atomic_write

FORMAT = "avseg-v1"
GENERATORS = ("G_A", "G_V", "G")


class CheckpointError(UserError):
    """A checkpoint that is missing or cannot be used; the message says what to do."""


def versions() -> dict[str, str]:
    return {"torch": str(torch.__version__), "python": platform.python_version(), "format": FORMAT}


def save_atomic(obj: dict, path: Path | str) -> None:
    """``torch.save`` atomically: an interrupted write never leaves a broken checkpoint."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def generators_state(nets: dict[str, nn.Module], cfg: dict, epoch: int, extra: dict | None = None) -> dict:
    """A generators-only checkpoint (G_A, G_V, G): epoch snapshots and ``best.pt``."""
    return {
        "format": FORMAT,
        "config": cfg,
        "versions": versions(),
        "epoch": epoch,
        "nets": {k: nets[k].state_dict() for k in GENERATORS},
        **(extra or {}),
    }


def file_sha256(path: Path | str) -> str:
    """The file's SHA-256 (hex): recorded with results, so a number can be traced to the weights."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load(path: Path | str, device: str | torch.device = "cpu") -> dict:
    """Load a checkpoint file safely (``weights_only=True``)."""
    path = Path(path)
    if path.exists() and not path.is_file():
        kind = (
            "a folder"
            if path.is_dir()
            else "a named pipe (FIFO)"
            if path.is_fifo()
            else "a device"
            if path.is_block_device() or path.is_char_device()
            else "a socket"
            if path.is_socket()
            else "not a regular file"
        )
        raise CheckpointError(f"{path}: is {kind}, not a checkpoint file; give the path of a .pt/.pth file.")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}. Train first (sh train.sh ...) or pass --checkpoint PATH.")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # pickle errors, truncated zip, foreign objects
        raise CheckpointError(
            f"{path}: cannot be loaded safely (weights only): the file is corrupt, truncated, or holds objects "
            f"other than tensors and plain containers ({type(err).__name__}). Re-save it as a state dict, or "
            "point to the right file."
        ) from None


def load_state(net: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``net`` exactly, or raise a CheckpointError naming the missing, unexpected
    and misshapen keys (and the likely cause)."""
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} is {tuple(state[k].shape)} in the file, {tuple(v.shape)} in the network"
        for k, v in expected.items()
        if k in state and getattr(state[k], "shape", v.shape) != v.shape
    ]
    problems = (
        ([f"missing key(s) {name_list(missing, 4)}"] if missing else [])
        + ([f"unexpected key(s) {name_list(unexpected, 4)}"] if unexpected else [])
        + ([f"shape of {name_list(shapes, 2)}"] if shapes else [])
    )
    if problems:
        cause = (
            "the network's width differs: was it trained with another --n-filters?"
            if shapes and not missing
            else "the file is damaged or incomplete, or holds another network"
        )
        raise CheckpointError(f"{source}: the weights do not fit the network: {'; '.join(problems)}. {cause}")
    net.load_state_dict(state, strict=True)


def load_generators(path: Path | str, device: str | torch.device = "cpu") -> tuple[dict[str, nn.Module], dict]:
    """G_A, G_V and G (eval mode) of the variant the checkpoint records (v2021 when it records none: written
    before runs recorded it) from a project checkpoint; returns (nets, config)."""
    ckpt = load(path, device)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a checkpoint of this project (no '{FORMAT}' format tag); "
            "for weights trained with the original code use --original A.pth V.pth G.pth"
        )
    require_parts(ckpt, path, {"config": ("n_filters",), "nets": GENERATORS})
    variant = ckpt["config"].get("variant", "v2021")
    if variant not in VARIANTS:
        raise CheckpointError(f"{path}: records an unknown variant {variant!r} (known: {', '.join(VARIANTS)})")
    nets = build_networks(int(ckpt["config"]["n_filters"]), variant=variant)
    for name in GENERATORS:
        load_state(nets[name], ckpt["nets"][name], f"{path} [{name}]")
    return {k: v.to(device).eval() for k, v in nets.items()}, ckpt["config"]


def require_parts(ckpt: dict, path: Path | str, parts: dict[str, tuple[str, ...]]) -> None:
    """Raise a CheckpointError naming what a project checkpoint lacks (a damaged or hand-edited file)."""
    missing = [k for k in parts if not isinstance(ckpt.get(k), dict)]
    missing += [f"{k}.{sub}" for k, subs in parts.items() if k not in missing for sub in subs if sub not in ckpt[k]]
    if missing:
        raise CheckpointError(
            f"{path}: this checkpoint lacks {', '.join(missing)}; it is damaged or was written "
            "by another tool. Use another checkpoint (e.g. an epoch_XXXX.pt snapshot)."
        )


ROLE = {"G_A": "branch", "G_V": "branch", "G": "fusion"}
ROLE_NAME = {
    "G_A": "the artery branch generator G_A",
    "G_V": "the vein branch generator G_V",
    "G": "the fusion generator G",
}


def _original_state(path: Path, name: str, hint: str) -> tuple[dict[str, torch.Tensor], str, int]:
    """A state dict written by the original code for generator ``name``, with this project's key names,
    plus the variant and width its shapes show (SPEC 9.1). Loaded on the CPU whatever device saved it."""
    state = load(path, "cpu")
    if isinstance(state, dict) and state.get("format") == FORMAT:
        raise CheckpointError(
            f"{path}: this is a checkpoint of this project, not a state dict of the "
            "original code; give it with --checkpoint instead"
        )
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict (parameter name -> tensor) of {ROLE_NAME[name]}; {hint}")
    if is_original_state_dict(state):
        state = map_original_state_dict(state)
    found = describe_state(state)
    if found is None:
        raise CheckpointError(
            f"{path}: not a state dict of this method's generators (no input convolution "
            f"'inc.double_conv.0.weight' or an unknown output head); {hint}"
        )
    variant, role, n = found
    if role != ROLE[name]:
        other = "a fusion generator (G, with side outputs)" if role == "fusion" else "a branch generator (G_A or G_V)"
        raise CheckpointError(f"{path}: holds {other}, but this file should be {ROLE_NAME[name]}; {hint}")
    return state, variant, n


def load_original_generators(
    paths: dict[str, Path],
    device: str | torch.device = "cpu",
    hint: str = "check that the three files are G_A, G_V and G in that order",
) -> tuple[dict[str, nn.Module], str]:
    """G_A, G_V, G from three state-dict files written by the original code (keys are mapped).

    The variant (2021 paper or 2023 release, SPEC 9.1) is read from the weights' shapes; the three
    files must agree on it and on the width. Returns (nets in eval mode on ``device``, variant).
    """
    states = {name: _original_state(Path(paths[name]), name, hint) for name in GENERATORS}
    kinds = {(v, n) for _, v, n in states.values()}
    if len(kinds) > 1:
        found = ", ".join(f"{paths[name]}: {v}, width {n}" for name, (_, v, n) in states.items())
        raise CheckpointError(
            f"the three generator files do not belong together ({found}); use G_A, G_V and G of one training run"
        )
    ((variant, n),) = kinds
    nets = build_networks(n, variant=variant)
    for name, (state, _, _) in states.items():
        load_state(nets[name], state, f"{paths[name]} [{name}]")
    return {k: v.to(device).eval() for k, v in nets.items()}, variant
