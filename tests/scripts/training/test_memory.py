"""The memory plan: tracked allocations by hand, the plan against peaks measured on a GPU, and the
choice of the fastest configuration that fits."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from scripts.training.memory import (
    BLOCK,
    CATEGORIES,
    MARGIN,
    MiB,
    StepConfig,
    _Allocations,
    candidates,
    choose,
    leaner,
    plan_inference,
    plan_step,
)
from tests.helpers import fake_plan_step

# peak device memory (MiB, torch.cuda.max_memory_allocated over timed steps) measured on one NVIDIA H200,
# DRIVE_AV 592 x 592, batch 2, n = 32 (docs/performance.md): these are measurements, not plan outputs
H200 = {
    StepConfig(mode="literal", channels_last=False): 12_643,
    StepConfig(mode="batched", channels_last=True): 15_159,
    StepConfig(mode="batched", channels_last=True, amp="bf16"): 9_346,
}


def test_allocations_are_rounded_like_the_caching_allocator_and_freed_when_python_frees_them():
    tracker = _Allocations()
    with tracker:
        a = torch.empty(100)  # 400 bytes -> one 512-byte block
        b = torch.empty(1000)  # 4,000 bytes -> 4,096
        view = b[10:]  # a view shares its storage: nothing new
        assert tracker.current == 512 + 4096
        del b, view
        assert tracker.current == 512  # the storage went with its last reference
        c = torch.empty(129)  # 516 bytes -> 1,024
        del a
    assert tracker.peak == 512 + 4096 and tracker.current == 1024 and c.numel() == 129


@pytest.mark.parametrize("config", list(H200), ids=lambda c: c.label)
def test_the_plan_reproduces_the_peaks_measured_on_an_h200_within_its_margin(config):
    measured = H200[config] * MiB
    plan = plan_step(config, breakdown=False)
    assert abs(plan.peak - measured) <= 0.02 * measured, (plan.peak / MiB, H200[config])
    assert measured <= MARGIN.needed(plan.peak)  # what the default reserves covers what the GPU used


@pytest.mark.parametrize("variant", ["v2021", "v2023"])
def test_the_breakdown_adds_up_and_weights_and_optimizer_state_are_what_they_must_be(variant):
    config = StepConfig(mode="reuse", n_filters=4, width=64, height=64, channels_last=False, variant=variant)
    plan = plan_step(config)
    assert set(plan.at_peak) == set(CATEGORIES) and sum(plan.at_peak.values()) == plan.peak
    from model import build_networks

    nets = build_networks(4, with_discriminator=True, variant=variant)
    tensors = [t for n in nets.values() for t in (*n.parameters(), *n.buffers())]
    weights = sum(math.ceil(t.numel() * t.element_size() / BLOCK) * BLOCK for t in tensors)
    params = [p for n in nets.values() for p in n.parameters()]
    moments = 2 * sum(math.ceil(p.numel() * 4 / BLOCK) * BLOCK for p in params)
    assert plan.at_peak["weights"] == weights
    # Adam: two moments per weight, a step count per weight and a learning rate per optimiser
    assert plan.at_peak["optimizer"] == moments + BLOCK * (len(params) + 4)
    # images (float32) and labels: 3-channel float32 maps, or the 2023 variant's int64 class indices
    labels = 2 * 64 * 64 * (8 if variant == "v2023" else 3 * 4)
    assert plan.at_peak["batch"] == math.ceil(2 * 3 * 64 * 64 * 4 / BLOCK) * BLOCK + math.ceil(labels / BLOCK) * BLOCK
    # between steps: also the gradients the last updates left (set to None at each network's next update)
    assert plan.peak > plan.between_steps > weights + plan.at_peak["optimizer"] + plan.at_peak["batch"]


def test_checkpointing_plans_far_less_memory():
    small = dict(n_filters=8, width=128, height=128)
    for mode in ("literal", "batched"):
        plain, ckpt = (plan_step(StepConfig(mode=mode, checkpointing=c, **small), breakdown=False) for c in (0, 1))
        assert ckpt.peak < 0.6 * plain.peak, mode
    assert 0 < plan_inference(8, 128, 128) < plan_step(StepConfig(**small), breakdown=False).peak


@pytest.mark.parametrize(
    "free_gib, chosen, left_out",
    [
        (80, ("batched", False), []),
        (16, ("reuse", False), [("batched", False)]),
        (10, ("batched", True), [("batched", False), ("reuse", False)]),
        (4, ("reuse", True), [("batched", False), ("reuse", False), ("batched", True)]),
    ],
)
def test_the_default_is_the_fastest_exact_configuration_that_fits(free_gib, chosen, left_out):
    choice = choose(StepConfig(), "auto", "auto", free_gib * 2**30, plan=fake_plan_step())
    assert (choice.plan.config.mode, choice.plan.config.checkpointing) == chosen
    assert [(p.config.mode, p.config.checkpointing) for p in choice.left_out] == left_out
    assert "planned peak" in choice.describe() and ("left out" in choice.describe()) == bool(left_out)


def test_nothing_fits_and_explicit_settings_narrow_the_choice():
    assert choose(StepConfig(), "auto", "auto", 2**30, plan=fake_plan_step()).plan is None
    assert candidates("literal", "auto") == [("literal", False), ("literal", True)]
    assert candidates("auto", "off") == [("batched", False), ("reuse", False), ("literal", False)]
    assert candidates("batched", "on") == [("batched", True)]
    after = [(c.mode, c.checkpointing) for c in leaner(StepConfig(mode="batched"), "auto", "auto")]
    assert after == [("reuse", False), ("batched", True), ("reuse", True), ("literal", False), ("literal", True)]
    assert [c.mode for c in leaner(replace(StepConfig(), mode="reuse"), "auto", "off")] == ["literal"]


def test_the_margin_is_the_stated_one():
    assert MARGIN.needed(10 * 2**30) == math.ceil(10 * 2**30 * 1.10) + 512 * MiB
