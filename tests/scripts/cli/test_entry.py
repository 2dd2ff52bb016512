"""How an entry point shows warnings, user mistakes and bugs."""

from __future__ import annotations

import sys
import warnings

import pytest

from scripts.cli.entry import run_command
from scripts.core.errors import UsageError


def test_a_warning_is_its_message_alone(capsys):
    def body() -> int:
        warnings.warn("image 07: artery precision undefined (0/0), counted as 0", stacklevel=1)
        warnings.warn("an old option", DeprecationWarning, stacklevel=1)
        return 0

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        # what Python's own showwarning does outside pytest (pytest records warnings instead)
        warnings.showwarning = lambda m, c, f, n, file=None, line=None: sys.stderr.write(
            warnings.formatwarning(m, c, f, n, line)
        )
        assert run_command(body) == 0
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "warning: image 07: artery precision undefined (0/0), counted as 0",
        "warning (DeprecationWarning): an old option",
    ]
    assert "test_entry" not in err  # no file name, no source line


def test_warnings_are_still_recorded_by_callers_that_catch_them():
    def body() -> int:
        warnings.warn("disc located automatically", stacklevel=1)
        return 0

    with pytest.warns(UserWarning, match="disc located automatically"):
        assert run_command(body) == 0


def test_a_user_mistake_is_a_message_with_exit_code_2_and_a_bug_keeps_its_traceback(capsys):
    def mistake() -> int:
        raise UsageError("--epochs must be at least 1")

    assert run_command(mistake) == 2
    assert capsys.readouterr().err.strip() == "error: --epochs must be at least 1"
    with pytest.raises(ZeroDivisionError):
        run_command(lambda: 1 // 0)
