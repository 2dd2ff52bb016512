"""torchrun with the project's messages and exit codes (what ``NPROC=N sh train.sh`` runs).

PyTorch's launcher answers any failed process with a ``ChildFailedError`` traceback and exit code
1, which buries the one line that says what to fix. :func:`launch` runs the same launcher
(``torch.distributed.run``, same options) in this process with its failure logs silenced, gives the
processes a folder for their messages (:func:`scripts.core.errors.report_error`), and when they fail prints
each distinct message once and exits with the code of the first failed process (2 for a user's
mistake, 3 for lost contact). A crash (a bug) keeps its traceback, printed by the process itself.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from scripts.core.errors import ERRORS_ENV


def exit_code(code: int) -> int:
    """A process's exit status as a shell reports it (a signal N -> 128 + N)."""
    return 128 - code if code < 0 else code or 1


def launch(argv: list[str]) -> int:
    """Run ``torchrun ARGV`` (its own options, then the script and its arguments); returns the exit code."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    args = get_args_parser().parse_args(argv)
    if "OMP_NUM_THREADS" not in os.environ and args.nproc_per_node not in ("1", 1):
        os.environ["OMP_NUM_THREADS"] = "1"  # what torchrun sets anyway, without its banner about it
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    folder = Path(tempfile.mkdtemp(prefix="avseg-messages-"))
    os.environ[ERRORS_ENV] = str(folder)
    try:
        run(args)
        return 0
    except ChildFailedError as failed:
        rank, first = failed.get_first_failure()
        messages: list[str] = []
        for path in sorted(folder.glob("rank*.txt"), key=lambda p: int(p.stem[4:])):
            messages += [m for m in path.read_text().splitlines() if m and m not in messages]
        for message in messages:
            print(f"error: {message}", file=sys.stderr)
        if not messages and first.exitcode != 2:  # not a message of ours: say which process ended how
            how = (
                f"was stopped by signal {-first.exitcode} ({signal.Signals(-first.exitcode).name})"
                if first.exitcode < 0
                else f"exited with code {first.exitcode}"
            )
            print(f"error: process rank {rank} {how}; its own output above says why", file=sys.stderr)
        return exit_code(first.exitcode)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
