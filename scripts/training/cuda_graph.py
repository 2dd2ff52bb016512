"""The whole training step as one CUDA graph: captured once, replayed for every batch.

Eager PyTorch dispatches each of the step's ~4,300 operators from Python (about 16 us of host time
each); a CUDA graph replays all their kernels with one call. ``GraphedStep`` wraps
:meth:`GANTrainer.step` itself, so there is no second copy of the step: the captured kernels are
exactly the eager step's (the three D updates, the generator updates, all six Adam steps, both
plateau schedulers), and the arithmetic is unchanged. What capture needs from the step:

- static inputs: each batch is copied into the buffers the graph was captured with;
- state updated in place only (weights, buffers, Adam's moments and step counts, the learning-rate
  tensors, the schedulers' state: ``GANTrainer.state_tensors``); capturable Adam;
- no host synchronisation inside the step (fp16's GradScaler reads a value on the host every step,
  so fp16 runs eagerly; so does a run under torchrun);
- warm-up outside the capture: the first calls run eagerly on a side stream (cuDNN autotuning,
  cuBLAS handles, Adam's lazily created state), then the step is captured.

A batch of another shape (an epoch's partial last batch) runs eagerly, said once in the log; a
capture that fails is logged with its reason and the run goes on eagerly. Capture happens after
resume and compilation, from the first call on: state loaded later must be copied into the live
tensors (``GANTrainer.load_state_dict`` does that for the schedulers; optimiser state loaded after
capture would not be seen, so the trainer loads it before).

Before the replays are relied on, the graph proves itself on the batch it was captured with
(:meth:`GraphedStep._verify`): two eager steps and one replay from the same state, every state tensor
and loss compared, the tolerance being the eager-vs-eager difference on that device. A replay that
differs turns the graph off with a warning naming the largest difference; the numbers are kept in
``check`` (``timing.json``).

``mode="auto"`` measures: a few eager steps, then a few replays, and keeps the faster (every one of
them is a real training step on a real batch).
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import time
from collections.abc import Callable

import torch

log = logging.getLogger("avseg")
GRAPH_MODES = ("auto", "on", "off")


def graph_unsupported(
    trainer, device: torch.device, distributed: bool = False, compile_mode: str | None = None
) -> str | None:
    """Why the step cannot be captured here (None: it can)."""
    if device.type != "cuda":
        return "CUDA graphs need a CUDA device"
    if trainer.scaler.is_enabled():
        return "fp16 loss scaling reads a value on the host every step (use --amp bf16 or float32)"
    if distributed:
        return "not supported with several processes (torchrun) yet"
    if compile_mode == "reduce-overhead":
        return "--compile reduce-overhead already uses CUDA graphs of its own"
    return None


NOISE_LIMIT = 1e-3  # largest relative difference of two eager steps from one state that is still noise


def _largest_difference(
    trainer, got: list[torch.Tensor], expected: list[torch.Tensor], got_losses: dict, expected_losses: dict
) -> tuple[float, str]:
    """The largest relative difference (max |a - b| / max |b|) over every state tensor and loss, and where.
    Equal values count as no difference, infinities included (a plateau scheduler that has not stepped
    yet holds an infinite best value: the 2023 objective steps them once per epoch); a NaN is one."""
    names = [n for n, _ in trainer.named_state_tensors()]
    pairs = [*zip(names, got, expected)]
    pairs += [(f"loss {k}", got_losses[k].detach().cpu(), v) for k, v in expected_losses.items()]
    worst, where = 0.0, "-"
    for name, a, b in pairs:
        a64, b64 = a.detach().double(), b.detach().double()
        diff = torch.where(a64 == b64, 0.0, (a64 - b64).abs())
        d = float(diff.max()) if a64.numel() else 0.0
        if d > 0:
            d /= max(float(b64[b64.isfinite()].abs().max()) if bool(b64.isfinite().any()) else 1.0, 1e-30)
        if d > worst or d != d:
            worst, where = d, name
    return worst, where


class GraphedStep:
    """``step(x, y) -> losses`` like :meth:`GANTrainer.step`, replayed from a CUDA graph (module docstring)."""

    def __init__(self, trainer, mode: str = "on", warmup: int = 2, trial: int = 5) -> None:
        if mode not in ("auto", "on"):
            raise ValueError(f"GraphedStep mode must be 'auto' or 'on', got {mode!r}")
        self.trainer, self.mode, self.warmup, self.trial = trainer, mode, warmup, trial
        trainer.autocast_cache = False  # autocast's weight cache cannot live across a capture
        self.calls = 0
        self.replay: Callable[[], None] | None = None
        self.static: tuple[torch.Tensor, torch.Tensor] | None = None
        self.out: dict[str, torch.Tensor] | None = None
        self.eager_only = False  # capture failed, or auto measured eager faster
        self.eager_ms: list[float] = []
        self.graph_ms: list[float] = []
        self.decision: str | None = None
        self.check: dict | None = None  # the self-check after capture (timing.json)
        self._told_shape = False

    @property
    def status(self) -> str:
        """For timing.json: replaying, eager (and why), or not decided yet."""
        if self.replay is not None:
            return "graph"
        if self.decision == "eager":
            return "eager (auto: measured faster)"
        if self.check is not None and not self.check["passed"]:
            return "eager (the replay differed from the eager step)"
        return "eager (capture failed)" if self.eager_only else "not captured yet"

    # the device-specific parts (overridden by the CPU tests, which cannot capture)
    @contextlib.contextmanager
    def _side_stream(self):
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            yield
        torch.cuda.current_stream().wait_stream(stream)

    def _sync(self) -> None:
        torch.cuda.synchronize()

    def _capture(self, fn: Callable[[], dict[str, torch.Tensor]]) -> tuple[Callable[[], None], dict[str, torch.Tensor]]:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = fn()
        return graph.replay, out

    def _timed(self, fn: Callable[[], dict[str, torch.Tensor]], into: list[float]) -> dict[str, torch.Tensor]:
        self._sync()
        start = time.perf_counter()
        out = fn()
        self._sync()
        into.append(1e3 * (time.perf_counter() - start))
        return out

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        self.calls += 1
        if self.eager_only:
            return self.trainer.step(x, y)
        if self.replay is None:
            if self.calls <= self.warmup:
                with self._side_stream():
                    return self.trainer.step(x, y)
            if self.mode == "auto" and len(self.eager_ms) < self.trial:
                return self._timed(lambda: self.trainer.step(x, y), self.eager_ms)
            if not self._try_capture(x, y):
                return self.trainer.step(x, y)
            return self._verify(x, y)  # trains this batch (once), by the graph if it proves itself
        if self.static is None or x.shape != self.static[0].shape or y.shape != self.static[1].shape:
            if not self._told_shape:
                log.info(
                    "CUDA graph: a batch of shape %s (captured: %s) runs eagerly (an epoch's partial last batch)",
                    tuple(x.shape),
                    tuple(self.static[0].shape) if self.static else None,
                )
                self._told_shape = True
            return self.trainer.step(x, y)
        self.static[0].copy_(x, non_blocking=True)
        self.static[1].copy_(y, non_blocking=True)
        if self.mode == "auto" and self.decision is None:
            self._timed(self.replay, self.graph_ms)
            out = {k: v.clone() for k, v in self.out.items()}  # the graph may be dropped just below
            if len(self.graph_ms) >= self.trial:
                self._decide()
            return out
        self.replay()
        return self.out

    def _verify(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Prove the captured graph before relying on it: from the same state and batch, two eager steps
        (their difference is this device's run-to-run noise) and one replay. The replay must match the
        eager step within twice that noise (two noisy runs may differ by up to twice one run's noise),
        and the two eager steps must agree to NOISE_LIMIT (a step whose result is not a function of its
        state tensors, e.g. one that reads a Python value changing between steps, cannot be replayed).
        Otherwise the graph is dropped with a warning naming the largest difference, and the eager
        result is kept. Either way this batch is trained exactly once; the numbers go to ``self.check``."""
        trainer = self.trainer
        start = trainer.snapshot()
        eager_out = trainer.step(x, y)
        self._sync()
        eager = trainer.snapshot()
        eager_losses = {k: v.detach().to("cpu", copy=True) for k, v in eager_out.items()}
        trainer.restore(start)
        again_out = trainer.step(x, y)
        self._sync()
        again = trainer.snapshot()
        noise = _largest_difference(trainer, again.tensors, eager.tensors, again_out, eager_losses)
        trainer.restore(start)
        assert self.static is not None and self.replay is not None and self.out is not None
        self.static[0].copy_(x)
        self.static[1].copy_(y)
        self.replay()
        self._sync()
        graph = trainer.snapshot()
        diff = _largest_difference(trainer, graph.tensors, eager.tensors, self.out, eager_losses)
        passed = noise[0] <= NOISE_LIMIT and diff[0] <= 2 * noise[0]
        self.check = {
            "passed": passed,
            "replay_vs_eager": diff[0],
            "replay_vs_eager_at": diff[1],
            "eager_vs_eager": noise[0],
            "eager_vs_eager_at": noise[1],
            "tolerance": 2 * noise[0],
        }
        if passed:
            log.info(
                "CUDA graph self-check passed: replay vs eager %.3g (largest relative difference), eager vs eager %.3g",
                diff[0],
                noise[0],
            )
            return {k: v.clone() for k, v in self.out.items()}
        why = (
            f"two eager steps from the same state differ by {noise[0]:.3g} (in {noise[1]}): the step's result is "
            "not a function of its state tensors"
            if noise[0] > NOISE_LIMIT
            else f"the replay differs from the eager step by {diff[0]:.3g} in {diff[1]}, beyond the eager-vs-eager "
            f"noise {noise[0]:.3g}"
        )
        log.warning("CUDA graph self-check failed: %s; training goes on eagerly", why)
        trainer.restore(eager)
        self.replay, self.static, self.out, self.eager_only = None, None, None, True
        return {k: v.to(x.device) for k, v in eager_losses.items()}

    def _try_capture(self, x: torch.Tensor, y: torch.Tensor) -> bool:
        fmt = self.trainer.memory_format
        # the 2023 variant's labels are (B, H, W) class indices: no channels to lay out
        self.static = (x.clone(memory_format=fmt), y.clone(memory_format=fmt) if y.dim() == 4 else y.clone())
        try:
            self.replay, self.out = self._capture(lambda: self.trainer.step(*self.static))
        except Exception as err:  # an operator that cannot be captured: say which, train eagerly
            log.warning(
                "CUDA graph capture failed (%s: %s); training goes on eagerly",
                type(err).__name__,
                str(err).splitlines()[0] if str(err) else "",
            )
            self.replay, self.static, self.eager_only = None, None, True
            return False
        log.info("CUDA graph: the whole training step captured (batch %s)", tuple(x.shape))
        return True

    def _decide(self) -> None:
        eager, graph = statistics.median(self.eager_ms), statistics.median(self.graph_ms)
        self.decision = "graph" if graph < eager else "eager"
        log.info(
            "CUDA graph (auto): eager %.1f ms/step, graph replay %.1f ms/step: %s from now on",
            eager,
            graph,
            "replaying the graph" if self.decision == "graph" else "eager",
        )
        if self.decision == "eager":
            self.replay, self.static, self.out, self.eager_only = None, None, None, True
