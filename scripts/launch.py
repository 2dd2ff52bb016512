"""Start several training (or test) processes with torchrun, reporting their errors once.

    python -m scripts.launch --nproc_per_node 4 scripts/train.py --dataset DRIVE_AV ...

Takes torchrun's options unchanged (see ``scripts/cli/torchrun.py``); exits with the code of the
first process that failed (2 for a user's mistake), after printing each distinct message once.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: the repository, not scripts/, is the import root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from scripts.cli.torchrun import launch


def main(argv: list[str] | None = None) -> int:
    return launch(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
