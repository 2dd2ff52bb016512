"""The one base class of a user's mistakes.

A ``UserError`` is something the person running a command can fix: bad data, a bad option, a
checkpoint that does not fit, an output that cannot be written. Entry points catch only this
class: they print its message and exit with code 2. Any other exception is a bug in this project
(or in a library it calls) and is left to show its traceback (exit code 1), so that it gets reported
instead of passing for a user's mistake.

Under torchrun every process meets the same mistake; :func:`report_error` makes it appear once: every
process sends it to the project's launcher (``scripts/launch.py``, which prints each distinct
message once after the processes end) when it started them, else rank 0 alone prints it. (Printing
from a process would race with torchrun, which stops the others as soon as one exits.)
"""

from __future__ import annotations

import os
import sys

ERRORS_ENV = "AVSEG_ERRORS_DIR"  # set by the launcher: where each process leaves its message


class UserError(Exception):
    """A mistake the user can fix; the message says what was wrong, where, and what to do."""


class UsageError(UserError):
    """A command-line setting that cannot work here."""


def name_list(names: list[str], limit: int = 5) -> str:
    """``a, b, c and 4 more``: the first ``limit`` names of a list, for a message."""
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def is_quiet_rank() -> bool:
    """A torchrun process other than rank 0: it leaves messages to rank 0 or to the launcher."""
    return os.environ.get("RANK", "0") != "0"


def report_error(message: str) -> None:
    """Show ``message`` (an error) once per run, whatever the number of processes (module docstring)."""
    folder = os.environ.get(ERRORS_ENV)
    if folder and os.path.isdir(folder):
        with open(os.path.join(folder, f"rank{os.environ.get('RANK', '0')}.txt"), "a") as f:
            f.write(message + "\n")
    elif not is_quiet_rank():
        print(f"error: {message}", file=sys.stderr)
