"""Write the synthetic artery/vein fundus set (``scripts/data/synthetic.py``) in the real datasets' layout.

python -m scripts.synthetic --out data --name SYNTHETIC --train 12 --test 6 --size 256

The set's ``recipe.json`` records what it was drawn with: a set with the same recipe is left as it is
(``sh train.sh demo`` calls this every time), one with another recipe (or none) is redrawn, and a
folder holding files this generator does not write is refused.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file (python scripts/NAME.py, torchrun scripts/NAME.py): the
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # repository, not scripts/, is the import root

from scripts.cli.entry import run_command
from scripts.cli.types import float_between, int_between, seed
from scripts.core.errors import UsageError
from scripts.data.synthetic import is_generated, recipe, write_dataset, written_recipe


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="data", help="data root to write into (default: ./data)")
    p.add_argument("--name", default="SYNTHETIC")
    p.add_argument("--train", type=int_between(1, 10_000, "training images to draw"), default=12)
    p.add_argument("--test", type=int_between(0, 10_000, "test images to draw"), default=6)
    p.add_argument("--size", type=int_between(32, 4096, "the images' side in pixels"), default=256)
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument(
        "--vessel-width",
        type=float_between(0.5, 3, "a factor on the trees' starting widths"),
        default=1.0,
        help="scale the vessels' widths (default 1; the demo's set: 1.5)",
    )
    a = p.parse_args(argv)
    return run_command(lambda: write(a.out, a.name, a.train, a.test, a.size, a.seed, a.vessel_width))


def write(out: str, name: str, train: int, test: int, size: int, seed: int, vessel_width: float = 1.0) -> int:
    root = Path(out) / name
    wanted, found = recipe(train, test, size, seed, vessel_width), written_recipe(root)
    if found == wanted:
        print(f"{root}: the synthetic set of this recipe is there already")
        return 0
    if root.exists():
        files = [p for p in root.rglob("*") if p.is_file()]
        foreign = [str(p.relative_to(root)) for p in files if not is_generated(p)]
        if foreign:
            raise UsageError(
                f"{root} holds files the synthetic generator does not write ({', '.join(foreign[:3])}"
                f"{' ...' if len(foreign) > 3 else ''}); give another --name or --out"
            )
        print(f"{root}: redrawing the synthetic set (its recipe was {found or 'not recorded'}, now {wanted})")
        for path in files:
            path.unlink()
    try:
        root = write_dataset(out, name, train, test, size, seed, vessel_width)
    except OSError as err:  # a folder that cannot be written is the user's to fix
        raise UsageError(
            f"cannot write the synthetic set under {out}: {err.strerror or err} ({err.filename or out})"
        ) from None
    print(f"wrote {train} training and {test} test images to {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
