"""One adversarial training step of the method (SPEC section 5).

Update order per batch: D on the artery branch, D on the vein branch, D on the fusion map, then
G_A, G_V and G. By default each generator runs forward once per step and that forward is reused
for its own update: its weights have not changed in between, so losses and gradients are those
of the original code, which recomputed every forward (``literal=True`` does exactly that; its
BatchNorm running statistics then move twice per step instead of once).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from scripts.config import PAPER

SIDE_WEIGHTS = (0.5, 0.25, 0.125)


@dataclass(frozen=True)
class LossWeights:
    alpha: float = PAPER.alpha  # MSE
    beta: float = PAPER.beta  # BCE segmentation
    gamma: float = PAPER.gamma  # adversarial
    double_sigmoid: bool = False  # the original's adversarial loss (SPEC section 5 decides against it)


def adversarial_loss(logits: torch.Tensor, real: bool, double_sigmoid: bool = False) -> torch.Tensor:
    """BCE-with-logits of D's raw output against an all-ones (real) or all-zeros map.

    ``double_sigmoid`` reproduces the original code, which applied a sigmoid to D's output before
    BCE-with-logits: the loss then stays within [0.31, 1.31] and its gradient is small.
    """
    if double_sigmoid:
        logits = torch.sigmoid(logits)
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def seg_losses(logits: torch.Tensor, target: torch.Tensor, w: LossWeights) -> torch.Tensor:
    """beta * BCE-with-logits + alpha * MSE(sigmoid, target)."""
    return w.beta * F.binary_cross_entropy_with_logits(logits, target) + w.alpha * F.mse_loss(torch.sigmoid(logits), target)


@contextlib.contextmanager
def _frozen(net: nn.Module, enabled: bool = True):
    """Temporarily stop autograd from computing ``net``'s weight gradients."""
    params = [p for p in net.parameters() if p.requires_grad] if enabled else []
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class GANTrainer:
    """Holds the four networks, their Adam optimisers and the G/D plateau schedulers."""

    def __init__(self, nets: dict[str, nn.Module], lr: float = PAPER.learning_rate, weights: LossWeights = LossWeights(),
                 literal: bool = False, amp_dtype: torch.dtype | None = None, channels_last: bool = False,
                 fused_adam: bool = False) -> None:
        """``literal``: recompute forwards like the original; ``amp_dtype``: autocast dtype (bf16, or
        fp16 with a gradient scaler); ``channels_last``: NHWC memory format (same math);
        ``fused_adam``: one fused Adam kernel per optimiser (same update rule)."""
        self.nets, self.w, self.literal, self.amp_dtype = nets, weights, literal, amp_dtype
        device = next(iter(nets.values())).parameters().__next__().device
        # fp16 needs loss scaling; one scaler serves all six updates of a step
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        for net in nets.values():
            net.to(memory_format=self.memory_format)
        self.opts = {k: torch.optim.Adam(n.parameters(), lr=lr, betas=PAPER.adam_betas, eps=PAPER.adam_eps,
                                         fused=fused_adam or None) for k, n in nets.items()}
        self.scheds = {k: torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.opts[k], mode="min", factor=PAPER.plateau_factor, patience=PAPER.plateau_patience) for k in ("G", "D")}

    def _autocast(self, device: torch.device):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.amp_dtype)

    def state_dict(self) -> dict:
        return {"opts": {k: o.state_dict() for k, o in self.opts.items()},
                "scheds": {k: s.state_dict() for k, s in self.scheds.items()}, "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        for k, o in self.opts.items():
            o.load_state_dict(state["opts"][k])
        for k, s in self.scheds.items():
            s.load_state_dict(state["scheds"][k])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])

    def lrs(self) -> dict[str, float]:
        return {k: o.param_groups[0]["lr"] for k, o in self.opts.items()}

    def _update_d(self, x: torch.Tensor, real_map: torch.Tensor, fake_prob: torch.Tensor) -> torch.Tensor:
        d, opt = self.nets["D"], self.opts["D"]
        opt.zero_grad(set_to_none=True)
        with self._autocast(x.device):
            loss_real = adversarial_loss(d(x, real_map), True, self.w.double_sigmoid)
        self.scaler.scale(loss_real).backward()
        with self._autocast(x.device):
            loss_fake = adversarial_loss(d(x, fake_prob.detach()), False, self.w.double_sigmoid)
        self.scaler.scale(loss_fake).backward()
        self.scaler.step(opt)
        self.scaler.update()  # after every update: D is stepped three times per batch
        return (loss_real + loss_fake).detach()

    def _update_g(self, name: str, x: torch.Tensor, outputs: tuple[torch.Tensor, ...], target: torch.Tensor) -> torch.Tensor:
        """gamma * adv + seg losses of the main output (+ weighted side outputs for G)."""
        opt = self.opts[name]
        opt.zero_grad(set_to_none=True)
        # D's weight gradients from a generator update are never used (D's next update zeroes them);
        # the original computed them anyway, the optimised step skips them
        with self._autocast(x.device), _frozen(self.nets["D"], enabled=not self.literal):
            loss = self.w.gamma * adversarial_loss(self.nets["D"](x, torch.sigmoid(outputs[0])), True,
                                                   self.w.double_sigmoid)
            loss = loss + seg_losses(outputs[0], target, self.w)
            for weight, side in zip(SIDE_WEIGHTS, outputs[1:]):
                loss = loss + weight * seg_losses(side, target, self.w)
        self.scaler.scale(loss).backward()
        self.scaler.step(opt)
        self.scaler.update()  # after every update: D is stepped three times per batch
        return loss.detach()

    def _forward(self, name: str, x: torch.Tensor, a_prob=None, v_prob=None) -> tuple[torch.Tensor, ...]:
        with self._autocast(x.device):
            if name == "G":
                return tuple(o.float() for o in self.nets["G"](x, a_prob, v_prob))
            return (self.nets[name](x).float(),)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """One training step on images ``x`` and 3-channel 0/1 targets ``y``; returns the losses."""
        for net in self.nets.values():
            net.train()
        x, y = x.contiguous(memory_format=self.memory_format), y.contiguous(memory_format=self.memory_format)
        y_a = y[:, 0:1].expand_as(y).contiguous()
        y_v = y[:, 2:3].expand_as(y).contiguous()
        out_a = self._forward("G_A", x)
        out_v = self._forward("G_V", x)
        a_prob, v_prob = torch.sigmoid(out_a[0]).detach(), torch.sigmoid(out_v[0]).detach()
        out_g = self._forward("G", x, a_prob, v_prob)
        losses = {
            "D_A": self._update_d(x, y_a, torch.sigmoid(out_a[0])),
            "D_V": self._update_d(x, y_v, torch.sigmoid(out_v[0])),
            "D": self._update_d(x, y, torch.sigmoid(out_g[0])),
        }
        if self.literal:  # the original recomputed each generator's forward for its own update
            out_a = self._forward("G_A", x)
        losses["G_A"] = self._update_g("G_A", x, out_a, y_a)
        if self.literal:
            out_v = self._forward("G_V", x)
        losses["G_V"] = self._update_g("G_V", x, out_v, y_v)
        if self.literal:
            out_g = self._forward("G", x, a_prob, v_prob)
        losses["G"] = self._update_g("G", x, out_g, y)
        values = {k: float(v) for k, v in losses.items()}
        self.scheds["G"].step(values["G"])
        self.scheds["D"].step(values["D"])
        return values
