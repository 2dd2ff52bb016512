"""Write the synthetic artery/vein fundus set (``scripts/data/synthetic.py``) in the real datasets' layout.

python -m scripts.synthetic --out data --name SYNTHETIC --train 12 --test 6 --size 256
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file (python scripts/NAME.py, torchrun scripts/NAME.py): the
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # repository, not scripts/, is the import root

from scripts.cli.entry import run_command
from scripts.cli.types import int_between, seed
from scripts.core.errors import UsageError
from scripts.data.synthetic import write_dataset


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="data", help="data root to write into (default: ./data)")
    p.add_argument("--name", default="SYNTHETIC")
    p.add_argument("--train", type=int_between(1, 10_000, "training images to draw"), default=12)
    p.add_argument("--test", type=int_between(0, 10_000, "test images to draw"), default=6)
    p.add_argument("--size", type=int_between(32, 4096, "the images' side in pixels"), default=256)
    p.add_argument("--seed", type=seed, default=0)
    a = p.parse_args(argv)
    return run_command(lambda: write(a.out, a.name, a.train, a.test, a.size, a.seed))


def write(out: str, name: str, train: int, test: int, size: int, seed: int) -> int:
    try:
        root = write_dataset(out, name, train, test, size, seed)
    except OSError as err:  # a folder that cannot be written is the user's to fix
        raise UsageError(
            f"cannot write the synthetic set under {out}: {err.strerror or err} ({err.filename or out})"
        ) from None
    print(f"wrote {train} training and {test} test images to {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
