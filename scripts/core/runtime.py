"""What the command-line entry points share: device choice, worker count, precision, option types."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import torch

from scripts.core.errors import UsageError


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA, else Apple MPS, else CPU; an explicit accelerator that is absent is an error.

    The MPS path cannot be run on the machines this project is tested on: it is kept to the device
    choice itself and is untested."""
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps is not None and mps.is_available())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps_ok else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name!r} is not a device name; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            f"--device {name} was asked for, but PyTorch sees no CUDA GPU on this machine "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda}); use --device cpu, or check "
            "the driver with nvidia-smi."
        )
    if dev.type == "mps" and not mps_ok:
        raise UsageError(f"--device {name} was asked for, but PyTorch has no MPS backend here; use --device cpu")
    return dev


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_workers(value: str, device: torch.device) -> int:
    """``--workers``: a number, or 'auto' = none on the CPU (the cores train), else up to 8 sized to the machine."""
    if value != "auto":
        try:
            n = int(value)
        except ValueError:
            n = -1
        if n < 0:
            raise UsageError(f"--workers must be a number >= 0 or 'auto', got {value!r}")
        most = max(64, 4 * cpu_count())
        if n > most:
            raise UsageError(
                f"--workers {n}: at most {most} data-loading processes on this machine ({cpu_count()} cores); "
                "'auto' sizes them to the machine"
            )
        return n
    return 0 if device.type == "cpu" else max(1, min(8, cpu_count() - 1))


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def resolve_amp(value: str | None, device: torch.device) -> str | None:
    """``--amp``: None/off (float32), bf16 or fp16 (CUDA only)."""
    if value in (None, "off"):
        return None
    if value == "fp16" and device.type != "cuda":
        raise UsageError("--amp fp16 needs a CUDA GPU; on the CPU use --amp bf16")
    return value


def ensure_folder(path: Path, option: str) -> Path:
    """Create an output folder before any work, or raise a UsageError naming the option and the cause."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK):
            raise PermissionError(13, "permission denied")
    except OSError as err:
        hint = (
            "a file of that name is in the way"
            if isinstance(err, (FileExistsError, NotADirectoryError))
            else (err.strerror or str(err))
        )
        raise UsageError(f"{option} {path}: cannot create or write this folder ({hint}); choose another path") from None
    return path
