"""GraphedStep's policy (warm-up, static buffers, eager fallbacks, auto choice, self-check), on the CPU.

A CPU cannot capture CUDA graphs, so these tests replace the three device calls. ``FakeGraph``:
"capture" hands back output tensors without running the step, "replay" runs the Python step again on
the static buffers; it proves the policy: every batch is trained exactly once, in order, with the
same result as eager steps, whatever mixes of warm-up, replays, partial batches, failed captures and
auto decisions happen. ``RecordedGraph`` is closer to a real graph: "capture" records the step's
tensor operations (ATen calls, backward and optimiser included) and "replay" runs only those on the
same tensors, so every Python-side value the step reads is frozen at capture, as in a CUDA graph. It
proves that the real step has no such value (replays equal eager steps bit for bit), and that a step
which has one is caught.
"""

from __future__ import annotations

import contextlib
import copy
import logging

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

from model import build_networks
from scripts.core.seeding import seed_everything
from scripts.training import GANTrainer, LossWeights
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


class _Recorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.ops.append((func, args, kwargs, out))
        return out


class RecordedGraph(FakeGraph):
    """GraphedStep whose replay runs the recorded tensor operations only (module docstring)."""

    def _capture(self, fn):
        self.captures += 1
        start = self.trainer.snapshot()
        recorder = _Recorder()
        with recorder:
            recorded = fn()
        self.trainer.restore(start)  # a capture records, it does not train
        out = {k: v.detach().clone() for k, v in recorded.items()}

        def replay() -> None:
            self.replays += 1
            env: dict[int, torch.Tensor] = {}

            def now(t):
                return env.get(id(t), t) if isinstance(t, torch.Tensor) else t

            with torch.no_grad():  # kernels only, as a graph replays them
                for func, args, kwargs, result in recorder.ops:
                    new = func(*tree_map(now, args), **tree_map(now, kwargs))
                    for old, fresh in zip(tree_flatten(result)[0], tree_flatten(new)[0]):
                        if isinstance(old, torch.Tensor):
                            env[id(old)] = fresh
                for k, v in recorded.items():
                    out[k].copy_(env.get(id(v), v))

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
    # the capture batch is trained by the self-check's replay, then three timed replays
    assert step.replays == (1 + 3 if decision == "eager" else len(batches) - 1 - 3)
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


class HostScheduled(GANTrainer):
    """A step that reads a Python value changing between steps: the adversarial weight follows a
    host-side schedule from ``change_at`` on (a CUDA graph freezes the value it had at capture)."""

    def __init__(self, *args, change_at: int = 1, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls, self.change_at = 0, change_at

    def step(self, x, y):
        self.calls += 1
        self.w = LossWeights(gamma=0.08 * max(1, self.calls - self.change_at + 1))
        return super().step(x, y)


def _host_scheduled(change_at: int) -> HostScheduled:
    seed_everything(0)
    return HostScheduled(build_networks(4, with_discriminator=True), mode="reuse", change_at=change_at)


def _replays_match_eager(make, batches, **graph) -> tuple[bool, GraphedStep]:
    eager, graphed = make(), make()
    expected = _run(eager.step, batches)
    step = RecordedGraph(graphed, "on", warmup=2, **graph)
    got = _run(step, batches)
    return got == expected and _same_state(eager, graphed), step


@pytest.mark.parametrize(
    ("mode", "variant"), [(m, "v2021") for m in ("literal", "reuse", "batched")] + [("batched", "v2023")]
)
def test_replaying_the_recorded_operations_of_the_real_step_equals_eager_steps(mode, variant):
    """No Python-side value of the step changes between steps: replays of one recording, with nothing
    re-run in Python, give the eager steps' losses and states bit for bit, for both variants (2023's
    labels are class indices, without channels). (Fused Adam stands in for the capturable Adam that
    CUDA runs in every mode: neither reads its step count on the host.)"""

    def make():
        seed_everything(0)
        nets = build_networks(4, with_discriminator=True, variant=variant)
        return GANTrainer(nets, mode=mode, fused_adam=True, channels_last=variant == "v2023", variant=variant)

    batches = _batches(5)
    if variant == "v2023":  # the 3-channel maps as class indices (uncertain, then artery, then vein)
        batches = [
            (x, torch.where(y[:, 1] > 0, 3, torch.where(y[:, 0] > 0, 1, torch.where(y[:, 2] > 0, 2, 0))))
            for x, y in batches
        ]
    same, step = _replays_match_eager(make, batches)
    assert same and step.replays == 3 and step.status == "graph"
    assert step.check["passed"] and step.check["replay_vs_eager"] == 0.0 and step.check["eager_vs_eager"] == 0.0


def test_plain_adam_on_the_cpu_is_caught_reading_its_step_count_on_the_host():
    """Why CUDA runs capturable Adam: plain Adam on the CPU reads its step count on the host for the
    bias correction, a value a graph freezes at capture; the double shows the replays drifting."""

    def make():
        seed_everything(0)
        return GANTrainer(build_networks(4, with_discriminator=True), mode="literal", fused_adam=False)

    same, step = _replays_match_eager(make, _batches(5))
    assert step.check["passed"] and not same  # the capture batch matches; the step counts then move on


def test_a_value_frozen_at_capture_makes_replays_differ():
    """The double sees what a CUDA graph would do to a step with host-side state: the schedule changes
    after the capture (step 5), the self-check at capture cannot know, the replays keep the old value."""
    same, step = _replays_match_eager(lambda: _host_scheduled(change_at=5), _batches(7))
    assert step.check["passed"]  # at capture (step 3) nothing had changed yet
    assert not same


def test_the_self_check_turns_off_a_graph_whose_replay_differs(caplog):
    """A step whose result is not a function of its state tensors (here: a value changing every step)
    fails the self-check at capture: the graph is dropped with a warning naming the largest difference
    and training goes on eagerly (no replay after the check's own)."""
    batches = _batches(6)
    with caplog.at_level(logging.WARNING, logger="avseg"):
        _, step = _replays_match_eager(lambda: _host_scheduled(change_at=1), batches)
    assert step.replays == 1 and step.replay is None
    assert not step.check["passed"] and step.status == "eager (the replay differed from the eager step)"
    assert step.check["eager_vs_eager"] > 1e-3
    message = next(r.message for r in caplog.records if "self-check failed" in r.message)
    assert step.check["eager_vs_eager_at"] in message and "not a function of its state tensors" in message


def test_the_self_check_names_a_replay_that_differs(caplog):
    """A replay that writes a wrong value (a tensor rebound after capture would do this) is caught, and
    the warning names the state tensor and the size of the difference."""

    class Corrupted(RecordedGraph):
        def _capture(self, fn):
            replay, out = super()._capture(fn)
            weight = self.trainer.nets["G"].head.weight

            def corrupt() -> None:
                replay()
                with torch.no_grad():
                    weight.mul_(1.01)

            return corrupt, out

    batches = _batches(5)
    eager, graphed = _trainer(), _trainer()
    expected = _run(eager.step, batches)
    step = Corrupted(graphed, "on", warmup=2)
    with caplog.at_level(logging.WARNING, logger="avseg"):
        got = _run(step, batches)
    assert got == expected and _same_state(eager, graphed)
    assert not step.check["passed"] and step.check["replay_vs_eager_at"] == "G.head.weight"
    assert step.check["replay_vs_eager"] == pytest.approx(0.01, rel=0.05)
    assert any("G.head.weight" in r.message for r in caplog.records)
