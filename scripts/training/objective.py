"""What a variant's generators are trained towards: the one place where the 2021 and 2023 steps differ.

The step (:mod:`scripts.training.step`) is the same for both variants: three D updates, then G_A, G_V
and G, with the same modes. An :class:`Objective` supplies the rest:

- ``v2021`` (SPEC section 5): sigmoid outputs; targets are the 3-channel 0/1 map, G_A learns the
  artery channel repeated three times and G_V the vein channel, and each D round sees that map as
  real; the segmentation terms are BCE-with-logits and MSE(sigmoid, target); G takes the branches'
  detached probabilities; the plateau schedulers step after every training step.
- ``v2023`` (the authors' 2023 code, docs/training_v2023.md): softmax outputs over (background,
  artery, vein, uncertain); the target is a class-index map, all three generators learn it whole and
  every D round sees its one-hot map as real; the terms are cross-entropy (on the index map) and
  MSE(softmax, one-hot); G takes the branches' detached last decoder features; the plateau
  schedulers step once per epoch with the epoch's last step's losses.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class Target(NamedTuple):
    """One generator's target: ``map`` (B, C, H, W) float, D's real input and what MSE compares with;
    ``classes`` (B, H, W) int64 class indices for a cross-entropy, or None."""

    map: torch.Tensor
    classes: torch.Tensor | None = None


class Objective:
    """The 2021 objective (module docstring); :class:`SoftmaxObjective` overrides what 2023 changes."""

    variant = "v2021"
    plateau_every_step = True
    target_desc = "(B, 3, H, W) 0/1 maps (artery, uncertain, vein)"

    def prob(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits)

    def seg_terms(self, logits: torch.Tensor, prob: torch.Tensor, target: Target) -> tuple[torch.Tensor, torch.Tensor]:
        """(segmentation loss, MSE of the probabilities), weighted by beta and alpha by the step. ``prob`` is
        :meth:`prob` of ``logits``, computed once by the caller: the original codes fed one probability
        map to both D and the MSE, and so does the step (the gradients then sum before the activation's
        backward, in the same order)."""
        return F.binary_cross_entropy_with_logits(logits, target.map), F.mse_loss(prob, target.map)

    def check_targets(self, y: torch.Tensor) -> None:
        if y.dim() != 4 or y.shape[1] != 3 or not y.is_floating_point():
            raise ValueError(f"{self.variant} targets must be {self.target_desc}, got {tuple(y.shape)} {y.dtype}")

    def targets(self, y: torch.Tensor, dtype: torch.dtype, memory_format: torch.memory_format) -> dict[str, Target]:
        """Each generator's target (G_A, G_V, G) from a batch's labels; maps in ``dtype`` (the images')."""
        self.check_targets(y)

        def fmt(t: torch.Tensor) -> torch.Tensor:
            return t.contiguous(memory_format=memory_format)

        y = y.to(dtype)
        return {
            "G_A": Target(fmt(y[:, 0:1].expand_as(y))),
            "G_V": Target(fmt(y[:, 2:3].expand_as(y))),
            "G": Target(fmt(y)),
        }

    def branch(self, out: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, what G takes from this branch, detached) from a branch generator's output."""
        assert isinstance(out, torch.Tensor)
        return out, self.prob(out).detach()


class SoftmaxObjective(Objective):
    """The 2023 objective (module docstring)."""

    variant = "v2023"
    plateau_every_step = False
    classes = 4
    target_desc = "(B, H, W) int64 class indices 0..3 (background, artery, vein, uncertain)"

    def prob(self, logits: torch.Tensor) -> torch.Tensor:
        return F.softmax(logits, dim=1)

    def seg_terms(self, logits: torch.Tensor, prob: torch.Tensor, target: Target) -> tuple[torch.Tensor, torch.Tensor]:
        assert target.classes is not None
        return F.cross_entropy(logits, target.classes), F.mse_loss(prob, target.map)

    def check_targets(self, y: torch.Tensor) -> None:
        if y.dim() != 3 or y.dtype != torch.int64:
            raise ValueError(f"{self.variant} targets must be {self.target_desc}, got {tuple(y.shape)} {y.dtype}")

    def targets(self, y: torch.Tensor, dtype: torch.dtype, memory_format: torch.memory_format) -> dict[str, Target]:
        self.check_targets(y)
        # a comparison rather than F.one_hot: no data-dependent check, so it also runs on fake tensors (memory plan)
        classes = torch.arange(self.classes, device=y.device).view(1, -1, 1, 1)
        one_hot = (y.unsqueeze(1) == classes).to(dtype)
        target = Target(one_hot.contiguous(memory_format=memory_format), y)
        return {"G_A": target, "G_V": target, "G": target}

    def branch(self, out: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        assert isinstance(out, tuple)
        logits, features = out
        return logits, features.detach()


def example_targets(
    variant: str, batch: int, height: int, width: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """A batch of all-background labels in the variant's form (to plan, compile or capture a step)."""
    if variant == "v2023":
        return torch.zeros(batch, height, width, dtype=torch.int64, device=device)
    return torch.zeros(batch, 3, height, width, device=device)


OBJECTIVES: dict[str, Objective] = {"v2021": Objective(), "v2023": SoftmaxObjective()}


def objective_for(variant: str) -> Objective:
    if variant not in OBJECTIVES:
        raise ValueError(f"unknown variant '{variant}'; expected one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[variant]
