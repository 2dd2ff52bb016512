"""The settings of a test run, as typed values (``scripts/test.py`` builds them from its options)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scripts.evaluation.rrwnet import DEFAULT_PATHS
from scripts.io.job import SNAPSHOT_RULES
from scripts.vessels.graph import MIN_LENGTH

__all__ = ["DEFAULTS", "SNAPSHOT_RULES", "TestOptions"]


@dataclass(frozen=True)
class TestOptions:
    """One test run's settings (``scripts/test.py --help`` says what each does)."""

    __test__ = False  # not a pytest test class, despite its name

    dataset: str = "DRIVE_AV"
    job_name: str = "job"
    split: str = "test"
    data_root: Path | None = None
    out: Path = Path(".")
    # the weights: the job's snapshots by rule, or exactly these files, or the original's / the release's
    snapshots: str | None = None  # None: the job's variant's rule (v2021 protocol, v2023 best)
    variant: str | None = None  # the variant the weights must be (a check); None: whatever they are
    checkpoint: tuple[Path, ...] | None = None
    original: tuple[Path, Path, Path] | None = None
    release: Path | None = None
    image_size: tuple[int, int] | None = None
    device: str = "auto"
    # outputs
    maps_dir: Path | None = None  # default: Final_pre/<DATASET>/<job>
    runs_dir: Path = Path("runs")
    results: Path | None = None
    no_biomarkers: bool = False
    # segment-level evaluation
    crossing_radius: float | None = None
    mixed_share: float = 0.1
    min_segment_length: int = MIN_LENGTH
    # RRWNet's protocol
    protocol: str = "paper"
    seed: int = 0
    topo_paths: int = DEFAULT_PATHS


DEFAULTS = TestOptions()
