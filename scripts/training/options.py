"""The settings of a training run, as typed values (``scripts/train.py`` builds them from its options).

Defaults are the paper's (SPEC section 5); the parser takes its defaults from here, so each lives in
one place. ``"auto"`` values are resolved for the device by :func:`scripts.training.loop.resolve`,
which returns a new ``TrainOptions`` (the one given is never changed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scripts.core.config import PAPER
from scripts.training.cuda_graph import GRAPH_MODES
from scripts.training.step import STEP_MODES

__all__ = ["AMP_CHOICES", "AUTO_ON_OFF", "COMPILE_MODES", "DEFAULTS", "GRAPH_MODES", "STEP_MODES", "TrainOptions"]
AUTO_ON_OFF = ("auto", "on", "off")
AMP_CHOICES = ("bf16", "fp16", "off")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


@dataclass(frozen=True)
class TrainOptions:
    """One training run's settings (``scripts/train.py --help`` says what each does)."""

    # the method (SPEC section 5; v2023: docs/training_v2023.md)
    variant: str = "v2021"
    epochs: int = PAPER.epochs
    batch_size: int = PAPER.batch_size
    learning_rate: float = PAPER.learning_rate
    alpha: float = PAPER.alpha
    beta: float = PAPER.beta
    gamma: float = PAPER.gamma
    seed: int = PAPER.seed
    validation: float = PAPER.validation_percent
    n_filters: int = PAPER.n_filters
    adv_double_sigmoid: bool = False
    discriminator: str = "unet"
    # data
    dataset: str = "DRIVE_AV"
    data_root: Path | None = None
    image_size: tuple[int, int] | None = None
    uniform: bool = False
    # the job folder, its files and logs
    job_name: str = "job"
    out: Path = Path(".")
    runs_dir: Path = Path("runs")
    resume: str | None = None  # "auto" (the job's last.pt) or a path
    overwrite: bool = False
    save_from: int = PAPER.save_from
    save_every: int = PAPER.save_every
    val_every: int = 10
    last_every_minutes: float = 10.0
    log_every: int = 10
    progress_every: float = 60.0  # seconds between progress lines when the output is not a terminal
    image_every: int = 5
    max_steps: int | None = None
    time_limit: float | None = None  # minutes
    # how the step runs (none of these changes the arithmetic, except amp)
    device: str = "auto"
    workers: str = "auto"
    step_mode: str = "auto"
    activation_checkpointing: str = "auto"
    cuda_graph: str = "auto"
    deterministic: bool = False
    channels_last: str = "auto"
    amp: str | None = None
    compile: str | None = None
    # several processes (torchrun)
    sync_bn: str = "auto"
    dist_timeout: float = 10.0


DEFAULTS = TrainOptions()
