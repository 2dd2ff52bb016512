"""The one base class of a user's mistakes.

A ``UserError`` is something the person running a command can fix: bad data, a bad option, a
checkpoint that does not fit, an output that cannot be written. Entry points catch only this
class: they print its message and exit with code 2. Any other exception is a bug in this project
(or in a library it calls) and is left to show its traceback (exit code 1), so that it gets reported
instead of passing for a user's mistake.
"""
from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix; the message says what was wrong, where, and what to do."""
