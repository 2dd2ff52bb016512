"""The quality measures and flag of photographs, without a model (docs/cohorts.md#the-quality-flag).

    python -m scripts.quality photos/ [--masks DIR] [--csv quality.csv]   # per photograph
    python -m scripts.quality --data-root data [--degraded]   # every dataset's photographs: the
                                                               # calibration table of docs/cohorts.md

Prints, per group of photographs, each measure's minimum, 5th percentile, median and maximum and how
many photographs the rule marks good, usable and reject. The model's own measures (vessel fraction,
disc confidence) are left out here: ``predict.py`` adds them for every photograph it predicts.
``--degraded`` adds copies of the photographs made worse in one way each (blurred, darkened, lit from
one side, cropped) to show where the rule puts them.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a file: the repository, not scripts/, is the import root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from scripts.cli.entry import run_command
from scripts.core.errors import UsageError
from scripts.data.images import collect_inputs, derive_fov, find_mask, load_mask, load_photo
from scripts.inference.quality import DEGRADATIONS, MEASURES, grade, photo_measures
from scripts.io.tables import write_csv


def photographs(args: argparse.Namespace) -> list[tuple[Path, Path | None]]:
    """(photograph, its FOV mask or None) of the inputs, or of every ``<root>/<dataset>/<split>/images``."""
    if args.data_root is None:
        return [(p, args.masks and find_mask(args.masks, p.stem)) for p in collect_inputs(args.inputs)]
    folders = sorted(args.data_root.glob("*/*/images"))
    if not folders:
        raise UsageError(f"--data-root {args.data_root}: no <dataset>/<split>/images folders in it")
    return [(p, find_mask(f.parent / "mask", p.stem)) for f in folders for p in collect_inputs([str(f)])]


def summary(title: str, rows: list[dict]) -> str:
    lines = [
        f"{title}: {len(rows)} photographs; "
        + ", ".join(f"{flag} {sum(r['quality'] == flag for r in rows)}" for flag in ("good", "usable", "reject"))
    ]
    lines.append(f"  {'measure':16s} {'min':>9s} {'5 %':>9s} {'median':>9s} {'max':>9s}")
    for name in MEASURES:
        values = np.array([r[name] for r in rows if name in r], float)
        if values.size:
            q = np.nanpercentile(values, [0, 5, 50, 100])
            lines.append(f"  {name:16s} " + " ".join(f"{v:9.4g}" for v in q))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    groups: dict[str, list[dict]] = {"as they are": []}
    for path, mask in photographs(args):
        photo = load_photo(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # every photograph without a mask would say so
            fov = load_mask(mask) if mask else derive_fov(photo, path)
        versions = {"as they are": (photo, fov)}
        if args.degraded:
            versions.update({name: make(photo, fov) for name, make in DEGRADATIONS.items()})
        for name, (image, field) in versions.items():
            measures = photo_measures(image, field)
            flag, reason = grade(measures)
            groups.setdefault(name, []).append({"file": str(path), **measures, "quality": flag, "reason": reason})
    if args.csv:
        write_csv(args.csv, [{"version": k, **r} for k, rows in groups.items() for r in rows])
    print("\n".join(summary(name, rows) for name, rows in groups.items()))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", help="photographs: files, folders or globs")
    p.add_argument("--masks", type=Path, default=None, help="folder of FOV masks (<name>_mask.* or <name>.*)")
    p.add_argument("--data-root", type=Path, default=None, help="every <dataset>/<split>/images folder in it instead")
    p.add_argument("--degraded", action="store_true", help="also degraded copies of every photograph")
    p.add_argument("--csv", type=Path, default=None, help="every photograph's measures and flag into this CSV")
    args = p.parse_args(argv)
    if bool(args.inputs) == bool(args.data_root):
        p.error("give photographs or --data-root, one of the two")
    return run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
