"""Training library: the adversarial step, its CUDA graph, device-side plateau schedulers, background checkpoint
writes."""

from scripts.training.plateau import DevicePlateau
from scripts.training.step import STEP_MODES, GANTrainer, LossWeights, adversarial_loss, auto_step_mode, seg_losses

__all__ = [
    "STEP_MODES",
    "DevicePlateau",
    "GANTrainer",
    "LossWeights",
    "adversarial_loss",
    "auto_step_mode",
    "seg_losses",
]
