"""One adversarial training step of the method (SPEC section 5), in three exact forms, for both variants.

Update order per batch: D on the artery branch, D on the vein branch, D on the fusion map, then
G_A, G_V and G. What the variants train towards (activation, targets, losses, what G takes from the
branches, when the schedulers step) is their :class:`~scripts.training.objective.Objective`; the step
itself is one. The modes compute the same losses and gradients:

- ``literal``: as the original code: every generator forward is recomputed for its own update and
  D runs nine separate times (real and fake per D update, once per generator update).
- ``reuse``: each generator runs forward once per step and that forward is reused for its update
  (its weights have not changed in between; only its BatchNorm running statistics then move once
  per step instead of twice), and D's weight gradients are not computed during generator updates
  (D's next update zeroes them unused).
- ``batched`` (default): ``reuse``, and every D call that shares D's weights is one batched call:
  real and fake of a D update as one batch of 2B, the three generator updates' D calls as one
  batch of 3B with the sum of the three generator losses back-propagated once (each generator's
  gradient comes only from its own loss). D's BatchNorm layers then normalise each original
  sub-batch separately and move their running statistics as the separate calls did
  (``model.batchnorm.ghost_batches``), so D is exactly the sequential D.

No step reads a value back to the host: losses come back as device tensors, and the plateau
schedulers decide on the device (``scripts.training.plateau``).

Under DistributedDataParallel (:meth:`GANTrainer.distribute`) the four networks' own updates go
through their DDP wrappers, which average the weight gradients over the ranks. The generator
updates call the *unwrapped* D with its weights frozen: they need only the gradient of the
adversarial loss with respect to D's input (the generator's map), not D's weight gradients, and
D's weights are the same on every rank (its DDP updates keep them so), so every rank's plain D is
the same function; going through DDP there would only all-reduce gradients nobody uses. The
losses are averaged over the ranks before the schedulers see them, so every rank keeps the same
learning rates.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from model.batchnorm import ghost_batches
from model.checkpointing import set_checkpointing
from scripts.core.config import PAPER
from scripts.core.distributed import ddp_options
from scripts.training.objective import Target, objective_for
from scripts.training.plateau import DevicePlateau, lr_tensor

log = logging.getLogger("avseg")
SIDE_WEIGHTS = (0.5, 0.25, 0.125)
STEP_MODES = ("literal", "reuse", "batched")


def auto_step_mode(device: torch.device, n_filters: int) -> str:
    """``--step auto``: the fastest exact step for the device and width, by measurement
    (docs/performance.md). GPUs: ``batched`` (fewer, larger kernels: 1.8x the literal step on an H200). CPUs:
    ``reuse`` from n = 16 on (n = 32: batching D's calls saves dispatch overhead that a CPU does not
    have, while its convolutions run slower per FLOP at batch 4-6 than at 2), ``batched`` below (the
    demo's n = 8, where dispatch overhead still counts)."""
    if device.type == "cpu" and n_filters >= 16:
        return "reuse"
    return "batched"


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
    return w.beta * F.binary_cross_entropy_with_logits(logits, target) + w.alpha * F.mse_loss(
        torch.sigmoid(logits), target
    )


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


@dataclass
class TrainerSnapshot:
    """:meth:`GANTrainer.snapshot`: host copies of the state tensors, and which parameters had Adam state."""

    tensors: list[torch.Tensor]
    adam_states: dict[str, set[int]]
    scaler: dict


class GANTrainer:
    """Holds the four networks, their Adam optimisers and the G/D plateau schedulers."""

    def __init__(
        self,
        nets: dict[str, nn.Module],
        lr: float = PAPER.learning_rate,
        weights: LossWeights = LossWeights(),
        mode: str = "batched",
        amp_dtype: torch.dtype | None = None,
        channels_last: bool = False,
        fused_adam: bool = False,
        checkpointing: bool = False,
        variant: str = "v2021",
    ) -> None:
        """``mode``: literal, reuse or batched (module docstring); ``variant``: v2021 or v2023, the networks'
        and the objective's (:mod:`scripts.training.objective`); ``amp_dtype``: autocast dtype (bf16,
        or fp16 with a gradient scaler); ``channels_last``: NHWC memory format (same math);
        ``fused_adam``: one fused Adam kernel per optimiser (same update rule); ``checkpointing``:
        recompute every network's activations in the backward pass (``model.checkpointing``: same
        numbers, less memory, one more forward pass)."""
        if mode not in STEP_MODES:
            raise ValueError(f"step mode must be one of {', '.join(STEP_MODES)}, got {mode!r}")
        self.nets, self.w, self.mode, self.amp_dtype = nets, weights, mode, amp_dtype
        self.objective = objective_for(variant)
        self.forward_fns: dict[str, nn.Module] = dict(nets)  # compiled callables replace these (same weights)
        device = next(iter(nets.values())).parameters().__next__().device
        # fp16 needs loss scaling; one scaler serves all updates of a step
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        for net in nets.values():
            if any(p.dim() == 4 and not p.is_contiguous(memory_format=self.memory_format) for p in net.parameters()):
                net.to(memory_format=self.memory_format)
            set_checkpointing(net, checkpointing)
        self.checkpointing = checkpointing
        # capturable on CUDA: CUDA's default (foreach) Adam reads a tensor rate only when capturable, and a
        # CUDA graph capture of a step refuses any Adam that is not (fused Adam's arithmetic is the same)
        self.opts = {
            k: torch.optim.Adam(
                n.parameters(),
                lr=lr,
                betas=PAPER.adam_betas,
                eps=PAPER.adam_eps,
                fused=fused_adam or None,
                capturable=device.type == "cuda",
            )
            for k, n in nets.items()
        }
        for opt in self.opts.values():  # a device tensor: the schedulers change it without a host sync
            opt.param_groups[0]["lr"] = lr_tensor(lr, device)
        self.scheds = {
            k: DevicePlateau(
                self.opts[k], mode="min", factor=PAPER.plateau_factor, patience=PAPER.plateau_patience, initial_lr=lr
            )
            for k in ("G", "D")
        }
        self.dist = None  # a scripts.core.distributed.Context once distribute() was called
        # autocast's cache of low-precision weight copies must be off while a CUDA graph is captured
        self.autocast_cache = True

    def distribute(self, ctx, device_ids: list[int] | None = None, sync_bn: bool = False) -> None:
        """Wrap the four networks in DistributedDataParallel (after any resumed state is loaded: DDP
        starts every rank from rank 0's weights). ``sync_bn``: batch statistics over all ranks."""
        from torch.nn.parallel import DistributedDataParallel as DDP

        from model.batchnorm import sync_across

        if sync_bn:
            import torch.distributed as dist

            for net in self.nets.values():
                sync_across(net, dist.group.WORLD)
        self.forward_fns = {k: DDP(n, device_ids=device_ids, **ddp_options()) for k, n in self.nets.items()}
        self.dist = ctx

    @property
    def literal(self) -> bool:
        return self.mode == "literal"

    def compile(self, mode: str = "default", example: tuple[torch.Tensor, torch.Tensor] | None = None) -> bool:
        """``torch.compile`` the four networks (the weights stay shared with ``self.nets``).

        With ``example`` (a batch of the training shape), one step is run at once so that every graph
        is compiled here; weights, optimiser and scheduler states and the RNG are then put back as
        they were. If compiling fails, the networks run eagerly and the reason is logged. Returns
        whether the compiled networks are in use."""
        self.forward_fns = {k: torch.compile(n, mode=mode) for k, n in self.nets.items()}
        if example is None:
            return True
        nets = {k: copy.deepcopy(n.state_dict()) for k, n in self.nets.items()}
        state = copy.deepcopy(self.state_dict())
        rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        try:
            self.step(*example)
            ok = True
        except Exception as err:  # a missing compiler, an unsupported op, a backend bug: fall back, say why
            log.warning(
                "torch.compile failed (%s: %s); training goes on without compiling",
                type(err).__name__,
                str(err).splitlines()[0] if str(err) else "",
            )
            self.forward_fns = dict(self.nets)
            ok = False
        finally:
            for k, n in self.nets.items():
                n.load_state_dict(nets[k])
            for opt in self.opts.values():
                opt.state.clear()  # as before any step; load_state_dict below refills what was there
            self.load_state_dict(state)
            torch.set_rng_state(rng)
            if cuda_rng is not None:
                torch.cuda.set_rng_state_all(cuda_rng)
        return ok

    def _autocast(self, device: torch.device):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.amp_dtype, cache_enabled=self.autocast_cache)

    def named_state_tensors(self) -> list[tuple[str, torch.Tensor]]:
        """Every tensor a step reads and changes, with a name: weights, buffers, Adam's moments and step
        counts, learning rates and scheduler states. A step updates each in place (a captured CUDA graph
        of the step replays into exactly these; tests check that none is rebound)."""
        out = [
            (f"{k}.{n}", t) for k, net in self.nets.items() for n, t in (*net.named_parameters(), *net.named_buffers())
        ]
        for k, opt in self.opts.items():
            out.append((f"Adam {k} lr", opt.param_groups[0]["lr"]))
            names = {id(p): n for n, p in self.nets[k].named_parameters()}
            out += [
                (f"Adam {k} {key} of {names.get(id(p), '?')}", v)
                for p, state in opt.state.items()
                for key, v in state.items()
                if isinstance(v, torch.Tensor)
            ]
        for k, sched in self.scheds.items():
            out += [(f"plateau {k} [{i}]", t) for i, t in enumerate(sched.state_tensors())]
        return out

    def state_tensors(self) -> list[torch.Tensor]:
        """The tensors of :meth:`named_state_tensors`."""
        return [t for _, t in self.named_state_tensors()]

    def snapshot(self) -> TrainerSnapshot:
        """A copy of every state tensor in host memory (and which Adam states exist), to undo a step."""
        return TrainerSnapshot(
            [t.detach().to("cpu", copy=True) for t in self.state_tensors()],
            {k: set(map(id, o.state)) for k, o in self.opts.items()},
            self.scaler.state_dict(),
        )

    @torch.no_grad()
    def restore(self, snap: TrainerSnapshot) -> None:
        """Put the state back as :meth:`snapshot` saw it, in place (a captured graph still holds the same
        tensors); Adam states created since are dropped, gradients set to None."""
        for k, opt in self.opts.items():
            for p in [p for p in opt.state if id(p) not in snap.adam_states[k]]:
                del opt.state[p]
        for net in self.nets.values():
            for p in net.parameters():
                p.grad = None
        state = self.state_tensors()
        if len(state) != len(snap.tensors):
            raise RuntimeError(f"trainer state changed shape since the snapshot: {len(state)} vs {len(snap.tensors)}")
        for t, v in zip(state, snap.tensors):
            t.copy_(v)
        if snap.scaler:
            self.scaler.load_state_dict(snap.scaler)

    def reconfigure(self, mode: str, checkpointing: bool) -> None:
        """Run the next steps as ``mode`` with or without activation checkpointing (same weights and
        optimisers; every mode computes the same losses and gradients)."""
        if mode not in STEP_MODES:
            raise ValueError(f"step mode must be one of {', '.join(STEP_MODES)}, got {mode!r}")
        self.mode, self.checkpointing = mode, checkpointing
        for net in self.nets.values():
            set_checkpointing(net, checkpointing)

    def state_dict(self) -> dict:
        return {
            "opts": {k: o.state_dict() for k, o in self.opts.items()},
            "scheds": {k: s.state_dict() for k, s in self.scheds.items()},
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        for k, o in self.opts.items():
            lr = o.param_groups[0]["lr"]
            o.load_state_dict(state["opts"][k])
            o.param_groups[0]["lr"] = lr  # keep the one tensor the scheduler writes to
        for k, s in self.scheds.items():
            s.load_state_dict(state["scheds"][k])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])

    def lrs(self) -> dict[str, torch.Tensor]:
        """Current learning rates as device tensors."""
        return {k: o.param_groups[0]["lr"] for k, o in self.opts.items()}

    def _d(self, x: torch.Tensor, maps: list[torch.Tensor], for_generators: bool = False) -> list[torch.Tensor]:
        """D's logits for (x, map) pairs: one call per map, or one batched call with ghost batch norm.
        ``for_generators``: the plain D under DDP (see the module docstring)."""
        d = self.nets["D"] if for_generators and self.dist is not None else self.forward_fns["D"]
        if self.mode != "batched" or len(maps) == 1:
            return [d(x, m) for m in maps]
        with ghost_batches(self.nets["D"], len(maps)):
            xs = x.repeat(len(maps), 1, 1, 1).contiguous(memory_format=self.memory_format)
            return list(d(xs, torch.cat(maps)).chunk(len(maps)))

    def _update_d(self, x: torch.Tensor, real_map: torch.Tensor, fake_prob: torch.Tensor) -> torch.Tensor:
        opt = self.opts["D"]
        opt.zero_grad(set_to_none=True)
        ds = self.w.double_sigmoid
        if self.mode == "batched":
            with self._autocast(x.device):
                real, fake = self._d(x, [real_map, fake_prob.detach()])
                loss_real, loss_fake = adversarial_loss(real, True, ds), adversarial_loss(fake, False, ds)
            self.scaler.scale(loss_real + loss_fake).backward()
        else:  # the original's two calls and two backward passes
            with self._autocast(x.device):
                loss_real = adversarial_loss(self._d(x, [real_map])[0], True, ds)
            self.scaler.scale(loss_real).backward()
            with self._autocast(x.device):
                loss_fake = adversarial_loss(self._d(x, [fake_prob.detach()])[0], False, ds)
            self.scaler.scale(loss_fake).backward()
        self.scaler.step(opt)
        self.scaler.update()
        return (loss_real + loss_fake).detach()

    def _generator_loss(
        self, adv_logits: torch.Tensor, outputs: tuple[torch.Tensor, ...], prob: torch.Tensor, target: Target
    ) -> torch.Tensor:
        """gamma * adv + beta * seg + alpha * mse of the main output (``prob``: its probabilities, the map D
        saw), + 1/2, 1/4, 1/8 (alpha * mse + beta * seg) of G's side outputs: the original codes' terms,
        summed in their order."""
        ob, w = self.objective, self.w
        side_probs = [ob.prob(side) for side in outputs[1:]]
        seg, mse = ob.seg_terms(outputs[0], prob, target)
        loss = w.gamma * adversarial_loss(adv_logits, True, w.double_sigmoid) + w.beta * seg + w.alpha * mse
        for weight, side, side_prob in zip(SIDE_WEIGHTS, outputs[1:], side_probs):
            seg, mse = ob.seg_terms(side, side_prob, target)
            loss = loss + weight * (w.alpha * mse + w.beta * seg)
        return loss

    def _update_generators(
        self,
        x: torch.Tensor,
        outputs: dict[str, tuple[torch.Tensor, ...]],
        targets: dict[str, Target],
        branch_inputs: tuple[torch.Tensor, torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """The G_A, G_V and G updates, in that order (batched: one D call and one backward for all three).

        ``branch_inputs``: what G takes from the branches, detached (literal recomputes G with them)."""
        names = list(outputs)
        if self.mode == "batched":
            for name in names:
                self.opts[name].zero_grad(set_to_none=True)
            with self._autocast(x.device), _frozen(self.nets["D"]):
                probs = [self.objective.prob(outputs[n][0]) for n in names]
                adv = self._d(x, probs, for_generators=True)
                losses = {n: self._generator_loss(a, outputs[n], p, targets[n]) for n, a, p in zip(names, adv, probs)}
            self.scaler.scale(sum(losses.values())).backward()
            for name in names:
                self.scaler.step(self.opts[name])
            self.scaler.update()
            return {n: v.detach() for n, v in losses.items()}
        losses = {}
        for name in names:
            opt = self.opts[name]
            opt.zero_grad(set_to_none=True)
            # D's weight gradients from a generator update are never used (D's next update zeroes them);
            # the original computed them anyway, the optimised step skips them
            with self._autocast(x.device), _frozen(self.nets["D"], enabled=not self.literal):
                out = outputs[name]
                prob = self.objective.prob(out[0])
                adv = self._d(x, [prob], for_generators=True)[0]
                loss = self._generator_loss(adv, out, prob, targets[name])
            self.scaler.scale(loss).backward()
            self.scaler.step(opt)
            self.scaler.update()
            losses[name] = loss.detach()
            if self.literal and name == "G_A":  # the original recomputed each forward for its own update
                outputs["G_V"] = (self._branch("G_V", x)[0],)
            if self.literal and name == "G_V":
                outputs["G"] = self._forward("G", x, *branch_inputs)
        return losses

    def _forward(self, name: str, x: torch.Tensor, a_in=None, v_in=None) -> tuple[torch.Tensor, ...]:
        """A network's outputs in float32: G's (logits, s1, s2, s3); a branch's logits, with its features
        for the 2023 networks."""
        fn = self.forward_fns[name]
        with self._autocast(x.device):
            out = fn(x, a_in, v_in) if name == "G" else fn(x)
            return tuple(o.float() for o in out) if isinstance(out, tuple) else (out.float(),)

    def _branch(self, name: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A branch's (logits, what G takes from it, detached)."""
        out = self._forward(name, x)
        return self.objective.branch(out[0] if len(out) == 1 else (out[0], out[1]))

    def step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """One training step on images ``x`` and labels ``y`` (v2021: 3-channel 0/1 maps; v2023: class-index
        maps); returns the six losses as detached device tensors (reading them on the host is the caller's
        choice).

        The 2023 code does not detach the fake map of D's rounds: the gradient that then reaches the
        branch is discarded by its ``zero_grad`` before its own update, so detaching changes no number."""
        for net in self.nets.values():
            net.train()
        ob = self.objective
        x = x.contiguous(memory_format=self.memory_format)
        targets = ob.targets(y, x.dtype, self.memory_format)
        a_logits, a_in = self._branch("G_A", x)
        v_logits, v_in = self._branch("G_V", x)
        out_g = self._forward("G", x, a_in, v_in)
        losses = {
            "D_A": self._update_d(x, targets["G_A"].map, ob.prob(a_logits)),
            "D_V": self._update_d(x, targets["G_V"].map, ob.prob(v_logits)),
            "D": self._update_d(x, targets["G"].map, ob.prob(out_g[0])),
        }
        if self.literal:
            a_logits = self._branch("G_A", x)[0]
        outputs = {"G_A": (a_logits,), "G_V": (v_logits,), "G": out_g}
        losses.update(self._update_generators(x, outputs, targets, (a_in, v_in)))
        if self.dist is not None:  # the global batch's losses: every rank's schedulers take the same decisions
            names = list(losses)
            means = self.dist.mean_(torch.stack([losses[k].float() for k in names]))
            losses = dict(zip(names, means.unbind()))
        if ob.plateau_every_step:
            self.step_schedulers(losses)
        return losses

    def step_schedulers(self, losses: dict[str, torch.Tensor]) -> None:
        """The G and D plateau schedulers take a step's G and D (fusion round) losses."""
        self.scheds["G"].step(losses["G"])
        self.scheds["D"].step(losses["D"])

    def end_epoch(self, last_losses: dict[str, torch.Tensor]) -> None:
        """At the end of an epoch: the 2023 objective steps the schedulers once per epoch, with the epoch's
        last step's losses (2021 stepped them in every step)."""
        if not self.objective.plateau_every_step:
            self.step_schedulers(last_losses)
