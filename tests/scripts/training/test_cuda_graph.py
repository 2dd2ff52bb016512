"""GraphedStep's policy (warm-up, static buffers, eager fallbacks, auto choice), on the CPU.

A CPU cannot capture CUDA graphs, so these tests replace the three device calls: "capture" records
the step without running it and hands back output tensors, "replay" runs the recorded step on the
static buffers and writes into those outputs, as a graph replay does. What they prove: every batch
is trained exactly once, in order, with the same result as eager steps, whatever mixes of warm-up,
replays, partial batches, failed captures and auto decisions happen. That a real capture holds the
whole step is what ``GANTrainer.state_tensors`` and its in-place test guarantee, and the GPU check
(``scripts/gpu_check.sh``) measures.
"""

from __future__ import annotations

import contextlib
import copy
import logging

import pytest
import torch

from model import build_networks
from scripts.core.seeding import seed_everything
from scripts.training import GANTrainer
from scripts.training.cuda_graph import GraphedStep, graph_unsupported


class FakeGraph(GraphedStep):
    """GraphedStep with the CUDA calls emulated (module docstring)."""

    def __init__(self, *args, fail: bool = False, costs_ms: tuple[float, float] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fail, self.costs_ms, self.replays, self.captures = fail, costs_ms, 0, 0

    def _timed(self, fn, into):
        """With ``costs_ms`` (eager, replay): the step runs, and the clock reads the given cost."""
        if self.costs_ms is None:
            return super()._timed(fn, into)
        out = fn()
        into.append(self.costs_ms[into is self.graph_ms])
        return out

    def _side_stream(self):
        return contextlib.nullcontext()

    def _sync(self) -> None:
        pass

    def _capture(self, fn):
        self.captures += 1
        if self.fail:
            raise RuntimeError("operation not permitted when stream is capturing")
        out = {k: torch.zeros(()) for k in ("D_A", "D_V", "D", "G_A", "G_V", "G")}

        def replay() -> None:
            self.replays += 1
            for k, v in fn().items():
                out[k].copy_(v)

        return replay, out


def _trainer() -> GANTrainer:
    seed_everything(0)
    return GANTrainer(build_networks(4, with_discriminator=True), mode="reuse")


def _batches(n: int, last: int = 2):
    g = torch.Generator().manual_seed(3)
    sizes = [2] * (n - 1) + [last]
    return [
        (torch.randn(b, 3, 32, 32, generator=g), (torch.rand(b, 3, 32, 32, generator=g) > 0.8).float()) for b in sizes
    ]


def _run(step, batches):
    return [{k: float(v) for k, v in step(x, y).items()} for x, y in batches]


def _same_state(a: GANTrainer, b: GANTrainer) -> bool:
    return all(torch.equal(s, t) for s, t in zip(a.state_tensors(), b.state_tensors()))


def test_replayed_steps_equal_eager_steps_including_a_partial_batch(caplog):
    batches = _batches(7, last=1) + _batches(3)
    eager, graphed = _trainer(), _trainer()
    expected = _run(eager.step, batches)
    step = FakeGraph(graphed, "on", warmup=2)
    with caplog.at_level(logging.INFO, logger="avseg"):
        got = _run(step, batches)
    assert got == expected  # bit for bit: the CPU is deterministic
    assert _same_state(eager, graphed)
    assert step.captures == 1 and step.replays == len(batches) - 2 - 1  # warm-up eager, the partial batch eager
    assert step.status == "graph"
    assert sum("runs eagerly" in r.message for r in caplog.records) == 1  # said once


def test_failed_capture_trains_on_eagerly_and_says_why(caplog):
    batches = _batches(5)
    eager, graphed = _trainer(), _trainer()
    expected = _run(eager.step, batches)
    step = FakeGraph(graphed, "on", warmup=1, fail=True)
    with caplog.at_level(logging.WARNING, logger="avseg"):
        got = _run(step, batches)
    assert got == expected and _same_state(eager, graphed)
    assert step.captures == 1 and step.status == "eager (capture failed)"
    assert any("capture failed" in r.message and "stream is capturing" in r.message for r in caplog.records)


@pytest.mark.parametrize("costs_ms, decision", [((30.0, 20.0), "graph"), ((20.0, 30.0), "eager")])
def test_auto_times_both_and_keeps_the_faster(costs_ms, decision, caplog):
    batches = _batches(10)
    eager, graphed = _trainer(), _trainer()
    expected = _run(eager.step, batches)
    step = FakeGraph(graphed, "auto", warmup=1, trial=3, costs_ms=costs_ms)
    with caplog.at_level(logging.INFO, logger="avseg"):
        got = _run(step, batches)
    assert got == expected and _same_state(eager, graphed)  # every timed step was a real step, once
    assert step.decision == decision and len(step.eager_ms) == 3 and len(step.graph_ms) == 3
    assert step.replays == (3 if decision == "eager" else len(batches) - 1 - 3)
    assert any(
        f"eager {costs_ms[0]:.1f} ms/step, graph replay {costs_ms[1]:.1f} ms/step" in r.message for r in caplog.records
    )


def test_resumed_state_is_what_the_graph_continues_from():
    """Resume, then capture: the replays continue the loaded run exactly as eager steps would."""
    batches = _batches(6)
    source = _trainer()
    _run(source.step, batches[:2])
    state = copy.deepcopy(source.state_dict())
    nets = {k: copy.deepcopy(n.state_dict()) for k, n in source.nets.items()}
    resumed = []
    for graphed in (False, True):
        t = _trainer()
        for k, n in t.nets.items():
            n.load_state_dict(nets[k])
        t.load_state_dict(copy.deepcopy(state))
        resumed.append((t, _run(FakeGraph(t, "on", warmup=1) if graphed else t.step, batches[2:])))
    assert resumed[0][1] == resumed[1][1] and _same_state(resumed[0][0], resumed[1][0])


def test_what_cannot_be_captured_is_named():
    cpu = _trainer()
    assert "CUDA device" in graph_unsupported(cpu, torch.device("cpu"))
    with pytest.raises(ValueError, match="auto"):
        GraphedStep(cpu, "off")
