"""The one way an entry point turns a user's mistake into a message and an exit code.

A :class:`~scripts.core.errors.UserError` (bad data, options, checkpoints, unwritable outputs) is
printed once as ``error: <message>`` (under torchrun: once for all processes) and exits with code 2;
lost contact with the other torchrun processes exits with 3; anything else is a bug and keeps its
traceback (exit code 1). Log lines and warnings are printed as their message alone (a warning is not
followed by the source line that raised it: that line means nothing to a user).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Callable

from scripts.core.distributed import lost_contact_message
from scripts.core.errors import ERRORS_ENV, UserError, is_quiet_rank, report_error


def format_warning(message, category, filename, lineno, line=None) -> str:
    """``warnings.formatwarning`` for entry points: ``warning: <message>``, without file, line or source."""
    kind = "" if category is UserWarning else f" ({category.__name__})"
    return f"warning{kind}: {message}\n"


def run_command(body: Callable[[], int]) -> int:
    """``body()``'s exit code, or 2 after reporting a user's mistake (3: lost contact; module docstring)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    formatted, warnings.formatwarning = warnings.formatwarning, format_warning
    try:
        return body()
    except UserError as err:
        report_error(str(err))
        return 2
    except RuntimeError as err:
        message = lost_contact_message(err)
        if message is None:
            raise
        report_error(message)
        return 3
    finally:
        warnings.formatwarning = formatted


def quiet_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Under torchrun, an argparse mistake goes through :func:`report_error` too (exit code 2): to the
    launcher, or printed by rank 0 alone."""
    if os.environ.get(ERRORS_ENV) or is_quiet_rank():

        def error(message: str):
            report_error(f"{parser.prog}: {message} (see {parser.prog} --help)")
            sys.exit(2)

        parser.error = error  # type: ignore[method-assign]
    return parser
