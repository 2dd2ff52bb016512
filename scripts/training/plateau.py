"""ReduceLROnPlateau whose decisions happen on the device, so a training step never waits for the host.

Same rule as ``torch.optim.lr_scheduler.ReduceLROnPlateau`` (mode, threshold and threshold mode,
patience, cooldown, min_lr, eps), with the state (best value, bad-step count, cooldown counter,
step count, learning rate) held in tensors that are only ever updated in place: a captured CUDA
graph of the training step reads and writes the same memory on every replay, so a state tensor
that was rebound to a new one would silently stop changing (the learning rate would never drop).
The optimiser's ``lr`` is a tensor too (:func:`lr_tensor`), updated in place, which Adam reads
without a host round trip. The scheduler's own arithmetic is float64, as the reference's is
(Python floats).
"""

from __future__ import annotations

import math

import torch


def lr_tensor(lr: float, device: torch.device) -> torch.Tensor:
    """The optimiser's learning rate as a device tensor.

    float64 where the optimiser accepts it (the CPU, plain and fused Adam): Adam's update is then the
    one it makes with the Python float ``lr``, to the last bit (float32 would make 8e-4 into
    0.00079999998). float32 on CUDA: the fused and capturable CUDA kernels read the rate as float, as
    they convert a Python float rate too."""
    dtype = torch.float32 if device.type == "cuda" else torch.float64
    return torch.tensor(lr, dtype=dtype, device=device)


class DevicePlateau:
    """Drop-in for ReduceLROnPlateau on an optimiser with one parameter group; ``step(loss_tensor)``."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
        initial_lr: float | None = None,
    ) -> None:
        """``initial_lr``: the optimiser's rate as a Python number, where reading its tensor is not
        possible (tensors without data, as the memory plan uses); default: read from the optimiser."""
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        if not 0 <= factor < 1:
            raise ValueError(f"factor must be in [0, 1), got {factor}")
        if len(optimizer.param_groups) != 1:
            raise ValueError("DevicePlateau handles optimisers with exactly one parameter group")
        self.optimizer = optimizer
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.threshold_mode, self.cooldown = threshold, threshold_mode, cooldown
        self.min_lr, self.eps = min_lr, eps
        group = optimizer.param_groups[0]
        device = group["params"][0].device
        initial = float(group["lr"]) if initial_lr is None else initial_lr
        if not isinstance(group["lr"], torch.Tensor):  # the optimiser reads this tensor from now on
            group["lr"] = lr_tensor(initial, device)
        self._opt_lr = group["lr"]
        f64 = {"dtype": torch.float64, "device": device}
        self.lr = torch.tensor(initial, **f64)
        self.best = torch.tensor(math.inf if mode == "min" else -math.inf, **f64)
        self.num_bad = torch.zeros((), dtype=torch.int64, device=device)
        self.cooldown_counter = torch.zeros((), dtype=torch.int64, device=device)
        self.steps = torch.zeros((), dtype=torch.int64, device=device)

    def state_tensors(self) -> list[torch.Tensor]:
        """Every tensor ``step`` writes (all updated in place)."""
        return [self.lr, self.best, self.num_bad, self.cooldown_counter, self.steps, self._opt_lr]

    @property
    def last_epoch(self) -> int:
        """Steps taken (reading it synchronises with the device)."""
        return int(self.steps)

    def _is_better(self, value: torch.Tensor) -> torch.Tensor:
        sign = 1.0 if self.mode == "min" else -1.0
        if self.threshold_mode == "rel":
            bound = self.best * (1.0 - sign * self.threshold)
        else:
            bound = self.best - sign * self.threshold
        return value < bound if self.mode == "min" else value > bound

    @torch.no_grad()
    def step(self, metric: torch.Tensor | float) -> None:
        value = torch.as_tensor(metric, device=self.lr.device).detach().to(torch.float64).reshape(())
        self.steps.add_(1)
        better = self._is_better(value)
        self.best.copy_(torch.where(better, value, self.best))
        num_bad = torch.where(better, 0, self.num_bad + 1)
        in_cooldown = self.cooldown_counter > 0
        cooldown = torch.where(in_cooldown, self.cooldown_counter - 1, self.cooldown_counter)
        num_bad = torch.where(in_cooldown, 0, num_bad)
        reduce = num_bad > self.patience
        new_lr = torch.clamp(self.lr * self.factor, min=self.min_lr)
        self.lr.copy_(torch.where(reduce & (self.lr - new_lr > self.eps), new_lr, self.lr))
        self.cooldown_counter.copy_(torch.where(reduce, self.cooldown, cooldown))
        self.num_bad.copy_(torch.where(reduce, 0, num_bad))
        self._opt_lr.copy_(self.lr)

    def get_last_lr(self) -> torch.Tensor:
        """The current rate as a float64 tensor (reading it on the host synchronises)."""
        return self.lr

    def state_dict(self) -> dict:
        return {
            "lr": self.lr,
            "best": self.best,
            "num_bad": self.num_bad,
            "cooldown_counter": self.cooldown_counter,
            "last_epoch": self.last_epoch,
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        """Copies into the live tensors (a captured step keeps reading them)."""
        self.lr.copy_(state["lr"])
        self.best.copy_(state["best"])
        self.num_bad.copy_(state["num_bad"])
        self.cooldown_counter.copy_(state["cooldown_counter"])
        self.steps.fill_(int(state["last_epoch"]))
        self._opt_lr.copy_(self.lr)
