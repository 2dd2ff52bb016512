"""Checkpoint writes that do not stall training.

``BackgroundSaver.submit`` copies every tensor of the checkpoint to host memory first (pinned, with
non-blocking copies, when it lives on a GPU), so the networks can go on changing at once; a
background thread then writes the copy atomically (temporary file, fsync, rename). One write is in
flight at a time. A failed write is reported and leaves the previous file as it was.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import torch

from scripts.io.checkpoint import CheckpointError, save_atomic

log = logging.getLogger("avseg")


def to_host(obj: Any, pin: bool) -> Any:
    """A copy of nested dicts/lists/tuples whose tensors are fresh CPU tensors (pinned if ``pin``)."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        if t.device.type == "cpu":
            return t.clone()
        out = torch.empty(t.shape, dtype=t.dtype, pin_memory=pin)
        return out.copy_(t, non_blocking=pin)
    if isinstance(obj, dict):
        return {k: to_host(v, pin) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_host(v, pin) for v in obj)
    return obj


class BackgroundSaver:
    """Writes one checkpoint at a time on a background thread; see the module docstring."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._failure: str | None = None

    def submit(self, obj: dict, path: Path | str, wait: bool = False) -> None:
        """Copy ``obj`` to host memory now and write it to ``path`` in the background.

        ``wait``: block until written and raise a CheckpointError if the write failed."""
        self.wait()
        cuda = any(isinstance(t, torch.Tensor) and t.is_cuda for t in _tensors(obj))
        host = to_host(obj, pin=cuda)
        event = None
        if cuda:
            event = torch.cuda.Event()
            event.record()

        def write() -> None:
            try:
                if event is not None:
                    event.synchronize()  # the copies into pinned memory are done
                save_atomic(host, path)
            except Exception as err:  # reported by wait(); the previous file is intact
                self._failure = str(err)

        self._thread = threading.Thread(target=write, name=f"save {Path(path).name}")
        self._thread.start()
        if wait:
            self.wait(strict=True)

    def wait(self, strict: bool = False) -> str | None:
        """Wait for the write in flight; log (or, if ``strict``, raise) a failure. Returns it."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        failure, self._failure = self._failure, None
        if failure and strict:
            raise CheckpointError(failure)
        if failure:
            log.error("%s; training goes on, the next write tries again", failure)
        return failure


def _tensors(obj: Any):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)
